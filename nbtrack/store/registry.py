"""Choose a store implementation by tracking URI, one shared instance per location."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

from nbtrack.exceptions import NbtrackError
from nbtrack.store.registry_base import Backend

DEFAULT_DIR = ".nbtrack"
_stores: dict[str, Backend] = {}
_lock = threading.Lock()


def resolve_uri(uri: str | os.PathLike | None) -> str:
    """Normalise a tracking URI: None means ``.nbtrack/`` under the working directory.

    Accepted forms: a folder path, ``file:///folder``, and ``duckdb:///folder`` (or a path to a
    ``.duckdb`` file whose folder then holds the artifacts) for the embedded store, and
    ``ducklake:postgresql://user@host:port/db?data=/shared/folder`` for the team store.
    """
    if uri is None or str(uri) == "":
        return str(Path.cwd() / DEFAULT_DIR)
    text = str(uri)
    parsed = urlparse(text)
    if parsed.scheme == "ducklake":  # the team store: checked (no password), kept as written
        from nbtrack.store.ducklake_store import parse_uri

        parse_uri(text)
        return text
    if parsed.scheme in ("file", "duckdb"):
        return str(Path(unquote(parsed.netloc + parsed.path)).expanduser().resolve())
    if parsed.scheme and len(parsed.scheme) > 1:
        raise NbtrackError(
            f"Unsupported tracking URI {text!r}. Use a folder path (the default is .nbtrack/ "
            "in the working directory), file:///path or duckdb:///path, or a team store's "
            "ducklake:postgresql://user@host:port/db?data=/shared/folder."
        )
    return str(Path(text).expanduser().resolve())


def get_store(uri: str | os.PathLike | None = None) -> Backend:
    """Return the store for a tracking URI, opening it once per process."""
    location = resolve_uri(uri)
    store = _stores.get(location)
    if store is not None:
        return store
    with _lock:
        store = _stores.get(location)
        if store is None:
            from nbtrack.store.duckdb_store import DuckDBStore

            path = Path(location)
            if location.startswith("ducklake:"):
                from nbtrack.store.ducklake_store import DuckLakeStore

                store = DuckLakeStore(location)
            elif path.suffix == ".duckdb":
                store = DuckDBStore(path.parent, db_file=path.name)
            else:
                store = DuckDBStore(path)
            _stores[location] = store
    return store


def close_all() -> None:
    """Close every store of this process at exit.

    What cannot be merged within a short wait stays durable in the spool for the next process.
    """
    from nbtrack.store.duckdb_store import close_all_at_exit

    close_all_at_exit()


def forget_stores() -> None:
    """Close and forget every open store (tests use this between cases)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()
