"""The write path of the embedded store: memory, then the spool (durable), then the store.

1. A ``log_*`` call appends to ``PendingWrites`` in memory: no I/O, no lock.
2. The *spooler* thread appends what is pending to this process's spool segment within
   ``NBTRACK_SPOOL_DELAY`` seconds (default 0.02). That is the durability point: from then on
   the value survives the death of the process (SIGKILL, OOM, a crash). It never waits for the
   store lock, so other processes cannot delay it, nor for the disk: the merger thread
   ``fdatasync``s the segment every second, after which the value survives a power cut too.
   A run's creation and end, ``synchronous=True`` and ``sync()`` are written and synced to
   the disk before they return.
3. The *merger* thread merges spool segments into the DuckDB file every
   ``NBTRACK_FLUSH_INTERVAL`` seconds (default 1) when the store lock can be had
   (``nbtrack.store.merge``). Every read merges first, under the same lock, so a process reads
   its own writes and every durable write of others.

Failures are told apart. A spool write that fails (a full disk) keeps the values in memory,
retries, and is raised once by the next call that logs or reads. A write the store refuses is
set aside in ``spool_rejects`` while the rest flows on, and is raised the same way. A busy store
only delays merging. At exit the spool gets what is pending and one short merge is tried; what
is not merged stays in the spool for the next process that opens the store.
"""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

from nbtrack.exceptions import NbtrackError, StoreBusyError
from nbtrack.store import frames, merge, spool
from nbtrack.store.connection import ConnectionManager, float_env
from nbtrack.store.pending import Batch, PendingWrites
from nbtrack.store.worker import BackgroundWriter, Spooler

#: rotate this process's segment once it is merged and this large
ROTATE_BYTES = 16 << 20
#: where writes that cannot be encoded are set aside (a text file in the spool folder)
REFUSED_FILE = "refused.txt"
#: look for segments of dead processes at least this often (seconds)
TIDY_INTERVAL = 5.0
#: the most runs whose latest metrics are tracked in memory for ``peek_latest_metrics``
LATEST_RUNS_MAX = 50_000


class WriteError(NbtrackError):
    """Values could not be written where they should be; says what happened to them."""


