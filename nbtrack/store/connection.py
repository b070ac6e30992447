"""Open the DuckDB file only while holding the store lock, and close it when others wait.

Why not keep one connection open for the life of the process? DuckDB allows a single process to
open a file for writing, so a kernel that kept its store open would lock every other kernel,
script and dashboard out of it. Why not open and close per operation? Opening a store costs
10-15 ms and closing it checkpoints, which is far too slow for logging. The middle way:

- an operation takes the cross-process lock (``StoreLock``) and opens the file if it is closed;
- afterwards the file stays open for a short *linger* (default 0.25 s), so a burst of operations
  pays for one open;
- the moment another process signals that it waits, the holder closes the file and lets go: it
  checks after each operation, and its background thread checks every 50 ms while the file is
  open, so writers and readers elsewhere wait at most one operation or 50 ms.

A program outside nbtrack (the DuckDB CLI, say) that holds the file open is waited for with
retries, then reported with a clear error; nothing is dropped meanwhile, since buffered writes stay
in memory until they are written. Only DuckDB's lock error means "wait": any other failure to open
the file, and any read that finds it damaged, raises ``StoreCorruptError`` at once (see
``damage_error``), pointing at ``nbtrack doctor``.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from nbtrack.exceptions import (
    NbtrackError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
)
from nbtrack.store.locking import StoreLock

if TYPE_CHECKING:
    from nbtrack.store.no_pandas import Connection

#: DuckDB's error when another process holds the file, e.g. 'IO Error: Could not set lock on
#: file "/s/store.duckdb": Conflicting lock is held in /usr/bin/python3 (PID 6485). See also
#: https://duckdb.org/docs/stable/connect/concurrency'
_LOCK_CONFLICT = "could not set lock on file"
_HOLDER = re.compile(r"Conflicting lock is held in (.*?\(PID \d+\))")
#: The file is already open in this process through a connection with other settings.
_SAME_PROCESS = "can't open a connection to same database file"
#: Fragments (lower case) of DuckDB's errors about damaged bytes, e.g. 'IO Error: Corrupt
#: database file: computed checksum 6837… does not match stored checksum 1238… in block at
#: location 12288', 'Could not read enough bytes from file …' (truncated), 'The file … exists,
#: but it is not a valid DuckDB database file!', 'Corrupted RLE segment: …'.
DAMAGE_MARKERS = (
    "corrupt",
    "does not match stored checksum",
    "could not read enough bytes from file",
    "not a valid duckdb database file",
    "bigger than the max block",
    "block verification failed",
)
#: Failures of the machine or of the path, not of the file's bytes.
_SYSTEM_MARKERS = (
    "permission denied", "no space left", "read-only file system", "too many open files",
    "cannot allocate memory", "out of memory", "no such file or directory", "is a directory",
)
#: A file written by a DuckDB whose storage format this one cannot read.
_VERSION_MARKERS = ("with version number", "storage version greater than")


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether a DuckDB error says another process holds the file open (so: wait, retry)."""
    return _LOCK_CONFLICT in str(exc).lower()


def _damage_cause(exc: BaseException | None) -> BaseException | None:
    """The error in ``exc``'s chain (itself, its cause or context) that reports damage."""
    import duckdb

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (duckdb.Error, OSError)):  # pyarrow streams re-raise as OSError
            text = str(exc).lower()
            if any(marker in text for marker in DAMAGE_MARKERS):
                return exc
        exc = exc.__cause__ or exc.__context__
    return None


def is_damage(exc: BaseException) -> bool:
    """Whether an error (or one it was raised from) says the store file's bytes are damaged."""
    return _damage_cause(exc) is not None


def damage_error(exc: BaseException, db_path) -> StoreCorruptError | None:
    """The ``StoreCorruptError`` to raise instead of ``exc`` if it reports damage, else None.

    Call it wherever DuckDB reads the store file; ``ConnectionManager.use`` already does.
    """
    if isinstance(exc, StoreError):
        return None  # already told apart
    cause = _damage_cause(exc)
    if cause is None:
        return None
    detail = _first_line(cause)
    if "not a valid duckdb database file" in detail.lower():
        return StoreCorruptError(
            db_path, detail, "is not a DuckDB database file, or its first bytes are damaged")
    return StoreCorruptError(db_path, detail)


