"""The embedded store's SQL on a DuckLake: the schema without keys, and two statements translated.

DuckLake has no PRIMARY KEY or UNIQUE constraints, so it refuses them in ``CREATE TABLE`` and
refuses the statements that need them: ``INSERT OR REPLACE`` and ``INSERT … ON CONFLICT DO
NOTHING``. Everything else the store runs works there unchanged (see docs/team-store.md). So the
store's modules keep one SQL text for both stores, and ``LakeConnection`` translates those two
forms as they are executed, using the keys that ``schema.py`` declares for each table:

- ``INSERT OR REPLACE INTO t <query>``: the rows are computed first (into a temporary table, so a
  query that reads ``t`` sees it unchanged), then the rows of ``t`` with the same keys are deleted
  and the new ones inserted, in the caller's transaction;
- ``INSERT INTO t <query> ON CONFLICT DO NOTHING``: only rows whose keys ``t`` lacks are inserted.

A statement of either form on a table without declared keys is refused with an error naming it,
never run with a guessed meaning.
"""

from __future__ import annotations

import re

from nbtrack.exceptions import NbtrackError, StoreBusyError
from nbtrack.store import lake_s3, schema

_TABLE_KEY = re.compile(r"CREATE TABLE (\w+) \((.*?)\n?\);", re.DOTALL)
_COLUMN_KEY = re.compile(r"^\s*(\w+) [^,]*?\bPRIMARY KEY\b", re.MULTILINE)
_COMPOSITE_KEY = re.compile(r"PRIMARY KEY \(([^)]*)\)")
_REPLACE = re.compile(r"^\s*INSERT OR REPLACE INTO (\w+)\s+(.*)$", re.DOTALL | re.IGNORECASE)
_IGNORE = re.compile(r"^\s*INSERT INTO (\w+)\s+(.*?)\s+ON CONFLICT DO NOTHING\s*$",
                     re.DOTALL | re.IGNORECASE)
_TEMP = "_nb_lake_rows"
_SEARCH_PATH = re.compile(r"^\s*SET search_path = '([\w.,]+)'\s*$", re.IGNORECASE)
#: the name the lake is attached as
CATALOG = "lake"


class LakeConflictError(StoreBusyError):
    """Another machine committed a change that conflicts with this transaction's; retry it."""


def is_conflict(exc: BaseException) -> bool:
    """Whether a DuckDB error is DuckLake refusing a commit that conflicts with another."""
    import duckdb

    return isinstance(exc, LakeConflictError) or (
        isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower())


class LakePermissionError(NbtrackError):
    """PostgreSQL refused a change to the lake's catalog: the role lacks a right."""


def permission_refused(exc: BaseException) -> str | None:
    """PostgreSQL's ``permission denied for …`` in a DuckLake error, if that is its cause."""
    match = re.search(r"ERROR:\s+(permission denied for [^\n\"]+)", str(exc))
    return match.group(1).strip() if match else None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class LakeSQLError(NbtrackError):
    """A statement the store runs has no DuckLake form yet."""


def table_keys(ddl: str) -> dict[str, tuple[str, ...]]:
    """``{table: key columns}`` for the tables ``ddl`` gives a PRIMARY KEY."""
    keys: dict[str, tuple[str, ...]] = {}
    for table, body in _TABLE_KEY.findall(ddl):
        composite = _COMPOSITE_KEY.search(body)
        if composite:
            keys[table] = tuple(c.strip() for c in composite.group(1).split(","))
            continue
        column = _COLUMN_KEY.search(body)
        if column:
            keys[table] = (column.group(1),)
    return keys


#: the keys of every table, as the embedded store declares them
KEYS = table_keys("\n".join(schema.MIGRATIONS))


def lake_ddl(ddl: str) -> str:
    """``ddl`` without the PRIMARY KEY and UNIQUE constraints that DuckLake refuses."""
    ddl = re.sub(r",\s*PRIMARY KEY \([^)]*\)", "", ddl)
    ddl = re.sub(r"\s+PRIMARY KEY\b", "", ddl)
    return re.sub(r"\s+UNIQUE\b", "", ddl)


def statements(ddl: str) -> list[str]:
    """The statements of a migration, one by one (none of them holds a ``;`` in a string)."""
    return [s.strip() for s in ddl.split(";") if s.strip()]


def _keys(table: str, sql: str) -> tuple[str, ...]:
    keys = KEYS.get(table.lower())
    if not keys:
        raise LakeSQLError(
            f"The team store cannot run this statement yet: {sql.strip()[:120]!r} needs the "
            f"keys of table {table}, which schema.py does not declare.")
    return keys


#: the statements that only read: a refusal during one is a refused read
_READS = ("SELECT", "WITH", "FROM", "DESCRIBE", "SHOW", "SUMMARIZE", "PRAGMA")


