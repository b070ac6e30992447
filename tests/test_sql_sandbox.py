"""SQL over the store reaches no file outside it: nbtrack.sql, %track_sql, `nbtrack sql`, and
every query of the store's connection (the dashboards' and the CLI's reads go through it)."""

from pathlib import Path

import pytest

import nbtrack
from nbtrack.cli import main
from nbtrack.exceptions import InvalidValueError, NbtrackError


@pytest.fixture
def outside(tmp_path):
    """A folder outside the store with a CSV, a text file and a DuckDB database in it."""
    import duckdb

    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.csv").write_text("user,password\nroot,hunter2\n")
    (folder / "secret.txt").write_text("hunter2\n")
    with duckdb.connect(str(folder / "other.duckdb")) as conn:
        conn.execute("CREATE TABLE t AS SELECT 'hunter2' AS password")
    return folder


def _log_a_run():
    nbtrack.set_experiment("sandbox")
    with nbtrack.start_run(run_name="r"):
        nbtrack.log_param("alpha", 0.5)
        nbtrack.log_metric("rmse", 1.0)


READS = [
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_text('{dir}/secret.txt')",
    "SELECT * FROM read_csv('{dir}/secret.csv')",
    "SELECT * FROM read_csv_auto('{dir}/secret.csv')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM read_blob('{dir}/secret.txt')",
    "SELECT * FROM glob('{dir}/*')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM '{dir}/secret.csv'",
    "SELECT * FROM read_parquet('{dir}/*.parquet')",
    "SELECT * FROM read_json('{dir}/secret.txt')",
    "SELECT * FROM sniff_csv('{dir}/secret.csv')",
    "SELECT * FROM parquet_metadata('{dir}/x.parquet')",
    "SELECT * FROM (SELECT * FROM runs) r, read_text('{dir}/secret.txt')",
    "WITH s AS (SELECT * FROM read_csv('{dir}/secret.csv')) SELECT * FROM s",
]


@pytest.mark.parametrize("query", READS)
def test_sql_cannot_read_files(query, outside):
    _log_a_run()
    with pytest.raises(InvalidValueError) as raised:
        nbtrack.sql(query.format(dir=outside))
    message = str(raised.value)
    assert "hunter2" not in message and "root:" not in message
    assert "nbtrack.sql" in message
    assert "access to files" in message or "read-only SELECT" in message
    assert nbtrack.sql("SELECT count(*) AS n FROM runs")["n"][0] == 1  # the store still reads


WRITES_AND_OTHERS = [
    "COPY (SELECT * FROM runs) TO '{dir}/out.csv'",
    "COPY main.runs TO '{dir}/out.parquet' (FORMAT parquet)",
    "EXPORT DATABASE '{dir}/export'",
    "ATTACH '{dir}/other.duckdb' AS other",
    "ATTACH '{dir}/new.duckdb' AS new",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "CREATE TABLE x AS SELECT * FROM read_csv('{dir}/secret.csv')",
]


@pytest.mark.parametrize("query", WRITES_AND_OTHERS)
def test_sql_cannot_write_files_attach_or_load(query, outside):
    _log_a_run()
    before = sorted(p.name for p in outside.iterdir())
    with pytest.raises(InvalidValueError, match=r"nbtrack\.sql"):
        nbtrack.sql(query.format(dir=outside))
    assert sorted(p.name for p in outside.iterdir()) == before


def test_the_store_connection_itself_has_external_access_off(outside):
    """The setting is the database's, so every query on the store's connection is sandboxed:
    the dashboards' searches and the CLI's reads as much as nbtrack.sql."""
    _log_a_run()
    settings = nbtrack.sql("SELECT name, value FROM duckdb_settings() WHERE name IN "
                           "('enable_external_access', 'autoload_known_extensions', "
                           "'autoinstall_known_extensions')")
    assert dict(zip(settings["name"], settings["value"], strict=True)) == {
        "enable_external_access": "false",
        "autoload_known_extensions": "false",
        "autoinstall_known_extensions": "false",
    }