def open_error(exc: BaseException, db_path, first_read: bool = False) -> StoreError | None:
    """Tell apart why DuckDB could not open the store file (``first_read``: or first read it).

    Lock conflicts are not handled here: the caller waits for those. A file this DuckDB cannot
    read (a newer storage format), the machine (permissions, space) and a connection of this
    process with other settings are told as such; any other failure to open means a damaged
    file. On a first read, only errors that look like damage do.
    """
    import duckdb

    if isinstance(exc, NbtrackError):
        return None  # raised on purpose (not a store, a newer schema): keep it
    text = _first_line(exc)
    lower = text.lower()
    if _SAME_PROCESS in lower:
        return StoreBusyError(
            f"{db_path} is already open in this process through a DuckDB connection with "
            "other settings (read_only=True, say). Close that connection, then try again."
        )
    if any(marker in lower for marker in _VERSION_MARKERS):
        return StoreVersionError(
            f"{db_path} was written by a DuckDB whose file format duckdb {duckdb.__version__} "
            f"cannot read ({text}). Install a duckdb that can (usually: pip install -U duckdb)."
        )
    if any(marker in lower for marker in _SYSTEM_MARKERS) or isinstance(
            exc, duckdb.OutOfMemoryException):
        return StoreError(
            f"{db_path} could not be opened: {text}. Fix that (permissions, free disk space or "
            "memory) and try again; the file itself is not known to be damaged."
        )
    damaged = damage_error(exc, db_path)
    if damaged is not None or not isinstance(exc, duckdb.Error):
        return damaged
    if not first_read or isinstance(exc, (duckdb.IOException, duckdb.SerializationException,
                                          duckdb.InternalException, duckdb.FatalException)):
        return StoreCorruptError(db_path, text)
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    # DuckDB wraps some errors: 'Invalid Input Error: … closed pending query result\nError: …'
    damaged = [line for line in lines if any(m in line.lower() for m in DAMAGE_MARKERS)]
    line = (damaged or lines or [type(exc).__name__])[0].strip()
    return line[len("Error: "):] if line.startswith("Error: ") else line


def float_env(name: str, default: float) -> float:
    """A number from the environment variable ``name``, or ``default`` if unset or not one."""
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


#: The block size of new store files. DuckDB's default, 256 KB, is the smallest unit a table,
#: an index or the metadata takes at a checkpoint, and a checkpoint writes changed tables to new
#: blocks before it frees the old ones (which the file keeps for reuse): the ~20 tables and ~10
#: indexes of an nbtrack store made a store of 11 small runs 5-6 MB, the quickstart notebook's
#: 11 runs 6 MB. With 16 KB blocks (DuckDB's smallest) they take about 1.1 and 1.7 MB; stores
#: of 300 runs x 1,000 points are smaller too, and writes and searches as fast (measured on
#: this 2-core machine). Older stores keep the block size they were made with.
BLOCK_SIZE = 16 * 1024


def create_file(db_path: Path) -> None:
    """Create an empty DuckDB file with ``BLOCK_SIZE`` blocks (fixed for the file's life)."""
    import duckdb

    duckdb.connect(str(db_path), config={"default_block_size": str(BLOCK_SIZE)}).close()


#: the kind of connection a holder hands out
C = TypeVar("C")


class HeldConnection(Generic[C]):
    """One connection per process, handed to one thread at a time under the store lock.

    What the embedded store's ``ConnectionManager`` and the team store's ``LakeConnections``
    share: the lock, the connection, how deeply it is in use, and what a forked child drops.
    """

    def __init__(self, lock: StoreLock) -> None:
        self.lock = lock
        self._mutex = threading.RLock()
        self._conn: C | None = None
        self._depth = 0
        self.opens = 0  # how many times the connection was made: for tests and benchmarks
        #: facts about the store that hold while the connection is open (see the subclasses)
        self.session_cache: dict = {}
        #: called after each open: the store starts the thread that closes an idle file
        self.after_open: Callable[[], None] | None = None

    @property
    def is_open(self) -> bool:
        """Whether this process holds the connection (and the lock) now."""
        return self._conn is not None

    def forget(self) -> None:
        """Drop the connection and lock without closing them: for a forked child process."""
        self._conn = None
        self._depth = 0
        self._mutex = threading.RLock()
        self.lock.forget()


