"""The team store's parts (DuckLake on a PostgreSQL catalog), on a real server and real files."""

from __future__ import annotations

import duckdb
import pytest

from nbtrack.store import lake_extensions


def plain_connection():
    """A DuckDB connection that may neither download nor autoload extensions."""
    return duckdb.connect(config={"autoinstall_known_extensions": False,
                                  "autoload_known_extensions": False})


def test_the_extensions_load_from_their_pypi_packages():
    conn = plain_connection()
    lake_extensions.load(conn)
    loaded = {name for (name,) in conn.execute(
        "SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    assert {"ducklake", "postgres_scanner", "httpfs"} <= loaded
    lake_extensions.load(conn)  # loading twice is harmless


def test_a_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(lake_extensions.PACKAGES, "ducklake", "duckdb-extension-nowhere")
    with pytest.raises(lake_extensions.ExtensionMissingError, match="pip install"):
        lake_extensions.extension_path("ducklake")


@pytest.mark.slow
def test_ducklake_attaches_on_a_postgresql_catalog(postgres_server, tmp_path):
    database = postgres_server.create_database()
    conn = plain_connection()
    lake_extensions.load(conn)
    conn.execute(f"ATTACH 'ducklake:postgres:{postgres_server.libpq(database)}' AS lake "
                 f"(DATA_PATH '{tmp_path}/data/')")
    conn.execute("CREATE TABLE lake.t (a INTEGER, b VARCHAR)")
    conn.execute("INSERT INTO lake.t VALUES (1, 'x')")
    assert conn.execute("SELECT * FROM lake.t").fetchall() == [(1, "x")]
    # the catalog lives in PostgreSQL: another role sees the lake's metadata tables there
    tables = postgres_server.psql("SELECT count(*) FROM information_schema.tables "
                                  "WHERE table_name LIKE 'ducklake_%'", database=database)
    assert int(tables) > 10


# the DuckLakeStore (phase 1) ----------------------------------------------------------------
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

from nbtrack.entities import RunSource  # noqa: E402
from nbtrack.exceptions import NbtrackError  # noqa: E402
from nbtrack.store import ducklake_store, lake_sql  # noqa: E402
from nbtrack.store.base import NewRun  # noqa: E402


def new_run(run_id: str, experiment_id: str) -> NewRun:
    return NewRun(run_id=run_id, experiment_id=experiment_id, run_name=run_id, user_id="ana",
                  start_time=1_000, parent_run_id=None, description=None,
                  source=RunSource(type="NOTEBOOK", name="nb.ipynb"), pid=None)


@pytest.fixture
def lake_uri(postgres_server, tmp_path, monkeypatch):
    """A ``ducklake:`` URI on a new database; the password comes from PGPASSWORD, not the URI."""
    database = postgres_server.create_database("lake")
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    return (f"ducklake:postgresql://{postgres_server.user}@{postgres_server.host}:"
            f"{postgres_server.port}/{database}?data={tmp_path}/shared&spool={tmp_path}/local")


def test_the_uri_keeps_passwords_out_and_names_its_parts(tmp_path):
    parts = ducklake_store.parse_uri(
        f"ducklake:postgresql://ana@db.example:5433/team?data={tmp_path}/d&spool={tmp_path}/s")
    assert parts["libpq"] == "host=db.example port=5433 dbname=team user=ana"
    assert parts["data"] == f"{tmp_path}/d" and parts["local"] == f"{tmp_path}/s"
    with pytest.raises(NbtrackError, match="pgpass"):
        ducklake_store.parse_uri("ducklake:postgresql://ana:secret@h/team?data=/x")
    with pytest.raises(NbtrackError, match="data="):
        ducklake_store.parse_uri("ducklake:postgresql://ana@h/team")
    assert ducklake_store.parse_uri("ducklake:postgresql://ana@h/team?data=s3://b/p/")[
        "data"] == "s3://b/p"
    with pytest.raises(NbtrackError, match="not supported"):
        ducklake_store.parse_uri("ducklake:postgresql://ana@h/team?data=gs://b/p")
    with pytest.raises(NbtrackError, match="Unknown option"):
        ducklake_store.parse_uri("ducklake:postgresql://ana@h/team?data=/d&colour=red")


def test_the_schema_declares_the_keys_the_translation_needs():
    assert lake_sql.KEYS["latest_metrics"] == ("run_id", "key")
    assert lake_sql.KEYS["spool_offsets"] == ("segment",)
    assert "PRIMARY KEY" not in lake_sql.lake_ddl("\n".join(lake_sql.schema.MIGRATIONS))


@pytest.mark.slow
def test_tracking_search_and_registry_on_a_ducklake(lake_uri):
    store = ducklake_store.DuckLakeStore(lake_uri, create=True)
    try:
        exp = store.create_experiment("team-exp")
        for i, run_id in enumerate(["r1", "r2"]):
            store.create_run(new_run(run_id, exp))
            store.add_params(run_id, [("lr", str(0.1 * (i + 1)))])
            store.set_tags(run_id, [("team", "ml")])
            for step in range(3):
                store.add_metric(run_id, "loss", 1.0 - step * 0.1 - i, step, 1_000 + step)
            store.update_run(run_id, status="FINISHED", end_time=2_000)
        run = store.get_run("r1")
        assert run.data.params == {"lr": "0.1"} and run.data.tags["team"] == "ml"
        assert run.data.metrics["loss"] == pytest.approx(0.8)
        assert run.info.status == "FINISHED"
        assert [m.value for m in store.get_metric_history("r1", "loss")] == \
            pytest.approx([1.0, 0.9, 0.8])
        runs, _ = store.search_runs([exp], "metrics.loss < 0.5 and params.lr = '0.2'", 1, 10,
                                    ["metrics.loss"], None)
        assert [r.info.run_id for r in runs] == ["r2"]
        # an index column for a key logged after the run's row was written
        store.add_metric("r1", "acc", 0.5, 0, 3_000)
        runs, _ = store.search_runs([exp], "metrics.acc > 0.1", 1, 10, None, None)
        assert [r.info.run_id for r in runs] == ["r1"]
        # the registry: numbered versions, stages, aliases
        assert store.create_model_version("m", "runs:/r1/model", "r1").version == 1
        assert store.create_model_version("m", "runs:/r2/model", "r2").version == 2
        store.transition_model_version_stage("m", 2, "Production")
        store.set_registered_model_alias("m", "champion", 1)
        assert store.get_model_version_by_alias("m", "champion").run_id == "r1"
        assert [v.version for v in store.get_latest_versions("m", ["Production"])] == [2]
        # every merge and registry change is a DuckLake snapshot
        with store._connection.use() as conn:
            (count,) = conn.execute("SELECT count(*) FROM lake.snapshots()").fetchone()
        assert count > 5
    finally:
        store.close()


@pytest.mark.slow
def test_values_logged_in_another_process_arrive_through_its_spool(lake_uri, tmp_path):
    first = ducklake_store.DuckLakeStore(lake_uri, create=True)
    exp = first.create_experiment("shared")
    other_spool = tmp_path / "other-machine"
    uri = lake_uri.replace(f"spool={tmp_path}/local", f"spool={other_spool}")
    script = textwrap.dedent(f"""
        from nbtrack.entities import RunSource
        from nbtrack.store.base import NewRun
        from nbtrack.store.ducklake_store import DuckLakeStore
        store = DuckLakeStore({uri!r})
        store.create_run(NewRun(run_id="far", experiment_id={exp!r}, run_name="far",
                                user_id="bo", start_time=1, parent_run_id=None,
                                description=None, source=RunSource(type="LOCAL", name="x"),
                                pid=None))
        for step in range(100):
            store.add_metric("far", "loss", 1 / (step + 1), step, 10 + step)
        store.add_params("far", [("depth", "3")])
        store.close()
    """)
    try:
        subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
        run = first.get_run("far")
        assert run.data.params == {"depth": "3"}
        assert len(first.get_metric_history("far", "loss")) == 100
        assert run.data.metrics["loss"] == pytest.approx(0.01)
    finally:
        first.close()


@pytest.mark.slow
def test_every_way_to_name_a_ducklake_uri_opens_one_team_store(lake_uri, monkeypatch):
    import nbtrack
    from nbtrack.cli import main

    ducklake_store.DuckLakeStore(lake_uri, create=True).close()
    nbtrack.set_tracking_uri(lake_uri)
    store = nbtrack.Client().store
    assert isinstance(store, ducklake_store.DuckLakeStore)
    assert nbtrack.Client(tracking_uri=lake_uri).store is store  # one per URI per process
    nbtrack.set_tracking_uri(None)
    monkeypatch.setenv("NBTRACK_TRACKING_URI", lake_uri)
    assert nbtrack.Client().store is store
    with nbtrack.start_run(experiment_id="0") as run:
        nbtrack.log_param("where", "lake")
    monkeypatch.delenv("NBTRACK_TRACKING_URI")
    assert main(["--tracking-uri", lake_uri, "runs", "--experiment", "Default"]) == 0
    assert main(["experiments", "--tracking-uri", lake_uri]) == 0
    assert store.get_run(run.info.run_id).data.params == {"where": "lake"}


@pytest.mark.slow
def test_track_magic_logs_into_the_team_store(lake_uri, store_dir):
    from IPython.testing import globalipapp

    import nbtrack
    from nbtrack.magics.track import TrackConfig

    ducklake_store.DuckLakeStore(lake_uri, create=True).close()
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "nbtrack")
    ip.magics_manager.registry["TrackMagics"].config_ = TrackConfig()
    ip.magics_manager.registry["TrackMagics"]._experiment_set = None
    ip.user_ns["nbtrack"] = nbtrack
    ip.run_line_magic("track_config", f'--tracking-uri "{lake_uri}"')
    ip.run_cell_magic("track", "--experiment shared --name on-lake",
                      "depth = 3\nnbtrack.log_metric('loss', 0.5)")
    store = nbtrack.Client().store
    assert isinstance(store, ducklake_store.DuckLakeStore)
    runs, _ = store.search_runs([store.get_experiment_by_name("shared").experiment_id],
                                None, 1, 10, None, None)
    assert [r.info.run_name for r in runs] == ["on-lake"]
    assert runs[0].data.params["depth"] == "3" and runs[0].data.metrics["loss"] == 0.5


def test_a_uri_holding_a_password_is_refused_everywhere(tmp_path, monkeypatch):
    import nbtrack
    from nbtrack.cli import main

    uri = f"ducklake:postgresql://ana:secret@localhost/team?data={tmp_path}"
    with pytest.raises(NbtrackError, match="holds a password"):
        nbtrack.set_tracking_uri(uri)
    with pytest.raises(NbtrackError, match="holds a password"):
        nbtrack.Client(tracking_uri=uri)
    nbtrack.set_tracking_uri(None)
    monkeypatch.setenv("NBTRACK_TRACKING_URI", uri)
    with pytest.raises(NbtrackError, match="holds a password"):
        nbtrack.Client()
    assert main(["--tracking-uri", uri, "runs"]) == 1


def test_an_unreachable_catalog_says_what_to_check(tmp_path):
    import socket

    import nbtrack

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = (f"ducklake:postgresql://ana@127.0.0.1:{port}/team?data={tmp_path}"
           f"&spool={tmp_path}/local")
    with pytest.raises(ducklake_store.TeamStoreUnreachableError,
                       match=r"could not be reached: .*Connection refused.*pgpass"):
        nbtrack.Client(tracking_uri=uri)


def test_a_missing_extension_package_says_what_to_install(tmp_path, monkeypatch):
    import nbtrack

    monkeypatch.setitem(lake_extensions.PACKAGES, "ducklake", "duckdb-extension-nowhere")
    uri = f"ducklake:postgresql://ana@127.0.0.1/team?data={tmp_path}&spool={tmp_path}/local"
    with pytest.raises(lake_extensions.ExtensionMissingError,
                       match=r'pip install "nbtrack\[team\]"'):
        nbtrack.Client(tracking_uri=uri)


def test_a_missing_data_folder_says_to_mount_it(tmp_path):
    import nbtrack

    uri = f"ducklake:postgresql://ana@127.0.0.1/team?data={tmp_path}/nowhere"
    with pytest.raises(ducklake_store.TeamStoreURIError, match="does not exist on this machine"):
        nbtrack.Client(tracking_uri=uri)


@pytest.mark.slow
def test_a_catalog_never_initialised_is_refused_and_left_untouched(postgres_server,
                                                                   lake_uri, tmp_path):
    import nbtrack
    from nbtrack.cli import main

    (tmp_path / "shared").mkdir()
    database = lake_uri.split("/")[3].split("?")[0]
    with pytest.raises(ducklake_store.TeamStoreMissingError, match="nbtrack team init"):
        nbtrack.Client(tracking_uri=lake_uri)
    for command in (["runs"], ["experiments"], ["models"], ["sql", "SELECT 1"]):
        assert main(["--tracking-uri", lake_uri, *command]) == 1
    assert postgres_server.psql("SELECT count(*) FROM information_schema.tables WHERE "
                                "table_schema = 'public'", database=database) == "0"
    assert list((tmp_path / "shared").iterdir()) == []
    # a DuckLake without nbtrack's tables is refused too, and nothing is added to it
    conn = plain_connection()
    lake_extensions.load(conn)
    conn.execute(f"ATTACH 'ducklake:postgres:{postgres_server.libpq(database)}' AS l "
                 f"(DATA_PATH '{tmp_path}/shared/')")
    conn.close()
    with pytest.raises(ducklake_store.TeamStoreMissingError, match="no nbtrack tables"):
        nbtrack.Client(tracking_uri=lake_uri)
    assert main(["--tracking-uri", lake_uri, "runs"]) == 1
    tables = postgres_server.psql("SELECT count(*) FROM information_schema.tables WHERE "
                                  "table_schema = 'public'", database=database)
    ducklake_store.DuckLakeStore(lake_uri, create=True).close()
    assert int(postgres_server.psql("SELECT count(*) FROM information_schema.tables WHERE "
                                    "table_schema = 'public'", database=database)) > int(tables)


def run_in_processes(script: str, argument_lists: list[list[str]]) -> list[str]:
    """Run ``script`` in one process per argument list, all at once; return their outputs."""
    children = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *arguments],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for arguments in argument_lists]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err
        outputs.append(out)
    return outputs


