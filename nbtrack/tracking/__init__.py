"""Tracking: the Client, the fluent API over it, and the tracking URI."""
