"""A cross-process lock over one store, with a way to tell the holder that others wait.

DuckDB lets one process at a time open a database file for writing; a second process that
tries gets an error, not a wait. nbtrack therefore serialises access itself: a process holds
``store.lock`` (an exclusive ``flock``) for as long as it has the DuckDB file open.

Fairness: a process that wants the lock first takes a *shared* lock on ``store.want``. The holder
checks, after each of its operations, whether anyone holds ``store.want`` and if so closes the
file and lets go at once; otherwise it keeps the file open for a short linger so that a burst of
operations does not pay the cost of reopening the database each time.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from nbtrack.exceptions import StoreBusyError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _open_lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)


class _InProcess:
    """Which ``StoreLock`` of this process holds a path: ``flock`` cannot tell them apart."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.holder: StoreLock | None = None


_in_process: dict[Path, _InProcess] = {}
_in_process_guard = threading.Lock()


def _local(path: Path) -> _InProcess:
    with _in_process_guard:
        return _in_process.setdefault(path, _InProcess())


class StoreLock:
    """Exclusive lock over a store directory, shared by nothing within one process."""

    def __init__(self, directory: Path) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            raise OSError(
                "nbtrack's embedded store needs POSIX file locks (Linux or macOS). "
                "On Windows, run nbtrack inside WSL."
            )
        self.path = directory / "store.lock"
        self.want_path = directory / "store.want"
        self._fd: int | None = None
        self._want_fd: int | None = None
        self._local = _local(self.path.resolve())

    @property
    def held(self) -> bool:
        """Whether this process holds the lock now."""
        return self._fd is not None

    def acquire(self, timeout: float) -> None:
        """Take the lock, waiting up to ``timeout`` seconds.

        Raises:
            StoreBusyError: another process held the lock for the whole timeout.

        """
        if self._fd is not None:
            return
        deadline = time.monotonic() + timeout
        self._claim_in_process(timeout)
        fd = _open_lock_file(self.path)
        try:
            if not self._try_lock(fd, fcntl.LOCK_EX):
                self._wait(fd, max(deadline - time.monotonic(), 0.0))
            self._fd = fd
        except BaseException:
            os.close(fd)
            self._release_in_process()
            raise

    def _claim_in_process(self, timeout: float) -> None:
        local = self._local
        with local.cond:
            if local.holder is None or local.holder is self:
                local.holder = self
                return
        want = _open_lock_file(self.want_path)  # tell the holder, as another process would
        try:
            fcntl.flock(want, fcntl.LOCK_SH)
            with local.cond:
                if not local.cond.wait_for(lambda: local.holder is None, timeout):
                    raise self._busy(timeout)
                local.holder = self
        finally:
            os.close(want)

    def _release_in_process(self) -> None:
        local = self._local
        with local.cond:
            if local.holder is self:
                local.holder = None
                local.cond.notify_all()

    def _busy(self, timeout: float) -> StoreBusyError:
        return StoreBusyError(
            f"The store lock {self.path} was held by another process for more "
            f"than {timeout:.0f} s. Check for a stuck process using this store "
            "(`fuser` or `lsof` on the lock file), or raise NBTRACK_LOCK_TIMEOUT."
        )

    def _wait(self, fd: int, timeout: float) -> None:
        want = _open_lock_file(self.want_path)
        try:
            fcntl.flock(want, fcntl.LOCK_SH)
            deadline = time.monotonic() + timeout
            delay = 0.0005
            while not self._try_lock(fd, fcntl.LOCK_EX):
                if time.monotonic() > deadline:
                    raise self._busy(timeout)
                time.sleep(delay)
                delay = min(delay * 2, 0.02)
        finally:
            os.close(want)  # closing drops the shared lock

    @staticmethod
    def _try_lock(fd: int, mode: int) -> bool:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def others_waiting(self) -> bool:
        """Whether another process is waiting for the lock (cheap: one system call)."""
        if self._want_fd is None:
            self._want_fd = _open_lock_file(self.want_path)
        if self._try_lock(self._want_fd, fcntl.LOCK_EX):
            fcntl.flock(self._want_fd, fcntl.LOCK_UN)
            return False
        return True

    def release(self) -> None:
        """Let go of the lock, if held."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
            self._release_in_process()

    def forget(self) -> None:
        """Drop the handles without unlocking: for a forked child, whose locks are the parent's."""
        self._fd = None
        self._want_fd = None
        self._local = _InProcess()
        with _in_process_guard:
            _in_process.clear()
