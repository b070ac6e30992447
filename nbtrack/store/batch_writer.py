"""Write a ``Batch`` to DuckDB in one transaction: a handful of set-based statements per batch.

Rows travel as Arrow tables registered with the connection, never as SQL text.
"""

from __future__ import annotations

from nbtrack.store import run_index
from nbtrack.store.frames import metrics_table
from nbtrack.store.no_pandas import arrow_array, arrow_table
from nbtrack.store.pending import Batch

RUN_COLUMNS = (
    "run_id", "experiment_id", "run_name", "user_id", "status", "start_time", "end_time",
    "lifecycle_stage", "artifact_uri", "parent_run_id", "description", "source_type",
    "source_name", "source_code", "git_commit", "git_branch", "git_dirty", "git_diff", "host",
    "pid", "python_version", "platform", "env_hash",
)
UPDATABLE_RUN_COLUMNS = (
    "status", "end_time", "run_name", "description", "lifecycle_stage", "pid", "host",
    "user_id", "parent_run_id", "source_type", "source_name", "git_commit",
)

# The latest value per key: highest step, then timestamp, then value (MLflow's order). The
# order is one HUGEINT (step, then timestamp) rather than a struct: DuckDB normalises -0.0 to
# 0.0 in the values that ride along with a struct ordering key, and -0.0 must keep its sign.
# Two hash aggregates (the best rank per key, then the largest value at it), no sort.
_LATEST = """
INSERT OR REPLACE INTO latest_metrics
WITH candidates AS (
    SELECT *, step::HUGEINT * 18446744073709551616 + "timestamp" AS rank FROM (
        SELECT * FROM _nb_metrics
        UNION ALL
        SELECT l.* FROM latest_metrics l
        SEMI JOIN (SELECT DISTINCT run_id, key FROM _nb_metrics) b
            ON l.run_id = b.run_id AND l.key = b.key
    )
),
best AS (SELECT run_id, key, max(rank) AS rank FROM candidates GROUP BY run_id, key)
SELECT c.run_id, c.key, max(c.value), any_value(c.step), any_value(c."timestamp")
FROM candidates c JOIN best b ON c.run_id = b.run_id AND c.key = b.key AND c.rank = b.rank
GROUP BY c.run_id, c.key
"""


def _table(columns: dict):
    return arrow_table(columns)


def _register(conn, name: str, table, registered: list[str]) -> None:
    conn.register(name, table)
    registered.append(name)


def write_batch(conn, batch: Batch) -> list[str]:
    """Write ``batch`` with ``conn`` (inside the caller's transaction).

    Returns warnings about values that could not be written as asked, such as a param that
    another process set to a different value in the meantime.
    """
    import pyarrow as pa

    warnings: list[str] = []
    registered: list[str] = []
    try:
        if batch.environments:
            _write_environments(conn, batch.environments)
        if batch.runs:
            rows = list(batch.runs.values())
            _register(conn, "_nb_runs", _table(
                {c: [r.get(c) for r in rows] for c in RUN_COLUMNS}), registered)
            conn.execute("INSERT INTO runs BY NAME SELECT * FROM _nb_runs")
        if batch.run_updates:
            _write_run_updates(conn, batch.run_updates, registered)
        if batch.params:
            warnings += _write_params(conn, batch.params, registered)
        if batch.tags:
            keys = list(batch.tags)
            _register(conn, "_nb_tags", arrow_table({
                "run_id": [k[0] for k in keys],
                "key": [k[1] for k in keys],
                "value": arrow_array([batch.tags[k] for k in keys], pa.string()),
            }), registered)
            conn.execute(
                "DELETE FROM tags WHERE (run_id, key) IN (SELECT (run_id, key) FROM _nb_tags)"
            )
            conn.execute(
                "INSERT INTO tags SELECT run_id, key, value FROM _nb_tags WHERE value IS NOT NULL"
            )
        if batch.metrics or batch.metric_tables:
            tables = list(batch.metric_tables)
            if batch.metrics:  # one C-level pass from row tuples to columns
                tables.append(metrics_table(batch.metrics))
            rows = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
            _register(conn, "_nb_metrics", rows, registered)
            conn.execute("INSERT INTO metrics SELECT * FROM _nb_metrics")
            conn.execute(_LATEST)
        if batch.artifacts:
            cols = list(zip(*batch.artifacts, strict=True))
            _register(conn, "_nb_artifacts", arrow_table({
                "run_id": arrow_array(cols[0], pa.string()),
                "path": arrow_array(cols[1], pa.string()),
                "file_size": arrow_array(cols[2], pa.int64()),
                "sha256": arrow_array(cols[3], pa.string()),
                "logged_time": arrow_array(cols[4], pa.int64()),
            }), registered)
            conn.execute(
                "DELETE FROM artifacts WHERE (run_id, path) IN "
                "(SELECT (run_id, path) FROM _nb_artifacts)"
            )
            conn.execute("INSERT INTO artifacts SELECT * FROM _nb_artifacts")
        if batch.inputs:
            _write_inputs(conn, batch)
        _refresh_index(conn, batch, registered)
    finally:
        for name in registered:
            conn.unregister(name)
    return warnings


