"""``nbtrack run`` (a notebook headless, with parameters) and ``nbtrack demo``."""

from __future__ import annotations

import sys

from nbtrack.cli.common import add_tracking_uri, plain, terminal_width
from nbtrack.cli.table import render, runs_table


def add_parsers(sub) -> None:
    """Register the commands of this module on the ``nbtrack`` subparsers."""
    run = sub.add_parser("run", help="execute a notebook headless as a tracked run")
    run.add_argument("notebook", help="path of the .ipynb file")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                     help="a parameter, injected in a new cell after the cell tagged "
                     "'parameters' (repeatable)")
    run.add_argument("--inject-at-top", action="store_true",
                     help="with no cell tagged 'parameters', inject -p values before the first "
                     "cell (the notebook's own assignments then override them)")
    run.add_argument("--experiment", "-e", help="experiment for the runs")
    run.add_argument("--kernel", default="python3", help="kernel name (default python3)")
    run.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    run.add_argument("--output", "-o", help="also save the executed notebook here")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_tracking_uri(run)
    run.set_defaults(func=run_command, read_only=False)

    demo = sub.add_parser("demo", help="log a few demo runs, then print the runs table")
    demo.add_argument("--runs", type=int, default=4, help="how many runs (1-6, default 4)")
    add_tracking_uri(demo)
    demo.set_defaults(func=demo_command, read_only=False)


def run_command(args) -> int:
    import nbtrack
    from nbtrack.runner.notebook import parse_parameters, run_notebook

    result = run_notebook(args.notebook, parse_parameters(args.parameter), args.experiment,
                          args.kernel, args.timeout, args.output,
                          progress=not args.no_progress, inject_at_top=args.inject_at_top)
    if result.status != "FINISHED":
        print(plain(f"nbtrack: {args.notebook} failed {result.describe_failure()}\n"
                    f"The executed notebook is stored with run {result.run_id}."),
              file=sys.stderr)
        return 1
    print(f"Ran {args.notebook} as run {result.run_id} in {nbtrack.get_tracking_uri()}")
    return 0


def demo_command(args) -> int:
    import nbtrack
    from nbtrack.runner.demo import run_demo

    frame = run_demo(n_runs=args.runs)
    print(f"Logged {min(max(args.runs, 1), 6)} runs to {nbtrack.get_tracking_uri()}\n")
    print(render(runs_table(frame), terminal_width()))
    return 0
