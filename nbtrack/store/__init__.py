"""Stores: the only layer that speaks SQL. ``get_store(uri)`` picks one by tracking URI."""

from nbtrack.store.registry import get_store, resolve_uri

__all__ = ["get_store", "resolve_uri"]
