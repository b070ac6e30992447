"""The team store's guarded registry state, and the PostgreSQL role behind every change.

A DuckLake commit touches the same catalog tables whether it logs a metric or moves a version to
Production, so PostgreSQL's table grants cannot tell those apart. The registry's *mutable* state
(which stage a version is in, where an alias points) is therefore kept out of the lake, in
ordinary PostgreSQL tables beside its catalog (schema ``nbtrack_registry``): two append-only
logs, ``stage_changes`` and ``alias_changes``, whose newest row per version or alias is the
current state (views ``current_stages`` and ``current_aliases``). A trigger stamps every row
with ``current_user`` and the time, so the logs are also the registry's audit trail of who
moved what. ``nbtrack team init`` adds the grants and row-level security that decide who may
append what (see ``nbtrack.team.roles``); here the store only reads and appends.

The lake's own ``model_versions.stage`` column and ``model_aliases`` table are never trusted:
reads see them through temporary views that take the stage and the aliases from PostgreSQL
(``_guarded_reads``), so a client that skips nbtrack and rewrites them in the lake changes
nothing that nbtrack shows. Rows are keyed by the version's creation time too, so a version
number reused after a deletion does not inherit the old version's stage or aliases.

The statements reach PostgreSQL through the connection DuckLake already holds to its catalog
(``postgres_execute``/``postgres_query`` on ``__ducklake_metadata_lake``), each change in one
PostgreSQL transaction committed *before* the lake's transaction that records its
``registry_events`` entry begins. So a row's ``changed_at`` precedes the time of the lake
snapshot holding its event, and the state as of a snapshot is the rows up to that snapshot's
time (``create_guarded_views(conn, as_of_ms)``). Inside the lake's transaction it would not be:
DuckLake stamps a snapshot with the start of its own PostgreSQL transaction (measured: 100 ms
before the row), and a lake commit refused as a conflict does not undo a ``postgres_execute``
(measured). A refusal (a right the role lacks) comes before anything is written; a lake
transaction that fails after it leaves the change made and its event missing, and the change
run again appends nothing (a row is appended only when it changes the current state).

Runs and registry events record the role as their user (``create_run``, ``_event``), and the
``mlflow.user`` of a run on the team store cannot be changed afterwards.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import replace

from nbtrack.entities import ModelVersion, check_stage
from nbtrack.exceptions import InvalidValueError, NotFoundError
from nbtrack.store.lake_sql import CATALOG, LakePermissionError
from nbtrack.store.model_registry import check_alias

#: DuckLake's own attachment of the catalog database (the postgres extension's name for it)
METADATA = f"__ducklake_metadata_{CATALOG}"
#: the PostgreSQL schema of the guarded registry state
SCHEMA = "nbtrack_registry"
#: the guarded tables, views and audit trigger; each statement is safe to run again
DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.stage_changes (
    change_id bigserial PRIMARY KEY,
    name text NOT NULL,
    version integer NOT NULL,
    version_created bigint NOT NULL,
    stage text NOT NULL CHECK (stage IN ('None', 'Staging', 'Production', 'Archived')),
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL,
    comment text
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.alias_changes (
    change_id bigserial PRIMARY KEY,
    name text NOT NULL,
    alias text NOT NULL,
    version integer,
    version_created bigint,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL
);
CREATE OR REPLACE FUNCTION {SCHEMA}.stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_by := current_user;
    NEW.changed_at := now();  -- the transaction's time: its lake snapshot's too
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT ON {SCHEMA}.stage_changes
    FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.stamp();
CREATE OR REPLACE TRIGGER stamp BEFORE INSERT ON {SCHEMA}.alias_changes
    FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.stamp();
CREATE OR REPLACE VIEW {SCHEMA}.current_stages AS
    SELECT DISTINCT ON (name, version, version_created)
           name, version, version_created, stage, changed_by, changed_at
    FROM {SCHEMA}.stage_changes ORDER BY name, version, version_created, change_id DESC;
CREATE OR REPLACE VIEW {SCHEMA}.current_aliases AS
    SELECT name, alias, version, version_created, changed_by, changed_at FROM (
        SELECT DISTINCT ON (name, alias) * FROM {SCHEMA}.alias_changes
        ORDER BY name, alias, change_id DESC) newest
    WHERE version IS NOT NULL;
ALTER TABLE {SCHEMA}.stage_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE {SCHEMA}.alias_changes ENABLE ROW LEVEL SECURITY
"""
#: what PostgreSQL says when a role lacks a right: a grant, or a row-level security policy
_REFUSAL = re.compile(r"(permission denied for [^\n\"]+|new row violates row-level security "
                      r"policy for table \"?\w+\"?)")
