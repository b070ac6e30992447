"""``nbtrack team init`` and ``nbtrack team grant``: run once by the team's PostgreSQL admin.

``init_team`` creates, in an existing PostgreSQL database, what is missing of: the DuckLake
catalog (with data inlining off, see below), nbtrack's tables in the lake, the registry's
guarded state (``store.lake_registry``), the three group roles, and their grants and policies
(``roles``). It is the one place a catalog is created: a fresh catalog attached by several
processes at once races in DuckLake's initialisation. Run again, it changes nothing and says so.

Data inlining is turned off for the lake (``data_inlining_row_limit`` 0, kept in the catalog,
so every client follows it): with it on, DuckLake creates a PostgreSQL table per table and
schema version, which would need ``CREATE`` on the catalog's schema for every writer (a
``run_index`` column is added for each new key). Without it, each commit writes a Parquet file;
the maintainer compacts them (``ducklake_merge_adjacent_files``). See docs/team-store.md.

Both talk to PostgreSQL through DuckDB's postgres extension (no other client library). The
admin's password, like everyone's, comes from ``PGPASSFILE``/``~/.pgpass``, a service file or
``PGPASSWORD``, never from the URI.
"""

from __future__ import annotations

from pathlib import Path

from nbtrack.exceptions import NbtrackError
from nbtrack.store import lake_extensions
from nbtrack.store.ducklake_store import DuckLakeStore, parse_uri
from nbtrack.store.lake_registry import DDL, SCHEMA, literal
from nbtrack.team import roles

#: how a person's password is set and kept (printed by ``grant`` and in the CLI's help)
PASSWORDS = ("Passwords come from ~/.pgpass (PGPASSFILE), a service file (PGSERVICEFILE) or "
             "PGPASSWORD, never from the URI.")


class TeamSetupError(NbtrackError):
    """The team store cannot be set up as asked."""


class Admin:
    """A DuckDB connection to the catalog's PostgreSQL database, for the admin's statements."""

    NAME = "team_admin"

    def __init__(self, libpq: str) -> None:
        import duckdb

        self.libpq = libpq
        self.conn = duckdb.connect(config={"autoinstall_known_extensions": False,
                                           "autoload_known_extensions": False})
        lake_extensions.load(self.conn)
        try:
            self.conn.execute(f"ATTACH {literal(libpq)} AS {self.NAME} (TYPE postgres)")
        except duckdb.Error as exc:
            self.conn.close()
            raise TeamSetupError(f"Cannot connect to PostgreSQL ({libpq}): "
                                 f"{str(exc).strip().splitlines()[-1]}. {PASSWORDS}") from exc

    def rows(self, sql: str) -> list[tuple]:
        """The rows of a query run in PostgreSQL."""
        return self.conn.execute("SELECT * FROM postgres_query(?, ?)", [self.NAME, sql]).fetchall()

    def value(self, sql: str):
        """The one value of a query run in PostgreSQL."""
        return self.rows(sql)[0][0]

    def execute(self, sql: str) -> None:
        """Run statements in PostgreSQL."""
        self.conn.execute("CALL postgres_execute(?, ?)", [self.NAME, sql])

    def check_may_create_roles(self) -> str:
        """The admin's role name; an error unless it may create roles."""
        who, allowed = self.rows("SELECT current_user::text, rolsuper OR rolcreaterole FROM "
                                 "pg_roles WHERE rolname = current_user")[0]
        if not allowed:
            raise TeamSetupError(
                f"The PostgreSQL role {who} may not create roles. Run this as the team's admin "
                "(a role with CREATEROLE that owns the database, or a superuser).")
        return str(who)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def _catalog_schema(admin: Admin) -> str | None:
    found = admin.rows("SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON "
                       "n.oid = c.relnamespace WHERE c.relname = 'ducklake_snapshot'")
    return str(found[0][0]) if found else None


def _inlining_off(admin: Admin, schema: str) -> bool:
    rows = admin.rows(f"SELECT value FROM {roles.quote_ident(schema)}.ducklake_metadata WHERE "
                      "key = 'data_inlining_row_limit' AND scope IS NULL")
    return bool(rows) and rows[0][0] == "0"


def _ensure_catalog(admin: Admin, libpq: str, data: str, changes: list[str]) -> str:
    """Create the DuckLake catalog (inlining off) or turn inlining off in it; its schema."""
    schema = _catalog_schema(admin)
    if schema is not None and _inlining_off(admin, schema):
        return schema
    Path(data).mkdir(parents=True, exist_ok=True)
    target = literal(f"ducklake:postgres:{libpq}")
    admin.conn.execute(f"ATTACH {target} AS lake (DATA_PATH {literal(data.rstrip('/') + '/')})")
    try:
        admin.conn.execute("CALL lake.set_option('data_inlining_row_limit', 0)")
    finally:
        admin.conn.execute("DETACH lake")
    changes.append("created the DuckLake catalog, data inlining off" if schema is None
                   else "turned the lake's data inlining off")
    found = _catalog_schema(admin)
    assert found is not None
    return found


def _has_nbtrack_tables(admin: Admin, schema: str) -> bool:
    return bool(admin.rows(
        f"SELECT 1 FROM {roles.quote_ident(schema)}.ducklake_table WHERE table_name = "
        "'nbtrack_meta' AND end_snapshot IS NULL"))