def machine_uri(lake_uri: str, tmp_path, name: str) -> str:
    """The lake's URI as a machine of its own sees it: its own spool folder."""
    return lake_uri.replace(f"spool={tmp_path}/local", f"spool={tmp_path}/{name}")


@pytest.mark.slow
def test_version_numbers_stay_unique_and_contiguous_across_machines(lake_uri, tmp_path):
    script = """
        import sys
        from nbtrack.store.ducklake_store import DuckLakeStore
        store = DuckLakeStore(sys.argv[1])
        print([store.create_model_version("raced", "src", None).version for _ in range(4)])
        store.close()
    """
    ducklake_store.DuckLakeStore(lake_uri, create=True).close()  # as `nbtrack team init` does
    outputs = run_in_processes(script, [[machine_uri(lake_uri, tmp_path, f"m{i}")]
                                        for i in range(3)])
    numbers = sorted(n for out in outputs for n in json.loads(out))
    assert numbers == list(range(1, 13))
    store = ducklake_store.DuckLakeStore(lake_uri)
    try:
        assert len(store.search_registered_models(None, None, None)) == 1  # made once
        versions = store.search_model_versions("name = 'raced'", None, None)
        assert sorted(v.version for v in versions) == list(range(1, 13))
    finally:
        store.close()


