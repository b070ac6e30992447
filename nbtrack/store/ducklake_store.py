"""The team store: the embedded store's code on a DuckLake with a PostgreSQL catalog.

``DuckLakeStore`` is ``DuckDBStore`` with another connection: instead of a DuckDB file opened under
the store lock, one DuckDB connection per process that attaches the DuckLake
(``ATTACH 'ducklake:postgres:…' AS lake (DATA_PATH …)``, then ``USE lake``), with the extensions
from their PyPI packages (``lake_extensions``) and the statements DuckLake refuses translated
(``lake_sql``). Writes take the same path: memory, this machine's spool (a local folder), then
``merge.merge`` with ``batch_writer.write_batch``, one DuckLake transaction (one snapshot) per
merge with the segments' offsets. The local store lock still serialises the merges of one
machine's processes; machines are serialised by DuckLake's commit, and a merge that conflicts
with another machine's is rolled back whole and retried by the next merge.

Every other change (registry, experiments, run deletion) is one transaction that first rewrites
the lake's ``changed`` row, so two of them on different machines conflict, and the second is run
again whole (``RETRIED``): version numbers stay unique and contiguous across machines.

Artifacts are files under the lake's shared data folder (``<data>/artifacts/<run id>/``), so
every machine reads what any machine logged; with ``?data=s3://bucket/prefix`` they are objects
under that prefix, read through a cache in the local folder (``artifact_s3``), and the person's
S3 credentials become a DuckDB secret (``lake_s3``). Opening a store never creates a lake: that is
``DuckLakeStore(uri, create=True)`` (what ``nbtrack team init`` does), so a mistyped URI or a
read-only command cannot leave an empty catalog behind. What is still missing is listed in
docs/team-store.md. Like the embedded store's, the connection reaches no file but the lake's
data folder (``sandbox.lock_down`` once the lake is attached).
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import re
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from nbtrack.clock import now_ms
from nbtrack.exceptions import NbtrackError, NotAStoreError, StoreBusyError, StoreVersionError
from nbtrack.store import (
    lake_extensions,
    lake_s3,
    lake_snapshots,
    lake_sql,
    run_index,
    sandbox,
    schema,
)
from nbtrack.store.connection import HeldConnection
from nbtrack.store.duckdb_store import DuckDBStore, close_at_exit
from nbtrack.store.experiments import ARTIFACTS_DIR
from nbtrack.store.lake_registry import LakeRegistryMixin
from nbtrack.store.locking import StoreLock
from nbtrack.store.write_path import WritePath

SCHEME = "ducklake:"
#: the extensions a lake on a shared folder needs (loading each costs ~0.3 s per connection)
LAKE_EXTENSIONS = ("ducklake", "postgres_scanner")
#: touched after every merge: the write path's "has the store changed since" looks at it
STAMP_FILE = "merged.stamp"


#: how many times a change that conflicts with another machine's is tried
CONFLICT_TRIES = 30
#: the store's methods that change the lake in one transaction of their own; each is run again
#: whole when another machine's commit conflicts with it (nothing of the refused one was applied)
RETRIED = (
    "create_experiment", "set_experiment_lifecycle", "rename_experiment", "set_experiment_tag",
    "create_registered_model", "rename_registered_model", "update_registered_model",
    "delete_registered_model", "set_registered_model_tag", "create_model_version",
    "update_model_version", "delete_model_version", "set_model_version_tag",
    "transition_model_version_stage", "set_registered_model_alias",
    "delete_registered_model_alias", "record_registry_event", "append_registry_events",
    "set_run_lifecycle",
    "mark_dead_runs",
)


def _back_off(attempt: int) -> None:
    time.sleep(min(2.0, 0.02 * 1.5 ** attempt) * (0.5 + random.random()))


def _retried(name: str):
    method = getattr(DuckDBStore, name)

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        attempt = 0
        while True:
            try:  # the next class's method in DuckLakeStore's MRO (its mixins come first)
                return getattr(super(DuckLakeStore, self), name)(*args, **kwargs)
            except Exception as exc:
                attempt += 1
                if not lake_sql.is_conflict(exc) or attempt >= CONFLICT_TRIES:
                    raise
                _back_off(attempt)

    return call


class TeamStoreURIError(NbtrackError):
    """A ``ducklake:`` URI that cannot be used as it is."""


class TeamStoreMissingError(NotAStoreError):
    """The catalog database holds no nbtrack team store (``nbtrack team init`` makes one)."""


class TeamStoreUnreachableError(StoreBusyError):
    """The catalog's PostgreSQL server could not be reached or refused the login.

    A ``StoreBusyError``: a background merge leaves the values in the spool and tries again.
    """


#: DuckLake's words when ``CREATE_IF_NOT_EXISTS false`` finds no lake in the catalog database
_NO_LAKE = "creating a new ducklake is explicitly disabled"
_UNREACHABLE = re.compile(r'Unable to connect to Postgres at "[^"]*": (.*)', re.DOTALL)


def open_error(exc: BaseException, uri: str, local: Path) -> NbtrackError | None:
    """The error that says what to do when attaching the lake failed with ``exc``, if known."""
    text = str(exc)
    if _NO_LAKE in text.lower():
        return TeamStoreMissingError(
            f"There is no nbtrack team store at {uri}: its PostgreSQL database holds no "
            "DuckLake catalog. A maintainer creates it once with: nbtrack team init URI.")
    found = _UNREACHABLE.search(text)
    if found:
        reason = " ".join(found.group(1).split())
        return TeamStoreUnreachableError(
            f"The team store's catalog could not be reached: {reason}. Check that the "
            "PostgreSQL server runs and that host, port and database in the URI are right; "
            "a password comes from ~/.pgpass (PGPASSFILE), a service file or PGPASSWORD, "
            f"never the URI. Values logged meanwhile wait in this machine's spool ({local}).")
    return None


def parse_uri(uri: str) -> dict[str, str]:
    """Split ``ducklake:postgresql://user@host:port/db?data=…&spool=…`` into its parts.

    Returns ``libpq`` (a key/value connection string without a password), ``data`` and
    ``local`` (this machine's folder for the spool and the lock). A password in the URI is
    refused: libpq reads it from ``PGPASSFILE``/``~/.pgpass``, a service file or ``PGPASSWORD``.
    """
    if not uri.startswith(SCHEME):
        raise TeamStoreURIError(f"A team store URI starts with {SCHEME}, not {uri!r}.")
    parsed = urlparse(uri[len(SCHEME):])
    if parsed.scheme not in ("postgresql", "postgres"):
        raise TeamStoreURIError(
            f"The team store's catalog is a PostgreSQL database: "
            f"ducklake:postgresql://user@host:port/dbname?data=/shared/folder, not {uri!r}.")
    if parsed.password:
        raise TeamStoreURIError(
            "The team store URI holds a password; remove it. PostgreSQL reads it from "
            "~/.pgpass (PGPASSFILE), a service file (PGSERVICEFILE) or PGPASSWORD, so it never "
            "lands in a notebook or in the store.")
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    data = query.pop("data", "")
    if not data:
        raise TeamStoreURIError(
            f"The team store URI needs ?data=FOLDER (or s3://bucket/prefix) for the lake's "
            f"Parquet files: {uri!r}.")
    if lake_s3.is_s3(data):
        try:
            data = lake_s3.check_uri(data)
        except ValueError as exc:
            raise TeamStoreURIError(f"{exc}: {uri!r}.") from None
    elif "://" in data and not data.startswith("file://"):
        raise TeamStoreURIError(
            f"Data on {data.split('://')[0]}:// is not supported; use s3://bucket/prefix or a "
            "shared folder (see docs/team-store.md).")
    parts = {"host": parsed.hostname, "port": str(parsed.port) if parsed.port else None,
             "dbname": unquote(parsed.path.lstrip("/")) or None,
             "user": unquote(parsed.username) if parsed.username else None,
             "service": query.pop("service", None)}
    spool = query.pop("spool", "")
    if query:
        raise TeamStoreURIError(f"Unknown option(s) {', '.join(sorted(query))} in {uri!r}.")
    libpq = " ".join(f"{k}={v}" for k, v in parts.items() if v)
    name = hashlib.sha256(f"{libpq} {data}".encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    local = Path(spool).expanduser() if spool else cache / "nbtrack" / "team" / name
    if not lake_s3.is_s3(data):
        data = str(Path(data.removeprefix("file://")).expanduser())
    return {"libpq": libpq, "data": data, "local": str(local.resolve())}


class LakeConnections(HeldConnection[lake_sql.LakeConnection]):
    """One DuckLake connection for this process, handed to one thread at a time.

    The interface ``WritePath`` and the store's mixins use of ``ConnectionManager``: ``use``,
    ``transaction``, ``session_cache``, ``close_if_idle``, ``close``, ``forget``. Each
    outermost ``use`` holds the machine's store lock, so the processes of one machine merge in
    turn; the connection itself stays open, since a DuckLake has no file to hand over.
    ``create``: make the lake in the catalog database if there is none (else that is an error).
    """

    def __init__(self, uri: str, parts: dict[str, str], on_open, password: str | None = None,
                 create: bool = False) -> None:
        local = Path(parts["local"])
        super().__init__(StoreLock(local))
        self.uri, self.libpq, self.data, self.on_open = uri, parts["libpq"], parts["data"], on_open
        self.password, self.create, self.local = password, create, local
        self.db_path = local / STAMP_FILE
        self.linger = 0.0
        self.timeout = float(os.environ.get("NBTRACK_LOCK_TIMEOUT", "120"))

    def _connect(self) -> lake_sql.LakeConnection:
        import duckdb

        from nbtrack.store.no_pandas import Connection

        raw = duckdb.connect(config={"autoinstall_known_extensions": False,
                                     "autoload_known_extensions": False})
        try:
            lake_extensions.load(raw, LAKE_EXTENSIONS)
            lake_s3.prepare(raw, self.data)  # httpfs and the person's secret, for s3:// only
            libpq = self.libpq + (f" password={self.password}" if self.password else "")
            target = f"ducklake:postgres:{libpq}".replace("'", "''")
            options = "" if self.create else ", CREATE_IF_NOT_EXISTS false"
            try:
                raw.execute(f"ATTACH '{target}' AS lake (DATA_PATH "
                            f"'{self.data.rstrip('/')}/'{options})")
            except duckdb.Error as exc:
                error = open_error(exc, self.uri, self.local)
                if error is None:
                    raise
                raise error from None
            raw.execute("USE lake")
            raw.execute("SET enable_progress_bar = false")
            # from here on no query reaches a file outside the lake's data folder
            sandbox.lock_down(raw, [self.data])
            conn = lake_sql.LakeConnection(Connection(raw))
            self.on_open(conn)
        except BaseException:
            raw.close()
            raise
        self.opens += 1
        return conn

    @contextmanager
    def use(self, timeout: float | None = None) -> Iterator[lake_sql.LakeConnection]:
        """Yield the connection (made on first use) while holding the machine's store lock.

        The session cache (index columns, merged offsets, …) is emptied at each outermost use.
        """
        with self._mutex:
            outer = self._depth == 0
            if outer:
                self.lock.acquire(self.timeout if timeout is None else timeout)
                # other machines, and this machine's other processes, change the lake while
                # the connection stays open: what was cached about it holds for one use only
                self.session_cache.clear()
            self._depth += 1
            try:
                if self._conn is None:
                    self._conn = self._connect()
                    if self.after_open is not None:
                        self.after_open()
                yield self._conn
            finally:
                self._depth -= 1
                if outer:
                    self.lock.release()

    @contextmanager
    def transaction(self) -> Iterator[lake_sql.LakeConnection]:
        """Yield the connection inside BEGIN … COMMIT (one snapshot), rolling back on error.

        Each such transaction (every change but a merge's) first rewrites the lake's one
        ``changed`` row, so that any two of them running at once on different machines
        conflict and the second is retried (``retried``): the registry's version numbers and
        its checks (does this model exist?) see every change committed before them.
        """
        with self.use() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                conn.execute("UPDATE nbtrack_meta SET value = ? WHERE key = 'changed'",
                             [str(now_ms())])
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close_if_idle(self) -> bool:
        """The connection stays open (no file to hand over); True while it is."""
        return self._conn is not None

    def close(self) -> None:
        """Close the connection."""
        with self._mutex:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()


class DuckLakeStore(LakeRegistryMixin, DuckDBStore):
    """The team store: the embedded store's operations on a DuckLake (see above).

    ``create``: make the lake and its tables if the catalog database has none; otherwise a
    database without them is refused (``TeamStoreMissingError``) and nothing is created there.
    """

    #: the past snapshots this process has attached (time travel), made on first use
    _snapshots: lake_snapshots.Snapshots | None = None

    def __init__(self, uri: str, password: str | None = None, create: bool = False) -> None:
        parts = parse_uri(uri)
        self.uri = uri
        self.create = create
        self.root = Path(parts["local"])
        self.root.mkdir(parents=True, exist_ok=True)
        self.data = parts["data"]
        if lake_s3.is_s3(self.data):  # artifacts are kept in the bucket, cached here
            self.artifact_root = self.root / ARTIFACTS_DIR
            self.artifact_remote = f"{self.data}/{ARTIFACTS_DIR}"
        else:
            self.artifact_root = Path(self.data) / ARTIFACTS_DIR
            if not create and not Path(self.data).is_dir():
                raise TeamStoreURIError(
                    f"The team store's data folder {self.data} does not exist on this "
                    "machine. Mount the team's shared folder there (or fix ?data= in the URI).")
        if create or self.artifact_remote:  # opening a shared folder leaves it untouched
            self.artifact_root.mkdir(parents=True, exist_ok=True)
        self._connection = LakeConnections(  # type: ignore[assignment]
            uri, parts, self._open_lake, password, create)
        self.db_path = self._connection.db_path
        self.sync_writes = os.environ.get("NBTRACK_SYNC_WRITES", "").lower() in ("1", "true")
        self._writes = WritePath(self.root, self._connection,
                                 self._after_merge, self.sync_writes)
        self._known_runs = OrderedDict()
        self._created_runs = set()
        self._seen_environments = set()
        close_at_exit(self)
        with self._connection.use() as conn:
            self._writes.merge(conn, tidy=True)

    def __repr__(self) -> str:
        return f"DuckLakeStore({self.uri!r})"

    def _prepare_lake(self, conn) -> None:
        """Create the tables in an empty lake, or check the lake's schema version."""
        import duckdb

        try:  # the usual case first: one small read (the catalog's listing costs more)
            row = conn.execute(
                "SELECT value FROM nbtrack_meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
        except duckdb.CatalogException:
            version = 0
            if conn.execute("SELECT count(*) FROM information_schema.tables WHERE "
                            "table_catalog = 'lake' AND table_schema = 'main'").fetchone()[0]:
                raise NotAStoreError(
                    f"The lake {self.uri} has tables but is not an nbtrack store.") from None
        if version > schema.SCHEMA_VERSION:
            raise StoreVersionError(
                f"The team store {self.uri} has schema version {version}, written by a newer "
                f"nbtrack; this one understands up to {schema.SCHEMA_VERSION}. Upgrade nbtrack.")
        if version == schema.SCHEMA_VERSION:
            return
        if version == 0 and not self.create:
            raise TeamStoreMissingError(
                f"The lake at {self.uri} holds no nbtrack tables yet. A maintainer creates "
                "them once with: nbtrack team init URI.")
        conn.execute("BEGIN TRANSACTION")
        try:
            for step in range(version, schema.SCHEMA_VERSION):
                for statement in lake_sql.statements(lake_sql.lake_ddl(schema.MIGRATIONS[step])):
                    conn.execute(statement)
            if version == 0:
                now = now_ms()
                conn.execute("INSERT INTO experiments VALUES ('0', 'Default', ?, 'active', ?, ?)",
                             [ARTIFACTS_DIR, now, now])
                conn.execute("INSERT INTO nbtrack_meta VALUES ('created_by', 'nbtrack')")
                conn.execute("INSERT INTO nbtrack_meta VALUES ('changed', '0')")
            conn.execute("INSERT OR REPLACE INTO nbtrack_meta VALUES ('schema_version', ?)",
                         [str(schema.SCHEMA_VERSION)])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _read(self, fn, *args, **kwargs):
        """Merge this machine's spool, then read; a merge that conflicts is tried again."""
        self._check_writes()
        self._writes.sync()
        with self._connection.use() as conn:
            self._merge_until_done(conn)
            self._check_writes()
            return fn(conn, self, *args, **kwargs)

    def _merge_until_done(self, conn) -> None:
        """Merge this machine's spool, again after each conflict with another machine's merge.

        A conflict means another machine committed first: trying again soon succeeds, where
        giving up would leave the values in this machine's spool until its next process.
        """
        for attempt in range(CONFLICT_TRIES):
            try:
                self._writes.merge(conn)
                return
            except lake_sql.LakeConflictError:
                if attempt == CONFLICT_TRIES - 1:
                    raise
                _back_off(attempt)

    def _after_merge(self, conn, report) -> None:
        if report.frames:
            self.db_path.touch()
        super()._after_merge(conn, report)

    def change_token(self) -> tuple:
        """Changes when this process writes or the lake gets a new snapshot."""
        with self._connection.use() as conn:
            (snapshot,) = conn.execute(
                "SELECT max(snapshot_id) FROM lake.snapshots()").fetchone()
        return (len(self._writes.pending), snapshot)

    def sql_rejects_count(self) -> int:
        """How many writes the lake refused (kept in ``spool_rejects``)."""
        return self._read(lambda conn, _store: conn.execute(
            "SELECT count(*) FROM spool_rejects").fetchone()[0])

    # time travel (lake_snapshots) ------------------------------------------------------------
    def at(self, as_of) -> lake_snapshots.SnapshotStore:
        """The team store as it was at ``as_of`` (datetime, ISO string or epoch ms), read-only."""
        snapshots = self._snapshots
        if snapshots is None:
            lake: LakeConnections = self._connection  # type: ignore[assignment]
            snapshots = self._snapshots = lake_snapshots.Snapshots(
                lake.use, lambda: lake.libpq + (f" password={lake.password}"
                                                if lake.password else ""), lake.data,
                self.root, self.artifact_root)
        return snapshots.at(as_of)

    def close(self, merge_timeout: float | None = None) -> None:
        """Close the snapshots this process opened, merge (past conflicts), close the store.

        Machines ending at once conflict at their last merge; each is retried, so that a run's
        last values reach the lake now and not when this machine next opens the store. In an
        outage (the catalog or the data folder unreachable) they stay in the spool.
        """
        if self._snapshots is not None:
            self._snapshots.close()
        try:
            self._writes.sync()
            timeout = self._connection.timeout if merge_timeout is None else merge_timeout
            with self._connection.use(timeout) as conn:
                self._merge_until_done(conn)
        except Exception:  # the write path's own close below tries once more and reports
            pass
        super().close(merge_timeout)

    def rebuild_index(self) -> None:
        """Recreate ``run_index`` from the normalised tables (one snapshot)."""
        with self._connection.transaction() as conn:
            run_index.rebuild(conn)


for _name in RETRIED:
    setattr(DuckLakeStore, _name, _retried(_name))
