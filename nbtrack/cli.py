"""The ``nbtrack`` command: experiments, runs, SQL, the demo, and ``doctor`` for damaged stores."""

from __future__ import annotations

import argparse
import sys

TABLE_COLUMNS = ("run_id", "run_name", "status", "start_time", "duration")


def runs_table(frame, max_columns: int = 12):
    """A compact, readable view of a ``search_runs`` DataFrame."""
    import pandas as pd

    if frame.empty:
        return frame
    table = pd.DataFrame({
        "run_id": frame["run_id"].str[:8],
        "run_name": frame["run_name"],
        "status": frame["status"],
        "start_time": frame["start_time"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        "duration": (frame["end_time"] - frame["start_time"]).dt.total_seconds().round(2),
    })
    extra = [c for c in frame.columns if c.startswith(("metrics.", "params."))]
    for column in extra[:max_columns]:
        table[column] = frame[column]
    return table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbtrack", description="Experiment tracking on an embedded DuckDB store."
    )
    parser.add_argument("--tracking-uri", help="store folder (default: .nbtrack/ here, or "
                        "NBTRACK_TRACKING_URI)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("experiments", help="list experiments")
    runs = sub.add_parser("runs", help="list runs as a table")
    runs.add_argument("--experiment", "-e", action="append",
                      help="experiment name (repeatable; default: all experiments)")
    runs.add_argument("--filter", "-f", default="", help="e.g. \"metrics.rmse < 5\"")
    runs.add_argument("--order-by", "-o", action="append", help="e.g. \"metrics.rmse ASC\"")
    runs.add_argument("--max", type=int, default=50, help="most runs to show (default 50)")
    sql = sub.add_parser("sql", help="run a read-only SELECT over the store's views")
    sql.add_argument("query")
    run = sub.add_parser("run", help="execute a notebook headless as a tracked run")
    run.add_argument("notebook", help="path of the .ipynb file")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                     help="a parameter injected after the cell tagged 'parameters' (repeatable)")
    run.add_argument("--experiment", "-e", help="experiment for the runs")
    run.add_argument("--kernel", default="python3", help="kernel name (default python3)")
    run.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    run.add_argument("--output", "-o", help="also save the executed notebook here")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    doctor = sub.add_parser("doctor", help="check a store for damage; salvage it with --repair")
    doctor.add_argument("path", nargs="?", help="store folder or its .duckdb file (default: "
                        "the tracking URI)")
    doctor.add_argument("--repair", metavar="OUT", help="salvage what is readable into a new "
                        "store in this folder (the damaged store is not changed)")
    doctor.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    demo = sub.add_parser("demo", help="log a few demo runs, then print the runs table")
    demo.add_argument("--runs", type=int, default=4, help="how many runs (1-6, default 4)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nbtrack`` command."""
    args = _parser().parse_args(argv)
    import pandas as pd

    import nbtrack
    from nbtrack.exceptions import NbtrackError

    if args.tracking_uri:
        nbtrack.set_tracking_uri(args.tracking_uri)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    try:
        if args.command == "experiments":
            rows = [
                {"experiment_id": e.experiment_id, "name": e.name,
                 "lifecycle_stage": e.lifecycle_stage}
                for e in nbtrack.search_experiments()
            ]
            print(pd.DataFrame(rows).to_string(index=False))
        elif args.command == "runs":
            frame = nbtrack.search_runs(
                experiment_names=args.experiment,
                search_all_experiments=not args.experiment,
                filter_string=args.filter,
                order_by=args.order_by,
                max_results=args.max,
            )
            print(runs_table(frame).to_string(index=False) if len(frame) else "No runs found.")
        elif args.command == "sql":
            print(nbtrack.sql(args.query).to_string(index=False))
        elif args.command == "run":
            from nbtrack.runner.notebook import parse_parameters, run_notebook

            result = run_notebook(args.notebook, parse_parameters(args.parameter),
                                  args.experiment, args.kernel, args.timeout, args.output,
                                  progress=not args.no_progress)
            if result.status != "FINISHED":
                cell = f"cell {result.failed_cell}" if result.failed_cell is not None else "a cell"
                print(f"nbtrack: {args.notebook} failed in {cell}: {result.error}\n"
                      f"The executed notebook is stored with run {result.run_id}.",
                      file=sys.stderr)
                return 1
            print(f"Ran {args.notebook} as run {result.run_id} in {nbtrack.get_tracking_uri()}")
        elif args.command == "doctor":
            return _doctor(args, nbtrack.get_tracking_uri())
        elif args.command == "demo":
            from nbtrack.runner.demo import run_demo

            frame = run_demo(n_runs=args.runs)
            print(f"Logged {min(max(args.runs, 1), 6)} runs to {nbtrack.get_tracking_uri()}\n")
            print(runs_table(frame).to_string(index=False))
    except NbtrackError as exc:
        print(f"nbtrack: {exc}", file=sys.stderr)
        return 1
    return 0


def _doctor(args, tracking_uri: str) -> int:
    """``nbtrack doctor``: 0 healthy (or repaired), 1 damaged (or nothing salvaged), 2 failed."""
    from nbtrack.exceptions import NbtrackError
    from nbtrack.store import doctor

    location = args.path or tracking_uri
    progress = not args.no_progress and sys.stderr.isatty()
    try:
        return _doctor_run(doctor, location, args.repair, progress)
    except NbtrackError as exc:  # the check could not run: not a verdict on the store
        print(f"nbtrack doctor: {exc}", file=sys.stderr)
        return 2


def _doctor_run(doctor, location: str, out: str | None, progress: bool) -> int:
    if out is None:
        report = doctor.check(location, progress=progress)
        print(report.render())
        if not report.damaged:
            print("\nThe store is healthy.")
            return 0
        print(f"\nThe store is DAMAGED. Salvage what is readable into a new store with\n"
              f"  nbtrack doctor {location} --repair NEW_FOLDER\nor restore it from a backup.")
        return 1
    report = doctor.repair(location, out, progress=progress)
    print(report.render())
    lost = report.lost_summary()
    print(f"\nRepaired store: {report.repaired} ({report.runs} runs). The damaged store was "
          "not changed.")
    print("Lost:\n" + "\n".join(lost) if lost else "Nothing was lost.")
    if report.open_error:
        print("Nothing could be read from the store file: the new store holds only the "
              "artifacts (and the spool).")
        return 1
    print(f"Use it with NBTRACK_TRACKING_URI={report.repaired}, or put it in place of the "
          "damaged store, keeping that as a backup.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
