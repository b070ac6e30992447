"""``nbtrack gc`` (free the files of deleted runs), ``du`` (sizes) and ``doctor`` (damage)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from nbtrack.cli.common import add_tracking_uri, folder_size, human_bytes, terminal_width
from nbtrack.cli.table import render


def add_parsers(sub) -> None:
    """Register the commands of this module on the ``nbtrack`` subparsers."""
    gc = sub.add_parser("gc", help="free the artifact files of deleted runs",
                        description="Delete the artifact files of every deleted run and report "
                        "the bytes freed. The runs' records stay (restorable, without files).")
    gc.add_argument("--dry-run", action="store_true", help="only report what would be freed")
    gc.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_tracking_uri(gc)
    gc.set_defaults(func=gc_command, read_only=True)

    du = sub.add_parser("du", help="disk use per experiment and per run")
    du.add_argument("--experiment", "-e", action="append", help="only these experiments")
    du.add_argument("--max", type=int, default=20, help="largest runs to list (default 20)")
    du.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_tracking_uri(du)
    du.set_defaults(func=du_command, read_only=True)

    doctor = sub.add_parser("doctor", help="check a store for damage; salvage it with --repair")
    doctor.add_argument("path", nargs="?", help="store folder or its .duckdb file (default: "
                        "the tracking URI)")
    doctor.add_argument("--repair", metavar="OUT", help="salvage what is readable into a new "
                        "store in this folder (the damaged store is not changed)")
    doctor.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_tracking_uri(doctor)
    doctor.set_defaults(func=doctor_command, read_only=False)


def gc_command(args) -> int:
    from tqdm.auto import tqdm

    import nbtrack
    from nbtrack.entities import ViewType

    client = nbtrack.Client()
    deleted = nbtrack.search_runs(search_all_experiments=True,
                                  run_view_type=ViewType.DELETED_ONLY)
    run_ids = list(deleted["run_id"]) if not deleted.empty else []
    freed, files, emptied = 0, 0, 0
    progress = not args.no_progress and sys.stderr.isatty()
    for run_id in tqdm(run_ids, desc="gc", unit="run", disable=not progress):
        folder = client.artifact_path(run_id)
        if not folder.exists():
            continue
        found = [f for f in folder.rglob("*") if f.is_file()]
        if not found:
            continue
        freed += sum(f.stat().st_size for f in found)
        files += len(found)
        emptied += 1
        if not args.dry_run:
            shutil.rmtree(folder)
    verb = "Would free" if args.dry_run else "Freed"
    print(f"{verb} {human_bytes(freed)} ({freed:,} bytes) in {files} files of {emptied} "
          f"deleted runs ({len(run_ids)} deleted runs in all).")
    if emptied and not args.dry_run:
        print("Their records stay: `nbtrack runs restore` brings a run back without its files.")
    return 0


def du_command(args) -> int:
    import pandas as pd

    import nbtrack
    from nbtrack.cli.runs import check_experiments
    from nbtrack.entities import ViewType

    check_experiments(args.experiment)
    client = nbtrack.Client()
    frame = nbtrack.search_runs(experiment_names=args.experiment,
                                search_all_experiments=not args.experiment,
                                run_view_type=ViewType.ALL)
    names = {e.experiment_id: e.name for e in nbtrack.search_experiments(view_type=ViewType.ALL)}
    points = nbtrack.sql("SELECT run_id, count(*) AS n FROM metrics GROUP BY run_id")
    counts = dict(zip(points["run_id"], points["n"], strict=True))
    gone = nbtrack.search_runs(search_all_experiments=True, run_view_type=ViewType.DELETED_ONLY)
    deleted = set(gone["run_id"]) if not gone.empty else set()
    from tqdm.auto import tqdm

    rows = []
    records = list(frame.itertuples(index=False)) if not frame.empty else []
    progress = not args.no_progress and sys.stderr.isatty()
    for record in tqdm(records, desc="du", unit="run", disable=not progress):
        rows.append({"experiment": names.get(record.experiment_id, record.experiment_id),
                     "run_id": record.run_id[:8], "run_name": record.run_name,
                     "deleted": record.run_id in deleted,
                     "metric points": int(counts.get(record.run_id, 0)),
                     "artifacts": folder_size(client.artifact_path(record.run_id))})
    runs = pd.DataFrame(rows, columns=["experiment", "run_id", "run_name", "deleted",
                                       "metric points", "artifacts"])
    width = terminal_width()
    if runs.empty:
        print("No runs.")
    else:
        per_experiment = runs.groupby("experiment", sort=False).agg(
            runs=("run_id", "size"), deleted=("deleted", "sum"),
            points=("metric points", "sum"), artifacts=("artifacts", "sum"),
        ).reset_index().sort_values("artifacts", ascending=False)
        per_experiment["artifacts"] = per_experiment["artifacts"].map(human_bytes)
        print("Per experiment:\n" + render(per_experiment, width) + "\n")
        largest = runs.sort_values("artifacts", ascending=False).head(args.max).copy()
        largest["artifacts"] = largest["artifacts"].map(human_bytes)
        largest["deleted"] = largest["deleted"].map({True: "yes", False: ""})
        more = f" ({len(runs) - len(largest)} more: --max)" if len(runs) > len(largest) else ""
        print(f"Largest runs{more}:\n" + render(largest, width) + "\n")
    if nbtrack.get_tracking_uri().startswith("ducklake:"):
        print(f"Team store: artifacts of these runs {human_bytes(runs['artifacts'].sum())}; "
              "its tables are in the lake (catalog in PostgreSQL, data in the shared folder).")
        return 0
    root = Path(nbtrack.get_tracking_uri())
    root = root.parent if root.suffix == ".duckdb" else root
    store_file = sum(folder_size(f) for f in root.glob("*.duckdb*"))
    print(f"Store {root}: database {human_bytes(store_file)}, spool "
          f"{human_bytes(folder_size(root / 'spool'))}, artifacts "
          f"{human_bytes(folder_size(root / 'artifacts'))}; {human_bytes(folder_size(root))} "
          "in all.")
    return 0


def doctor_command(args) -> int:
    """``nbtrack doctor``: 0 healthy (or repaired), 1 damaged (or nothing salvaged), 2 failed."""
    import nbtrack
    from nbtrack.exceptions import NbtrackError
    from nbtrack.store import doctor

    location = args.path or nbtrack.get_tracking_uri()
    if location.startswith("ducklake:"):
        print("nbtrack doctor: doctor checks an embedded store's DuckDB file. A team store "
              "keeps its catalog in PostgreSQL: back it up with pg_dump, and check it with "
              "PostgreSQL's own tools.", file=sys.stderr)
        return 2
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
