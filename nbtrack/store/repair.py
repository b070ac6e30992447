"""The new store of ``nbtrack doctor --repair``: its tables, and what makes salvaged rows whole.

Rows are copied by column name into tables made by the same migrations as the damaged store's
schema version (nbtrack migrates the result forward when it opens it). ``run_index`` holds a
copy of every run row plus its latest metrics, params and tags, so it is salvaged into a table
of its own and fills what the normalised tables lost; then the index itself is rebuilt.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from nbtrack.clock import now_ms
from nbtrack.store import run_index, schema, spool
from nbtrack.store.experiments import ARTIFACTS_DIR

#: where the damaged store's run_index rows go, until ``complete`` has used them
SALVAGED_INDEX = "_nb_salvaged_run_index"
_VALUE_TABLES = ("params", "tags", "metrics", "latest_metrics", "artifacts", "inputs")
_LATEST = """
INSERT OR IGNORE INTO latest_metrics
SELECT run_id, key, max(value), any_value(step), any_value("timestamp") FROM (
    SELECT *, rank = max(rank) OVER (PARTITION BY run_id, key) AS top FROM (
        SELECT *, step::HUGEINT * 18446744073709551616 + "timestamp" AS rank FROM metrics))
WHERE top GROUP BY run_id, key
"""


def create(target: Path, version: int, catalog: dict, send: dict) -> list[dict]:
    """Make an empty store of schema ``version``; the salvage tasks that fill it.

    ``catalog`` maps each damaged table to its columns; each task copies the columns the new
    table shares with it. ``send`` names the columns of readable rows to send back per table.
    """
    import duckdb

    with duckdb.connect(str(target)) as conn:
        for step in range(version):
            conn.execute(schema.MIGRATIONS[step])
        columns: dict[str, list[str]] = {}
        nullable: dict[str, list[str]] = {}
        for table, column, is_nullable in conn.execute(
            "SELECT table_name, column_name, is_nullable FROM duckdb_columns() "
            "WHERE schema_name = 'main' AND NOT internal ORDER BY table_name, column_index"
        ).fetchall():
            columns.setdefault(table, []).append(column)
            if is_nullable:
                nullable.setdefault(table, []).append(column)
        keyed = {name for (name,) in conn.execute(
            "SELECT DISTINCT table_name FROM duckdb_constraints() "
            "WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE')").fetchall()}
    tasks = []
    for name, source_columns in catalog.items():
        if name == "run_index":
            tasks.append({"table": name, "into": SALVAGED_INDEX, "create": True,
                          "columns": source_columns})
        elif name in columns:
            tasks.append({"table": name, "columns": [c for c in columns[name]
                                                     if c in source_columns],
                          "nullable": nullable.get(name, []), "keyed": name in keyed,
                          "send": send.get(name)})
    return tasks


def complete(target: Path, version: int, source: Path) -> tuple[dict[str, int], list[str]]:
    """Make the salvaged rows a whole store; ``({table: rows recovered}, notes)``.

    Recomputes latest metric values from the history, fills runs, params, tags and latest
    values from the salvaged run index, recreates the runs and experiments that values still
    refer to, and rebuilds the run index.
    """
    import duckdb

    notes: list[str] = []
    now = now_ms()
    with duckdb.connect(str(target)) as conn:
        conn.execute("BEGIN TRANSACTION")
        conn.execute("INSERT OR REPLACE INTO nbtrack_meta VALUES ('schema_version', ?)",
                     [str(version)])
        conn.execute("INSERT OR IGNORE INTO nbtrack_meta VALUES ('created_by', 'nbtrack')")
        conn.execute("INSERT OR REPLACE INTO nbtrack_meta VALUES ('repaired_from', ?)",
                     [f"{source} on {time.strftime('%Y-%m-%d %H:%M:%S')}"])
        conn.execute(_LATEST)  # first: the history's own latest values beat the index's
        recovered = _from_index(conn)
        orphans = _recreate_runs(conn, now)
        if orphans:
            notes.append(f"Note: {orphans} run(s) had values but no run row; they were "
                         "recreated as runs named 'recovered' (status KILLED).")
        lost = _recreate_experiments(conn, now)
        if lost:
            notes.append(f"Note: {lost} experiment(s) were lost; their runs are in "
                         "experiments named recovered-<id>.")
        conn.execute("COMMIT")
        run_index.rebuild(conn)
        conn.execute("CHECKPOINT")
    return recovered, notes


def _from_index(conn) -> dict[str, int]:
    """Refill runs, params, tags and latest_metrics from the salvaged run index."""
    found = {name for (name,) in conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [SALVAGED_INDEX]
    ).fetchall()}
    if not found:
        return {}
    index = run_index.quote(SALVAGED_INDEX)
    base = ", ".join(run_index.quote(c) for c in run_index.BASE_COLUMNS if c in found)
    recovered = {"runs": conn.execute(
        f"INSERT OR IGNORE INTO runs ({base}) SELECT {base} FROM {index}").fetchone()[0]}
    for prefix, table, values in (("params.", "params", "value"), ("tags.", "tags", "value"),
                                  ("metrics.", "latest_metrics",
                                   "value, 0, coalesce(end_time, start_time, 0)")):
        keys = ", ".join(run_index.quote(c) for c in sorted(found) if c.startswith(prefix))
        if not keys:
            continue
        # the key as logged: columns of keys differing only in case mark upper-case with ^
        unpivoted = (f"SELECT run_id, regexp_replace(substr(name, {len(prefix) + 1}), "
                     "'\\^(.)', '\\1', 'g') AS key, value, "
                     f"start_time, end_time FROM (UNPIVOT (SELECT run_id, start_time, "
                     f"end_time, {keys} FROM {index}) ON {keys} INTO NAME name VALUE value)")
        recovered[table] = conn.execute(
            f"INSERT INTO {table} SELECT run_id, key, {values} FROM ({unpivoted}) v "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.run_id = v.run_id "
            "AND t.key = v.key)").fetchone()[0]
    conn.execute(f"DROP TABLE {index}")
    return {table: count for table, count in recovered.items() if count}


def _recreate_runs(conn, now: int) -> int:
    """Run rows for runs whose values survive but whose own row was lost."""
    union = " UNION ALL ".join(f"SELECT run_id FROM {t}" for t in _VALUE_TABLES)
    orphans = [r for (r,) in conn.execute(
        f"SELECT DISTINCT run_id FROM ({union}) WHERE run_id NOT IN (SELECT run_id FROM runs) "
        "ORDER BY 1").fetchall()]
    for run_id in orphans:
        conn.execute(
            "INSERT INTO runs (run_id, experiment_id, run_name, status, start_time, "
            "lifecycle_stage, artifact_uri, description) VALUES (?, '0', 'recovered', "
            "'KILLED', coalesce((SELECT min(\"timestamp\") FROM metrics WHERE run_id = ?), ?), "
            "'active', ?, 'Recreated by nbtrack doctor: the run''s own row was lost.')",
            [run_id, run_id, now, f"{ARTIFACTS_DIR}/{run_id}"])
    return len(orphans)


def _recreate_experiments(conn, now: int) -> int:
    """Experiments that runs refer to but that were lost (and Default, always there)."""
    missing = [e for (e,) in conn.execute(
        "SELECT DISTINCT experiment_id FROM (SELECT experiment_id FROM runs UNION ALL "
        "SELECT '0') WHERE experiment_id NOT IN (SELECT experiment_id FROM experiments) "
        "ORDER BY 1").fetchall()]
    for experiment_id in missing:
        name = "Default" if experiment_id == "0" else f"recovered-{experiment_id}"
        while conn.execute("SELECT 1 FROM experiments WHERE name = ?", [name]).fetchone():
            name += "-recovered"
        conn.execute("INSERT INTO experiments VALUES (?, ?, ?, 'active', ?, ?)",
                     [experiment_id, name, ARTIFACTS_DIR, now, now])
    return len([e for e in missing if e != "0"])


def copy_spool(root: Path, out: Path, segments: list, offsets_known: bool) -> list[str]:
    """Copy the spool; where its merge offsets were lost, aside, so nothing merges twice."""
    if not segments:
        return []
    target = out / (spool.SPOOL_DIR if offsets_known else "spool-unmerged")
    target.mkdir(exist_ok=True)
    for segment in segments:
        shutil.copyfile(root / spool.SPOOL_DIR / segment.name, target / segment.name)
    if offsets_known:
        return []
    return [f"Note: the spool's merge offsets were lost, so its {len(segments)} segment(s) "
            f"were copied to {target}, not to spool/: merging them again could store values "
            "twice. Move them into spool/ only if the values they hold are missing."]


def copy_files(source: Path, target: Path, bar) -> int:
    """Copy a folder's files (the artifacts), updating a progress bar; how many."""
    files = [p for p in source.rglob("*") if p.is_file()] if source.is_dir() else []
    bar.total = len(files)
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
        bar.update(1)
    bar.close()
    return len(files)


def open_with_nbtrack(out: Path) -> int:
    """Open the repaired store as nbtrack does (migrating it, merging its spool); its runs."""
    import duckdb

    from nbtrack.store.duckdb_store import DB_FILE, DuckDBStore

    DuckDBStore(out).close()
    with duckdb.connect(str(out / DB_FILE), read_only=True) as conn:
        row = conn.execute("SELECT count(*) FROM runs").fetchone()
    assert row is not None, "count(*) returns one row"
    return row[0]
