"""The ``nbtrack`` command: experiments, runs, export, models, sizes, SQL, notebooks, doctor.

Each command group lives in a module of this package with an ``add_parsers(subparsers)``
function; a subcommand's parser sets ``func`` (called with the parsed arguments, returns the exit
status) and ``read_only`` (True: refuse to run where there is no store, rather than create one).
"""

from __future__ import annotations

import argparse
import sys

from nbtrack.cli.common import CliError, add_tracking_uri, open_store
from nbtrack.cli.table import runs_table

__all__ = ["main", "runs_table"]

COMMAND_MODULES = ("nbtrack.cli.runs", "nbtrack.cli.models", "nbtrack.cli.storage",
                   "nbtrack.cli.notebooks", "nbtrack.interop.cli",
                   "nbtrack.ui.cli", "nbtrack.team.cli")


def _version() -> str:
    from nbtrack import __version__

    return f"nbtrack {__version__}"


def build_parser() -> tuple[argparse.ArgumentParser, set[str]]:
    """The ``nbtrack`` parser, and the names of its subcommands."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="nbtrack", description="Experiment tracking on an embedded DuckDB store.")
    parser.add_argument("--version", action="version", version=_version())
    add_tracking_uri(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    return parser, set(sub.choices)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nbtrack`` command."""
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    from nbtrack.exceptions import NbtrackError

    try:
        if getattr(args, "needs_store", True):  # not `nbtrack team`: it sets a store up
            open_store(args, commands, read_only=getattr(args, "read_only", False))
        return int(args.func(args) or 0)
    except (CliError, NbtrackError) as exc:
        print(f"nbtrack: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `nbtrack runs | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