@pytest.mark.slow
def test_machines_logging_at_once_lose_nothing(lake_uri, tmp_path):
    store = ducklake_store.DuckLakeStore(lake_uri, create=True)
    exp = store.create_experiment("busy")
    script = """
        import sys
        from nbtrack.entities import RunSource
        from nbtrack.store.base import NewRun
        from nbtrack.store.ducklake_store import DuckLakeStore
        store, name, exp = DuckLakeStore(sys.argv[1]), sys.argv[2], sys.argv[3]
        for r in range(2):
            run_id = f"{name}-{r}"
            store.create_run(NewRun(run_id=run_id, experiment_id=exp, run_name=run_id,
                                    user_id=name, start_time=1, parent_run_id=None,
                                    description=None, source=RunSource(type="LOCAL", name="x"),
                                    pid=None))
            store.add_params(run_id, [("machine", name)])
            for step in range(300):
                store.add_metric(run_id, "loss", float(step), step, step)
            store.set_tags(run_id, [("machine", name)])
            store.update_run(run_id, status="FINISHED", end_time=2)
        store.close()
    """
    try:
        run_in_processes(script, [[machine_uri(lake_uri, tmp_path, f"m{i}"), f"m{i}", exp]
                                  for i in range(3)])
        runs, _ = store.search_runs([exp], "attributes.status = 'FINISHED'", 1, 100, None, None)
        assert len(runs) == 6
        for run in runs:
            machine = run.info.run_id.split("-")[0]
            assert run.data.params == {"machine": machine}
            assert run.data.tags["machine"] == machine
            assert run.data.metrics["loss"] == 299.0
            assert len(store.get_metric_history(run.info.run_id, "loss")) == 300
        assert store.sql_rejects_count() == 0
    finally:
        store.close()


