"""Notebook widgets (anywidget): the compare dashboard and live metric charts."""
