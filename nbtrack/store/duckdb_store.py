"""The embedded store: one DuckDB file plus an artifacts folder, under ``.nbtrack/`` by default.

Several processes share one store safely: see ``nbtrack.store.connection`` for how the file is
passed between them. Run values are buffered in memory (``PendingWrites``) and written in
batches by a background thread, on a size or time threshold, when a run ends, before any read in
this process, and at exit. A batch that cannot be written stays pending and is retried.
"""

from __future__ import annotations

import atexit
import os
import threading
import warnings
import weakref
from collections import OrderedDict
from operator import itemgetter
from pathlib import Path
from typing import Any

from nbtrack.clock import now_ms
from nbtrack.entities import LifecycleStage, Run
from nbtrack.exceptions import (
    NbtrackError,
    NotAStoreError,
    NotFoundError,
    ParamConflictError,
    StoreVersionError,
)
from nbtrack.store import run_index, run_queries, schema
from nbtrack.store.base import Store
from nbtrack.store.batch_writer import write_batch
from nbtrack.store.connection import ConnectionManager, _float_env
from nbtrack.store.experiments import ARTIFACTS_DIR, ExperimentsMixin
from nbtrack.store.locking import StoreLock
from nbtrack.store.model_registry import RegistryMixin
from nbtrack.store.pending import PendingWrites
from nbtrack.store.worker import BackgroundWriter

DB_FILE = "store.duckdb"
_KNOWN_RUNS_MAX = 10_000
_METRIC_RUNS_MAX = 50_000
_LIVE_STORES: weakref.WeakSet[DuckDBStore] = weakref.WeakSet()



def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