@pytest.mark.slow
def test_a_role_that_may_only_read_is_refused_with_the_missing_right(postgres_server,
                                                                    lake_uri, monkeypatch):
    ducklake_store.DuckLakeStore(lake_uri, create=True).close()  # made by its owner
    database = lake_uri.split("/")[3].split("?")[0]
    reader, password = postgres_server.create_role("reader")
    postgres_server.psql(f'GRANT USAGE ON SCHEMA public TO "{reader}"; '
                         f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{reader}"',
                         database=database)
    monkeypatch.setenv("PGPASSWORD", password)
    store = ducklake_store.DuckLakeStore(
        lake_uri.replace(f"{postgres_server.user}@", f"{reader}@").replace("/local", "/reader"))
    try:
        assert store.get_experiment("0").name == "Default"  # reading is allowed
        with pytest.raises(lake_sql.LakePermissionError,
                           match="permission denied for table ducklake_"):
            store.create_experiment("not-mine")
        assert store.get_experiment_by_name("not-mine") is None
    finally:
        store.close()


@pytest.mark.slow
def test_the_lake_connection_reaches_no_file_but_the_lake(lake_uri, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for queries")
    store = ducklake_store.DuckLakeStore(lake_uri, create=True)
    try:
        store.create_run(new_run("r1", "0"))
        store.add_params("r1", [("depth", "3")])
        assert list(store.sql("SELECT run_id FROM runs")["run_id"]) == ["r1"]
        wide = store.sql("SELECT run_id, \"params.depth\" FROM runs_wide")
        assert wide.values.tolist() == [["r1", "3"]]
        with pytest.raises(NbtrackError, match="refused"):
            store.sql(f"SELECT * FROM read_text('{secret}')")
    finally:
        store.close()


# the exit path ------------------------------------------------------------------------------
EXITING = """
    import os, signal, sys, time
    import nbtrack
    nbtrack.set_tracking_uri(sys.argv[1])
    run = nbtrack.start_run(experiment_id="0", run_name=sys.argv[2])
    nbtrack.log_param("machine", sys.argv[2])
    for step in range(50):
        nbtrack.log_metric("loss", 1 / (step + 1), step=step)
    if sys.argv[3] == "kill":
        nbtrack.Client().sync()  # the durability point: every value is in this machine's spool
        os.kill(os.getpid(), signal.SIGKILL)
    nbtrack.end_run()
"""


@pytest.mark.slow
def test_a_process_that_exits_leaves_its_values_in_the_lake(lake_uri, tmp_path):
    ducklake_store.DuckLakeStore(lake_uri, create=True).close()
    machine = machine_uri(lake_uri, tmp_path, "laptop")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(EXITING), machine, "ends",
                           "exit"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # read from another machine, so only what the exit path merged is seen
    store = ducklake_store.DuckLakeStore(lake_uri)
    try:
        runs, _ = store.search_runs(["0"], "params.machine = 'ends'", 1, 10, None, None)
        assert [r.info.status for r in runs] == ["FINISHED"]
        assert len(store.get_metric_history(runs[0].info.run_id, "loss")) == 50
    finally:
        store.close()
    assert not any((tmp_path / "laptop" / "spool").glob("*.seg*"))  # all merged, none left


@pytest.mark.slow
def test_values_of_a_killed_process_are_merged_by_the_next_on_its_machine(lake_uri, tmp_path):
    ducklake_store.DuckLakeStore(lake_uri, create=True).close()
    machine = machine_uri(lake_uri, tmp_path, "node")
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(EXITING), machine, "killed",
                             "kill"], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    elsewhere = ducklake_store.DuckLakeStore(lake_uri)  # another machine sees nothing yet
    try:
        runs, _ = elsewhere.search_runs(["0"], "params.machine = 'killed'", 1, 10, None, None)
        assert runs == []
        later = subprocess.run([sys.executable, "-c", "import sys\nfrom nbtrack.store.ducklake_"
                                "store import DuckLakeStore\nDuckLakeStore(sys.argv[1]).close()",
                                machine], capture_output=True, text=True, timeout=300)
        assert later.returncode == 0, later.stderr
        runs, _ = elsewhere.search_runs(["0"], "params.machine = 'killed'", 1, 10, None, None)
        assert len(runs) == 1 and runs[0].info.status == "KILLED"  # its process is gone
        assert len(elsewhere.get_metric_history(runs[0].info.run_id, "loss")) == 50
    finally:
        elsewhere.close()


