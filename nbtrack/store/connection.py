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
in memory until they are written.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nbtrack.exceptions import NotAStoreError, StoreBusyError
from nbtrack.store.locking import StoreLock


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class ConnectionManager:
    """Hands out the store's DuckDB connection to one thread at a time, under the store lock."""

    def __init__(
        self,
        db_path: Path,
        lock: StoreLock,
        on_open: Callable[[object], None],
        linger: float | None = None,
        timeout: float | None = None,
    ) -> None:
        self.db_path = db_path
        self.lock = lock
        self._on_open = on_open
        self.linger = _float_env("NBTRACK_LINGER", 0.25) if linger is None else linger
        self.timeout = _float_env("NBTRACK_LOCK_TIMEOUT", 120.0) if timeout is None else timeout
        self._mutex = threading.RLock()
        self._conn = None
        self._depth = 0
        self._last_used = 0.0
        self.opens = 0  # how many times the file was opened: for tests and benchmarks
        # Facts about the file that only a writer can change. While this process has the file
        # open no other process can write, so they stay true until it is closed (or this
        # process writes, which clears them).
        self.session_cache: dict = {}
        #: Called after each open: the store starts the thread that closes an idle file.
        self.after_open: Callable[[], None] | None = None

    @property
    def is_open(self) -> bool:
        """Whether the DuckDB file is open (and the lock held) now."""
        return self._conn is not None

    @contextmanager
    def use(self, timeout: float | None = None) -> Iterator[object]:
        """Yield the open connection, opening it (under the lock) if needed.

        ``timeout`` overrides the store's lock timeout for this open (background merges and
        the exit path wait briefly, then leave the values in the spool).
        """
        with self._mutex:
            self._depth += 1
            try:
                if self._conn is None:
                    self._open(self.timeout if timeout is None else timeout)
                yield self._conn
            finally:
                self._depth -= 1
                self._last_used = time.monotonic()
                if self._depth == 0 and self._conn is not None and self.lock.others_waiting():
                    self._close()

    @contextmanager
    def transaction(self) -> Iterator[object]:
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

    def forget(self) -> None:
        """Drop the connection and lock without closing them: for a forked child process."""
        self._conn = None
        self._depth = 0
        self._mutex = threading.RLock()
        self.lock.forget()

    def _open(self, timeout: float) -> None:
        import duckdb

        self.lock.acquire(timeout)
        deadline = time.monotonic() + timeout
        delay = 0.005
        try:
            while True:
                try:
                    conn = duckdb.connect(str(self.db_path))
                    conn.execute("SET enable_progress_bar = false")  # no bars in notebooks
                    break
                except duckdb.IOException as exc:
                    text = str(exc)
                    if "lock" not in text.lower():
                        raise NotAStoreError(
                            f"{self.db_path} cannot be opened as an nbtrack store: {text}. "
                            "Point NBTRACK_TRACKING_URI at another folder, or move this file "
                            "away."
                        ) from exc
                    if time.monotonic() > deadline:
                        raise StoreBusyError(
                            f"{self.db_path} is held open by a program outside nbtrack (for "
                            "example the DuckDB CLI or another notebook that opened it "
                            "directly). Close that program and try again."
                        ) from exc
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
            try:
                self._on_open(conn)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            self.lock.release()
            raise
        self._conn = conn
        self.session_cache.clear()
        self.opens += 1
        if self.after_open is not None:
            self.after_open()

    def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            finally:
                self.lock.release()
