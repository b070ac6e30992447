"""The team store's three roles and the PostgreSQL grants and policies that enforce them.

- ``nbtrack_reader``: search runs, read the registry, load models. ``SELECT`` on DuckLake's
  catalog tables and on the registry's state.
- ``nbtrack_writer`` (a reader too): track runs, register versions, move versions between
  None, Staging and Archived. ``INSERT, UPDATE, DELETE`` on the catalog tables (every DuckLake
  commit writes them) but ``ducklake_metadata`` (the lake's options), and ``INSERT`` on
  ``stage_changes`` under a row-level security policy: no row that enters Production, and
  none for a version that is in Production now.
- ``nbtrack_maintainer`` (a writer too): also move versions into and out of Production, and
  change aliases: a policy that lets any stage in, and ``INSERT`` on ``alias_changes``.

Nobody but the admin may ``UPDATE`` or ``DELETE`` the registry's logs: they are its history.
Group roles are cluster-wide in PostgreSQL, so every team store on one server shares them.
"""

from __future__ import annotations

import re

from nbtrack.store.lake_registry import SCHEMA

READER, WRITER, MAINTAINER = "nbtrack_reader", "nbtrack_writer", "nbtrack_maintainer"
#: ``nbtrack team grant USER ROLE``'s ROLE -> the group role
ROLES = {"reader": READER, "writer": WRITER, "maintainer": MAINTAINER}
#: what each role may do, in words (the CLI's help)
RIGHTS = {
    "reader": "search runs and the registry, load models",
    "writer": "also track runs, register versions, move them to Staging or Archived",
    "maintainer": "also move versions into or out of Production, change aliases",
}
#: each group role is a member of the one before: a maintainer is a writer is a reader
MEMBERSHIPS = ((READER, WRITER), (WRITER, MAINTAINER))
#: DuckLake's table of the lake's options: writers may read it, not change it
OPTIONS_TABLE = "ducklake_metadata"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.@-]{0,62}$")

#: the registry's row-level security: (table, policy, the policy's text after ON table)
POLICIES = (
    ("stage_changes", "everyone_reads", f"FOR SELECT TO {READER} USING (true)"),
    ("stage_changes", "writers_leave_production_alone", (
        f"FOR INSERT TO {WRITER} WITH CHECK (stage <> 'Production' AND NOT EXISTS ("
        f"SELECT 1 FROM {SCHEMA}.current_stages c WHERE c.name = stage_changes.name AND "
        "c.version = stage_changes.version AND c.version_created = stage_changes.version_created "
        "AND c.stage = 'Production'))")),
    ("stage_changes", "maintainers_set_any_stage", f"FOR INSERT TO {MAINTAINER} WITH CHECK (true)"),
    ("alias_changes", "everyone_reads", f"FOR SELECT TO {READER} USING (true)"),
    ("alias_changes", "maintainers_set_aliases", f"FOR INSERT TO {MAINTAINER} WITH CHECK (true)"),
)


def quote_ident(name: str) -> str:
    """``name`` as a PostgreSQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def check_person(name: str) -> str:
    """A person's login role name, refused if PostgreSQL would need it quoted oddly."""
    if not _NAME.match(name) or name.lower().startswith(("nbtrack_", "pg_")):
        raise ValueError(
            f"{name!r} cannot be a person's role: use letters, digits, _ . @ or - (up to 63, "
            "starting with a letter), and not a name starting with nbtrack_ or pg_.")
    return name


def catalog_grants(schema: str, tables: list[str]) -> str:
    """The grants on DuckLake's catalog tables (in ``schema``) for the three roles."""
    quoted = quote_ident(schema)
    statements = [f"GRANT USAGE ON SCHEMA {quoted} TO {READER}"]
    for table in tables:
        name = f"{quoted}.{quote_ident(table)}"
        statements.append(f"GRANT SELECT ON {name} TO {READER}")
        if table != OPTIONS_TABLE:
            statements.append(f"GRANT INSERT, UPDATE, DELETE ON {name} TO {WRITER}")
    # tables the admin adds later (a DuckLake upgrade) get the same rights
    statements += [
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {quoted} GRANT SELECT ON TABLES TO {READER}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {quoted} GRANT INSERT, UPDATE, DELETE ON TABLES "
        f"TO {WRITER}",
    ]
    return ";\n".join(statements)


REGISTRY_GRANTS = ";\n".join([
    f"GRANT USAGE ON SCHEMA {SCHEMA} TO {READER}",
    f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {READER}",
    f"GRANT INSERT ON {SCHEMA}.stage_changes TO {WRITER}",
    f"GRANT USAGE ON SEQUENCE {SCHEMA}.stage_changes_change_id_seq TO {WRITER}",
    f"GRANT INSERT ON {SCHEMA}.alias_changes TO {MAINTAINER}",
    f"GRANT USAGE ON SEQUENCE {SCHEMA}.alias_changes_change_id_seq TO {MAINTAINER}",
])

#: one text that changes whenever the roles' rights in this database change
RIGHTS_FINGERPRINT = f"""
SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM (
    SELECT n.nspname || '.' || c.relname || '=' || coalesce(c.relacl::text, '') AS x
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = '{SCHEMA}' OR c.relname LIKE 'ducklake%'
    UNION ALL SELECT nspname || '=' || coalesce(nspacl::text, '') FROM pg_namespace
    UNION ALL SELECT 'policy ' || tablename || '.' || policyname FROM pg_policies
    WHERE schemaname = '{SCHEMA}'
    UNION ALL SELECT 'default ' || defaclacl::text FROM pg_default_acl
    UNION ALL SELECT 'member ' || r.rolname || '>' || m.rolname FROM pg_auth_members a
    JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
    WHERE r.rolname IN ('{READER}', '{WRITER}', '{MAINTAINER}')
) rights
"""
