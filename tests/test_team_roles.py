"""People and permissions on the team store: a reader, a writer and a maintainer, each a login
role made by ``nbtrack team grant``, on a catalog made by ``nbtrack team init``, on the real
PostgreSQL server. Each tries what it must not do through nbtrack and through a connection that
skips nbtrack (a plain DuckDB ATTACH of the lake, and psql), and is refused with PostgreSQL's
reason; what it may do works, and its role is recorded.
"""

from __future__ import annotations

import secrets
import subprocess

import duckdb
import pytest
from pg_server import postgres_server  # noqa: F401  (a pytest fixture)

from nbtrack.cli import main
from nbtrack.entities import RunSource
from nbtrack.exceptions import InvalidValueError
from nbtrack.store import lake_extensions
from nbtrack.store.base import NewRun
from nbtrack.store.ducklake_store import DuckLakeStore
from nbtrack.store.lake_sql import LakePermissionError

pytestmark = pytest.mark.slow


class Team:
    """A team store set up by its admin, and three people with their passwords."""

    def __init__(self, server, database: str, root) -> None:
        self.server, self.database, self.root = server, database, root
        self.people: dict[str, tuple[str, str]] = {}

    def uri(self, user: str, spool: str) -> str:
        return (f"ducklake:postgresql://{user}@{self.server.host}:{self.server.port}/"
                f"{self.database}?data={self.root}/data&spool={self.root}/{spool}")

    def store(self, role: str) -> DuckLakeStore:
        """The team store as ``role``'s person connects to it, from a machine of their own."""
        name, password = self.people[role]
        return DuckLakeStore(self.uri(name, f"{role}-{secrets.token_hex(3)}"), password=password)

    def raw(self, role: str):
        """A plain DuckDB connection with the lake attached as ``role``'s person: no nbtrack."""
        name, password = self.people[role]
        conn = duckdb.connect(config={"autoinstall_known_extensions": False,
                                      "autoload_known_extensions": False})
        lake_extensions.load(conn)
        libpq = self.server.libpq(self.database, name, password)
        conn.execute(f"ATTACH 'ducklake:postgres:{libpq}' AS lake "
                     f"(DATA_PATH '{self.root}/data/')")
        return conn

    def psql(self, role: str, sql: str) -> str:
        """``sql`` run by ``role``'s person with psql; PostgreSQL's error as the text if refused."""
        name, password = self.people[role]
        try:
            return self.server.psql(sql, database=self.database, user=name, password=password)
        except subprocess.CalledProcessError as exc:
            return exc.stderr