class WritePath:
    """Pending values, the spool segment of this process, and the threads that move them."""

    def __init__(self, root: Path, connection: ConnectionManager, after_merge,
                 sync_writes: bool) -> None:
        self.folder = root / spool.SPOOL_DIR
        self.connection = connection
        self.sync_writes = sync_writes
        self.pending = PendingWrites(on_first=self._nudge, on_size=self._now)
        self.segment = spool.Segment(self.folder)
        self._after_merge = after_merge
        self._spool_lock = threading.Lock()
        self._peek_lock = threading.Lock()
        self._in_flight: Batch | None = None
        self._latest: dict[str, dict[str, tuple[int, int, float]]] | None = {}
        #: the error that stopped values, raised once by the next call that logs or reads
        self.error: BaseException | None = None
        #: the error of a spool outage (a full disk), cleared when a write succeeds again
        self._outage: BaseException | None = None
        self._last_tidy = 0.0
        self._own_merged_to = 0
        self._rejects_seen = 0
        #: called with each batch once it is durable (live charts follow their run this way)
        self.listeners: list = []
        self._spooler = Spooler(self._spool_in_background,
                                delay=float_env("NBTRACK_SPOOL_DELAY", 0.02),
                                on_error=self._note_task_error)
        self._merger = BackgroundWriter(
            flush=self._merge_in_background,
            has_pending=self.has_unmerged,
            close_if_idle=connection.close_if_idle,
            interval=float_env("NBTRACK_FLUSH_INTERVAL", 1.0),
            linger=connection.linger,
        )
        self._closing = False
        connection.after_open = self._after_open

    def _after_open(self) -> None:
        if not self._closing:  # the merger also closes an idle file; not while shutting down
            self._merger.ensure_running()

    # the logging side ---------------------------------------------------------------------
    def raise_error(self) -> None:
        """Raise, once, the error that stopped earlier values (they were kept, see message)."""
        error, self.error = self.error, None
        if error is not None:
            raise WriteError(str(error)) from error

    def _note_error(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = self._outage = WriteError(
                f"nbtrack could not write logged values to the spool in {self.folder}: {exc}. "
                "They are kept in memory and retried; free disk space (or fix the folder's "
                "permissions). This call's value was not logged."
            )

    def _note_task_error(self, exc: BaseException) -> None:
        """The spool thread failed; it retries. A spool write error was noted under the lock."""
        if not isinstance(exc, spool.SpoolWriteError):
            self._note_error(exc)

    def _outage_over(self) -> None:
        """A spool write succeeded: an outage not yet reported is over and lost nothing."""
        if self.error is not None and self.error is self._outage:
            self.error = None
        self._outage = None

    def added(self, urgent: bool = False) -> None:
        """Values were queued: spool them now (synchronous mode), soon, or within the delay."""
        if self.sync_writes:
            self.sync()
        elif urgent:
            self._spooler.now()
        else:
            self._spooler.nudge()

    def _nudge(self) -> None:
        self._spooler.nudge()

    def _now(self) -> None:
        self._spooler.now()

    def sync(self) -> None:
        """Make everything logged so far durable in the spool, on the disk itself, now.

        Raises:
            WriteError: the spool could not be written; the values stay in memory.

        """
        try:
            self._spool_pending(to_disk=True)
            self.segment.sync_to_disk()  # frames the spooler wrote before this call
        except spool.SpoolWriteError as exc:
            raise WriteError(
                f"nbtrack could not make logged values durable: {exc}. They are kept in memory "
                "and retried; free disk space or fix the folder's permissions."
            ) from exc

    def _spool_in_background(self) -> None:
        # written, not synced: safe from the death of this process at once; the merger syncs
        # to the disk itself every second, so a slow disk never holds up the next frame
        self._spool_pending(to_disk=False, background=True)

    def _spool_pending(self, to_disk: bool, background: bool = False) -> None:
        """Append what is pending to the segment; on failure keep it pending.

        A background failure is noted (to be raised by the next call) under the spool lock,
        so a later successful write always sees it and clears it: no stale error after the
        outage is over.
        """
        with self._spool_lock:
            if not len(self.pending):
                return
            with self._peek_lock:
                batch = self._in_flight = self.pending.take()
            try:
                payload, batch, table = self._encode(batch)
                self.segment.append(payload, sync=to_disk)
                latest = (frames.latest_by_key(table) if table is not None
                          else frames.latest_of_rows(batch.metrics))
            except BaseException as exc:
                with self._peek_lock:
                    self.pending.put_back(batch)
                    self._in_flight = None
                if background and isinstance(exc, spool.SpoolWriteError):
                    self._note_error(exc)
                raise
            with self._peek_lock:
                self._note_latest(latest)
                self._in_flight = None
            if self._outage is not None:
                self._outage_over()
        for listener in list(self.listeners):
            try:
                listener(batch)
            except Exception as exc:  # a listener (a live chart) must never stop writes
                warnings.warn(f"nbtrack: a write listener failed: {exc}", stacklevel=2)

    def _encode(self, batch: Batch) -> tuple[bytes, Batch, object]:
        """``(payload, what it holds, its metrics as Arrow or None)`` for a batch.

        A write that cannot be encoded is set aside and the rest goes on. Values are checked
        when they are logged, so this is a last line of defence: what cannot be encoded is
        appended, as text, to ``spool/refused.txt`` with its error.
        """
        try:
            table = (frames.metrics_table(batch.metrics)
                     if len(batch.metrics) > frames.SMALL_LATEST else None)
            return frames.encode(batch, table), batch, table
        except (TypeError, ValueError, UnicodeError, OverflowError):
            kept, refused = Batch(), []
            for i in range(len(batch)):
                part = batch.part(i, i + 1)
                try:  # metrics as Arrow, as the whole batch would have sent them
                    frames.encode(part, frames.metrics_table(part.metrics) if part.metrics
                                  else None)
                except (TypeError, ValueError, UnicodeError, OverflowError) as part_exc:
                    refused.append((f"{_describe(part)}: {part_exc}", part))
                else:
                    kept.absorb(part)
            aside = self.folder / REFUSED_FILE
            with open(aside, "a", encoding="utf-8", errors="backslashreplace") as handle:
                for reason, part in refused:
                    handle.write(f"{reason}\t{part!r}\n")
            self.error = WriteError(
                f"nbtrack could not store {len(refused)} logged value(s) and set them aside in "
                f"{aside}; the others were kept. "
                + "; ".join(reason for reason, _ in refused[:3])
            )
            table = frames.metrics_table(kept.metrics) if kept.metrics else None
            return frames.encode(kept, table), kept, table

    def _note_latest(self, rows: list[tuple[str, str, int, int, float]]) -> None:
        latest = self._latest
        if latest is None:
            return
        for run_id, key, step, stamp, value in rows:
            keys = latest.get(run_id)
            if keys is None:
                keys = latest[run_id] = {}
            old = keys.get(key)
            if old is None or (step, stamp) >= (old[0], old[1]):
                keys[key] = (step, stamp, value)
        if len(latest) > LATEST_RUNS_MAX:
            self._latest = None  # too many to follow: peek reads the store instead

    def latest_metrics(self, run_id: str) -> dict[str, tuple[int, int, float]] | None:
        """``{key: (step, timestamp, value)}``: what this process logged for a run, anywhere.

        None when this process no longer follows its runs (then read the store).
        """
        with self._peek_lock:
            if self._latest is None:
                return None
            found = dict(self._latest.get(run_id, {}))
            rows = [r for r in self.pending.metric_rows() if r[0] == run_id]
            if self._in_flight is not None:
                rows += [r for r in self._in_flight.metrics if r[0] == run_id]
        for _, key, value, step, stamp in rows:
            old = found.get(key)
            if old is None or (step, stamp) >= (old[0], old[1]):
                found[key] = (step, stamp, value)
        return found

    def has_unspooled(self) -> bool:
        """Whether values logged in this process are not durable yet."""
        return len(self.pending) > 0 or self._in_flight is not None

    # the merging side ---------------------------------------------------------------------
    def has_unmerged(self) -> bool:
        """Whether the spool may hold values the store lacks (a few ``stat`` calls).

        A segment written to after the store file last changed may hold such values. One
        written to before it was most likely taken in by whichever process merged last: with
        many writers, each of them then skips its own merge rather than queueing for the lock
        to merge nothing. A guess either way costs no value: every read merges first.
        """
        merged_at = 0
        for path in (self.connection.db_path,
                     self.connection.db_path.with_name(self.connection.db_path.name + ".wal")):
            try:
                merged_at = max(merged_at, path.stat().st_mtime_ns)
            except FileNotFoundError:
                continue
        return any(written >= merged_at for written in spool.write_times(self.folder))

    def merge(self, conn, tidy: bool = False) -> merge.MergeReport:
        """Merge the spool into the store open on ``conn`` (the caller holds the lock)."""
        now = time.monotonic()
        tidy = tidy or now - self._last_tidy > TIDY_INTERVAL
        report = merge.merge(conn, self.folder, self.connection.session_cache,
                             own=self.segment.history.__contains__, tidy=tidy)
        if tidy:
            self._last_tidy = now
        offsets = self.connection.session_cache.get(merge.OFFSETS_CACHE, {})
        if self.segment.name is not None:
            self._own_merged_to = offsets.get(self.segment.name, 0)
            self.segment.rotate_if(self._own_merged_to, ROTATE_BYTES)
        if report.frames:
            self._check_rejects(conn)
        for message in report.warnings:
            warnings.warn(message, stacklevel=3)
        self._after_merge(conn, report)
        return report

    def _check_rejects(self, conn) -> None:
        mine = list(self.segment.history)
        if not mine:
            return
        count, error = conn.execute(
            "SELECT count(*), max(error) FROM spool_rejects WHERE segment IN "
            "(SELECT unnest(?))", [mine]).fetchone()
        if count > self._rejects_seen:
            self._rejects_seen = count
            self.error = WriteError(
                f"The store refused {count} value(s) logged by this process ({error}). The "
                "others were stored; the refused ones are kept in the store's spool_rejects "
                "table (nbtrack.sql('SELECT * FROM spool_rejects'))."
            )

    def flush(self, timeout: float | None = None) -> None:
        """Make everything durable, then merge it into the store (waiting for the lock)."""
        self.sync()
        with self.connection.use(timeout) as conn:
            self.merge(conn)

    def merge_when_free(self) -> None:
        """Start the merger now: it merges as soon as the store lock can be had."""
        self._last_tidy = 0.0
        self._merger.wake()

    def _merge_in_background(self) -> None:
        """Merge if the store is free right now; never queue for it.

        With many writers, queueing would pass the file from process to process all the time
        (each open and close of DuckDB costs milliseconds) and make readers wait behind them.
        The values are durable already, whoever holds the store may merge them, and every read
        merges first.
        """
        self.segment.sync_to_disk()
        if not self.has_unmerged():
            return
        try:
            with self.connection.use(timeout=0.0) as conn:
                self.merge(conn)
        except StoreBusyError:
            return

    # lifecycle ----------------------------------------------------------------------------
    def close(self, merge_timeout: float) -> None:
        """Spool what is pending, try one merge, and release the segment; never drops values.

        Raises:
            WriteError: what could not be spooled (kept in memory until the process ends).

        """
        self._closing = True
        self._spooler.stop()
        self._merger.stop()
        try:
            self.sync()
            if self.segment.size > self._own_merged_to:
                with self.connection.use(merge_timeout) as conn:
                    self.merge(conn)
        except StoreBusyError:
            pass  # durable in the spool: the next process that opens the store merges it
        finally:
            self.segment.close(remove_if_merged_to=self._own_merged_to)
            self._own_merged_to = 0
            self._closing = False

    def forget_after_fork(self) -> None:
        """In a forked child: the parent keeps its values, its segment and its threads."""
        self._spooler.forget()
        self._merger.forget()
        self.pending.take()
        self.segment.forget()
        self._spool_lock = threading.Lock()
        self._peek_lock = threading.Lock()
        self._in_flight = None
        self._latest = {}
        self._own_merged_to = 0
        self._rejects_seen = 0


def _describe(batch: Batch) -> str:
    for name in ("params", "metrics", "artifacts", "inputs"):
        rows = getattr(batch, name)
        if rows:
            return f"{name[:-1]} {rows[0][1]!r} of run {rows[0][0]}"
    for name in ("runs", "run_updates", "tags", "environments"):
        items = getattr(batch, name)
        if items:
            return f"{name[:-1]} {next(iter(items))!r}"
    return "a write"


def exit_merge_timeout() -> float:
    """How long the exit path waits for the store lock before leaving values in the spool."""
    return float_env("NBTRACK_EXIT_MERGE_TIMEOUT", 2.0)

