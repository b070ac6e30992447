"""Read a damaged store file as far as it goes, in a child process of ``nbtrack doctor``.

DuckDB can crash (SIGSEGV) on some damaged metadata, so every read of a damaged file happens
here, in a process of its own; ``nbtrack.store.doctor`` restarts it past a table that crashed it.
The job comes as JSON on stdin: the file to read (a copy, attached read-only), an optional
target store to copy rows into, and the tables. Answers are JSON lines on stdout.

A table is first read whole. If that fails, it is read by ``rowid`` ranges (DuckDB skips the
storage of rows outside the range): a binary search finds the first unreadable row, galloping
finds where readable rows start again, and the rest goes on from there. One bad block so costs
only its own rows, in O(log n) reads. For the rows in between, each column is tried alone:
unreadable columns that may be NULL are left NULL, so the rest of those rows is kept.
"""

from __future__ import annotations

import json
import sys


def _emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _text(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # DuckDB wraps some errors: 'Invalid Input Error: … pending query result\nError: IO Error…'
    inner = [line for line in lines if line.startswith("Error: ")]
    return (inner[-1][len("Error: "):] if inner else lines[0] if lines else type(exc).__name__)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class TableSalvage:
    """Reads (and with a target, copies) the readable rows of one table."""

    def __init__(self, conn, task: dict, copy: bool) -> None:
        self.conn = conn
        self.table = task["table"]
        self.source = f"src.main.{_quote(task['table'])}"
        self.into = f"out.main.{_quote(task.get('into') or task['table'])}"
        self.columns: list[str] = task["columns"]
        self.nullable = set(task.get("nullable", ()))
        self.verb = "INSERT OR IGNORE" if task.get("keyed") else "INSERT"
        self.create = bool(task.get("create"))  # make ``into`` with the source's columns
        self.copy = copy
        self.rows = 0
        self.error: str | None = None  # the last read's error
        self.good: list[tuple[int | None, int | None]] = []  # (None, None): the whole table
        self.lost: list[list] = []
        self.nulled: list[list] = []

    def _read(self, lo: int | None, hi: int | None, columns: list[str] | None = None,
              nulls: frozenset = frozenset(), write: bool = False) -> int | None:
        """Rows in ``[lo, hi)`` read (or copied when ``write``); None if the read failed."""
        import duckdb

        columns = columns or self.columns
        where = ""
        if lo is not None:
            assert hi is not None, "a range of rows has both ends"
            where = f" WHERE rowid >= {int(lo)} AND rowid < {int(hi)}"
        if write:
            values = ", ".join("NULL" if c in nulls else _quote(c) for c in columns)
            names = ", ".join(_quote(c) for c in columns)
            sql = f"{self.verb} INTO {self.into} ({names}) SELECT {values} FROM {self.source}"
        else:  # hashing every value makes DuckDB decode every column
            values = ", ".join(_quote(c) for c in columns)
            sql = f"SELECT count(*), bit_xor(hash({values})) FROM {self.source}"
        try:
            if write:
                self.conn.execute("BEGIN TRANSACTION")
            count = self.conn.execute(sql + where).fetchone()[0]
            if write:
                self.conn.execute("COMMIT")
        except duckdb.Error as exc:
            self.error = _text(exc)
            if write:
                self.conn.execute("ROLLBACK")
            return None
        return int(count)

    def _keep(self, lo: int | None, hi: int | None) -> bool:
        """Take ``[lo, hi)`` (the whole table when None): count or copy it."""
        count = self._read(lo, hi, write=self.copy)
        if count is None:
            return False
        self.rows += count
        self.good.append((lo, hi))
        _emit(event="progress", table=self.table, rows=self.rows)
        return True

    def run(self) -> dict:
        """Salvage the table; the summary of what was read and lost."""
        self.error = None
        _emit(event="start", table=self.table)
        try:
            if self.copy and self.create:
                self.conn.execute(
                    f"CREATE TABLE {self.into} AS SELECT * FROM {self.source} LIMIT 0")
            expected = self.conn.execute(f"SELECT count(*) FROM {self.source}").fetchone()[0]
        except Exception as exc:  # any failure here is the answer
            expected, self.error = None, _text(exc)
        _emit(event="counted", table=self.table, expected=expected)
        if expected is not None and self._keep(None, None):
            return self._summary(expected)
        first_error = self.error
        try:
            (top,) = self.conn.execute(f"SELECT max(rowid) FROM {self.source}").fetchone()
        except Exception as exc:
            return {"expected": expected, "rows": 0, "error": first_error or _text(exc),
                    "lost": [], "nulled": [], "good": []}
        self.good = []
        self._ranges(0, (top if top is not None else -1) + 1)
        return self._summary(expected)

    def _ranges(self, pos: int, end: int) -> None:
        while pos < end:
            if self._keep(pos, end):
                return
            if self.copy and self._read(pos, end) is not None:  # reads, but cannot be written
                self.lost.append([pos, end, end - pos, [], self.error])
                return
            bad = self._first_bad(pos, end)
            if bad > pos and not self._keep(pos, bad):
                self.lost.append([pos, bad, bad - pos, [], self.error])
            resume = self._next_good(bad, end)
            self._salvage_columns(bad, resume)
            pos = resume

    def _first_bad(self, pos: int, end: int) -> int:
        """The first row of ``[pos, end)`` that cannot be read (reading all of it fails)."""
        good, bad = pos, end  # [pos, good) reads; [pos, bad) does not
        while bad - good > 1:
            middle = (good + bad) // 2
            if self._read(good, middle) is not None:
                good = middle
            else:
                bad = middle
        return good

    def _next_good(self, bad: int, end: int) -> int:
        """The first row after ``bad`` that reads on its own (``end`` if none)."""
        step = 1
        while bad + step < end and self._read(bad + step, bad + step + 1) is None:
            bad, step = bad + step, step * 2
        good = min(bad + step, end)
        while good - bad > 1:
            middle = (good + bad) // 2
            if self._read(middle, middle + 1) is None:
                bad = middle
            else:
                good = middle
        return good

    def _salvage_columns(self, lo: int, hi: int) -> None:
        """Keep rows ``[lo, hi)`` with their unreadable columns NULL, if those may be NULL."""
        error = self.error
        broken = [c for c in self.columns if self._read(lo, hi, [c]) is None]
        try:
            (count,) = self.conn.execute(
                f"SELECT count(*) FROM {self.source} WHERE rowid >= ? AND rowid < ?", [lo, hi]
            ).fetchone()
        except Exception:
            count = hi - lo
        if len(broken) < len(self.columns) and set(broken) <= self.nullable:
            kept = self._read(lo, hi, nulls=frozenset(broken), write=self.copy)
            if kept is not None:
                self.rows += kept
                if broken:
                    self.nulled.append([lo, hi, broken, error])
                return
        self.lost.append([lo, hi, int(count), broken, error])

    def _summary(self, expected: int | None) -> dict:
        return {"expected": expected, "rows": self.rows, "error": None, "lost": self.lost,
                "nulled": self.nulled, "good": self.good}


def _catalog(conn) -> None:
    tables: dict[str, list[str]] = {}
    for table, column in conn.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = 'src' "
        "AND schema_name = 'main' AND NOT internal ORDER BY table_name, column_index"
    ).fetchall():
        tables.setdefault(table, []).append(column)
    base = {name for (name,) in conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = 'src' "
        "AND schema_name = 'main'").fetchall()}
    _emit(event="catalog", tables={t: c for t, c in tables.items() if t in base})
    try:
        row = conn.execute(
            "SELECT value FROM src.main.nbtrack_meta WHERE key = 'schema_version'").fetchone()
        _emit(event="version", version=int(row[0]) if row else None)
    except Exception as exc:
        _emit(event="version", version=None, error=_text(exc))


