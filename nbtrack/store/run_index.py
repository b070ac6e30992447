"""``run_index``: one row per run, with a typed column for each of at most ``MAX_KEY_COLUMNS`` keys.

Its columns are the run's attributes plus one column per indexed key: ``metrics.rmse`` (DOUBLE,
the latest value), ``params.model`` and ``tags.team`` (VARCHAR). A search on indexed keys is a
single scan with plain column predicates. The normalised tables (``runs``, ``params``, ``tags``,
``latest_metrics``) stay the source of truth: keys without a column (past the cap) are read and
joined from them, so results never depend on the index being complete. Each write batch brings
the index up to date inside its transaction (``refresh``); ``rebuild`` recreates it.

**Where the time went.** With 1,900 keys, ``get_run`` of a one-param run read that run's index
row: DuckDB scanned and converted to Arrow all 1,924 columns (nearly all of the time), then
Python looked at each. A flush spent 60% of its time deleting and re-inserting the run's row
(every column is appended, even NULL) and 30% committing it to the WAL. Every cost of a
DuckDB table grows with its width, whatever the columns hold. Measured with 10,000 runs, per
number of key columns (DuckDB 1.5, this 2-core machine):

=======  ==============  =============  ==========  =========
columns  delete+insert   select a row   checkpoint  open file
=======  ==============  =============  ==========  =========
200      5 ms            3 ms           10 ms       11 ms
1,000    68 ms           31 ms          52 ms       47 ms
2,000    194 ms          132 ms         186 ms      75 ms
10,000   ~470 ms         ~280 ms        ~190 ms     120 ms
=======  ==============  =============  ==========  =========

**The design.** A column per key cannot scale, so the cap falls from 2,000 to 256. Measured at
10,000 runs, a filtered, ordered search on two keys takes 1.3 ms over columns, 5 ms over
per-run MAP columns and 5 ms as joins on the normalised tables (at 100,000 runs: 4, 46 and
25 ms). So columns serve the keys most searches use, and joins are a fine fallback. Keys get
columns as they are first logged, up to the cap; a rebuild gives them to the keys most runs
have. An index wider than the cap, from an older nbtrack, is rebuilt at the next write.

Writes cost in proportion to what changed, not to the width: only a new run's row is inserted
whole; a run that logged values has just those keys' columns updated, and a changed status
just its attribute columns. Reads of whole runs take the index row while the index is complete
(at most 280 columns), and the normalised tables past the cap.

**Case.** Keys are case-sensitive, but DuckDB column names are not (ASCII letters only).
``column_names`` gives each key its own name as column, unless another key of its kind differs
from it only in case: then each of its upper-case letters is marked with ``^``
(``metrics.^Loss`` beside ``metrics.loss``; the earlier key's column is renamed when its twin
arrives). ``key_name`` undoes this, so names leave the store as the user wrote them. Names stay
readable, the rule depends only on the set of keys, and an index made before it follows it.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

MAX_KEY_COLUMNS = 256
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
_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_UPPER = re.compile("[A-Z]")
_MARK = re.compile(r"\^(.)", re.DOTALL)


def quote(name: str) -> str:
    """Quote a column name for SQL (keys are validated when logged; quotes are doubled)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal, for the few statements that cannot take parameters (views)."""
    return "'" + text.replace("'", "''") + "'"


def fold(name: str) -> str:
    """A name as DuckDB compares identifiers: ASCII letters in lower case."""
    return name.translate(_FOLD)


def column_names(names: Iterable[str]) -> dict[str, str]:
    """``{name: column}`` for key names (``metrics.Loss``): columns unique regardless of case.

    A name is its own column unless another of ``names`` differs from it only in case; then
    its upper-case letters are marked with ``^``. A ``^`` in a name is doubled.
    """
    names = list(names)
    counts = Counter(fold(n) for n in names)
    columns = {}
    for name in names:
        column = name.replace("^", "^^")
        columns[name] = _UPPER.sub(r"^\g<0>", column) if counts[fold(name)] > 1 else column
    return columns


def key_name(column: str) -> str:
    """The key name (``metrics.Loss``) of a column named by ``column_names``."""
    return _MARK.sub(r"\1", column)


def key_columns(conn) -> dict[str, str]:
    """``{key name: column}`` for the key columns (``metrics.*``, ...) the index has now."""
    rows = conn.execute("SELECT name FROM pragma_table_info('run_index')").fetchall()
    return {key_name(c): c for (c,) in rows if c.startswith(tuple(KINDS))}


def _sql_type(name: str) -> str:
    return next(t for prefix, (_, t) in KINDS.items() if name.startswith(prefix))


def values_query(touched_table: str, kinds: Iterable[str] = tuple(KINDS)) -> str:
    """SQL for the values of the runs in ``touched_table``: ``run_id, name, text, number``.

    ``kinds`` limits it to some prefixes (``metrics.``), sparing scans of the other tables.
    """
    parts = []
    for prefix in kinds:
        table = KINDS[prefix][0]
        value = "NULL::VARCHAR, value" if prefix == "metrics." else "value, NULL::DOUBLE"
        parts.append(f"SELECT run_id, '{prefix}' || key, {value} FROM {table} "
                     f"WHERE run_id IN (SELECT run_id FROM {touched_table})")
    return ("SELECT * FROM (" + " UNION ALL ".join(parts)
            + ") AS v(run_id, name, text, number)")


def _add_columns(conn, columns: dict[str, str], needed: list[str]) -> dict[str, str]:
    """Give each needed key a column while under the cap; return ``{name: column}``.

    A key that differs only in case from one already indexed renames that one's column
    (``metrics.Loss`` becomes ``metrics.^Loss`` when ``metrics.loss`` arrives).
    """
    room = MAX_KEY_COLUMNS - len(columns)
    new = [name for name in needed if name not in columns][:max(room, 0)]
    if not new:
        return columns
    wanted = column_names([*columns, *new])
    for name, column in columns.items():
        if wanted[name] != column:
            conn.execute(f"ALTER TABLE run_index RENAME COLUMN {quote(column)} "
                         f"TO {quote(wanted[name])}")
    for name in new:
        conn.execute(f"ALTER TABLE run_index ADD COLUMN {quote(wanted[name])} {_sql_type(name)}")
    return wanted


_FEW = 32


def _write_rows(conn, touched_table: str, columns: dict[str, str], names: list[str],
                bulk: bool = False) -> None:
    """Insert the index rows of the touched runs, filling the columns of ``names``.

    The rows are read first and, unless ``bulk`` or more than a few, inserted as a VALUES
    list: DuckDB appends that to a wide table 2-3 times faster than an INSERT ... SELECT.
    """
    select = "SELECT r.* FROM runs r"
    if names:
        aggregates = ", ".join(
            f"max(CASE WHEN name = ? THEN {'number' if n.startswith('metrics.') else 'text'} "
            f"END) AS {quote(columns[n])}"
            for n in names
        )
        select = (f"SELECT r.*, v.* EXCLUDE (run_id) FROM runs r LEFT JOIN (SELECT run_id, "
                  f"{aggregates} FROM ({values_query(touched_table)}) GROUP BY run_id) v "
                  "ON v.run_id = r.run_id")
    select += f" WHERE r.run_id IN (SELECT run_id FROM {touched_table})"
    if not bulk:
        cursor = conn.execute(select, names)
        rows = cursor.fetchmany(_FEW + 1)
        if len(rows) <= _FEW:
            if rows:
                width = len(cursor.description)
                conn.execute(
                    f"INSERT INTO run_index ({', '.join(quote(d[0]) for d in cursor.description)}) "
                    f"VALUES {', '.join(['(' + ', '.join('?' * width) + ')'] * len(rows))}",
                    [value for row in rows for value in row],
                )
            return
    conn.execute(f"INSERT INTO run_index BY NAME {select}", names)


def refresh(conn, touched_table: str | None, changed_runs: str | None = None,
            changed_names: str | None = None, updated_runs: str | None = None) -> None:
    """Bring the index up to date after a write, in the writer's transaction.

    Each argument is a table or subquery: of ``run_id`` for the runs, of ``name`` (such as
    ``metrics.rmse``) for ``changed_names``.

    - ``touched_table``: runs whose rows are rebuilt whole, deleted and inserted anew with one
      conditional aggregate per key (names travel as parameters). That costs in proportion to
      the index's width, so it is for new runs and for changes of unknown extent.
    - ``changed_runs`` and ``changed_names``: runs the index has that logged values of those
      keys; only those keys' columns are rewritten.
    - ``updated_runs``: runs the index has whose attributes (the columns of ``runs``)
      changed; only those are copied.

    The last two cost in proportion to what changed, whatever the width. New keys get columns
    first (DuckDB refuses to commit an ALTER that follows a change to the same table). An index
    wider than the cap (made by an older nbtrack) is rebuilt instead.
    """
    columns = key_columns(conn)
    if len(columns) > MAX_KEY_COLUMNS:
        rebuild(conn)
        return

    def names(source: str) -> list[str]:
        return [n for (n,) in conn.execute(f"SELECT DISTINCT name FROM {source}").fetchall()]

    whole = names(f"({values_query(touched_table)})") if touched_table else []
    changed = names(changed_names) if changed_runs and changed_names else []
    columns = _add_columns(conn, columns, sorted({*whole, *changed}))
    if touched_table:
        conn.execute(
            f"DELETE FROM run_index WHERE run_id IN (SELECT run_id FROM {touched_table})"
        )
        _write_rows(conn, touched_table, columns, sorted(n for n in whole if n in columns))
    if updated_runs:
        conn.execute(
            f"UPDATE run_index SET {', '.join(f'{c} = r.{c}' for c in BASE_COLUMNS[1:])} "
            f"FROM runs r WHERE r.run_id = run_index.run_id "
            f"AND r.run_id IN (SELECT run_id FROM {updated_runs})"
        )
    if changed_runs and changed:
        _update_columns(conn, changed_runs, columns, sorted(n for n in changed if n in columns))


def _update_columns(conn, touched_table: str, columns: dict[str, str], names: list[str]) -> None:
    """Set the columns of ``names`` in the touched runs' rows from the normalised tables.

    Keys that the touched runs lack become NULL (a deleted tag), so a name too many is harmless.
    """
    if not names:
        return
    sets = ", ".join(f"{quote(columns[name])} = v._v{i}" for i, name in enumerate(names))
    aggregates = ", ".join(
        f"max(CASE WHEN x.name = ? THEN x.{'number' if name.startswith('metrics.') else 'text'} "
        f"END) AS _v{i}"
        for i, name in enumerate(names)
    )
    kinds = sorted({name.split(".")[0] + "." for name in names})
    conn.execute(
        f"UPDATE run_index SET {sets} FROM (SELECT t.run_id, {aggregates} "
        f"FROM (SELECT DISTINCT run_id FROM {touched_table}) t "
        f"LEFT JOIN ({values_query(touched_table, kinds)}) x ON x.run_id = t.run_id "
        "GROUP BY t.run_id) v WHERE run_index.run_id = v.run_id",
        names,
    )


def rebuild(conn) -> None:
    """Recreate the whole index from the normalised tables.

    The columns go to the keys that the most runs have, up to the cap.
    """
    conn.execute("CREATE TEMP TABLE _nb_all_runs AS SELECT run_id FROM runs")
    try:
        values = values_query("_nb_all_runs")
        ranked = [name for (name,) in conn.execute(
            f"SELECT name FROM ({values}) GROUP BY name ORDER BY count(*) DESC, name LIMIT ?",
            [MAX_KEY_COLUMNS]).fetchall()]
        columns = column_names(ranked)
        extra = "".join(f", NULL::{_sql_type(n)} AS {quote(c)}" for n, c in columns.items())
        conn.execute("DROP TABLE IF EXISTS run_index")
        conn.execute(f"CREATE TABLE run_index AS SELECT {', '.join(BASE_COLUMNS)}{extra} "
                     "FROM runs WHERE FALSE")
        _write_rows(conn, "_nb_all_runs", columns, ranked, bulk=True)
    finally:
        conn.execute("DROP TABLE _nb_all_runs")
