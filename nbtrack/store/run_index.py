"""``run_index``: one wide row per run, derived from the normalised tables, for fast search.

Its columns are the run's attributes plus one typed column per key ever logged, named as in
MLflow's DataFrame: ``metrics.rmse`` (DOUBLE, the latest value), ``params.model`` and
``tags.team`` (VARCHAR). A search is then a single scan with plain column predicates, and the
runs DataFrame a single query.

The normalised tables (``runs``, ``params``, ``tags``, ``latest_metrics``) stay the source of
truth: every write batch rebuilds the index rows of the runs it touched, inside the same
transaction, and ``rebuild`` recreates the whole index. Past ``MAX_KEY_COLUMNS`` keys no new
columns are added, and searches on the keys left out fall back to joins on the normalised
tables, so results never depend on the index being complete.
"""

from __future__ import annotations

MAX_KEY_COLUMNS = 2000
#: Every column of ``runs``: a migration that adds one to ``runs`` must call ``rebuild``.
BASE_COLUMNS = (
    "run_id", "experiment_id", "run_name", "user_id", "status", "start_time", "end_time",
    "lifecycle_stage", "artifact_uri", "parent_run_id", "description", "source_type",
    "source_name", "source_code", "git_commit", "git_branch", "git_dirty", "git_diff", "host",
    "pid", "python_version", "platform", "env_hash", "deleted_time",
)
# prefix -> (normalised table, column type)
KINDS = {
    "metrics.": ("latest_metrics", "DOUBLE"),
    "params.": ("params", "VARCHAR"),
    "tags.": ("tags", "VARCHAR"),
}
CREATE = (
    "CREATE TABLE run_index AS SELECT "
    + ", ".join(BASE_COLUMNS) + " FROM runs WHERE FALSE"
)


def quote(name: str) -> str:
    """Quote a column name for SQL (keys are validated when logged; quotes are doubled)."""
    return '"' + name.replace('"', '""') + '"'


def key_columns(conn) -> set[str]:
    """The key columns (``metrics.*``, ``params.*``, ``tags.*``) the index has now."""
    rows = conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'run_index' "
        "AND schema_name = 'main' AND database_name = current_database()"
    ).fetchall()
    return {name for (name,) in rows if name.startswith(tuple(KINDS))}


def _add_columns(conn, touched_table: str) -> set[str]:
    existing = key_columns(conn)
    room = MAX_KEY_COLUMNS - len(existing)
    if room <= 0:
        return existing
    for prefix, (table, sql_type) in KINDS.items():
        keys = conn.execute(
            f"SELECT DISTINCT '{prefix}' || key FROM {table} "
            f"WHERE run_id IN (SELECT run_id FROM {touched_table}) ORDER BY 1"
        ).fetchall()
        for (name,) in keys:
            if name not in existing and room > 0:
                conn.execute(f"ALTER TABLE run_index ADD COLUMN {quote(name)} {sql_type}")
                existing.add(name)
                room -= 1
    return existing


def refresh(conn, touched_table: str) -> None:
    """Rebuild the index rows of the runs listed by ``touched_table`` (a table or subquery)."""
    columns = _add_columns(conn, touched_table)
    at_cap = len(columns) >= MAX_KEY_COLUMNS
    if at_cap:
        import pyarrow as pa

        conn.register("_nb_index_columns", pa.table({"name": sorted(columns)}))
    conn.execute(
        f"DELETE FROM run_index WHERE run_id IN (SELECT run_id FROM {touched_table})"
    )
    selects = [f"r.{c}" for c in BASE_COLUMNS]
    joins = []
    for i, (prefix, (table, _)) in enumerate(KINDS.items()):
        wanted = sorted(c for c in columns if c.startswith(prefix))
        if not wanted:
            continue
        # PIVOT takes no parameters; the table and prefix come from KINDS, never from users.
        alias = f"v{i}"
        joins.append(
            f"LEFT JOIN (PIVOT (SELECT run_id, '{prefix}' || key AS name, value FROM {table} "
            f"WHERE run_id IN (SELECT run_id FROM {touched_table})"
            + (f" AND '{prefix}' || key IN (SELECT name FROM _nb_index_columns)" if at_cap
               else "")
            + f") ON name USING first(value) GROUP BY run_id) {alias} "
            f"ON {alias}.run_id = r.run_id"
        )
        selects.append(f"{alias}.* EXCLUDE (run_id)")
    try:
        conn.execute(
            f"INSERT INTO run_index BY NAME SELECT {', '.join(selects)} FROM runs r "
            + " ".join(joins)
            + f" WHERE r.run_id IN (SELECT run_id FROM {touched_table})"
        )
    finally:
        if at_cap:
            conn.unregister("_nb_index_columns")



def rebuild(conn) -> None:
    """Recreate the whole index from the normalised tables."""
    conn.execute("DROP TABLE IF EXISTS run_index")
    conn.execute(CREATE)
    conn.execute("CREATE TEMP TABLE _nb_all_runs AS SELECT run_id FROM runs")
    try:
        refresh(conn, "_nb_all_runs")
    finally:
        conn.execute("DROP TABLE _nb_all_runs")
