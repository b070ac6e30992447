"""Time travel on the team store: the lake as it was at a past moment, read-only.

Every DuckLake commit is a snapshot. ``as_of`` (a datetime, an ISO 8601 string, or epoch
milliseconds) picks the newest snapshot committed at or before that moment, and
``SnapshotStore`` attaches the whole catalog as it was then (``ATTACH 'ducklake:postgres:…' AS
lake (DATA_PATH …, SNAPSHOT_VERSION n, READ_ONLY)``, views included) on a DuckDB connection of its
own. Its read methods (runs, searches, ``sql``, the registry's reads) are the live store's code run
on that connection, so the past answers in the same shapes as the present.

Snapshot times are read as epoch milliseconds in SQL: DuckDB's Python client would need pytz to
return ``TIMESTAMP WITH TIME ZONE`` values. Opening a snapshot costs about 0.4 s (loading the
extensions, attaching); ``Snapshots`` keeps the last few open.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

from nbtrack.exceptions import InvalidValueError, NbtrackError, NotFoundError
from nbtrack.store import lake_extensions, lake_s3, run_index, run_queries, sandbox
from nbtrack.store.lake_registry import GuardedReadsMixin
from nbtrack.store.model_registry import RegistryMixin

#: how many snapshots a store keeps attached at once
OPEN_SNAPSHOTS = 4
#: what the embedded store answers to ``as_of``
EMBEDDED = (
    "Time travel (as_of=...) needs the team store (a ducklake: tracking URI), where every change "
    "is a snapshot; the embedded store keeps only the present. For the registry, "
    "Client().get_model_version_at(name, stage, at) and get_registry_events() answer from the "
    "audit log on either store."
)


class TimeTravelError(NbtrackError):
    """``as_of`` asked of a store without snapshots, or of a moment it has no snapshot for."""


def epoch_ms(as_of) -> int:
    """``as_of`` as epoch milliseconds: a datetime, an ISO 8601 string, or epoch ms.

    A datetime or string without a time zone is local time, as ``datetime.timestamp`` takes it.
    """
    if isinstance(as_of, bool):
        raise InvalidValueError(f"as_of is a datetime, an ISO string or epoch ms, not {as_of!r}.")
    if isinstance(as_of, (int, float)):
        return int(as_of)
    if isinstance(as_of, str):
        try:
            as_of = datetime.fromisoformat(as_of.strip())
        except ValueError:
            raise InvalidValueError(
                f"as_of={as_of!r} is not an ISO 8601 time; give e.g. '2026-12-01T12:00', "
                "'2026-12-01 12:00:00+00:00', a datetime, or epoch milliseconds.") from None
    if isinstance(as_of, datetime):
        return int(as_of.timestamp() * 1000)
    if isinstance(as_of, date):
        return int(datetime(as_of.year, as_of.month, as_of.day).timestamp() * 1000)
    stamp = getattr(as_of, "to_pydatetime", None)  # a pandas Timestamp
    if stamp is not None:
        return int(stamp().timestamp() * 1000)
    raise InvalidValueError(f"as_of is a datetime, an ISO string or epoch ms, not {as_of!r}.")


def _shown(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="milliseconds")


def snapshot_at(conn, ms: int) -> tuple[int, int]:
    """``(snapshot id, its time in ms)``: the newest snapshot of the lake at or before ``ms``.

    The first snapshots of a lake only create the catalog; a moment before the one that created
    nbtrack's tables is an error naming the first moment there is.
    """
    (first, first_ms) = conn.execute(
        "SELECT snapshot_id, epoch_ms(snapshot_time) FROM lake.snapshots() "
        "WHERE CAST(changes AS VARCHAR) LIKE '%main.nbtrack_meta%' "
        "ORDER BY snapshot_id LIMIT 1").fetchone() or (None, None)
    row = conn.execute(
        "SELECT snapshot_id, epoch_ms(snapshot_time) FROM lake.snapshots() "
        "WHERE epoch_ms(snapshot_time) <= ? ORDER BY snapshot_id DESC LIMIT 1", [ms]).fetchone()
    if first is None or row is None or row[0] < first:
        since = "" if first_ms is None else f"; its first snapshot is of {_shown(first_ms)}"
        raise TimeTravelError(
            f"as_of={_shown(ms)} is before the team store existed{since}. Ask about a later "
            "moment.")
    return int(row[0]), int(row[1])


def attach(libpq: str, data: str, snapshot: int):
    """A new DuckDB connection with the lake attached read-only at ``snapshot``, locked down."""
    import duckdb

    from nbtrack.store.lake_sql import CATALOG, LakeConnection
    from nbtrack.store.no_pandas import Connection

    raw = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    try:
        lake_extensions.load(raw, ("ducklake", "postgres_scanner"))
        lake_s3.prepare(raw, data)
        target = f"ducklake:postgres:{libpq}".replace("'", "''")
        raw.execute(f"ATTACH '{target}' AS {CATALOG} (DATA_PATH '{data.rstrip('/')}/', "
                    f"SNAPSHOT_VERSION {int(snapshot)}, READ_ONLY)")
        raw.execute(f"USE {CATALOG}")
        raw.execute("SET enable_progress_bar = false")
        sandbox.lock_down(raw, [data])
    except BaseException:
        raw.close()
        raise
    return LakeConnection(Connection(raw))


class Pinned:
    """One snapshot's read-only connection, with the ``use()`` of a connection manager."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.session_cache: dict = {}  # facts about the snapshot, which never changes
        self._mutex = threading.RLock()  # re-entered when a read wraps another

    @contextmanager
    def use(self, timeout: float | None = None) -> Iterator:
        """Yield the connection, to one thread at a time."""
        with self._mutex:
            yield self.conn

    @contextmanager
    def transaction(self) -> Iterator:
        """Refused: the past is read-only."""
        raise TimeTravelError("The team store as of a past moment is read-only.")
        yield  # pragma: no cover - a generator, for contextmanager

    def close(self) -> None:
        """Close the snapshot's connection."""
        with self._mutex:
            self.conn.close()