class ConnectionManager(HeldConnection["Connection"]):
    """Hands out the store's DuckDB connection to one thread at a time, under the store lock."""

    def __init__(
        self,
        db_path: Path,
        lock: StoreLock,
        on_open: Callable[[Connection], None],
        linger: float | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(lock)
        self.db_path = db_path
        self._on_open = on_open
        self.linger = float_env("NBTRACK_LINGER", 0.25) if linger is None else linger
        self.timeout = float_env("NBTRACK_LOCK_TIMEOUT", 120.0) if timeout is None else timeout
        self._last_used = 0.0
        # session_cache: facts about the file that only a writer can change. While this
        # process has the file open no other process can write, so they stay true until it is
        # closed (or this process writes, which clears them).
        self._damaged = False  # a read found the file damaged: close it once unused

    @contextmanager
    def use(self, timeout: float | None = None) -> Iterator[Connection]:
        """Yield the open connection, opening it (under the lock) if needed.

        ``timeout`` overrides the store's lock timeout for this open (background merges and
        the exit path wait briefly, then leave the values in the spool).
        """
        with self._mutex:
            self._depth += 1
            try:
                conn = self._conn
                if conn is None:
                    conn = self._open(self.timeout if timeout is None else timeout)
                try:
                    yield conn
                except Exception as exc:
                    damaged = damage_error(exc, self.db_path)
                    if damaged is None:
                        raise
                    self._damaged = True
                    raise damaged from exc
            finally:
                self._depth -= 1
                self._last_used = time.monotonic()
                if self._depth == 0 and self._damaged:
                    self._close_damaged()
                elif self._depth == 0 and self._conn is not None and self.lock.others_waiting():
                    self._close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Yield the connection inside BEGIN ... COMMIT, rolling back on any error."""
        with self.use() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close_if_idle(self) -> bool:
        """Close the file if unused for the linger, or at once if unused and someone waits.

        Returns whether the file is still open.
        """
        if not self._mutex.acquire(blocking=False):
            return True
        try:
            if self._conn is not None and self._depth == 0 and (
                time.monotonic() - self._last_used >= self.linger or self.lock.others_waiting()
            ):
                self._close()
            return self._conn is not None
        finally:
            self._mutex.release()

    def close(self) -> None:
        """Close the file and release the lock."""
        with self._mutex:
            self._close()

    def _open(self, timeout: float) -> Connection:
        import duckdb

        from nbtrack.store import sandbox
        from nbtrack.store.no_pandas import Connection

        self.lock.acquire(timeout)
        deadline = time.monotonic() + timeout
        delay = 0.005
        try:
            while True:
                try:
                    if not self.db_path.exists():  # a new store: small blocks (see BLOCK_SIZE)
                        create_file(self.db_path)
                    # binds without pandas; reaches no file but the store's (see sandbox)
                    conn = Connection(sandbox.connect(str(self.db_path)))
                    conn.execute("SET enable_progress_bar = false")  # no bars in notebooks
                    break
                except duckdb.Error as exc:
                    if not is_lock_conflict(exc):
                        error = open_error(exc, self.db_path)
                        if error is None:
                            raise
                        raise error from exc
                    if time.monotonic() > deadline:
                        found = _HOLDER.search(str(exc))
                        holder = f" ({found.group(1)})" if found else ""
                        raise StoreBusyError(
                            f"{self.db_path} is held open by a program outside nbtrack"
                            f"{holder}, such as the DuckDB CLI or a notebook that opened it "
                            "directly. Close that program and try again."
                        ) from exc
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
            try:
                self._on_open(conn)
            except BaseException as exc:
                _close_quietly(conn)
                error = open_error(exc, self.db_path, first_read=True)
                if error is None:
                    raise
                raise error from exc
        except BaseException:
            self.lock.release()
            raise
        self._conn = conn
        self._damaged = False
        self.session_cache.clear()
        self.opens += 1
        if self.after_open is not None:
            self.after_open()
        return conn

    def _close_damaged(self) -> None:
        """Close a file a read found damaged (DuckDB may refuse to close it cleanly)."""
        self._damaged = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                _close_quietly(conn)
            finally:
                self.lock.release()

    def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            finally:
                self.lock.release()


def _close_quietly(conn) -> None:
    import duckdb

    with contextlib.suppress(duckdb.Error):  # damaged or refused: the error in hand says so
        conn.close()
