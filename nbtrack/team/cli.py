"""``nbtrack team init URI`` and ``nbtrack team grant USER ROLE``: the admin's setup commands."""

from __future__ import annotations

import argparse
import textwrap

from nbtrack.cli.common import CliError, add_tracking_uri, where_from

_URI = "the team store: ducklake:postgresql://ADMIN@HOST:PORT/DBNAME?data=/shared/folder"


def add_parsers(sub) -> None:
    """Register ``nbtrack team`` and its subcommands."""
    from nbtrack.team.init import PASSWORDS
    from nbtrack.team.roles import RIGHTS

    team = sub.add_parser(
        "team", help="set up a team store: its catalog, roles and people",
        description="Set up a team store (DuckLake on a PostgreSQL catalog). Run by the team's "
        "admin: a PostgreSQL role that may create roles. " + PASSWORDS)
    commands = team.add_subparsers(dest="team_command", required=True, metavar="SUBCOMMAND")
    roles_text = "; ".join(f"{name}: {text}" for name, text in RIGHTS.items())
    init = commands.add_parser(
        "init", help="create the catalog, nbtrack's tables, the roles and their grants",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Create, in an existing PostgreSQL database, whatever is missing of: the DuckLake "
            "catalog, nbtrack's tables, the registry's guarded state, and the group roles "
            "nbtrack_reader, nbtrack_writer and nbtrack_maintainer with their grants and "
            "row-level security. Running it again changes nothing and says so.", 78) + "\n\n"
        + textwrap.fill(f"Roles: {roles_text}.", 78) + "\n\n" + textwrap.fill(PASSWORDS, 78))
    init.add_argument("uri", metavar="URI", help=_URI)
    init.set_defaults(func=init_command, needs_store=False)

    grant = commands.add_parser(
        "grant", help="give a person (a PostgreSQL login role) a team role",
        description="Give USER the team role ROLE, creating the login role (without a "
        "password) if it is missing; a person holds one team role at a time. The team store "
        "is --tracking-uri or NBTRACK_TRACKING_URI. " + PASSWORDS)
    grant.add_argument("user", metavar="USER", help="the person's PostgreSQL login role")
    grant.add_argument("role", metavar="ROLE", choices=list(RIGHTS),
                       help="; ".join(f"{name}: {text}" for name, text in RIGHTS.items()))
    add_tracking_uri(grant)
    grant.set_defaults(func=grant_command, needs_store=False)


def init_command(args) -> int:
    from nbtrack.team.init import init_team

    changes = init_team(args.uri)
    if not changes:
        print(f"Nothing to change: the team store at {args.uri} is set up.")
        return 0
    for change in changes:
        print(f"- {change}")
    print("The team store is set up. Add people with: nbtrack team grant USER ROLE "
          f"--tracking-uri {args.uri}")
    return 0


def grant_command(args) -> int:
    from nbtrack.store.ducklake_store import SCHEME
    from nbtrack.team.init import grant, password_hint

    uri, how = where_from(args)
    if not uri or not uri.startswith(SCHEME):
        raise CliError(f"nbtrack team grant needs the team store's URI ({SCHEME}postgresql://"
                       f"…), given with --tracking-uri or NBTRACK_TRACKING_URI; not {uri!r} "
                       f"({how}).")
    changes = grant(uri, args.user, args.role)
    if not changes:
        print(f"Nothing to change: {args.user} is already a {args.role}.")
        return 0
    for change in changes:
        print(f"- {change}")
    if any(change.startswith("created the login role") for change in changes):
        print(password_hint(uri, args.user))
    return 0