def _rows(conn, task: dict, good: list) -> None:
    """Send the given columns of the readable rows (spool offsets, artifact paths)."""
    if not good:
        return
    ranges = " OR ".join("TRUE" if lo is None else f"(rowid >= {lo} AND rowid < {hi})"
                         for lo, hi in good)
    names = ", ".join(_quote(c) for c in task["send"])
    rows = conn.execute(
        f"SELECT {names} FROM src.main.{_quote(task['table'])} WHERE {ranges}").fetchall()
    _emit(event="rows", table=task["table"], rows=[list(r) for r in rows])


def main() -> int:
    """Run the job on stdin."""
    import duckdb

    job = json.loads(sys.stdin.read())
    conn = duckdb.connect()
    conn.execute("SET enable_progress_bar = false")
    try:
        conn.execute(f"ATTACH {_literal(job['source'])} AS src (READ_ONLY)")
    except duckdb.Error as exc:
        _emit(event="open_failed", error=_text(exc))
        return 0
    _emit(event="opened")
    if job.get("catalog"):
        try:
            _catalog(conn)
        except duckdb.Error as exc:
            _emit(event="catalog_failed", error=_text(exc))
    if job.get("target"):
        conn.execute(f"ATTACH {_literal(job['target'])} AS out")
    for task in job.get("tasks", []):
        salvage = TableSalvage(conn, task, copy=bool(job.get("target")))
        summary = salvage.run()
        _emit(event="done", table=task["table"], **summary)
        if task.get("send"):
            try:
                _rows(conn, task, summary["good"])
            except duckdb.Error as exc:
                _emit(event="rows_failed", table=task["table"], error=_text(exc))
    if job.get("target"):
        conn.execute("DETACH out")
    _emit(event="finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