class DuckDBStore(ExperimentsMixin, RegistryMixin, Store):
    """A store in a local folder: ``store.duckdb``, ``artifacts/`` and the lock files."""

    def __init__(self, root: str | os.PathLike, db_file: str = DB_FILE) -> None:
        self.root = Path(root).expanduser().resolve()
        self.db_path = self.root / db_file
        self.artifact_root = self.root / ARTIFACTS_DIR
        self.uri = str(self.root)
        if self.root.exists() and not self.root.is_dir():
            raise NotAStoreError(
                f"The tracking location {self.root} is a file, not a folder. Point "
                "NBTRACK_TRACKING_URI (or set_tracking_uri) at a folder such as .nbtrack/."
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.artifact_root.mkdir(exist_ok=True)
        self._connection = ConnectionManager(self.db_path, StoreLock(self.root), self._prepare)
        self._flush_lock = threading.Lock()
        self._pending = PendingWrites(on_size=self._wake_writer)
        # for peek_latest_metrics: the batch being written, and the runs whose metrics this
        # process has written (None once too many to track: then always read the file)
        self._peek_lock = threading.Lock()
        self._in_flight = None
        self._metric_runs_written: set[str] | None = set()
        #: called with each batch once it is written (live charts follow their run this way)
        self.write_listeners: list = []
        self._known_runs: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._seen_environments: set[str] = set()
        self._writer = BackgroundWriter(
            flush=self._flush_background,
            has_pending=lambda: len(self._pending) > 0,
            close_if_idle=self._connection.close_if_idle,
            interval=_float_env("NBTRACK_FLUSH_INTERVAL", 1.0),
            linger=self._connection.linger,
        )
        self._connection.after_open = self._writer.ensure_running  # so an idle file is closed
        self.sync_writes = os.environ.get("NBTRACK_SYNC_WRITES", "").lower() in ("1", "true")
        if not self.sync_writes:
            self.add_metric = self._pending.add_metric  # the log_metric hot path: one call
        _LIVE_STORES.add(self)
        with self._connection.use():
            pass  # create or check the schema now, so a bad store fails at once
        self.mark_dead_runs()

    def __repr__(self) -> str:
        return f"DuckDBStore({str(self.root)!r})"

    # opening ------------------------------------------------------------------------------
    def _prepare(self, conn) -> None:
        """Check the file is an nbtrack store of a known version; create or migrate it."""
        names = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        }
        if not names:
            version = 0
        elif "nbtrack_meta" not in names:
            raise NotAStoreError(
                f"{self.db_path} is a DuckDB file but not an nbtrack store (it has tables "
                f"{', '.join(sorted(names)[:5])}). Use another tracking folder."
            )
        else:
            row = conn.execute(
                "SELECT value FROM nbtrack_meta WHERE key = 'schema_version'"
            ).fetchone()
            version = int(row[0]) if row else 0
        if version > schema.SCHEMA_VERSION:
            raise StoreVersionError(
                f"The store {self.db_path} has schema version {version}, written by a newer "
                f"nbtrack; this nbtrack understands up to version {schema.SCHEMA_VERSION}. "
                "Upgrade nbtrack (pip install -U nbtrack) to use it."
            )
        if version < schema.SCHEMA_VERSION:
            self._migrate(conn, version)

    def _migrate(self, conn, version: int) -> None:
        conn.execute("BEGIN TRANSACTION")
        try:
            for step in range(version, schema.SCHEMA_VERSION):
                conn.execute(schema.MIGRATIONS[step])
            if version == 0:
                now = now_ms()
                conn.execute(
                    "INSERT INTO experiments VALUES ('0', 'Default', ?, 'active', ?, ?)",
                    [ARTIFACTS_DIR, now, now],
                )
                conn.execute("INSERT INTO nbtrack_meta VALUES ('created_by', 'nbtrack')")
            conn.execute(
                "INSERT OR REPLACE INTO nbtrack_meta VALUES ('schema_version', ?)",
                [str(schema.SCHEMA_VERSION)],
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def mark_dead_runs(self) -> list[str]:
        """Mark KILLED the RUNNING runs of this host whose process no longer exists.

        A kernel that crashed or was killed never ends its run; without this it would stay
        RUNNING forever. Returns the ids of the runs it marked.
        """
        from nbtrack.capture import system

        with self._connection.use() as conn:
            rows = conn.execute(
                "SELECT run_id, pid FROM runs WHERE status = 'RUNNING' AND host = ? "
                "AND pid IS NOT NULL",
                [system.host()],
            ).fetchall()
        dead = [run_id for run_id, pid in rows if not _process_alive(pid)]
        if dead:
            with self._connection.transaction() as conn:
                self._connection.session_cache.clear()
                conn.execute(
                    "UPDATE runs SET status = 'KILLED', end_time = coalesce(end_time, ?) "
                    "WHERE run_id IN (SELECT unnest(?)) AND status = 'RUNNING'",
                    [now_ms(), dead],
                )
                conn.execute("CREATE TEMP TABLE _nb_dead AS SELECT unnest(?) AS run_id", [dead])
                run_index.refresh(conn, "_nb_dead")
                conn.execute("DROP TABLE _nb_dead")
        return dead

    # writing ------------------------------------------------------------------------------
    def _wake_writer(self) -> None:
        self._writer.wake()

    def change_token(self) -> tuple:
        """Changes whenever this or another process writes to the store (a cheap stat)."""
        token = [len(self._pending)]
        for path in (self.db_path, self.db_path.with_name(self.db_path.name + ".wal")):
            try:
                stat = path.stat()
                token += [stat.st_mtime_ns, stat.st_size]
            except FileNotFoundError:
                token += [0, 0]
        return tuple(token)

    def write_soon(self) -> None:
        """Ask the background writer to write what is pending now, without waiting for it."""
        if len(self._pending):
            self._writer.wake()

    def _flush_background(self) -> None:
        self._write_pending(raise_errors=True)

    def _write_pending(self, raise_errors: bool) -> None:
        with self._flush_lock:
            if not len(self._pending):
                return
            with self._peek_lock:
                batch = self._in_flight = self._pending.take()
            try:
                with self._connection.transaction() as conn:
                    self._connection.session_cache.clear()
                    problems = write_batch(conn, batch)
            except BaseException:
                self._connection.session_cache.clear()
                with self._peek_lock:
                    self._pending.put_back(batch)
                    self._in_flight = None
                if raise_errors:
                    raise
                return
            with self._peek_lock:
                self._note_metric_runs(batch)
                self._in_flight = None
        for listener in list(self.write_listeners):
            try:
                listener(batch)
            except Exception as exc:  # a listener (a live chart) must never stop writes
                warnings.warn(f"nbtrack: a write listener failed: {exc}", stacklevel=2)
        for message in problems:
            warnings.warn(message, stacklevel=2)

    def _note_metric_runs(self, batch) -> None:
        written = self._metric_runs_written
        if written is None or not batch.metrics:
            return
        written.update(map(itemgetter(0), batch.metrics))
        if len(written) > _METRIC_RUNS_MAX:
            self._metric_runs_written = None

    def peek_latest_metrics(self, run_id: str) -> dict[str, float]:
        """The run's latest metric values, written or not, without waiting for a write.

        Every value is in exactly one place: pending, in the batch being written, or in the
        file. The first two are scanned in memory; the file is read only when this process
        has already written metrics of the run (or another process may have).
        """
        with self._peek_lock:
            rows = [r for r in self._pending.metric_rows() if r[0] == run_id]
            if self._in_flight is not None:
                rows += [r for r in self._in_flight.metrics if r[0] == run_id]
            written = self._metric_runs_written
            read_file = written is None or run_id in written or run_id not in self._known_runs
        latest: dict[str, tuple[int, int, float]] = {}
        if read_file:
            with self._connection.use() as conn:
                for key, value, step, stamp in conn.execute(
                    'SELECT key, value, step, "timestamp" FROM latest_metrics WHERE run_id = ?',
                    [run_id],
                ).fetchall():
                    latest[key] = (step, stamp, value)
        for _, key, value, step, stamp in rows:
            if key not in latest or (step, stamp) >= latest[key][:2]:
                latest[key] = (step, stamp, value)
        return {key: value for key, (_, _, value) in latest.items()}

    def flush(self) -> None:
        """Write everything this process has logged so far, now.

        Always passes through the flush lock: a batch the background thread has taken but not
        yet committed is not pending any more, yet it is not readable either until then.
        """
        self._write_pending(raise_errors=True)

    def _after_write(self, urgent: bool = False) -> None:
        if self.sync_writes:
            self.flush()
        elif urgent:
            self._writer.wake()
        else:
            self._writer.ensure_running()

    def close(self) -> None:
        """Write what is pending, then close the file and release the lock."""
        try:
            self.flush()
        finally:
            self._connection.close()

    def _forget_after_fork(self) -> None:
        self._connection.forget()
        self._writer.forget()
        self._pending.take()  # the parent writes its own values
        self._known_runs.clear()
        self._flush_lock = threading.Lock()
        self._peek_lock = threading.Lock()
        self._in_flight = None
        self._metric_runs_written = set()

    # runs: writes (buffered) --------------------------------------------------------------
    def create_run(self, row: dict[str, Any]) -> None:
        """Queue a new run row."""
        self._pending.add_run(row)
        self._remember_run(row["run_id"], {})
        self._after_write()

    def _remember_run(self, run_id: str, params: dict[str, str]) -> dict[str, str]:
        known = self._known_runs
        known[run_id] = params
        if len(known) > _KNOWN_RUNS_MAX:
            known.popitem(last=False)
        return params

    def ensure_run(self, run_id: str) -> dict[str, str]:
        """Check that a run exists and is active; return its params (cached per process)."""
        params = self._known_runs.get(run_id)
        if params is not None:
            return params
        run = self.get_run(run_id)
        if run.info.lifecycle_stage != LifecycleStage.ACTIVE:
            raise NbtrackError(
                f"Run {run_id} is deleted, so nothing more can be logged to it. Restore it "
                "first with Client().restore_run(run_id)."
            )
        return self._remember_run(run_id, dict(run.data.params))

    def update_run(self, run_id: str, changes: dict[str, Any]) -> None:
        """Queue changes to a run; a status change is written promptly."""
        self._pending.update_run(run_id, changes)
        self._after_write(urgent="status" in changes or "lifecycle_stage" in changes)

    def add_params(self, run_id: str, items: list[tuple[str, str]]) -> None:
        """Queue params; the same value again is a no-op, a different one an error."""
        known = self.ensure_run(run_id)
        new: dict[str, str] = {}
        for key, value in items:
            old = known.get(key, new.get(key))
            if old is None:
                new[key] = value
            elif old != value:
                raise ParamConflictError(run_id, key, old, value)
        if new:
            known.update(new)
            self._pending.add_params(run_id, list(new.items()))
            self._after_write()

    def set_tags(self, run_id: str, items: list[tuple[str, str | None]]) -> None:
        """Queue tag changes."""
        self._pending.set_tags(run_id, items)
        self._after_write()

    def is_known_run(self, run_id: str) -> bool:
        """Whether ``ensure_run`` already vouched for this run in this process (no I/O)."""
        return run_id in self._known_runs

    def add_metric(self, run_id: str, key: str, value: float, timestamp: int, step: int) -> None:
        """Queue one metric value (replaced by the buffer's own method unless writes are sync)."""
        self._pending.add_metric(run_id, key, value, timestamp, step)
        if self.sync_writes:
            self.flush()

    def add_metrics(self, rows: list[tuple[str, str, float, int, int]]) -> None:
        """Queue metric rows."""
        self._pending.add_metrics(rows)
        self._after_write()

    def add_artifact(self, run_id: str, path: str, size: int, sha256: str) -> None:
        """Queue an artifact index row."""
        self._pending.add_artifact(run_id, path, size, sha256, now_ms())
        self._after_write()

    def add_input(self, run_id: str, dataset: dict, context: str | None) -> None:
        """Queue a dataset input."""
        self._pending.add_input(run_id, dataset, context)
        self._after_write()

    def add_environment(self, env_hash: str, env: dict) -> None:
        """Queue an environment record, once per hash per process."""
        if env_hash not in self._seen_environments:
            self._seen_environments.add(env_hash)
            self._pending.add_environment(env_hash, env)
            self._after_write()

    def set_run_lifecycle(self, run_id: str, stage: str) -> None:
        """Delete or restore a run (written at once)."""
        self.get_run(run_id)
        self._known_runs.pop(run_id, None)
        changes = {"lifecycle_stage": stage}
        self._pending.update_run(run_id, changes)
        self.flush()
        with self._connection.transaction() as conn:
            self._connection.session_cache.clear()
            conn.execute(
                "UPDATE runs SET deleted_time = ? WHERE run_id = ?",
                [now_ms() if stage == LifecycleStage.DELETED else None, run_id],
            )
            conn.execute("CREATE TEMP TABLE _nb_deleted AS SELECT ? AS run_id", [run_id])
            run_index.refresh(conn, "_nb_deleted")
            conn.execute("DROP TABLE _nb_deleted")

    # runs: reads --------------------------------------------------------------------------
    def _read(self, fn, *args, **kwargs):
        self.flush()
        with self._connection.use() as conn:
            return fn(conn, self, *args, **kwargs)

    def session_cache(self) -> dict:
        """Facts about the store that hold until the file is closed or this process writes."""
        return self._connection.session_cache

    def index_columns(self, conn) -> tuple[set[str], bool]:
        """The key columns of ``run_index`` and whether it is complete (cached per open)."""
        cache = self._connection.session_cache
        if "index_columns" not in cache:
            columns = run_index.key_columns(conn)
            cache["index_columns"] = (columns, len(columns) < run_index.MAX_KEY_COLUMNS)
        return cache["index_columns"]

    def get_run(self, run_id: str) -> Run:
        """Return one run, or raise NotFoundError."""
        runs = self._read(run_queries.load_runs, [run_id])
        if not runs:
            raise NotFoundError(
                f"No run with id {run_id!r} in the store {self.root}. Find run ids with "
                "nbtrack.search_runs() or `nbtrack runs`."
            )
        return runs[0]

    def get_metric_history(self, run_id: str, key: str):
        """A metric's history as a ``MetricHistory`` sequence."""
        return self._read(run_queries.metric_history, run_id, key)

    def search_runs(self, experiment_ids, filter_string, view_type, max_results, order_by,
                    page_token):
        """A page of ``Run`` entities and the next page token."""
        return self._read(run_queries.search_runs, experiment_ids, filter_string, view_type,
                          max_results, order_by, page_token)

    def search_runs_frame(self, experiment_ids, filter_string, view_type, max_results,
                          order_by):
        """The search as a pandas DataFrame with MLflow's columns."""
        return self._read(run_queries.search_runs_frame, experiment_ids, filter_string,
                          view_type, max_results, order_by)

    def search_runs_arrow(self, experiment_ids, filter_string, view_type, max_results,
                          order_by, keys):
        """The search as an Arrow table of chosen key columns, and the total match count."""
        return self._read(run_queries.search_runs_arrow, experiment_ids, filter_string,
                          view_type, max_results, order_by, keys)

    def histories_arrow(self, run_ids: list[str], key: str, max_points: int = 5000):
        """One metric's history for several runs, as an Arrow table (thinned past a size)."""
        return self._read(run_queries.histories_arrow, run_ids, key, max_points)

    def key_counts(self, experiment_ids, view_type) -> dict[str, int]:
        """How many of the experiments' runs have each metrics./params./tags. key."""
        return self._read(run_queries.key_counts, experiment_ids, view_type)

    def get_artifact_index(self, run_id: str) -> dict[str, tuple[int, str]]:
        """``{path: (size, sha256)}`` of a run's artifacts."""
        return self._read(run_queries.artifact_index, run_id)

    def get_environment(self, env_hash: str) -> dict | None:
        """The environment recorded under a hash."""
        return self._read(run_queries.environment, env_hash)

    def sql(self, query: str, parameters: list | None = None):
        """One read-only SELECT over the ``nbtrack`` views, as a DataFrame."""
        return self._read(run_queries.read_only_sql, query, parameters)


def _flush_all_at_exit() -> None:
    for store in list(_LIVE_STORES):
        try:
            store._writer.stop()
            store.close()
        except Exception as exc:  # the last chance: say what could not be written
            pending = len(store._pending)
            if pending:
                warnings.warn(
                    f"nbtrack could not write {pending} pending values to {store.root}: {exc}",
                    stacklevel=1,
                )


def _after_fork_in_child() -> None:
    for store in list(_LIVE_STORES):
        store._forget_after_fork()


atexit.register(_flush_all_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
