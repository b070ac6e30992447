"""What every ``nbtrack`` command shares: finding the store, errors, and fitting the terminal."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MLFLOW_SCHEMES = ("sqlite", "mysql", "postgresql", "mssql", "http", "https", "databricks")


class CliError(Exception):
    """A message for the user: printed as one ``nbtrack: ...`` line, exit status 1."""


def add_tracking_uri(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """``--tracking-uri``, accepted before and after the subcommand (the later one wins)."""
    parser.add_argument(
        "--tracking-uri", metavar="PATH", default=None if top else argparse.SUPPRESS,
        help="store folder, or a team store's ducklake:postgresql://user@host:port/db"
        "?data=/shared/folder (default: NBTRACK_TRACKING_URI, else .nbtrack/ here)")


def where_from(args) -> tuple[str | None, str]:
    """The URI the user asked for, and how nbtrack came to look there."""
    if getattr(args, "tracking_uri", None):
        return args.tracking_uri, "given with --tracking-uri"
    from nbtrack.tracking.uri import ENV_VAR

    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR], f"from {ENV_VAR}"
    return None, "the default: .nbtrack/ in the working directory"


def unsupported_uri(uri: str, commands: set[str], reason: str) -> str:
    """One line for a URI nbtrack cannot open: ``reason`` (the store's own words).

    An MLflow URI gets a pointer to ``nbtrack import-mlflow`` instead, when that command exists.
    """
    scheme = urlparse(uri).scheme
    if scheme in MLFLOW_SCHEMES and "import-mlflow" in commands:
        return (f"{uri!r} is an MLflow tracking URI; nbtrack opens only its own stores (a "
                f"folder). Copy the runs over with: nbtrack import-mlflow {uri} "
                "--tracking-uri FOLDER")
    return " ".join(reason.split())


def store_exists(location: str) -> bool:
    """Whether an nbtrack store is at this (resolved) location, without creating one.

    Only a local folder (or ``.duckdb`` file) can be checked so; any other location (a team
    store's URI) is taken to exist, and opening it says otherwise.
    """
    from nbtrack.store.duckdb_store import DB_FILE

    if "://" in location or not Path(location).is_absolute():
        return True
    path = Path(location)
    if path.suffix == ".duckdb":
        return path.is_file()
    return (path / DB_FILE).is_file() or any((path / "spool").glob("*"))


def open_store(args, commands: set[str], read_only: bool) -> str:
    """Point nbtrack at the store the arguments name; return its location.

    A read-only command refuses to go on where there is no store, rather than creating an
    empty one, and says where it looked.
    """
    import nbtrack
    from nbtrack.exceptions import NbtrackError
    from nbtrack.store.registry import resolve_uri

    uri, how = where_from(args)
    try:
        location = resolve_uri(uri)
    except NbtrackError as exc:
        raise CliError(unsupported_uri(str(uri), commands, str(exc))) from None
    if read_only and not store_exists(location):
        raise CliError(
            f"No nbtrack store at {location} ({how}). Point to one with --tracking-uri PATH "
            "or NBTRACK_TRACKING_URI, or run the command where the .nbtrack/ folder is.")
    nbtrack.set_tracking_uri(location)
    return location


def terminal_width() -> int:
    """Columns to fit: the terminal's width (``COLUMNS`` wins), 100 when not a terminal."""
    return shutil.get_terminal_size(fallback=(100, 24)).columns


def plain(text: str, stream=None) -> str:
    """``text`` without ANSI colour codes unless ``stream`` is a terminal."""
    stream = stream or sys.stderr
    return text if stream.isatty() else ANSI.sub("", text)


def human_bytes(size: float) -> str:
    """``1536`` -> ``"1.5 KB"`` (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def folder_size(path: Path) -> int:
    """Bytes of the files under ``path`` (0 when it does not exist)."""
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
