"""``nbtrack experiments``, ``runs`` (list, delete, restore), ``export`` and ``sql``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from nbtrack.cli.common import CliError, add_tracking_uri, terminal_width
from nbtrack.cli.table import render, runs_table

EXPORT_FORMATS = ("csv", "json", "parquet")


def add_parsers(sub) -> None:
    """Register the commands of this module on the ``nbtrack`` subparsers."""
    experiments = sub.add_parser("experiments", help="list experiments")
    experiments.add_argument("--all", action="store_true", help="also deleted experiments")
    add_tracking_uri(experiments)
    experiments.set_defaults(func=experiments_command, read_only=True)

    runs = sub.add_parser("runs", help="list runs as a table; delete or restore runs",
                          description="List runs (newest first). 'duration' is wall-clock "
                          "time with its unit; in a filter, attributes.duration is in ms.")
    add_search_options(runs)
    runs.add_argument("--max", type=int, default=50, help="most runs to show (default 50)")
    runs.add_argument("--top-level", action="store_true",
                      help="only runs without a parent, with a count of their child runs "
                      "(default: child runs nested under their parent)")
    runs.add_argument("--wide", action="store_true",
                      help="every column, values uncut (default: fit the terminal)")
    runs.add_argument("--deleted", action="store_true", help="list deleted runs instead")
    add_tracking_uri(runs)
    runs.set_defaults(func=runs_command, read_only=True)
    actions = runs.add_subparsers(dest="action", metavar="{delete,restore}")
    for action, what in (("delete", "move runs to the trash (nbtrack gc frees their files)"),
                         ("restore", "bring deleted runs back")):
        sub_action = actions.add_parser(action, help=what)
        sub_action.add_argument("run_ids", nargs="+", metavar="RUN_ID",
                                help="run ids, or unique prefixes of 8 or more characters")
        add_tracking_uri(sub_action)
        sub_action.set_defaults(func=delete_or_restore, read_only=True)

    export = sub.add_parser("export", help="write runs to a CSV, JSON or Parquet file")
    add_search_options(export, order_flag="--order")
    export.add_argument("--format", choices=EXPORT_FORMATS,
                        help="file format (default: from the file's extension)")
    export.add_argument("--output", "-o", required=True, metavar="FILE", help="file to write")
    add_tracking_uri(export)
    export.set_defaults(func=export_command, read_only=True)

    sql = sub.add_parser("sql", help="run a read-only SELECT over the store's views")
    sql.add_argument("query")
    add_tracking_uri(sql)
    sql.set_defaults(func=sql_command, read_only=True)


def add_search_options(parser: argparse.ArgumentParser, order_flag: str = "-o") -> None:
    parser.add_argument("--experiment", "-e", action="append",
                        help="experiment name (repeatable; default: all experiments)")
    parser.add_argument("--filter", "-f", default="", help="e.g. \"metrics.rmse < 5\"")
    parser.add_argument("--order-by", order_flag, action="append", dest="order_by",
                        help="e.g. \"metrics.rmse ASC\" (repeatable)")


def check_experiments(names: list[str] | None) -> None:
    """Refuse experiment names that do not exist, listing the ones that do."""
    import nbtrack
    from nbtrack.entities import ViewType

    existing = [e.name for e in nbtrack.search_experiments(view_type=ViewType.ALL)]
    for name in names or []:
        if name not in existing:
            listed = ", ".join(existing[:10]) + (", …" if len(existing) > 10 else "")
            raise CliError(f"No experiment named {name!r}. `nbtrack experiments` lists them"
                           + (f" ({listed})." if listed else "; this store has none yet."))


def search(args, max_results: int, deleted: bool = False):
    import nbtrack
    from nbtrack.entities import ViewType

    check_experiments(args.experiment)
    return nbtrack.search_runs(
        experiment_names=args.experiment, search_all_experiments=not args.experiment,
        filter_string=args.filter, order_by=args.order_by, max_results=max_results,
        run_view_type=ViewType.DELETED_ONLY if deleted else ViewType.ACTIVE_ONLY)


def experiments_command(args) -> int:
    import pandas as pd

    import nbtrack
    from nbtrack.entities import ViewType

    view = ViewType.ALL if args.all else ViewType.ACTIVE_ONLY
    rows = [{"experiment_id": e.experiment_id, "name": e.name,
             "lifecycle_stage": e.lifecycle_stage}
            for e in nbtrack.search_experiments(view_type=view)]
    if not rows:
        print("No experiments yet.")
        return 0
    print(render(pd.DataFrame(rows), terminal_width()))
    return 0


def runs_command(args) -> int:
    frame = search(args, args.max, deleted=args.deleted)
    if frame.empty:
        print("No runs found.")
        return 0
    table = runs_table(frame, max_columns=10_000, all_runs=not args.top_level)
    table = table[first_columns(table.columns, [args.filter, *(args.order_by or [])])]
    width = terminal_width()
    if width < 100 and not args.wide:  # the year goes, to leave room for a metric or two
        table["start_time"] = table["start_time"].str[5:]
    print(render(table, width, wide=args.wide))
    return 0


def first_columns(columns, texts: list[str]) -> list[str]:
    """``columns`` with the keys that ``texts`` (a filter, orders) name first after the run's.

    A narrow table so still shows what its runs were chosen and sorted by.
    """
    named = []
    for text in texts:
        for match in re.finditer(r"\b(metrics|params)\.(`[^`]+`|[\w.\-:/]+)", text or ""):
            named.append(f"{match.group(1)}.{match.group(2).strip('`')}")
    columns = list(columns)
    wanted = [c for c in dict.fromkeys(named) if c in columns]
    base = [c for c in columns if not c.startswith(("metrics.", "params."))]
    return base + wanted + [c for c in columns if c not in base and c not in wanted]


def resolve_run_ids(run_ids: list[str]) -> list[str]:
    """Full run ids for ids or unique prefixes (8+ characters), deleted runs included."""
    import nbtrack
    from nbtrack.entities import ViewType

    frame = nbtrack.search_runs(search_all_experiments=True, run_view_type=ViewType.ALL)
    known = list(frame["run_id"]) if not frame.empty else []
    resolved = []
    for given in run_ids:
        matches = [r for r in known if r == given] or (
            [r for r in known if r.startswith(given)] if len(given) >= 8 else [])
        if len(matches) != 1:
            what = "matches several runs" if matches else "is not a run of this store"
            raise CliError(f"{given!r} {what}. Give a full run id, or the 8-character prefix "
                           "that `nbtrack runs` shows (`nbtrack runs --deleted` for deleted "
                           "runs).")
        resolved.append(matches[0])
    return resolved


def delete_or_restore(args) -> int:
    import nbtrack

    client = nbtrack.Client()
    for run_id in resolve_run_ids(args.run_ids):
        if args.action == "delete":
            client.delete_run(run_id)
        else:
            client.restore_run(run_id)
        print(f"{'Deleted' if args.action == 'delete' else 'Restored'} run {run_id}")
    client.flush()
    if args.action == "delete":
        print("`nbtrack runs restore RUN_ID` brings a run back; `nbtrack gc` frees the files "
              "of deleted runs for good.")
    return 0


def export_command(args) -> int:
    output = Path(args.output)
    fmt = args.format or output.suffix.lstrip(".").lower()
    if fmt not in EXPORT_FORMATS:
        raise CliError(f"Cannot tell the format of {args.output!r}: give --format "
                       f"{'|'.join(EXPORT_FORMATS)} or a file ending in .csv, .json or .parquet.")
    frame = search(args, max_results=1_000_000_000)
    for column in ("start_time", "end_time"):
        if fmt == "json" and column in frame:
            frame[column] = frame[column].map(lambda t: t.isoformat() if t == t else None)
    if fmt == "csv":
        frame.to_csv(output, index=False)
    elif fmt == "json":
        frame.to_json(output, orient="records", indent=1)
    else:
        try:
            frame.to_parquet(output, index=False)
        except ImportError:
            raise CliError("Writing Parquet needs pyarrow: pip install pyarrow.") from None
    print(f"Wrote {len(frame)} runs and {len(frame.columns)} columns to {output} ({fmt}).")
    return 0


def sql_command(args) -> int:
    import nbtrack

    frame = nbtrack.sql(args.query)
    print(frame.to_string(index=False) if not frame.empty else "(no rows)")
    return 0
