"""The team store (phase 1): the embedded store's code on a DuckLake with a PostgreSQL catalog.

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

Not ready yet (so ``store.registry`` does not open ``ducklake:`` URIs; see ``NOT_READY``):
artifacts are kept in the local folder, not shared; ``s3://`` data; roles and grants; time
travel; the exit path. See docs/team-store.md. Like the embedded store's, the connection reaches
no file but the lake's data folder (``sandbox.lock_down`` once the lake is attached).
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from nbtrack.clock import now_ms
from nbtrack.exceptions import NbtrackError, NotAStoreError, StoreVersionError
from nbtrack.store import lake_extensions, lake_sql, run_index, sandbox, schema
from nbtrack.store.duckdb_store import DuckDBStore
from nbtrack.store.experiments import ARTIFACTS_DIR
from nbtrack.store.lake_registry import LakeRegistryMixin
from nbtrack.store.locking import StoreLock
from nbtrack.store.write_path import WritePath

SCHEME = "ducklake:"
#: what a ``ducklake:`` tracking URI answers until the team store is complete
NOT_READY = (
    "The team store (ducklake: tracking URIs) is not ready yet. Working, in "
    "nbtrack.store.ducklake_store.DuckLakeStore: experiments, runs, params, tags, metrics, "
    "search, get_run, the registry's versions, stages and aliases, sql over the nbtrack views, "
    "and writes through each machine's spool. Not yet: shared artifacts, s3:// data, roles "
    "and grants, time travel, closing at exit, many machines merging at full speed, push. See "
    "docs/team-store.md; until then, track into a folder (the default .nbtrack/)."
)
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
    "delete_registered_model_alias", "record_registry_event", "set_run_lifecycle",
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
    if "://" in data and not data.startswith("file://"):
        raise TeamStoreURIError(
            f"Data on {data.split('://')[0]}:// is not ready yet in the team store; use a "
            "shared folder for now (see docs/team-store.md).")
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
    return {"libpq": libpq, "data": str(Path(data.removeprefix("file://")).expanduser()),
            "local": str(local.resolve())}


class LakeConnections:
    """One DuckLake connection for this process, handed to one thread at a time.

    The interface ``WritePath`` and the store's mixins use of ``ConnectionManager``: ``use``,
    ``transaction``, ``session_cache``, ``close_if_idle``, ``close``, ``forget``. Each
    outermost ``use`` holds the machine's store lock, so the processes of one machine merge in
    turn; the connection itself stays open, since a DuckLake has no file to hand over.
    """

    def __init__(self, libpq: str, data: str, local: Path, on_open, password: str | None = None
                 ) -> None:
        self.libpq, self.data, self.on_open = libpq, data, on_open
        self.password = password
        self.db_path = local / STAMP_FILE
        self.lock = StoreLock(local)
        self.linger = 0.0
        self.timeout = float(os.environ.get("NBTRACK_LOCK_TIMEOUT", "120"))
        self.session_cache: dict = {}
        self.after_open = None
        self.opens = 0
        self._mutex = threading.RLock()
        self._conn: lake_sql.LakeConnection | None = None
        self._depth = 0

    @property
    def is_open(self) -> bool:
        """Whether this process holds a connection to the lake."""
        return self._conn is not None

    def _connect(self) -> lake_sql.LakeConnection:
        import duckdb

        from nbtrack.store.no_pandas import Connection

        raw = duckdb.connect(config={"autoinstall_known_extensions": False,
                                     "autoload_known_extensions": False})
        try:
            lake_extensions.load(raw)
            libpq = self.libpq + (f" password={self.password}" if self.password else "")
            target = f"ducklake:postgres:{libpq}".replace("'", "''")
            raw.execute(f"ATTACH '{target}' AS lake (DATA_PATH "
                        f"'{self.data.rstrip('/')}/')")
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
        """Yield the connection (made on first use) while holding the machine's store lock."""
        with self._mutex:
            outer = self._depth == 0
            if outer:
                self.lock.acquire(self.timeout if timeout is None else timeout)
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

    def forget(self) -> None:
        """In a forked child: drop the parent's connection and lock without closing them."""
        self._conn = None
        self._depth = 0
        self._mutex = threading.RLock()
        self.lock.forget()


class DuckLakeStore(LakeRegistryMixin, DuckDBStore):
    """The team store: the embedded store's operations on a DuckLake (phase 1, see above)."""

    def __init__(self, uri: str, password: str | None = None) -> None:
        parts = parse_uri(uri)
        self.uri = uri
        self.root = Path(parts["local"])
        self.root.mkdir(parents=True, exist_ok=True)
        self.artifact_root = self.root / ARTIFACTS_DIR
        self.artifact_root.mkdir(exist_ok=True)
        Path(parts["data"]).mkdir(parents=True, exist_ok=True)
        self._connection = LakeConnections(  # type: ignore[assignment]
            parts["libpq"], parts["data"], self.root, self._open_lake, password)
        self.db_path = self._connection.db_path
        self.sync_writes = os.environ.get("NBTRACK_SYNC_WRITES", "").lower() in ("1", "true")
        self._writes = WritePath(self.root, self._connection,
                                 self._after_merge, self.sync_writes)
        self._known_runs = OrderedDict()
        self._created_runs = set()
        self._seen_environments = set()
        with self._connection.use() as conn:
            self._writes.merge(conn, tidy=True)

    def __repr__(self) -> str:
        return f"DuckLakeStore({self.uri!r})"

    def _prepare_lake(self, conn) -> None:
        """Create the tables in an empty lake, or check the lake's schema version."""
        names = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'lake' "
            "AND table_schema = 'main'").fetchall()}
        if names and "nbtrack_meta" not in names:
            raise NotAStoreError(f"The lake {self.uri} has tables but is not an nbtrack store.")
        version = 0
        if names:
            row = conn.execute(
                "SELECT value FROM nbtrack_meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
        if version > schema.SCHEMA_VERSION:
            raise StoreVersionError(
                f"The team store {self.uri} has schema version {version}, written by a newer "
                f"nbtrack; this one understands up to {schema.SCHEMA_VERSION}. Upgrade nbtrack.")
        if version == schema.SCHEMA_VERSION:
            return
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
            for attempt in range(CONFLICT_TRIES):
                try:
                    self._writes.merge(conn)
                    break
                except lake_sql.LakeConflictError:
                    if attempt == CONFLICT_TRIES - 1:
                        raise
                    _back_off(attempt)
            self._check_writes()
            return fn(conn, self, *args, **kwargs)

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

    def rebuild_index(self) -> None:
        """Recreate ``run_index`` from the normalised tables (one snapshot)."""
        with self._connection.transaction() as conn:
            run_index.rebuild(conn)


for _name in RETRIED:
    setattr(DuckLakeStore, _name, _retried(_name))