#: the missing right, in words, for what row-level security refuses
_WHY = {
    "stage_changes": "moving a version into or out of Production needs membership in "
                     "nbtrack_maintainer",
    "alias_changes": "changing aliases needs membership in nbtrack_maintainer",
}
#: on connecting: the role, whether the guarded state exists, whether the role may commit
_CONNECTED_SQL = (
    "SELECT current_user::text, EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON "
    f"n.oid = c.relnamespace WHERE n.nspname = '{SCHEMA}' AND c.relname = 'alias_changes'), "
    "coalesce((SELECT has_table_privilege(c.oid, 'INSERT') FROM pg_class c WHERE c.relname = "
    "'ducklake_snapshot' AND c.relkind = 'r' LIMIT 1), false)")
#: the store's methods that put tracking writes in the spool; refused at once for a reader
SPOOLED = ("create_run", "update_run", "add_params", "set_tags", "set_run_attributes",
           "add_metric", "add_metrics", "add_artifact", "add_input", "add_environment")
_STAGES_SQL = f"SELECT name, version, version_created, stage FROM {SCHEMA}.current_stages"
_ALIASES_SQL = f"SELECT name, alias, version, version_created FROM {SCHEMA}.current_aliases"


def literal(value) -> str:
    """``value`` as a PostgreSQL literal (``NULL``, a number, or a quoted string)."""
    if value is None:
        return "NULL"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def refused(exc: BaseException) -> LakePermissionError | None:
    """The ``LakePermissionError`` for a PostgreSQL refusal inside a DuckDB error, if it is one."""
    match = _REFUSAL.search(str(exc))
    if match is None:
        return None
    reason = match.group(1).strip()
    table = next((t for t in _WHY if t in reason), None)
    why = f" ({_WHY[table]})" if table and "row-level" in reason else ""
    return LakePermissionError(
        f"PostgreSQL refused this change to the team store: {reason}{why}. Nothing of it was "
        "applied. Your PostgreSQL role lacks that right; ask the team's admin "
        "(nbtrack team grant USER ROLE).")


def _as_of(sql: str, as_of_ms: int | None) -> str:
    """``sql`` (a current_* view's) read from its log as it was at ``as_of_ms``."""
    if as_of_ms is None:
        return sql
    moment = f"changed_at <= to_timestamp({int(as_of_ms)} / 1000.0)"
    if "current_stages" in sql:
        return (f"SELECT DISTINCT ON (name, version, version_created) name, version, "
                f"version_created, stage FROM {SCHEMA}.stage_changes WHERE {moment} ORDER BY "
                "name, version, version_created, change_id DESC")
    return (f"SELECT name, alias, version, version_created FROM (SELECT DISTINCT ON (name, "
            f"alias) * FROM {SCHEMA}.alias_changes WHERE {moment} ORDER BY name, alias, "
            "change_id DESC) newest WHERE version IS NOT NULL")


