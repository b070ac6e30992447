"""A daemon thread per store that writes pending values in batches and closes an idle file."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

WAITER_POLL = 0.05  # seconds between checks for other processes waiting for the file


class BackgroundWriter:
    """Flush when woken (size, end of run) or every ``interval`` seconds.

    Between flushes it calls ``close_if_idle``, so the store file goes back to other processes
    once the linger has passed.
    """

    def __init__(
        self,
        flush: Callable[[], None],
        has_pending: Callable[[], bool],
        close_if_idle: Callable[[], bool],
        interval: float,
        linger: float,
    ) -> None:
        self._flush = flush
        self._has_pending = has_pending
        self._close_if_idle = close_if_idle
        self.interval = interval
        self.linger = linger
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._pid = os.getpid()
        self.last_error: BaseException | None = None
        self._stopping = False

    def wake(self) -> None:
        """Ask for a flush now, starting the thread if it is not running."""
        self.ensure_running()
        self._wake.set()

    def ensure_running(self) -> None:
        """Start the thread (once per process)."""
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._start_lock:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="nbtrack-writer", daemon=True
                )
                self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread and wait for it.

        At interpreter exit no DuckDB call may still be in flight: a native call cut off by
        finalisation aborts the process.
        """
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        if not thread.is_alive():  # a store used again after close starts a new thread
            self._thread = None
            self._stopping = False

    def forget(self) -> None:
        """Drop the thread handle in a forked child (the thread does not exist there)."""
        self._thread = None
        self._wake = threading.Event()

    def _run(self) -> None:
        retry_delay = 0.05
        last_flush = time.monotonic()
        while not self._stopping:
            is_open = self._close_if_idle()
            until_flush = max(self.interval - (time.monotonic() - last_flush), 0.0)
            timeout = min(self.linger, WAITER_POLL, until_flush) if is_open else until_flush
            woken = self._wake.wait(timeout)
            self._wake.clear()
            if self._stopping:
                return
            due = time.monotonic() - last_flush >= self.interval
            if not (woken or (due and self._has_pending())):
                if due:
                    last_flush = time.monotonic()
                continue
            last_flush = time.monotonic()
            try:
                self._flush()
                self.last_error = None
                retry_delay = 0.05
            except BaseException as exc:  # keep the data pending and retry with a backoff
                self.last_error = exc
                self._wake.wait(retry_delay)
                retry_delay = min(retry_delay * 2, 5.0)


class Spooler:
    """A daemon thread that moves pending values to the spool within ``delay`` seconds.

    ``nudge`` (the first value after the buffer was emptied) starts the clock; ``now`` skips
    the wait. Idle, the thread sleeps until nudged: an idle kernel costs nothing.
    """

    def __init__(self, task: Callable[[], None], delay: float,
                 on_error: Callable[[BaseException], None]) -> None:
        self._task = task
        self._on_error = on_error
        self.delay = delay
        self._wake = threading.Event()
        self._urgent = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._pid = os.getpid()
        self._stopping = False

    def nudge(self) -> None:
        """Values are waiting: spool them within ``delay``."""
        if self._thread is None or self._pid != os.getpid():
            self._start()
        self._wake.set()

    def now(self) -> None:
        """Spool what is waiting without delay (in the background)."""
        self._urgent.set()
        self.nudge()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread and wait for the spool write in progress, if any."""
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            return
        self._stopping = True
        self._urgent.set()
        self._wake.set()
        thread.join(timeout)
        if not thread.is_alive():  # a store used again after close starts a new thread
            self._thread = None
            self._stopping = False
            self._urgent.clear()

    def forget(self) -> None:
        """Drop the thread handle in a forked child (the thread does not exist there)."""
        self._thread = None
        self._wake = threading.Event()
        self._urgent = threading.Event()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="nbtrack-spool",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        retry_delay = 0.05
        while True:
            self._wake.wait()
            self._urgent.wait(self.delay)
            if self._stopping:
                return  # whoever stops the thread spools what is left
            self._wake.clear()
            self._urgent.clear()
            try:
                self._task()
                retry_delay = 0.05
            except BaseException as exc:  # the values stay in memory; try again shortly
                self._on_error(exc)
                self._urgent.wait(retry_delay)
                retry_delay = min(retry_delay * 2, 1.0)
                self._wake.set()