@pytest.fixture(scope="module")
def team(postgres_server, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("team")
    team = Team(postgres_server, postgres_server.create_database("team"), root)
    admin_uri = team.uri(postgres_server.user, "admin")
    patch = pytest.MonkeyPatch()
    patch.setenv("PGPASSWORD", postgres_server.password)  # the admin's, as libpq reads it
    try:
        assert main(["team", "init", admin_uri]) == 0
        for role in ("reader", "writer", "maintainer"):
            person = f"{role}_{secrets.token_hex(3)}"
            assert main(["team", "grant", person, role, "--tracking-uri", admin_uri]) == 0
            password = secrets.token_hex(8)
            postgres_server.psql(f"ALTER ROLE {person} PASSWORD '{password}'")
            team.people[role] = (person, password)
        # something to read: a run and a model version in Production, made by the admin
        store = DuckLakeStore(admin_uri)
        run_id = new_run(store, "0", "admin-run")
        store.create_model_version("taxi", f"runs:/{run_id}/model", run_id)
        store.transition_model_version_stage("taxi", 1, "Production")
        store.set_registered_model_alias("taxi", "champion", 1)
        store.close()
        yield team
    finally:
        patch.undo()


def new_run(store, experiment_id: str, run_id: str) -> str:
    store.create_run(NewRun(run_id=run_id, experiment_id=experiment_id, run_name=run_id,
                            user_id="someone-else", start_time=1, parent_run_id=None,
                            description=None, source=RunSource(type="LOCAL", name="x"), pid=None))
    store.add_metric(run_id, "loss", 0.5, 0, 2)
    store.update_run(run_id, status="FINISHED", end_time=3)
    return run_id


def refused_commit(conn, *statements: str) -> str:
    """Run ``statements`` in one transaction on a raw connection; the error of its refusal."""
    conn.execute("BEGIN")
    with pytest.raises(duckdb.Error) as caught:
        for statement in statements:
            conn.execute(statement)
        conn.execute("COMMIT")
    return str(caught.value)


# init and grant ----------------------------------------------------------------------------------
def test_init_changes_nothing_the_second_time_and_says_so(team, capsys, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", team.server.password)
    assert main(["team", "init", team.uri(team.server.user, "admin")]) == 0
    assert capsys.readouterr().out.startswith("Nothing to change: the team store at ")


def test_init_on_an_empty_database_creates_everything_and_tells_the_next_step(
        team, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PGPASSWORD", team.server.password)
    database = team.server.create_database("fresh")
    uri = (f"ducklake:postgresql://{team.server.user}@{team.server.host}:{team.server.port}/"
           f"{database}?data={tmp_path}/data&spool={tmp_path}/local")
    assert main(["team", "init", uri]) == 0
    out = capsys.readouterr().out
    for change in ("created the DuckLake catalog, data inlining off",
                   "created the registry's guarded state", "created nbtrack's tables",
                   "granted the roles' rights on the catalog"):
        assert change in out
    assert "created the group role" not in out  # the roles are the cluster's, made once
    assert "nbtrack team grant USER ROLE" in out
    option = team.server.psql("SELECT value FROM ducklake_metadata WHERE key = "
                              "'data_inlining_row_limit'", database=database)
    assert option == "0"


def test_init_and_grant_need_a_role_that_may_create_roles(team, capsys):
    name, password = team.people["maintainer"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PGPASSWORD", password)
        assert main(["team", "init", team.uri(name, "m")]) == 1
        assert main(["team", "grant", "bo", "reader", "--tracking-uri", team.uri(name, "m")]) == 1
    err = capsys.readouterr().err
    assert err.count(f"The PostgreSQL role {name} may not create roles") == 2


def test_grant_creates_the_person_and_says_how_to_set_a_password(team, capsys, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", team.server.password)
    person = f"dana_{secrets.token_hex(3)}"
    uri = team.uri(team.server.user, "admin")
    assert main(["team", "grant", person, "writer", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert f"created the login role {person}, without a password" in out
    assert f"\\password {person}" in out and "~/.pgpass" in out and "never from the URI" in out
    assert main(["team", "grant", person, "writer", "--tracking-uri", uri]) == 0
    assert capsys.readouterr().out.startswith(f"Nothing to change: {person} is already a writer")
    assert main(["team", "grant", person, "maintainer", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert f"revoked nbtrack_writer from {person}" in out
    assert f"granted nbtrack_maintainer to {person}" in out
    assert team.server.psql(f"SELECT string_agg(g.rolname, ',') FROM pg_auth_members a JOIN "
                            f"pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member "
                            f"WHERE m.rolname = '{person}'") == "nbtrack_maintainer"


def test_grant_refuses_unknown_roles_odd_names_and_a_uri_that_is_no_team_store(team, capsys,
                                                                              monkeypatch):
    monkeypatch.setenv("PGPASSWORD", team.server.password)
    uri = team.uri(team.server.user, "admin")
    assert main(["team", "grant", "nbtrack_writer", "reader", "--tracking-uri", uri]) == 1
    assert "cannot be a person's role" in capsys.readouterr().err
    assert main(["team", "grant", "bo", "reader", "--tracking-uri", "/tmp/folder"]) == 1
    assert "needs the team store's URI" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["team", "grant", "bo", "owner", "--tracking-uri", uri])


# the reader ---------------------------------------------------------------------------------------
def test_a_reader_searches_and_loads_but_changes_nothing(team):
    store = team.store("reader")
    try:
        runs, _ = store.search_runs(["0"], "metrics.loss < 1", 1, 10, None, None)
        assert [r.info.run_id for r in runs] == ["admin-run"]
        assert store.get_model_version_by_alias("taxi", "champion").version == 1
        assert [v.version for v in store.get_latest_versions("taxi", ["Production"])] == [1]
        with pytest.raises(LakePermissionError, match="permission denied for table ducklake_"):
            store.create_experiment("not-mine")
        with pytest.raises(LakePermissionError, match="permission denied for table ducklake_"):
            store.create_model_version("taxi", "runs:/x/model", None)
        with pytest.raises(LakePermissionError,
                           match="permission denied for table stage_changes"):
            store.transition_model_version_stage("taxi", 1, "Archived")
        with pytest.raises(LakePermissionError,
                           match="permission denied for table alias_changes"):
            store.set_registered_model_alias("taxi", "mine", 1)
        with pytest.raises(LakePermissionError, match=r"may only read this team store \(it "
                                                      r"lacks INSERT on .*ducklake_snapshot"):
            new_run(store, "0", "reader-run")
        with pytest.raises(LakePermissionError, match="may only read"):
            store.add_metric("admin-run", "loss", 0.1, 5, 5)
        assert store.get_experiment_by_name("not-mine") is None
        assert store.get_model_version("taxi", 1).current_stage == "Production"
        # nbtrack.sql shows the guarded state too
        shown = store.sql("SELECT v.stage, a.alias FROM nbtrack.model_versions v JOIN "
                          "model_aliases a USING (name, version) WHERE name = 'taxi'")
        assert shown.values.tolist() == [["Production", "champion"]]
        runs, _ = store.search_runs(["0"], None, 1, 10, None, None)  # nothing stuck in the spool
        assert "reader-run" not in [r.info.run_id for r in runs]
        assert len(store.get_metric_history("admin-run", "loss")) == 1
    finally:
        store.close()


def test_a_reader_that_skips_nbtrack_is_refused_too(team):
    conn = team.raw("reader")
    error = refused_commit(conn, "INSERT INTO lake.main.experiments VALUES "
                                 "('9', 'raw', 'x', 'active', 1, 1)")
    assert "permission denied for table ducklake_" in error
    assert "permission denied for table stage_changes" in team.psql(
        "reader", "INSERT INTO nbtrack_registry.stage_changes (name, version, version_created, "
                  "stage) VALUES ('taxi', 1, 1, 'Archived')")
    assert "permission denied for table ducklake_snapshot" in team.psql(
        "reader", "DELETE FROM ducklake_snapshot")


# the writer ---------------------------------------------------------------------------------------
def test_a_writer_tracks_registers_and_stages_as_their_role(team):
    person = team.people["writer"][0]
    store = team.store("writer")
    try:
        run_id = new_run(store, "0", "writer-run")
        run = store.get_run(run_id)
        assert run.info.user_id == person and run.data.tags["mlflow.user"] == person
        with pytest.raises(InvalidValueError, match="cannot be changed"):
            store.set_run_attributes(run_id, {"user_id": "someone-else"})
        version = store.create_model_version("taxi", f"runs:/{run_id}/model", run_id)
        assert version.user_id == person
        staged = store.transition_model_version_stage("taxi", version.version, "Staging")
        assert staged.current_stage == "Staging"
        store.transition_model_version_stage("taxi", version.version, "Archived")
        events = store.registry_events("taxi")
        mine = events[events["version"] == version.version]
        assert list(mine["action"]) == ["create_version", "transition_stage", "transition_stage"]
        assert set(mine["user_id"]) == {person}
        history = team.psql("writer", "SELECT stage || ' by ' || changed_by FROM "
                                      "nbtrack_registry.stage_changes WHERE version = "
                                      f"{version.version} ORDER BY change_id")
        assert history.splitlines() == [f"Staging by {person}", f"Archived by {person}"]
    finally:
        store.close()


def test_a_writer_may_not_touch_production_or_aliases(team):
    store = team.store("writer")
    try:
        version = store.create_model_version("taxi", "runs:/w/model", None).version
        with pytest.raises(LakePermissionError,
                           match=r"row-level security policy for table .stage_changes.*"
                                 r"Production needs membership in nbtrack_maintainer"):
            store.transition_model_version_stage("taxi", version, "Production")
        with pytest.raises(LakePermissionError, match=r"row-level security.*nbtrack_maintainer"):
            store.transition_model_version_stage("taxi", 1, "Archived")  # out of Production
        with pytest.raises(LakePermissionError,
                           match="permission denied for table alias_changes"):
            store.set_registered_model_alias("taxi", "champion", version)
        with pytest.raises(LakePermissionError,
                           match="permission denied for table alias_changes"):
            store.delete_registered_model_alias("taxi", "champion")
        with pytest.raises(LakePermissionError, match="row-level security"):
            store.delete_model_version("taxi", 1)  # the version in Production
        assert store.get_model_version("taxi", version).current_stage == "None"
        assert [v.version for v in store.get_latest_versions("taxi", ["Production"])] == [1]
        assert store.get_model_version_by_alias("taxi", "champion").version == 1
    finally:
        store.close()


def test_a_writer_that_skips_nbtrack_gets_no_more_rights(team):
    person = team.people["writer"][0]
    conn = team.raw("writer")
    # the lake's own stage and alias rows are not what nbtrack trusts: rewriting them commits,
    # and changes nothing nbtrack shows
    conn.execute("UPDATE lake.main.model_versions SET stage = 'Production' WHERE version > 1")
    conn.execute("DELETE FROM lake.main.model_aliases")
    assert conn.execute("SELECT count(*) FROM lake.main.model_versions WHERE stage = "
                        "'Production'").fetchone()[0] >= 1  # committed, in the lake
    store = team.store("reader")
    try:
        assert [v.version for v in store.get_latest_versions("taxi", ["Production"])] == [1]
        assert store.get_model_version_by_alias("taxi", "champion").version == 1
    finally:
        store.close()
    # the guarded state, through the lake's catalog connection and through psql
    with pytest.raises(duckdb.Error, match=r"row-level security policy for table "
                                           r".stage_changes"):
        conn.execute("CALL postgres_execute('__ducklake_metadata_lake', 'INSERT INTO "
                     "nbtrack_registry.stage_changes (name, version, version_created, stage) "
                     "VALUES (''taxi'', 2, 1, ''Production'')')")
    assert "row-level security policy" in team.psql(
        "writer", "INSERT INTO nbtrack_registry.stage_changes (name, version, version_created, "
                  "stage) SELECT name, version, version_created, 'Archived' FROM "
                  "nbtrack_registry.current_stages WHERE stage = 'Production'")
    assert "permission denied for table alias_changes" in team.psql(
        "writer", "INSERT INTO nbtrack_registry.alias_changes (name, alias, version, "
                  "version_created) VALUES ('taxi', 'champion', 2, 1)")
    for sql in ("UPDATE nbtrack_registry.stage_changes SET stage = 'Production'",
                "DELETE FROM nbtrack_registry.stage_changes"):
        assert "permission denied for table stage_changes" in team.psql("writer", sql)
    # the lake's options (data inlining off) are the admin's (not tried with DuckLake's own
    # set_option: with duckdb 1.5.5 a set_option whose commit PostgreSQL refuses crashes)
    assert "permission denied for table ducklake_metadata" in team.psql(
        "writer", "UPDATE ducklake_metadata SET value = '10' WHERE key = "
                  "'data_inlining_row_limit'")
    # a forged author is replaced by the role that wrote the row
    team.psql("writer", "INSERT INTO nbtrack_registry.stage_changes (name, version, "
                        "version_created, stage, changed_by) VALUES ('ghost', 1, 1, 'Staging', "
                        "'the-maintainer')")
    assert team.psql("writer", "SELECT changed_by FROM nbtrack_registry.stage_changes WHERE "
                               "name = 'ghost'") == person


# the maintainer -----------------------------------------------------------------------------------
def test_a_maintainer_moves_production_and_aliases_and_is_recorded(team):
    person = team.people["maintainer"][0]
    store = team.store("maintainer")
    try:
        version = store.create_model_version("taxi", "runs:/m/model", None).version
        promoted = store.transition_model_version_stage("taxi", version, "Production",
                                                        archive_existing_versions=True)
        assert promoted.current_stage == "Production"
        assert store.get_model_version("taxi", 1).current_stage == "Archived"
        store.set_registered_model_alias("taxi", "champion", version)
        assert store.get_model_version_by_alias("taxi", "champion").version == version
        store.delete_registered_model_alias("taxi", "champion")
        store.set_registered_model_alias("taxi", "champion", version)
        model = store.get_registered_model("taxi")
        assert model.aliases == {"champion": version}
        history = team.psql("reader", "SELECT version || ' ' || stage || ' by ' || changed_by "
                                      "FROM nbtrack_registry.stage_changes WHERE name = 'taxi' "
                                      f"AND changed_by = '{person}' ORDER BY change_id")
        assert history.splitlines() == [f"1 Archived by {person}",
                                        f"{version} Production by {person}"]
        aliases = team.psql("reader", "SELECT coalesce(version::text, 'deleted') || ' by ' || "
                                      "changed_by FROM nbtrack_registry.alias_changes WHERE "
                                      f"changed_by = '{person}' ORDER BY change_id")
        assert aliases.splitlines() == [f"{version} by {person}", f"deleted by {person}",
                                        f"{version} by {person}"]
        events = store.registry_events("taxi")
        assert set(events[events["user_id"] == person]["action"]) == {
            "create_version", "transition_stage", "set_alias", "delete_alias"}
    finally:
        store.close()


# the machines' shared spool offsets ---------------------------------------------------------------
def test_a_machine_opening_the_lake_leaves_the_other_machines_offsets(team):
    """A store's open tidies its own spool only: it once deleted every other machine's merged
    offsets, so a reader could not open the lake, and a live machine merged its segment again
    from the start (11 points where 6 were logged)."""
    first = team.store("writer")
    try:
        run_id = new_run(first, "0", "offsets-run")
        for step in range(1, 5):
            first.add_metric(run_id, "loss", 0.1 * step, step, 10 + step)
        assert len(first.get_metric_history(run_id, "loss")) == 5
        team.store("reader").close()  # another machine opens the lake, and goes
        first.add_metric(run_id, "loss", 0.9, 9, 99)
        assert len(first.get_metric_history(run_id, "loss")) == 6
    finally:
        first.close()


def test_the_guarded_state_as_it_was_at_a_past_snapshot(team):
    """What time travel needs: stages and aliases as PostgreSQL's logs had them at a moment,
    on a lake attached read-only at the snapshot of that moment."""
    import time

    from nbtrack.store.lake_registry import guarded_state

    store = team.store("maintainer")
    try:
        for _ in range(2):
            store.create_model_version("bus", "runs:/b/model", None)
        store.transition_model_version_stage("bus", 1, "Production")
        store.set_registered_model_alias("bus", "champion", 1)
        time.sleep(0.05)
        moment = int(time.time() * 1000)
        time.sleep(0.05)
        store.transition_model_version_stage("bus", 2, "Production",
                                             archive_existing_versions=True)
        store.set_registered_model_alias("bus", "champion", 2)
    finally:
        store.close()
    conn = team.raw("reader")
    (snapshot,) = conn.execute("SELECT max(snapshot_id) FROM lake.snapshots() WHERE "
                               "epoch_ms(snapshot_time) <= ?", [moment]).fetchone()
    conn.execute("DETACH lake")
    name, password = team.people["reader"]
    libpq = team.server.libpq(team.database, name, password)
    conn.execute(f"ATTACH 'ducklake:postgres:{libpq}' AS lake (DATA_PATH '{team.root}/data/', "
                 f"SNAPSHOT_VERSION {snapshot}, READ_ONLY)")
    conn.execute("USE lake")
    query = ("SELECT v.version, v.stage, list(a.alias) FILTER (WHERE a.alias IS NOT NULL) "
             "FROM model_versions v LEFT JOIN model_aliases a USING (name, version) "
             "WHERE v.name = 'bus' GROUP BY ALL ORDER BY 1")
    with guarded_state(conn, moment):
        assert conn.execute(query).fetchall() == [(1, "Production", ["champion"]),
                                                  (2, "None", None)]
    with guarded_state(conn):  # now, on the same (old) snapshot of the lake
        assert conn.execute(query).fetchall() == [(1, "Archived", None),
                                                  (2, "Production", ["champion"])]
    # the lake's own columns never held the stages
    assert conn.execute(query).fetchall() == [(1, "None", None), (2, "None", None)]


def test_renaming_or_deleting_a_model_in_production_needs_a_maintainer(team):
    maintainer, writer = team.store("maintainer"), team.store("writer")
    try:
        for _ in range(2):
            maintainer.create_model_version("van", "runs:/v/model", None)
        maintainer.transition_model_version_stage("van", 1, "Production")
        maintainer.set_registered_model_alias("van", "champion", 2)
        with pytest.raises(LakePermissionError, match="row-level security"):
            writer.rename_registered_model("van", "lorry")
        with pytest.raises(LakePermissionError, match="row-level security"):
            writer.delete_registered_model("van")
        assert writer.get_registered_model("van").aliases == {"champion": 2}
        maintainer.rename_registered_model("van", "lorry")
        renamed = maintainer.get_registered_model("lorry")
        assert renamed.aliases == {"champion": 2}
        assert [v.version for v in maintainer.get_latest_versions("lorry", ["Production"])] == [1]
        maintainer.delete_registered_model("lorry")
        maintainer.create_model_version("lorry", "runs:/new/model", None)  # a new version 1
        fresh = maintainer.get_model_version("lorry", 1)
        assert fresh.current_stage == "None" and fresh.aliases == []
    finally:
        maintainer.close()
        writer.close()


def test_an_admin_that_is_no_superuser_sets_up_a_team(team, tmp_path, capsys):
    """The team's admin as a hosted PostgreSQL gives one: CREATEROLE, owner of the database."""
    server = team.server
    admin, password = server.create_role("teamadmin")
    server.psql(f"ALTER ROLE {admin} CREATEROLE")
    database = f"owned_{secrets.token_hex(3)}"
    server.psql(f"CREATE DATABASE {database} OWNER {admin}")
    uri = (f"ducklake:postgresql://{admin}@{server.host}:{server.port}/{database}"
           f"?data={tmp_path}/data&spool={tmp_path}/local")
    person = f"eve_{secrets.token_hex(3)}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PGPASSWORD", password)
        assert main(["team", "init", uri]) == 0
        assert main(["team", "grant", person, "writer", "--tracking-uri", uri]) == 0
        assert main(["team", "init", uri]) == 0
    out = capsys.readouterr().out
    assert "granted the roles' rights" in out and f"granted nbtrack_writer to {person}" in out
    assert out.rstrip().endswith("is set up.")  # the second init: nothing to change
    server.psql(f"ALTER ROLE {person} PASSWORD 'pw-{person}'")
    store = DuckLakeStore(uri.replace(f"{admin}@", f"{person}@").replace("/local", "/eve"),
                          password=f"pw-{person}")
    try:
        run_id = new_run(store, "0", "eve-run")
        assert store.get_run(run_id).info.user_id == person
        with pytest.raises(LakePermissionError, match="nbtrack_maintainer"):
            store.transition_model_version_stage(
                "m", store.create_model_version("m", "s", None).version, "Production")
    finally:
        store.close()


def test_a_lake_without_the_guarded_state_says_to_run_init(team, tmp_path, monkeypatch):
    server = team.server
    database = server.create_database("bare")
    uri = (f"ducklake:postgresql://{server.user}@{server.host}:{server.port}/{database}"
           f"?data={tmp_path}/data&spool={tmp_path}/local")
    monkeypatch.setenv("PGPASSWORD", server.password)
    DuckLakeStore(uri, create=True).close()  # its owner's store; then the guarded state is gone
    server.psql("DROP SCHEMA nbtrack_registry CASCADE", database=database)
    person, password = server.create_role("someone")
    server.psql(f"GRANT USAGE ON SCHEMA public TO {person}; GRANT SELECT ON ALL TABLES IN "
                f"SCHEMA public TO {person}", database=database)
    with pytest.raises(LakePermissionError, match=r"no nbtrack_registry schema .* may not "
                                                  r"create it .*nbtrack team init URI"):
        DuckLakeStore(uri.replace(f"{server.user}@", f"{person}@").replace("/local", "/p"),
                      password=password)
