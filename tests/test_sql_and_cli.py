import subprocess
import sys

import pytest

import nbtrack
from nbtrack.cli import main
from nbtrack.exceptions import InvalidValueError


def _log_two_runs():
    nbtrack.set_experiment("cli")
    for alpha, rmse in ((0.1, 3.0), (1.0, 5.0)):
        with nbtrack.start_run(run_name=f"a{alpha}"):
            nbtrack.log_param("alpha", alpha)
            nbtrack.log_metric("rmse", rmse)
            nbtrack.log_metric("rmse", rmse - 1, step=1)


def test_sql_views():
    _log_two_runs()
    wide = nbtrack.sql("SELECT run_name, params['alpha'] AS alpha, metrics['rmse'] AS rmse, "
                       "experiment_name FROM runs ORDER BY rmse")
    assert list(wide["run_name"]) == ["a0.1", "a1.0"]
    assert list(wide["rmse"]) == [2.0, 4.0]
    assert set(wide["experiment_name"]) == {"cli"}
    history = nbtrack.sql("SELECT count(*) AS n FROM metrics WHERE key = ?", ["rmse"])
    assert history["n"][0] == 4
    for view in ("experiments", "params", "tags", "latest_metrics", "artifacts", "inputs",
                 "environments", "registered_models", "model_versions", "registry_events"):
        nbtrack.sql(f"SELECT * FROM {view} LIMIT 1")


@pytest.mark.parametrize("query", [
    "DELETE FROM runs",
    "DROP TABLE main.runs",
    "UPDATE main.params SET value = 'x'",
    "SELECT 1; DELETE FROM runs",
    "INSERT INTO main.tags VALUES ('a', 'b', 'c')",
    "ATTACH 'other.db'",
    "COPY main.runs TO 'out.csv'",
    "CREATE TABLE t AS SELECT 1",
])
def test_sql_cannot_change_the_store(query):
    _log_two_runs()
    with pytest.raises(InvalidValueError, match="read-only SELECT"):
        nbtrack.sql(query)
    assert nbtrack.sql("SELECT count(*) AS n FROM runs")["n"][0] == 2
    assert nbtrack.sql("SELECT count(*) AS n FROM params")["n"][0] == 2


def test_sql_errors_are_clear():
    with pytest.raises(InvalidValueError, match=r"nbtrack\.sql"):
        nbtrack.sql("SELECT nosuch FROM runs")
    # the search path is restored afterwards: the store still works
    _log_two_runs()
    assert len(nbtrack.search_runs(experiment_names=["cli"])) == 2


def test_cli_runs_experiments_and_sql(capsys, store_dir):
    _log_two_runs()
    nbtrack.flush()
    assert main(["--tracking-uri", str(store_dir), "experiments"]) == 0
    assert "cli" in capsys.readouterr().out
    assert main(["--tracking-uri", str(store_dir), "runs", "-e", "cli", "-f",
                 "metrics.rmse < 3", "-o", "metrics.rmse"]) == 0
    out = capsys.readouterr().out
    assert "a0.1" in out and "a1.0" not in out and "metrics.rmse" in out
    assert main(["--tracking-uri", str(store_dir), "runs", "-f", "metrics.rmse <"]) == 1
    assert "position" in capsys.readouterr().err
    assert main(["--tracking-uri", str(store_dir), "runs", "-f", "metrics.rmse > 100"]) == 0
    assert "No runs found" in capsys.readouterr().out
    assert main(["--tracking-uri", str(store_dir), "sql", "SELECT count(*) AS n FROM runs"]) == 0
    assert "2" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_demo_in_a_fresh_process(tmp_path):
    done = subprocess.run([sys.executable, "-m", "nbtrack.cli", "demo", "--runs", "3"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Logged 3 runs" in done.stdout
    assert done.stdout.count("FINISHED") == 3
    assert (tmp_path / ".nbtrack" / "store.duckdb").is_file()
    listed = subprocess.run([sys.executable, "-m", "nbtrack.cli", "runs"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert listed.stdout.count("FINISHED") == 3


def test_import_is_light():
    code = ("import sys, nbtrack; heavy = [m for m in ('duckdb', 'pandas', 'pyarrow', 'numpy', "
            "'plotly', 'anywidget', 'IPython') if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
