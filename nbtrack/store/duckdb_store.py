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
import time
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

from nbtrack.entities import Experiment, LifecycleStage, Run
from nbtrack.exceptions import (
    InvalidValueError,
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
from nbtrack.store.locking import StoreLock
from nbtrack.store.pending import PendingWrites
from nbtrack.store.worker import BackgroundWriter

DB_FILE = "store.duckdb"
ARTIFACTS_DIR = "artifacts"
_KNOWN_RUNS_MAX = 10_000
_LIVE_STORES: weakref.WeakSet[DuckDBStore] = weakref.WeakSet()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


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


class DuckDBStore(Store):
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
                now = _now_ms()
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
                    [_now_ms(), dead],
                )
                conn.execute("CREATE TEMP TABLE _nb_dead AS SELECT unnest(?) AS run_id", [dead])
                run_index.refresh(conn, "_nb_dead")
                conn.execute("DROP TABLE _nb_dead")
        return dead

    # writing ------------------------------------------------------------------------------
    def _wake_writer(self) -> None:
        self._writer.wake()

    def _flush_background(self) -> None:
        self._write_pending(raise_errors=True)

    def _write_pending(self, raise_errors: bool) -> None:
        with self._flush_lock:
            if not len(self._pending):
                return
            batch = self._pending.take()
            try:
                with self._connection.transaction() as conn:
                    self._connection.session_cache.clear()
                    problems = write_batch(conn, batch)
            except BaseException:
                self._connection.session_cache.clear()
                self._pending.put_back(batch)
                if raise_errors:
                    raise
                return
        for message in problems:
            warnings.warn(message, stacklevel=2)

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

    # experiments --------------------------------------------------------------------------
    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict | None = None,
        exist_ok: bool = False,
    ) -> str:
        """Create an experiment; its id is the next integer, as text.

        With ``exist_ok``, an active experiment of that name is returned instead: the check
        and the creation share one locked transaction, so processes racing to create the same
        experiment all get it.
        """
        if not isinstance(name, str) or not name.strip():
            raise InvalidValueError("An experiment needs a non-empty name, such as 'nyc-taxi'.")
        now = _now_ms()
        with self._connection.transaction() as conn:
            existing = conn.execute(
                "SELECT experiment_id, lifecycle_stage FROM experiments WHERE name = ?", [name]
            ).fetchone()
            if existing and exist_ok and existing[1] == LifecycleStage.ACTIVE:
                return existing[0]
            if existing:
                hint = (
                    " It is deleted: restore it with Client().restore_experiment"
                    f"({existing[0]!r}) or choose another name."
                    if existing[1] == LifecycleStage.DELETED
                    else " Use set_experiment(name) to reuse it."
                )
                raise NbtrackError(f"An experiment named {name!r} already exists.{hint}")
            (next_id,) = conn.execute(
                "SELECT coalesce(max(CAST(experiment_id AS BIGINT)), -1) + 1 FROM experiments"
            ).fetchone()
            experiment_id = str(next_id)
            conn.execute(
                "INSERT INTO experiments VALUES (?, ?, ?, 'active', ?, ?)",
                [experiment_id, name, artifact_location or ARTIFACTS_DIR, now, now],
            )
            for key, value in (tags or {}).items():
                conn.execute(
                    "INSERT INTO experiment_tags VALUES (?, ?, ?)", [experiment_id, key, str(value)]
                )
        return experiment_id

    def _experiments(self, where: str, params: list) -> list[Experiment]:
        # experiments are written at once, never buffered: no flush needed before reading
        with self._connection.use() as conn:
            rows = conn.execute(
                "SELECT e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, "
                "e.creation_time, e.last_update_time, "
                "(SELECT list(struct_pack(k := key, v := value)) FROM experiment_tags t "
                " WHERE t.experiment_id = e.experiment_id) "
                f"FROM experiments e {where}",
                params,
            ).fetchall()
        return [
            Experiment(
                experiment_id=r[0],
                name=r[1],
                artifact_location=str(self.root / r[2]),
                lifecycle_stage=r[3],
                creation_time=r[4],
                last_update_time=r[5],
                tags={t["k"]: t["v"] for t in (r[6] or [])},
            )
            for r in rows
        ]

    def get_experiment(self, experiment_id: str) -> Experiment:
        """Return an experiment by id."""
        found = self._experiments("WHERE experiment_id = ?", [str(experiment_id)])
        if not found:
            raise NotFoundError(
                f"No experiment with id {experiment_id!r} in the store {self.root}. "
                "List them with nbtrack.search_experiments() or `nbtrack experiments`."
            )
        return found[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """Return an experiment by name, or None."""
        found = self._experiments("WHERE name = ?", [name])
        return found[0] if found else None

    def search_experiments(
        self, view_type: int, max_results: int | None, filter_string: str | None = None,
        order_by: list[str] | None = None,
    ) -> list[Experiment]:
        """Experiments in a lifecycle view matching a filter, by id unless ``order_by`` says."""
        from nbtrack.entities import ViewType
        from nbtrack.search.parser import EXPERIMENTS, parse_filter, parse_order_by
        from nbtrack.store.search_sql import experiment_order, experiment_where

        params: list[Any] = [list(ViewType.stages(view_type))]
        condition = experiment_where(parse_filter(filter_string, EXPERIMENTS), params)
        order = experiment_order(parse_order_by(order_by, EXPERIMENTS))
        where = f"WHERE list_contains(?, e.lifecycle_stage) AND {condition} ORDER BY {order}"
        if max_results is not None:
            where += " LIMIT ?"
            params.append(int(max_results))
        return self._experiments(where, params)

    def set_experiment_lifecycle(self, experiment_id: str, stage: str) -> None:
        """Move an experiment to ``active`` or ``deleted``."""
        self.get_experiment(experiment_id)
        with self._connection.transaction() as conn:
            conn.execute(
                "UPDATE experiments SET lifecycle_stage = ?, last_update_time = ? "
                "WHERE experiment_id = ?",
                [stage, _now_ms(), str(experiment_id)],
            )

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Rename an experiment; the new name must be unused."""
        self.get_experiment(experiment_id)
        if self.get_experiment_by_name(new_name) is not None:
            raise NbtrackError(f"An experiment named {new_name!r} already exists; pick another.")
        with self._connection.transaction() as conn:
            conn.execute(
                "UPDATE experiments SET name = ?, last_update_time = ? WHERE experiment_id = ?",
                [new_name, _now_ms(), str(experiment_id)],
            )

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        """Set (or replace) a tag on an experiment."""
        self.get_experiment(experiment_id)
        with self._connection.transaction() as conn:
            conn.execute(
                "DELETE FROM experiment_tags WHERE experiment_id = ? AND key = ?",
                [str(experiment_id), key],
            )
            conn.execute(
                "INSERT INTO experiment_tags VALUES (?, ?, ?)", [str(experiment_id), key, value]
            )

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
        self._pending.add_artifact(run_id, path, size, sha256, _now_ms())
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
                [_now_ms() if stage == LifecycleStage.DELETED else None, run_id],
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