def _ensure_roles(admin: Admin, changes: list[str]) -> None:
    for role in (roles.READER, roles.WRITER, roles.MAINTAINER):
        if not admin.rows(f"SELECT 1 FROM pg_roles WHERE rolname = {literal(role)}"):
            admin.execute(f"CREATE ROLE {role} NOLOGIN")
            changes.append(f"created the group role {role}")
    for group, member in roles.MEMBERSHIPS:
        if not _is_member(admin, member, group):
            admin.execute(f"GRANT {group} TO {member}")
            changes.append(f"made {member} a member of {group}")


def _is_member(admin: Admin, member: str, group: str) -> bool:
    """Whether ``member`` is directly a member of ``group``."""
    return bool(admin.rows(
        "SELECT 1 FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m "
        f"ON m.oid = a.member WHERE g.rolname = {literal(group)} AND m.rolname = "
        f"{literal(member)}"))


def _ensure_rights(admin: Admin, schema: str, changes: list[str]) -> None:
    before = admin.value(roles.RIGHTS_FINGERPRINT)
    tables = [str(name) for (name,) in admin.rows(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = {literal(schema)} AND c.relkind = 'r' AND c.relname LIKE "
        "'ducklake%' ORDER BY 1")]
    admin.execute(roles.catalog_grants(schema, tables))
    admin.execute(roles.REGISTRY_GRANTS)
    for table, policy, text in roles.POLICIES:
        if not admin.rows(f"SELECT 1 FROM pg_policies WHERE schemaname = {literal(SCHEMA)} AND "
                          f"tablename = {literal(table)} AND policyname = {literal(policy)}"):
            admin.execute(f"CREATE POLICY {policy} ON {SCHEMA}.{table} {text}")
    if admin.value(roles.RIGHTS_FINGERPRINT) != before:
        changes.append(f"granted the roles' rights on the catalog ({len(tables)} tables in "
                       f"schema {schema}) and on {SCHEMA}, with its row-level security")


def init_team(uri: str) -> list[str]:
    """Set up the team store at ``uri``; return what was changed (empty: nothing was)."""
    parts = parse_uri(uri)
    admin = Admin(parts["libpq"])
    changes: list[str] = []
    try:
        admin.check_may_create_roles()
        schema = _ensure_catalog(admin, parts["libpq"], parts["data"], changes)
        if not admin.rows("SELECT 1 FROM pg_namespace WHERE nspname = " + literal(SCHEMA)):
            admin.execute(DDL)
            changes.append(f"created the registry's guarded state (schema {SCHEMA})")
        if not _has_nbtrack_tables(admin, schema):
            DuckLakeStore(uri, create=True).close()
            changes.append("created nbtrack's tables in the lake")
        _ensure_roles(admin, changes)
        _ensure_rights(admin, schema, changes)
    finally:
        admin.close()
    return changes


def grant(uri: str, person: str, role: str) -> list[str]:
    """Give ``person`` the team ``role`` (reader, writer, maintainer); return what changed.

    The login role is created (without a password) if missing; a person holds one team role at
    a time, so a membership in another is revoked.
    """
    if role not in roles.ROLES:
        raise TeamSetupError(f"A team role is one of {', '.join(roles.ROLES)}, not {role!r}.")
    try:
        roles.check_person(person)
    except ValueError as exc:
        raise TeamSetupError(str(exc)) from None
    group = roles.ROLES[role]
    admin = Admin(parse_uri(uri)["libpq"])
    changes: list[str] = []
    try:
        admin.check_may_create_roles()
        if not admin.rows(f"SELECT 1 FROM pg_roles WHERE rolname = {literal(group)}"):
            raise TeamSetupError(f"There is no role {group} yet: run nbtrack team init "
                                 "URI first.")
        found = admin.rows(f"SELECT rolcanlogin FROM pg_roles WHERE rolname = "
                           f"{literal(person)}")
        if not found:
            admin.execute(f"CREATE ROLE {roles.quote_ident(person)} LOGIN")
            changes.append(f"created the login role {person}, without a password")
        elif not found[0][0]:
            raise TeamSetupError(f"{person} is a PostgreSQL role that cannot log in, not a "
                                 "person.")
        for other in roles.ROLES.values():
            if other != group and _is_member(admin, person, other):
                admin.execute(f"REVOKE {other} FROM {roles.quote_ident(person)}")
                changes.append(f"revoked {other} from {person}")
        if not _is_member(admin, person, group):
            admin.execute(f"GRANT {group} TO {roles.quote_ident(person)}")
            changes.append(f"granted {group} to {person}")
    finally:
        admin.close()
    return changes


def password_hint(uri: str, person: str) -> str:
    """How the admin sets ``person``'s password, and how the person keeps it."""
    parts = dict(p.split("=", 1) for p in parse_uri(uri)["libpq"].split())
    where = " ".join(f"-{flag} {parts[key]}" for flag, key in
                     (("h", "host"), ("p", "port"), ("d", "dbname")) if key in parts)
    return (f"To set {person}'s password, as the admin: psql {where} -c "
            f"'\\password {person}'. {person} then keeps it in ~/.pgpass "
            f"(host:port:dbname:{person}:password, chmod 600), a service file or PGPASSWORD. "
            + PASSWORDS)
