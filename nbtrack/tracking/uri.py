"""Which store the fluent API and new Clients use."""

from __future__ import annotations

import os

from nbtrack.store.registry import resolve_uri

ENV_VAR = "NBTRACK_TRACKING_URI"
_tracking_uri: str | None = None


def set_tracking_uri(uri: str | os.PathLike | None) -> None:
    """Use the store at ``uri`` from now on (None goes back to the default)."""
    global _tracking_uri
    _tracking_uri = resolve_uri(uri) if uri else None


def get_tracking_uri() -> str:
    """The store in use: ``set_tracking_uri``, else ``NBTRACK_TRACKING_URI``, else ``.nbtrack/``."""
    if _tracking_uri:
        return _tracking_uri
    return resolve_uri(os.environ.get(ENV_VAR) or None)
