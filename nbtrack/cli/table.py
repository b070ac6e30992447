"""The runs table of ``nbtrack runs`` and ``nbtrack demo``: nested child runs, sized to fit."""

from __future__ import annotations

import math

BASE_COLUMNS = ("run_id", "run_name", "status", "start_time", "duration")
MAX_CELL = 20  # characters of a value before it is cut with "…" (unless --wide)
GAP = "  "


def duration_text(seconds: float | None) -> str:
    """``4.2`` -> ``"4.2 s"``, ``400`` -> ``"6.7 min"``, a run still going -> ``""``."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _order(frame, all_runs: bool) -> list[tuple[int, int, int]]:
    """Rows in display order as (position, depth, hidden children): children under parents."""
    ids = list(frame["run_id"])
    present = set(ids)
    parents = list(frame["parent_run_id"]) if "parent_run_id" in frame else [None] * len(ids)
    children: dict[str, list[int]] = {}
    roots = []
    for position, parent in enumerate(parents):
        if isinstance(parent, str) and parent and parent in present:
            children.setdefault(parent, []).append(position)
        else:
            roots.append(position)
    order: list[tuple[int, int, int]] = []

    def visit(position: int, depth: int) -> None:
        below = children.get(ids[position], [])
        if all_runs:
            order.append((position, depth, 0))
            for child in below:
                visit(child, depth + 1)
        else:
            order.append((position, depth, _count(ids[position], children, ids)))

    for root in roots:
        visit(root, 0)
    return order


def _count(run_id: str, children: dict[str, list[int]], ids: list[str]) -> int:
    below = children.get(run_id, [])
    return len(below) + sum(_count(ids[c], children, ids) for c in below)


def runs_table(frame, max_columns: int = 12, all_runs: bool = True):
    """A compact, readable view of a ``search_runs`` DataFrame (a DataFrame of strings).

    Child runs follow their parent, indented with ``└``; with ``all_runs=False`` they are left
    out and a ``child runs`` column counts them. A child whose parent is not in ``frame`` stays
    at the top level. ``duration`` is wall-clock time with its unit.
    """
    import pandas as pd

    if frame.empty:
        return pd.DataFrame(columns=list(BASE_COLUMNS))
    seconds = (frame["end_time"] - frame["start_time"]).dt.total_seconds()
    extra = [c for c in frame.columns if c.startswith(("metrics.", "params."))][:max_columns]
    rows = []
    for position, depth, hidden in _order(frame, all_runs):
        record = frame.iloc[position]
        name = str(record["run_name"] or "")
        if depth:
            name = "  " * (depth - 1) + "└ " + name
        start = record["start_time"]
        row = {
            "run_id": str(record["run_id"])[:8],
            "run_name": name,
            "status": record["status"],
            "start_time": start.strftime("%Y-%m-%d %H:%M") if not pd.isna(start) else "",
            "duration": duration_text(None if pd.isna(seconds.iloc[position])
                                      else float(seconds.iloc[position])),
        }
        if not all_runs:
            row["child runs"] = str(hidden or "")
        for column in extra:
            row[column] = _cell(record[column])
        rows.append(row)
    counts = [] if all_runs else ["child runs"]
    return pd.DataFrame(rows, columns=[*BASE_COLUMNS, *counts, *extra])


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(table, width: int, wide: bool = False) -> str:
    """The table as text ``width`` columns wide.

    Long values are cut with "…", and the columns that do not fit are left out and named in a
    last line. ``wide`` shows everything, uncut.
    """
    columns = list(table.columns)
    cells = {c: [str(v) for v in table[c]] for c in columns}
    if not wide:
        cells = {c: [_cut(v, MAX_CELL) for v in values] for c, values in cells.items()}
    widths = {c: max([len(c), *map(len, cells[c])]) for c in columns}
    shown: list[str] = []
    used = 0
    for column in columns:
        need = widths[column] + (len(GAP) if shown else 0)
        if not wide and shown and used + need > width:
            continue
        shown.append(column)
        used += need
    numeric = {c for c in columns if c.startswith("metrics.")}

    def line(values: dict[str, str]) -> str:
        parts = [values[c].rjust(widths[c]) if c in numeric else values[c].ljust(widths[c])
                 for c in shown]
        return GAP.join(parts).rstrip()

    lines = [line({c: c for c in shown})]
    lines += [line({c: cells[c][i] for c in shown}) for i in range(len(table))]
    left_out = [c for c in columns if c not in shown]
    if left_out:
        names = ", ".join(left_out)
        lines.append(_cut(f"({len(left_out)} more column{'s' if len(left_out) > 1 else ''}, "
                          f"--wide shows all: {names})", max(width, 40)))
    return "\n".join(lines)
