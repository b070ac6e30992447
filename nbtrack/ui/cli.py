"""``nbtrack ui``: its arguments and what it does; also ``python -m nbtrack.ui``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

#: DuckDB file of a store folder (the store's own name for it)
DB_FILE = "store.duckdb"


def add_arguments(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """The options of ``nbtrack ui``."""
    parser.add_argument("--experiment", "-e", metavar="NAME",
                        help="show this experiment's runs (default: every experiment's)")
    parser.add_argument("--port", type=int, default=None,
                        help="port to listen on (default: the first free one from 8866)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; "
                        "0.0.0.0 for every network interface, then a token guards the page)")
    parser.add_argument("--no-browser", action="store_true",
                        help="print the address without opening a browser")
    parser.add_argument(
        "--tracking-uri", metavar="PATH", default=None if top else argparse.SUPPRESS,
        help="store folder (default: NBTRACK_TRACKING_URI, else .nbtrack/ here)")


def add_parsers(sub) -> None:
    """Register ``ui`` on the ``nbtrack`` subparsers."""
    ui = sub.add_parser("ui", help="open the compare and registry dashboards in a browser "
                        "(served by Voilà; needs nbtrack[ui])")
    add_arguments(ui)
    ui.set_defaults(func=ui_command, read_only=True)


def _store_location(args) -> tuple[str, str]:
    """The store's resolved location, and how nbtrack came to look there."""
    from nbtrack.store.registry import resolve_uri
    from nbtrack.tracking.uri import ENV_VAR

    if getattr(args, "tracking_uri", None):
        return resolve_uri(args.tracking_uri), "given with --tracking-uri"
    if os.environ.get(ENV_VAR):
        return resolve_uri(os.environ[ENV_VAR]), f"from {ENV_VAR}"
    return resolve_uri(None), "the default: .nbtrack/ in the working directory"


def _has_store(location: str) -> bool:
    if location.startswith("ducklake:"):
        return True  # a team store: opening it says if it is not there
    path = Path(location)
    return path.is_file() if path.suffix == ".duckdb" else (path / DB_FILE).is_file()


def ui_command(args) -> int:
    """Check the store (and experiment) without writing to it, then serve until Ctrl-C."""
    import nbtrack
    from nbtrack.ui.launch import UiError, serve

    location, how = _store_location(args)
    if not _has_store(location):
        raise UiError(f"No nbtrack store at {location} ({how}). Point to one with "
                      "--tracking-uri PATH or NBTRACK_TRACKING_URI.")
    if args.experiment:
        nbtrack.set_tracking_uri(location)
        if nbtrack.Client().get_experiment_by_name(args.experiment) is None:
            raise UiError(f"No experiment named {args.experiment!r} in {location}; "
                          "list them with: nbtrack experiments")
    return serve(location, args.experiment, args.host, args.port,
                 open_browser=not args.no_browser)


def main(argv: list[str] | None = None) -> int:
    """``python -m nbtrack.ui``: the same as ``nbtrack ui``."""
    from nbtrack.exceptions import NbtrackError

    parser = argparse.ArgumentParser(
        prog="nbtrack ui", description="The compare and registry dashboards in a browser.")
    add_arguments(parser, top=True)
    args = parser.parse_args(argv)
    try:
        return ui_command(args)
    except NbtrackError as exc:
        print(f"nbtrack: {exc}", file=sys.stderr)
        return 1