# artifacts ----------------------------------------------------------------------------------
LOG_MODEL = """
    import sys
    import numpy as np
    from sklearn.linear_model import LinearRegression
    import nbtrack, nbtrack.sklearn
    nbtrack.set_tracking_uri(sys.argv[1])
    X = np.arange(20, dtype=float).reshape(10, 2)
    with nbtrack.start_run(experiment_id="0") as run:
        nbtrack.sklearn.log_model(LinearRegression().fit(X, X @ [1.0, 2.0]), name="model",
                                  registered_model_name="shared-model")
        nbtrack.log_text("notes from the laptop", "notes/readme.txt")
    print(run.info.run_id)
"""


@pytest.mark.slow
def test_a_model_logged_on_one_machine_loads_on_another(lake_uri, tmp_path):
    import numpy as np

    import nbtrack
    import nbtrack.sklearn

    ducklake_store.DuckLakeStore(lake_uri, create=True).close()
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(LOG_MODEL),
                           machine_uri(lake_uri, tmp_path, "laptop")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[-1]
    # the files are in the shared data folder, none in the laptop's local folder
    shared = tmp_path / "shared" / "artifacts" / run_id
    assert (shared / "model" / "MLmodel").is_file()
    assert not any((tmp_path / "laptop").rglob("MLmodel"))
    nbtrack.set_tracking_uri(machine_uri(lake_uri, tmp_path, "server"))
    X = np.arange(20, dtype=float).reshape(10, 2)
    for uri in (f"runs:/{run_id}/model", "models:/shared-model/1"):
        np.testing.assert_allclose(nbtrack.sklearn.load_model(uri).predict(X), X @ [1.0, 2.0])
    client = nbtrack.Client()
    assert client.get_run(run_id).info.artifact_uri == str(shared)
    copy = Path(client.download_artifacts(run_id, "notes", str(tmp_path / "copy")))
    assert (copy / "readme.txt").read_text() == "notes from the laptop"
    assert {a.path for a in client.list_artifacts(run_id)} == {"model", "notes"}
    # paths never leave the run's folder in the shared folder
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    with pytest.raises(NbtrackError, match=r"outside|\.\."):
        client.log_artifact(run_id, str(outside), "../../escape")
    assert not (tmp_path / "shared" / "escape").exists()
    with pytest.raises(NbtrackError):
        client.download_artifacts(run_id, "../other-run", str(tmp_path / "copy2"))
