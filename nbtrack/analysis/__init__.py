"""What the dashboards compute: run diffs, parameter importance, brushes turned into filters.

Functions over runs, DataFrames and Arrow tables; the widgets call them and draw the results.
"""