def test_the_store_still_writes_and_reads_everything(outside, tmp_path):
    """Arrow tables registered by the write path, the registry and artifacts still work."""
    nbtrack.set_experiment("sandbox")
    for i in range(3):
        with nbtrack.start_run(run_name=f"r{i}"):
            nbtrack.log_params({"alpha": i, "beta": "x"})
            for step in range(50):
                nbtrack.log_metric("loss", 1.0 / (step + 1), step=step)
            nbtrack.set_tag("kind", "test")
            artifact = tmp_path / f"note{i}.txt"
            artifact.write_text("hello")
            nbtrack.log_artifact(str(artifact))
    nbtrack.flush()
    frame = nbtrack.search_runs(experiment_names=["sandbox"], filter_string="params.alpha = '1'")
    assert len(frame) == 1
    assert nbtrack.sql("SELECT count(*) AS n FROM metrics")["n"][0] == 150
    client = nbtrack.Client()
    client.create_registered_model("m")
    assert client.get_registered_model("m").name == "m"
    wide = nbtrack.sql("SELECT count(*) AS n FROM runs_wide")
    assert wide["n"][0] == 3


def test_track_sql_magic_is_sandboxed(outside, capsys):
    from IPython.testing import globalipapp

    globalipapp.start_ipython()
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "nbtrack")
    _log_a_run()
    for query in (f"SELECT * FROM read_text('{outside}/secret.txt')",
                  "SELECT * FROM read_blob('/etc/passwd')",
                  f"SELECT * FROM '{outside}/secret.csv'"):
        result = None
        try:
            result = shell.run_line_magic("track_sql", query)
        except NbtrackError as exc:  # raised, or shown as a message by the magic
            message = str(exc)
        else:
            message = capsys.readouterr().err
        assert result is None
        assert "hunter2" not in message and "root:" not in message
        assert "access to files" in message
    cell = shell.run_cell_magic("track_sql", "", "SELECT count(*) AS n\nFROM runs")
    assert cell["n"][0] == 1


def test_cli_sql_is_sandboxed(outside, store_dir, capsys):
    _log_a_run()
    nbtrack.flush()
    for query in (f"SELECT * FROM read_csv('{outside}/secret.csv')",
                  "SELECT * FROM glob('/etc/*')",
                  f"COPY main.runs TO '{outside}/out.csv'"):
        code = main(["--tracking-uri", str(store_dir), "sql", query])
        captured = capsys.readouterr()
        assert code != 0
        assert "hunter2" not in captured.out + captured.err
        assert "passwd" not in captured.out
    assert not Path(outside, "out.csv").exists()


def test_filters_bind_values_so_they_cannot_reach_files(outside):
    """The dashboards' filter box goes through search_runs; a value is a value, not SQL."""
    _log_a_run()
    hostile = f"params.alpha = '0.5'' OR read_text(''{outside}/secret.txt'') = '''"
    try:
        frame = nbtrack.search_runs(experiment_names=["sandbox"], filter_string=hostile)
    except NbtrackError as exc:
        assert "hunter2" not in str(exc)
    else:
        assert len(frame) == 0


def test_lock_down_keeps_a_backends_data_folder_and_refuses_the_rest(tmp_path, outside):
    """What a backend that attaches its catalog itself (DuckLake) calls once attached."""
    import duckdb

    from nbtrack.store import sandbox

    data = tmp_path / "lake data"
    data.mkdir()
    conn = duckdb.connect()
    conn.execute(f"ATTACH '{tmp_path / 'catalog.duckdb'}' AS lake")
    conn.execute("USE lake")
    sandbox.lock_down(conn, [str(data)])
    conn.execute("CREATE TABLE t AS SELECT 1 AS x")
    conn.execute(f"COPY t TO '{data / 'part.parquet'}'")
    assert conn.execute(f"SELECT x FROM read_parquet('{data / 'part.parquet'}')").fetchall() == [
        (1,)]
    for query in (f"SELECT * FROM read_text('{outside}/secret.txt')",
                  f"SELECT * FROM read_text('{data}/../outside/secret.txt')",
                  "SELECT * FROM read_blob('/etc/passwd')"):
        with pytest.raises(duckdb.PermissionException):
            conn.execute(query)
    with pytest.raises(duckdb.InvalidInputException):
        conn.execute("SET allowed_directories = ['/']")
    conn.close()
