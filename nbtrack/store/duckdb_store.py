"""The embedded store: one DuckDB file plus an artifacts folder, under ``.nbtrack/`` by default.

Several processes share one store safely: see ``nbtrack.store.connection`` for how the file is
passed between them, and ``nbtrack.store.write_path`` for how a logged value becomes durable (a
per-process spool, within 20 ms, with no lock) and then reaches the file (merged by whichever
process holds it). Every read merges the spool first, so it sees every durable value.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from nbtrack.clock import now_ms
from nbtrack.entities import LifecycleStage, Run, RunStatus, system_tags
from nbtrack.exceptions import (
    NbtrackError,
    NotAStoreError,
    NotFoundError,
    ParamConflictError,
    StoreBusyError,
    StoreVersionError,
)
from nbtrack.store import run_index, run_queries, schema, spool
from nbtrack.store.base import NewRun
from nbtrack.store.connection import ConnectionManager
from nbtrack.store.experiments import ARTIFACTS_DIR, ExperimentsMixin
from nbtrack.store.locking import StoreLock
from nbtrack.store.model_registry import RegistryMixin
from nbtrack.store.pending import MetricRow
from nbtrack.store.registry_base import Backend
from nbtrack.store.write_path import WritePath, exit_merge_timeout

DB_FILE = "store.duckdb"
_KNOWN_RUNS_MAX = 10_000
_CREATED_RUNS_MAX = 100_000
#: how long opening an existing store waits for the lock before leaving it to the merger
OPEN_WAIT = 0.5
_LIVE_STORES: weakref.WeakSet[DuckDBStore] = weakref.WeakSet()


def close_at_exit(store: DuckDBStore) -> None:
    """Have the exit path (``close_all_at_exit``) close ``store``, and a forked child forget it."""
    _LIVE_STORES.add(store)



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


class DuckDBStore(ExperimentsMixin, RegistryMixin, Backend):
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
        self.sync_writes = os.environ.get("NBTRACK_SYNC_WRITES", "").lower() in ("1", "true")
        self._writes = WritePath(self.root, self._connection, self._after_merge,
                                 self.sync_writes)
        self._known_runs: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._created_runs: set[str] = set()  # runs whose every value passes through here
        self._seen_environments: set[str] = set()
        close_at_exit(self)
        # create or check the schema now, so a bad store fails at once; then take in what
        # processes that died left in the spool, and mark their runs KILLED. A store that
        # exists but is busy is checked by the merger later: logging must not wait for it.
        existing = self.db_path.exists()
        try:
            with self._connection.use(OPEN_WAIT if existing else None) as conn:
                self._writes.merge(conn, tidy=True)
            self.mark_dead_runs()
        except StoreBusyError:
            if not existing:
                raise
            self._writes.merge_when_free()

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
    @property
    def write_listeners(self) -> list:
        """Called with each batch of values once it is durable (live charts follow runs so)."""
        return self._writes.listeners

    def _after_merge(self, conn, report) -> None:
        if report.dead_segments:
            self.mark_dead_runs()

    def change_token(self) -> tuple:
        """Changes whenever this or another process writes to the store (a few ``stat``s)."""
        token: list = [len(self._writes.pending)]
        for path in (self.db_path, self.db_path.with_name(self.db_path.name + ".wal")):
            try:
                stat = path.stat()
                token += [stat.st_mtime_ns, stat.st_size]
            except FileNotFoundError:
                token += [0, 0]
        token += spool.list_segments(self._writes.folder)
        return tuple(token)

    def write_soon(self) -> None:
        """Ask for what is pending to be made durable now, without waiting for it."""
        if len(self._writes.pending):
            self._writes.added(urgent=True)

    def has_unwritten(self) -> bool:
        """Whether values logged in this process are not yet durable."""
        return self._writes.has_unspooled()

    def peek_latest_metrics(self, run_id: str) -> dict[str, float]:
        """The run's latest metric values, durable or not, without waiting for the store.

        For a run created in this process every value passed through it, and is known in
        memory; for other runs (or past the memory's bound) the store is read.
        """
        latest = self._writes.latest_metrics(run_id) if run_id in self._created_runs else None
        if latest is None:
            return self._read(_latest_metric_values, run_id)
        return {key: value for key, (_, _, value) in latest.items()}

    def sync(self) -> None:
        """Make everything this process logged durable (in its spool segment), now."""
        self._writes.sync()

    def flush(self) -> None:
        """Make everything this process logged durable and merge the spool into the file."""
        self._writes.flush()

    def _check_writes(self) -> None:
        if self._writes.error is not None:
            self._writes.raise_error()

    def _after_write(self, urgent: bool = False) -> None:
        self._writes.added(urgent)

    def close(self, merge_timeout: float | None = None) -> None:
        """Spool what is pending, merge it, then close the file and release the lock.

        The merge waits for the lock up to ``merge_timeout`` seconds (default: the store's lock
        timeout); what could not be merged stays durable in the spool for the next process.
        """
        try:
            timeout = self._connection.timeout if merge_timeout is None else merge_timeout
            self._writes.close(timeout)
        finally:
            self._connection.close()

    def _forget_after_fork(self) -> None:
        self._connection.forget()
        self._writes.forget_after_fork()
        self._known_runs.clear()
        self._created_runs.clear()

    # runs: writes (buffered) --------------------------------------------------------------
    def create_run(self, run: NewRun) -> None:
        """Record a new run; durable when this returns, so a killed process leaves a trace."""
        self._check_writes()
        source = run.source
        self._writes.pending.add_run({
            "run_id": run.run_id, "experiment_id": run.experiment_id, "run_name": run.run_name,
            "user_id": run.user_id, "status": RunStatus.RUNNING, "start_time": run.start_time,
            "lifecycle_stage": LifecycleStage.ACTIVE,
            "artifact_uri": f"{ARTIFACTS_DIR}/{run.run_id}",
            "parent_run_id": run.parent_run_id, "description": run.description,
            "source_type": source.type, "source_name": source.name, "source_code": source.code,
            "git_commit": source.git_commit, "git_branch": source.git_branch,
            "git_dirty": source.git_dirty, "git_diff": source.git_diff, "host": source.host,
            "pid": run.pid, "python_version": source.python_version,
            "platform": source.platform, "env_hash": source.env_hash,
        })
        self._remember_run(run.run_id, {})
        if len(self._created_runs) >= _CREATED_RUNS_MAX:
            self._created_runs.clear()
        self._created_runs.add(run.run_id)
        self._writes.sync()

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

    def update_run(self, run_id: str, status: str | None = None, end_time: int | None = None,
                   run_name: str | None = None, resumed_by: tuple[str, int] | None = None
                   ) -> None:
        """Queue changes to a run; a status change (a run's end) is durable on return."""
        self._check_writes()
        changes: dict[str, object] = {}
        if status is not None:
            changes["status"] = status
        if end_time is not None:
            changes["end_time"] = end_time
        if run_name is not None:
            changes["run_name"] = run_name
        if resumed_by is not None:
            changes.update(host=resumed_by[0], pid=resumed_by[1], end_time=None)
        self._writes.pending.update_run(run_id, changes)
        if status is not None:
            self._writes.sync()
        else:
            self._after_write()

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
        self._check_writes()
        if new:
            known.update(new)
            self._writes.pending.add_params(run_id, list(new.items()))
            self._after_write()

    def set_tags(self, run_id: str, items: list[tuple[str, str | None]]) -> None:
        """Queue tag changes."""
        self._check_writes()
        self._writes.pending.set_tags(run_id, items)
        self._after_write()

    def set_run_attributes(self, run_id: str, attributes: Mapping[str, str | None]) -> None:
        """Queue changes to the columns behind MLflow's system tags."""
        unknown = set(attributes) - set(system_tags.COLUMNS.values())
        if unknown:
            raise ValueError(f"Not a system tag's column: {', '.join(sorted(unknown))}")
        self._check_writes()
        self._writes.pending.update_run(run_id, dict(attributes))
        self._after_write()

    def is_known_run(self, run_id: str) -> bool:
        """Whether ``ensure_run`` already vouched for this run in this process (no I/O)."""
        return run_id in self._known_runs

    def add_metric(self, run_id: str, key: str, value: float, step: int, timestamp: int) -> None:
        """Queue one metric value: the hot path of ``log_metric`` (no I/O, no lock)."""
        writes = self._writes
        if writes.error is not None:
            writes.raise_error()
        writes.pending.add_metric(run_id, key, value, step, timestamp)
        if writes.sync_writes:
            writes.sync()

    def add_metrics(self, rows: list[MetricRow]) -> None:
        """Queue metric rows."""
        self._check_writes()
        self._writes.pending.add_metrics(rows)
        if self.sync_writes:
            self._writes.sync()

    def add_artifact(self, run_id: str, path: str, size: int, sha256: str) -> None:
        """Queue an artifact index row."""
        self._check_writes()
        self._writes.pending.add_artifact(run_id, path, size, sha256, now_ms())
        self._after_write()

    def add_input(self, run_id: str, dataset: dict, context: str | None) -> None:
        """Queue a dataset input."""
        self._check_writes()
        self._writes.pending.add_input(run_id, dataset, context)
        self._after_write()

    def add_environment(self, env_hash: str, env: dict) -> None:
        """Queue an environment record, once per hash per process."""
        if env_hash not in self._seen_environments:
            self._seen_environments.add(env_hash)
            self._writes.pending.add_environment(env_hash, env)
            self._after_write()

    def set_run_lifecycle(self, run_id: str, stage: str) -> None:
        """Delete or restore a run (written at once)."""
        self.get_run(run_id)
        self._known_runs.pop(run_id, None)
        self._writes.pending.update_run(run_id, {"lifecycle_stage": stage})
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
        self._check_writes()
        self._writes.sync()
        with self._connection.use() as conn:
            self._writes.merge(conn)
            self._check_writes()  # a write this merge refused is reported here, once
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
                f"Run with id={run_id} not found in the store {self.root}. Find run ids with "
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


def _latest_metric_values(conn, _store, run_id: str) -> dict[str, float]:
    return dict(conn.execute(
        "SELECT key, value FROM latest_metrics WHERE run_id = ?", [run_id]).fetchall())


def close_all_at_exit() -> None:
    """The one shutdown path: spool what is pending, try one short merge, let go of the file.

    Nothing is dropped: what is not merged stays in the spool for the next process.
    """
    for store in list(_LIVE_STORES):
        _LIVE_STORES.discard(store)
        try:
            store.close(merge_timeout=exit_merge_timeout())
        except Exception as exc:  # the last chance: say what could not be made durable
            pending = len(store._writes.pending)
            warnings.warn(
                f"nbtrack could not make {pending} logged values durable in {store.root} "
                f"before exit: {exc}",
                stacklevel=1,
            )


def _after_fork_in_child() -> None:
    for store in list(_LIVE_STORES):
        store._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