def _refresh_index(conn, batch: Batch, registered: list[str]) -> None:
    """Bring the index up to date for this batch.

    Whole rows for new runs only; for the others just the attributes, if they changed, and the
    columns of the keys they logged: a cost that does not grow with the index's width.
    """
    import pyarrow as pa

    whole = set(batch.runs)
    updated = set(batch.run_updates) - whole
    changed = {run_id for run_id, _, _ in batch.params} | {run_id for run_id, _ in batch.tags}
    names = {"params." + key for _, key, _ in batch.params}
    names.update("tags." + key for _, key in batch.tags)
    if batch.metrics or batch.metric_tables:
        for run_id, key in conn.execute("SELECT DISTINCT run_id, key FROM _nb_metrics").fetchall():
            changed.add(run_id)
            names.add("metrics." + key)
    changed -= whole
    for name, ids in (("_nb_whole", whole), ("_nb_changed", changed), ("_nb_updated", updated)):
        _register(conn, name, arrow_table({"run_id": arrow_array(sorted(ids), pa.string())}),
                  registered)
    _register(conn, "_nb_names", arrow_table({"name": arrow_array(sorted(names), pa.string())}),
              registered)
    run_index.refresh(conn, "_nb_whole" if whole else None, "_nb_changed" if changed else None,
                      "_nb_names", "_nb_updated" if updated else None)


def _write_environments(conn, environments: dict[str, dict]) -> None:
    for env_hash, env in environments.items():
        conn.execute(
            "INSERT INTO environments VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [env_hash, env["python_version"], env["platform"], env["packages"], env["time"]],
        )


def _write_run_updates(conn, updates: dict[str, dict], registered: list[str]) -> None:
    import pyarrow as pa

    run_ids = list(updates)
    columns: dict[str, list] = {"run_id": run_ids}
    for col in UPDATABLE_RUN_COLUMNS:
        columns[col] = [updates[r].get(col) for r in run_ids]
        columns["set_" + col] = [col in updates[r] for r in run_ids]
    table = arrow_table({
        **columns,
        "end_time": arrow_array(columns["end_time"], pa.int64()),
        "status": arrow_array(columns["status"], pa.string()),
        "run_name": arrow_array(columns["run_name"], pa.string()),
        "description": arrow_array(columns["description"], pa.string()),
        "lifecycle_stage": arrow_array(columns["lifecycle_stage"], pa.string()),
        "pid": arrow_array(columns["pid"], pa.int32()),
        **{c: arrow_array(columns[c], pa.string()) for c in (
            "host", "user_id", "parent_run_id", "source_type", "source_name", "git_commit")},
    })
    _register(conn, "_nb_updates", table, registered)
    assignments = ", ".join(
        f"{c} = CASE WHEN u.set_{c} THEN u.{c} ELSE runs.{c} END" for c in UPDATABLE_RUN_COLUMNS
    )
    conn.execute(f"UPDATE runs SET {assignments} FROM _nb_updates u WHERE runs.run_id = u.run_id")


def _write_params(conn, params: list[tuple[str, str, str]], registered: list[str]) -> list[str]:
    import pyarrow as pa

    run_ids, keys, values = zip(*params, strict=True)
    _register(conn, "_nb_params", arrow_table({
        "run_id": arrow_array(run_ids, pa.string()),
        "key": arrow_array(keys, pa.string()),
        "value": arrow_array(values, pa.string()),
    }), registered)
    conflicts = conn.execute(
        "SELECT b.run_id, b.key, p.value, b.value FROM _nb_params b "
        "JOIN params p ON p.run_id = b.run_id AND p.key = b.key WHERE p.value <> b.value"
    ).fetchall()
    conn.execute(
        "INSERT INTO params SELECT DISTINCT ON (run_id, key) b.run_id, b.key, b.value "
        "FROM _nb_params b ANTI JOIN params p ON p.run_id = b.run_id AND p.key = b.key"
    )
    return [
        f"Param {key!r} of run {run_id} was set to {old!r} by another process before "
        f"{new!r} from this one could be written; the first value stays."
        for run_id, key, old, new in conflicts
    ]


def _write_inputs(conn, batch: Batch) -> None:
    for ds in batch.datasets.values():
        conn.execute(
            "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [ds["digest"], ds["name"], ds.get("source_type"), ds.get("source"),
             ds.get("schema"), ds.get("profile")],
        )
    for run_id, name, digest, context in batch.inputs:
        conn.execute(
            "INSERT INTO inputs SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM inputs "
            "WHERE run_id = ? AND dataset_name = ? AND dataset_digest = ? "
            "AND context IS NOT DISTINCT FROM ?)",
            [run_id, name, digest, context, run_id, name, digest, context],
        )
