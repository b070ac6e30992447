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
# prefix -> (normalised table, column type of the index column)
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


_VALUES = """
SELECT run_id, 'metrics.' || key AS name, NULL::VARCHAR AS text, value AS number
    FROM latest_metrics WHERE run_id IN (SELECT run_id FROM {touched})
UNION ALL SELECT run_id, 'params.' || key, value, NULL FROM params
    WHERE run_id IN (SELECT run_id FROM {touched})
UNION ALL SELECT run_id, 'tags.' || key, value, NULL FROM tags
    WHERE run_id IN (SELECT run_id FROM {touched})
"""


def _add_columns(conn, needed: list[str]) -> set[str]:
    """Add a column for each needed key the index lacks, up to the cap; return all columns."""
    existing = key_columns(conn)
    for name in needed:
        if name not in existing and len(existing) < MAX_KEY_COLUMNS:
            sql_type = next(t for prefix, (_, t) in KINDS.items() if name.startswith(prefix))
            conn.execute(f"ALTER TABLE run_index ADD COLUMN {quote(name)} {sql_type}")
            existing.add(name)
    return existing


def refresh(conn, touched_table: str) -> None:
    """Rebuild the index rows of the runs listed by ``touched_table`` (a table or subquery).

    Three statements: which keys the runs have, delete their rows, insert them anew with one
    column per key (a conditional aggregate; key names travel as parameters).
    """
    values = _VALUES.format(touched=touched_table)
    needed = [name for (name,) in conn.execute(
        f"SELECT DISTINCT name FROM ({values}) ORDER BY 1").fetchall()]
    columns = _add_columns(conn, needed)
    usable = [name for name in needed if name in columns]
    conn.execute(
        f"DELETE FROM run_index WHERE run_id IN (SELECT run_id FROM {touched_table})"
    )
    where = f"WHERE r.run_id IN (SELECT run_id FROM {touched_table})"
    if not usable:
        conn.execute(f"INSERT INTO run_index BY NAME SELECT r.* FROM runs r {where}")
        return
    aggregates = ", ".join(
        f"max(CASE WHEN name = ? THEN {'number' if name.startswith('metrics.') else 'text'} "
        f"END) AS {quote(name)}"
        for name in usable
    )
    conn.execute(
        f"INSERT INTO run_index BY NAME SELECT r.*, v.* EXCLUDE (run_id) FROM runs r "
        f"LEFT JOIN (SELECT run_id, {aggregates} FROM ({values}) GROUP BY run_id) v "
        f"ON v.run_id = r.run_id {where}",
        usable,
    )


def rebuild(conn) -> None:
    """Recreate the whole index from the normalised tables."""
    conn.execute("DROP TABLE IF EXISTS run_index")
    conn.execute(CREATE)
    conn.execute("CREATE TEMP TABLE _nb_all_runs AS SELECT run_id FROM runs")
    try:
        refresh(conn, "_nb_all_runs")
    finally:
        conn.execute("DROP TABLE _nb_all_runs")