def create_guarded_views(conn, as_of_ms: int | None = None) -> None:
    """Make ``model_versions`` and ``model_aliases`` on ``conn`` show PostgreSQL's state.

    Temporary views of those names hide the lake's tables (DuckDB looks in ``temp`` first):
    a version's stage and the aliases come from ``nbtrack_registry``, as they are now or, with
    ``as_of_ms``, as they were then (for a lake attached read-only at a past snapshot, which
    may keep them for its life). The registry's reads run unchanged over them; nothing may
    write those two tables while they exist (``drop_guarded_views``).
    """
    stages = _as_of(_STAGES_SQL, as_of_ms).replace("'", "''")
    aliases = _as_of(_ALIASES_SQL, as_of_ms).replace("'", "''")
    conn.execute(
        "CREATE OR REPLACE TEMP VIEW model_versions AS SELECT v.* REPLACE "
        "(coalesce(s.stage, 'None') AS stage) FROM lake.main.model_versions v LEFT JOIN "
        f"postgres_query('{METADATA}', '{stages}') s ON s.name = v.name AND "
        "s.version = v.version AND s.version_created = v.creation_time")
    conn.execute(
        "CREATE OR REPLACE TEMP VIEW model_aliases AS SELECT a.name, a.alias, a.version "
        f"FROM postgres_query('{METADATA}', '{aliases}') a JOIN "
        "lake.main.model_versions v ON v.name = a.name AND v.version = a.version AND "
        "v.creation_time = a.version_created")


def drop_guarded_views(conn) -> None:
    """Show the lake's own ``model_versions`` and ``model_aliases`` again (for writing)."""
    conn.execute("DROP VIEW IF EXISTS temp.main.model_versions")
    conn.execute("DROP VIEW IF EXISTS temp.main.model_aliases")


@contextmanager
def guarded_state(conn, as_of_ms: int | None = None):
    """Within: the guarded views (``create_guarded_views``) on ``conn``."""
    create_guarded_views(conn, as_of_ms)
    try:
        yield conn
    finally:
        drop_guarded_views(conn)


def _stage_row(name: str, number: int, created: int, stage: str, comment: str | None) -> str:
    return (f"INSERT INTO {SCHEMA}.stage_changes (name, version, version_created, stage, "
            f"comment) VALUES ({literal(name)}, {number}, {created}, {literal(stage)}, "
            f"{literal(comment)})")