class SnapshotStore(GuardedReadsMixin, RegistryMixin):
    """The team store as it was at ``as_of_ms``: the store's read methods, read-only.

    It reads the newest snapshot committed by then (``snapshot_id``, of ``snapshot_ms``).
    """

    def __init__(self, pinned: Pinned, snapshot_id: int, snapshot_ms: int, as_of_ms: int,
                 root: Path, artifact_root: Path) -> None:
        self.snapshot_id, self.snapshot_ms, self.as_of_ms = snapshot_id, snapshot_ms, as_of_ms
        self.guarded_as_of_ms = as_of_ms  # stages and aliases as PostgreSQL had them then
        self.root, self.artifact_root = root, artifact_root  # the live store's, for paths
        self._connection = pinned  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SnapshotStore(snapshot {self.snapshot_id} of {_shown(self.snapshot_ms)})"

    def _read(self, fn, *args):
        with self._connection.use() as conn:
            return fn(conn, self, *args)

    def session_cache(self) -> dict:
        """Facts about the snapshot (it never changes)."""
        return self._connection.session_cache

    def index_columns(self, conn) -> tuple[set[str], bool]:
        """The key columns of ``run_index`` at the snapshot and whether it was complete."""
        cache = self._connection.session_cache
        if "index_columns" not in cache:
            columns = run_index.key_columns(conn)
            cache["index_columns"] = (columns, len(columns) < run_index.MAX_KEY_COLUMNS)
        return cache["index_columns"]

    def get_run(self, run_id: str):
        """One run as it was, or NotFoundError."""
        runs = self._read(run_queries.load_runs, [run_id])
        if not runs:
            raise NotFoundError(f"Run with id={run_id} did not exist yet at "
                                f"{_shown(self.snapshot_ms)} (team store snapshot "
                                f"{self.snapshot_id}).")
        return runs[0]

    def get_metric_history(self, run_id: str, key: str):
        """A metric's history as it was."""
        return self._read(run_queries.metric_history, run_id, key)

    def search_runs(self, experiment_ids, filter_string, view_type, max_results, order_by,
                    page_token):
        """A page of runs as they were, and the next page's token."""
        return self._read(run_queries.search_runs, experiment_ids, filter_string, view_type,
                          max_results, order_by, page_token)

    def search_runs_frame(self, experiment_ids, filter_string, view_type, max_results,
                          order_by):
        """The search as it would have answered, as a DataFrame."""
        return self._read(run_queries.search_runs_frame, experiment_ids, filter_string,
                          view_type, max_results, order_by)

    def sql(self, query: str, parameters: list | None = None):
        """One read-only SELECT over the ``nbtrack`` views as they were."""
        if "runs_wide" in query.lower():
            raise InvalidValueError(
                "nbtrack.sql(..., as_of=...) does not offer runs_wide (its columns are made "
                "per query, which a past snapshot cannot hold); query nbtrack.runs, whose "
                "params, metrics and tags are maps, e.g. metrics['rmse'].")
        return self._read(run_queries.read_only_sql, query, parameters)


class Snapshots:
    """The snapshots of one lake that this process has attached, the most recent few."""

    def __init__(self, live: Callable, libpq: Callable[[], str], data: str, root: Path,
                 artifact_root: Path) -> None:
        self.live, self.libpq, self.data = live, libpq, data
        self.root, self.artifact_root = root, artifact_root
        self._open: OrderedDict[int, Pinned] = OrderedDict()
        self._mutex = threading.Lock()

    def at(self, as_of) -> SnapshotStore:
        """The store as it was at ``as_of`` (the newest snapshot committed by then)."""
        ms = epoch_ms(as_of)
        with self.live() as conn:
            snapshot, snapshot_ms = snapshot_at(conn, ms)
        with self._mutex:
            pinned = self._open.get(snapshot)
            if pinned is not None:
                self._open.move_to_end(snapshot)
        if pinned is None:
            pinned = Pinned(attach(self.libpq(), self.data, snapshot))
            with self._mutex:
                self._open[snapshot] = pinned
                while len(self._open) > OPEN_SNAPSHOTS:
                    _, old = self._open.popitem(last=False)
                    old.close()
        return SnapshotStore(pinned, snapshot, snapshot_ms, ms, self.root, self.artifact_root)

    def close(self) -> None:
        """Close every attached snapshot."""
        with self._mutex:
            for pinned in self._open.values():
                pinned.close()
            self._open.clear()