class LakeConnection:
    """A store connection whose statements run on a DuckLake; every other attribute is passed on."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def execute(self, sql, parameters=None):
        """Run ``sql``, translating the two forms DuckLake refuses (see the module's docstring).

        S3 refusing a request (the person's key may not write) is ``lake_s3.S3AccessError``.
        """
        import duckdb

        try:
            return self._execute(sql, parameters)
        except duckdb.HTTPException as exc:
            word = sql.lstrip().split(None, 1)[0].upper() if isinstance(sql, str) else ""
            error = lake_s3.refused(exc, "read" if word in _READS else "write")
            if error is None:
                raise
            raise error from None

    def _execute(self, sql, parameters):
        if isinstance(sql, str):
            word = sql.strip().upper()
            if word in ("COMMIT", "ROLLBACK"):
                return self._end(word)
            if word == "RESET SEARCH_PATH":  # back to the lake, not to DuckDB's memory
                return self.inner.execute(f"USE {CATALOG}")
            path = _SEARCH_PATH.match(sql)
            if path:  # schemas are the lake's: DuckDB looks for a bare name as a catalog
                schemas = ",".join(p if "." in p else f"{CATALOG}.{p}"
                                   for p in path.group(1).split(","))
                return self.inner.execute(f"SET search_path = '{schemas}'")
            replace = _REPLACE.match(sql)
            if replace:
                return self._replace(replace.group(1), replace.group(2), sql, parameters)
            ignore = _IGNORE.match(sql)
            if ignore:
                return self._insert_new(ignore.group(1), ignore.group(2), sql, parameters)
        if parameters is None:
            return self.inner.execute(sql)
        return self.inner.execute(sql, parameters)

    def _end(self, word: str):
        """COMMIT, telling a conflict with another machine apart; ROLLBACK, also after one."""
        import duckdb

        try:
            return self.inner.execute(word)
        except duckdb.Error as exc:
            if word == "ROLLBACK" and "no transaction is active" in str(exc).lower():
                return None  # a refused COMMIT already ended the transaction
            if is_conflict(exc):
                raise LakeConflictError(
                    "The team store refused this change: another machine committed a "
                    f"conflicting one first ({str(exc).strip().splitlines()[-1]}). Nothing of "
                    "it was applied; try again.") from exc
            refusal = permission_refused(exc)
            if refusal:
                raise LakePermissionError(
                    f"PostgreSQL refused this change to the team store: {refusal}. Nothing of "
                    "it was applied. Your PostgreSQL role lacks that right; ask the team's "
                    "maintainer for it.") from exc
            raise

    def _rows(self, table: str, query: str, parameters) -> dict[str, str]:
        """Compute the rows into ``_TEMP``; return ``{table column: quoted temp column}``.

        The rows' columns match the table's by position, as an INSERT's do.
        """
        source = query.strip()
        if source.upper().startswith("VALUES"):
            source = f"SELECT * FROM ({source})"
        self.inner.execute(f"CREATE OR REPLACE TEMP TABLE {_TEMP} AS {source}",
                           parameters or [])
        columns = [name for (name,) in self.inner.execute(
            "SELECT name FROM pragma_table_info(?)", [table]).fetchall()]
        temp = [name for (name,) in self.inner.execute(
            f"SELECT name FROM pragma_table_info('{_TEMP}')").fetchall()]
        if len(temp) != len(columns):
            raise LakeSQLError(f"The rows for {table} have {len(temp)} columns, the table "
                               f"{len(columns)}.")
        return {c: _quote(t) for c, t in zip(columns, temp, strict=True)}

    def _replace(self, table: str, query: str, sql: str, parameters):
        keys = _keys(table, sql)
        temp = self._rows(table, query, parameters)
        match = " AND ".join(f"o.{_quote(k)} IS NOT DISTINCT FROM n.{temp[k]}" for k in keys)
        try:
            self.inner.execute(f"DELETE FROM {table} o WHERE EXISTS "
                               f"(SELECT 1 FROM {_TEMP} n WHERE {match})")
            return self.inner.execute(f"INSERT INTO {table} SELECT * FROM {_TEMP}")
        finally:
            self.inner.execute(f"DROP TABLE IF EXISTS {_TEMP}")

    def _insert_new(self, table: str, query: str, sql: str, parameters):
        keys = _keys(table, sql)
        temp = self._rows(table, query, parameters)
        match = " AND ".join(f"o.{_quote(k)} IS NOT DISTINCT FROM n.{temp[k]}" for k in keys)
        try:
            return self.inner.execute(
                f"INSERT INTO {table} SELECT * FROM {_TEMP} n WHERE NOT EXISTS "
                f"(SELECT 1 FROM {table} o WHERE {match})")
        finally:
            self.inner.execute(f"DROP TABLE IF EXISTS {_TEMP}")