class GuardedReadsMixin:
    """The registry's reads with stages and aliases from PostgreSQL; put before RegistryMixin.

    The live store reads the state as it is; a store of the lake at a past moment (time travel)
    sets ``guarded_as_of_ms`` to read it as it was then.
    """

    #: the moment whose state the reads show (epoch ms); None: now
    guarded_as_of_ms: int | None = None

    # the lake's stage and aliases replaced by PostgreSQL's --------------------------------
    @contextmanager
    def _guarded_reads(self):
        """Within: ``model_versions`` and ``model_aliases`` show the guarded state."""
        with self._connection.use() as conn, guarded_state(conn, self.guarded_as_of_ms):
            yield conn

    def sql(self, query: str, parameters: list | None = None):
        """``nbtrack.sql``: ``model_versions``' stage and ``model_aliases`` are the guarded ones."""
        with self._guarded_reads():
            return super().sql(query, parameters)  # type: ignore[misc]

    def get_registered_model(self, name: str):
        """A registered model, with the aliases and stages PostgreSQL keeps."""
        with self._guarded_reads():
            return super().get_registered_model(name)  # type: ignore[misc]

    def search_registered_models(self, filter_string, max_results, order_by):
        """Registered models, with the guarded stages and aliases."""
        with self._guarded_reads():
            return super().search_registered_models(
                filter_string, max_results, order_by)

    def get_model_version(self, name: str, version) -> ModelVersion:
        """One version, with its guarded stage and aliases."""
        with self._guarded_reads():
            return super().get_model_version(name, version)  # type: ignore[misc]

    def search_model_versions(self, filter_string, max_results, order_by):
        """Versions (``current_stage`` filters test the guarded stage)."""
        with self._guarded_reads():
            return super().search_model_versions(
                filter_string, max_results, order_by)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version an alias points at, as PostgreSQL keeps it."""
        with self._guarded_reads():
            return super().get_model_version_by_alias(name, alias)  # type: ignore[misc]

    def get_latest_versions(self, name: str, stages=None):
        """The newest version in each guarded stage."""
        with self._guarded_reads():
            return super().get_latest_versions(name, stages)  # type: ignore[misc]


class LakeRegistryMixin(GuardedReadsMixin):
    """Stages and aliases kept in PostgreSQL, and the role recorded; put before DuckDBStore."""

    #: the PostgreSQL role this store connects as (``current_user``), known once connected
    role: str | None = None
    #: whether that role may commit to the lake (readers may not); known once connected
    may_track: bool | None = None

    # connecting ---------------------------------------------------------------------------------
    def _open_lake(self, conn) -> None:
        """On connecting: the lake's tables (``_prepare_lake``), then the role and the state."""
        self._prepare_lake(conn)  # type: ignore[attr-defined]
        self.role, present, self.may_track = conn.execute(
            "SELECT * FROM postgres_query(?, ?)", [METADATA, _CONNECTED_SQL]).fetchone()
        if not present:  # a lake made without `nbtrack team init`: its owner's, no roles yet
            try:
                self._pg_execute(conn, DDL)
            except LakePermissionError as exc:
                raise LakePermissionError(
                    f"This team store has no {SCHEMA} schema (the registry's stages and "
                    f"aliases), and your PostgreSQL role {self.role} may not create it ({exc}). "
                    "The team's admin runs: nbtrack team init URI.") from exc

    def _check_may_track(self) -> None:
        """Refuse a tracking write before it reaches the spool, if the role may not commit it."""
        if self.may_track is None:
            with self._connection.use():  # type: ignore[attr-defined]
                pass
        if not self.may_track:
            raise LakePermissionError(
                f"Your PostgreSQL role {self.role} may only read this team store (it lacks "
                "INSERT on DuckLake's catalog table ducklake_snapshot, as nbtrack_reader does). "
                "Nothing was logged. To track runs, ask the team's admin: nbtrack team grant "
                f"{self.role} writer.")

    @staticmethod
    def _pg_execute(conn, sql: str) -> None:
        try:
            conn.execute("CALL postgres_execute(?, ?)", [METADATA, sql])
        except Exception as exc:
            error = refused(exc)
            if error is not None:
                raise error from exc
            raise

    @staticmethod
    def _pg_rows(conn, sql: str) -> list[tuple]:
        return conn.execute("SELECT * FROM postgres_query(?, ?)", [METADATA, sql]).fetchall()

    # the role as the user of runs and events -------------------------------------------------
    def create_run(self, run) -> None:
        """Record a new run, made by this store's PostgreSQL role whatever ``user_id`` says."""
        self._check_may_track()
        super().create_run(replace(run, user_id=self.role))  # type: ignore[misc]

    def set_run_attributes(self, run_id: str, attributes) -> None:
        """As the embedded store's, but a run's user (``mlflow.user``) is fixed: its role."""
        self._check_may_track()
        if "user_id" in attributes:
            raise InvalidValueError(
                "On the team store a run's mlflow.user is the PostgreSQL role that made it; "
                "it cannot be changed. Use another tag for a person's name.")
        super().set_run_attributes(run_id, attributes)  # type: ignore[misc]

    def _event(self, conn, action: str, name: str, version: int | None = None,
               field: str | None = None, from_value=None, to_value=None,
               comment: str | None = None) -> None:
        """Append to the lake's ``registry_events``, as this store's PostgreSQL role.

        A new version's own ``user_id`` is set to the role here too: the event is written in
        the transaction that inserted the version, right after it.
        """
        from nbtrack.clock import now_ms

        if action == "create_version":
            conn.execute("UPDATE model_versions SET user_id = ? WHERE name = ? AND version = ?",
                         [self.role, name, version])

        conn.execute(
            "INSERT INTO registry_events SELECT coalesce(max(event_id), 0) + 1, ?, ?, ?, ?, ?, ?, "
            "?, ?, ? FROM registry_events",
            [now_ms(), self.role, action, name, version, field,
             None if from_value is None else str(from_value),
             None if to_value is None else str(to_value), comment])

    # changes: appended to PostgreSQL's logs ------------------------------------------------------
    def _created(self, conn, name: str, version) -> tuple[int, int]:
        """``(number, creation time)`` of an existing version (NotFoundError otherwise)."""
        number = self._require_version(conn, name, version)  # type: ignore[attr-defined]
        (created,) = conn.execute("SELECT creation_time FROM lake.main.model_versions WHERE "
                                  "name = ? AND version = ?", [name, number]).fetchone()
        return number, int(created)

    def _stage_of(self, conn, name: str, number: int, created: int) -> str:
        rows = self._pg_rows(conn, f"{_STAGES_SQL} WHERE name = {literal(name)} AND version = "
                                   f"{number} AND version_created = {created}")
        return rows[0][3] if rows else "None"

    def _set_stage(self, conn, name: str, number: int, created: int, stage: str,
                   comment: str | None = None) -> str:
        """Append the stage unless it is the current one; return the one it replaced."""
        old = self._stage_of(conn, name, number, created)
        if old != stage:
            self._pg_execute(conn, _stage_row(name, number, created, stage, comment))
        return old

    def _set_alias(self, conn, name: str, alias: str, number: int | None,
                   created: int | None) -> None:
        self._pg_execute(conn, (
            f"INSERT INTO {SCHEMA}.alias_changes (name, alias, version, version_created) "
            f"VALUES ({literal(name)}, {literal(alias)}, {literal(number)}, {literal(created)})"))

    def _alias_of(self, conn, name: str, alias: str) -> tuple[int, int] | None:
        rows = self._pg_rows(conn, f"{_ALIASES_SQL} WHERE name = {literal(name)} AND alias = "
                                   f"{literal(alias)}")
        return (int(rows[0][2]), int(rows[0][3])) if rows else None

    def transition_model_version_stage(self, name: str, version, stage: str,
                                       archive_existing_versions: bool = False,
                                       comment: str | None = None) -> ModelVersion:
        """Move a version to a stage (PostgreSQL decides whether this role may)."""
        stage = check_stage(stage)
        events = []
        with self._connection.use() as conn:  # type: ignore[attr-defined]
            number, created = self._created(conn, name, version)
            rows = []
            if archive_existing_versions and stage in ("Staging", "Production"):
                others = self._pg_rows(conn, (
                    f"{_STAGES_SQL} WHERE name = {literal(name)} AND stage = {literal(stage)} "
                    f"AND NOT (version = {number} AND version_created = {created}) "
                    "ORDER BY version"))
                live = {(n, c) for n, c in conn.execute(
                    "SELECT version, creation_time FROM lake.main.model_versions WHERE name = ?",
                    [name]).fetchall()}
                why = f"archived as version {number} entered {stage}"
                for _, other, other_created, _ in others:
                    if (other, other_created) in live:
                        rows.append(_stage_row(name, other, other_created, "Archived", why))
                        events.append((other, stage, "Archived", why))
            old = self._stage_of(conn, name, number, created)
            if old != stage:
                rows.append(_stage_row(name, number, created, stage, comment))
            if rows:  # one PostgreSQL transaction, before the lake's (see the module's doc)
                self._pg_execute(conn, ";\n".join(rows))
        with self._connection.transaction() as conn:  # type: ignore[attr-defined]
            for other, before, after, why in events:
                self._event(conn, "transition_stage", name, other, "stage", before, after, why)
            self._event(conn, "transition_stage", name, number, "stage", old, stage, comment)
        return self.get_model_version(name, number)

    def set_registered_model_alias(self, name: str, alias: str, version) -> None:
        """Point ``alias`` at a version (PostgreSQL decides whether this role may)."""
        check_alias(alias)
        with self._connection.use() as conn:  # type: ignore[attr-defined]
            number, created = self._created(conn, name, version)
            old = self._alias_of(conn, name, alias)
            if old != (number, created):
                self._set_alias(conn, name, alias, number, created)
        with self._connection.transaction() as conn:  # type: ignore[attr-defined]
            self._event(conn, "set_alias", name, number, f"aliases.{alias}",
                        old[0] if old else None, number)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        """Remove an alias (PostgreSQL decides whether this role may)."""
        with self._connection.use() as conn:  # type: ignore[attr-defined]
            old = self._alias_of(conn, name, alias)
            if old is None:
                self._require_model(conn, name)  # type: ignore[attr-defined]
                raise NotFoundError(f"Registered model {name!r} has no alias {alias!r}.")
            self._set_alias(conn, name, alias, None, None)
        with self._connection.transaction() as conn:  # type: ignore[attr-defined]
            self._event(conn, "delete_alias", name, old[0], f"aliases.{alias}", old[0], None)

    def delete_model_version(self, name: str, version) -> None:
        """Delete a version; one in a stage or with aliases is first cleared in PostgreSQL."""
        with self._connection.use() as conn:  # type: ignore[attr-defined]
            number, created = self._created(conn, name, version)
            self._set_stage(conn, name, number, created, "None", "version deleted")
            for alias, at, at_created in [(r[1], r[2], r[3]) for r in self._pg_rows(
                    conn, f"{_ALIASES_SQL} WHERE name = {literal(name)}")]:
                if (at, at_created) == (number, created):
                    self._set_alias(conn, name, alias, None, None)
        super().delete_model_version(name, number)  # type: ignore[misc]

    def delete_registered_model(self, name: str) -> None:
        """Delete a model; its versions' stages and aliases are first cleared in PostgreSQL."""
        with self._connection.use() as conn:  # type: ignore[attr-defined]
            self._require_model(conn, name)  # type: ignore[attr-defined]
            live = {(n, c) for n, c in conn.execute(
                "SELECT version, creation_time FROM lake.main.model_versions WHERE name = ?",
                [name]).fetchall()}
            for _, number, created, stage in self._pg_rows(
                    conn, f"{_STAGES_SQL} WHERE name = {literal(name)}"):
                if stage != "None" and (number, created) in live:
                    self._set_stage(conn, name, number, created, "None", "model deleted")
            for alias in [r[1] for r in self._pg_rows(
                    conn, f"{_ALIASES_SQL} WHERE name = {literal(name)}")]:
                self._set_alias(conn, name, alias, None, None)
        super().delete_registered_model(name)  # type: ignore[misc]

    def rename_registered_model(self, name: str, new_name: str) -> None:
        """Rename a model; its stages and aliases move with it (as the rights allow)."""
        with self._connection.use() as conn:  # type: ignore[attr-defined]
            self._require_model(conn, name)  # type: ignore[attr-defined]
            for _, number, created, stage in self._pg_rows(
                    conn, f"{_STAGES_SQL} WHERE name = {literal(name)}"):
                if stage != "None":
                    self._set_stage(conn, new_name, number, created, stage,
                                    f"renamed from {name}")
            for _, alias, number, created in self._pg_rows(
                    conn, f"{_ALIASES_SQL} WHERE name = {literal(name)}"):
                self._set_alias(conn, new_name, alias, number, created)
        super().rename_registered_model(name, new_name)  # type: ignore[misc]


def _refusing_readers(name: str):
    def call(self, *args, **kwargs):
        self._check_may_track()
        return getattr(super(LakeRegistryMixin, self), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"``{name}``, refused at once for a role that may not commit to the lake."
    return call


for _name in SPOOLED:
    if _name not in LakeRegistryMixin.__dict__:
        setattr(LakeRegistryMixin, _name, _refusing_readers(_name))
