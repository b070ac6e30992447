"""The magics through IPython's in-process test shell: every option and the failure paths."""

from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp

import nbtrack
from nbtrack.magics.track import TrackConfig


@pytest.fixture
def ip(store_dir):
    globalipapp.start_ipython()  # once per process; later calls do nothing
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "nbtrack")
    magics = shell.magics_manager.registry["TrackMagics"]
    magics.config_ = TrackConfig()
    magics._experiment_set = None
    for name in ("alpha", "rmse", "model", "x", "label", "helper", "Thing", "loss"):
        shell.user_ns.pop(name, None)
    shell.user_ns["nbtrack"] = nbtrack  # as a notebook's `import nbtrack` would
    yield shell
    while nbtrack.active_run():
        nbtrack.end_run()


def track(ip, line, cell):
    return ip.run_cell_magic("track", line, cell)


def last_run():
    frame = nbtrack.search_runs(search_all_experiments=True, order_by=["start_time DESC"],
                                max_results=1)
    return nbtrack.get_run(frame["run_id"][0])


def test_cell_becomes_a_finished_run_with_its_values(ip, capsys):
    track(ip, "--experiment nyc-taxi --name lasso",
          "alpha = 0.1\nmodel = 'lasso'\nfor i in range(3):\n"
          "    nbtrack.log_metric('loss', 1 / (i + 1), step=i)\nrmse = 4.2\nprint('trained')")
    run = last_run()
    assert run.info.status == "FINISHED" and run.info.run_name == "lasso"
    assert nbtrack.get_experiment(run.info.experiment_id).name == "nyc-taxi"
    assert run.data.params == {"alpha": "0.1", "model": "lasso", "rmse": "4.2"}
    assert run.data.metrics == {"loss": pytest.approx(1 / 3)}
    assert len(nbtrack.Client().get_metric_history(run.info.run_id, "loss")) == 3
    assert ip.user_ns["rmse"] == 4.2  # variables stay defined
    assert run.source.code.startswith("alpha = 0.1")
    assert run.data.tags["nbtrack.execution_count"]
    out = capsys.readouterr().out
    assert out.index("trained") < out.index("nbtrack: run 'lasso'")  # summary after output


def test_experiment_persists_for_later_cells(ip):
    track(ip, "-e first", "pass")
    track(ip, "", "pass")
    assert nbtrack.get_experiment(last_run().info.experiment_id).name == "first"


def test_params_metrics_tags_and_artifacts_options(ip, tmp_path, capsys):
    (tmp_path / "plot.txt").write_text("p")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("a")
    ip.user_ns["np"] = __import__("numpy")
    track(ip, f"--params label,computed --metrics rmse,score --tags team=ml,stage=dev "
              f"--artifacts {tmp_path / 'plot.txt'} {tmp_path / 'out'}",
          "label = 'x' * 2\ncomputed = 3 * 7\nrmse = np.float32(0.5)\nscore = 0.25")
    run = last_run()
    assert run.data.params["label"] == "xx" and run.data.params["computed"] == "21"
    assert run.data.metrics == {"rmse": 0.5, "score": 0.25}
    assert "score" not in run.data.params  # a --metrics name is not an auto param
    assert run.data.tags["team"] == "ml" and run.data.tags["stage"] == "dev"
    files = {f.path for f in nbtrack.Client().list_artifacts(run.info.run_id)}
    assert files == {"plot.txt", "out"}


def test_bad_option_values_are_reported_not_fatal(ip, capsys):
    track(ip, "--params missing --metrics label --artifacts /no/such/file", "label = 'text'")
    err = capsys.readouterr().err
    assert "--params names 'missing'" in err
    assert "--metrics label" in err and "must be a number" in err
    assert "--artifacts /no/such/file" in err
    assert last_run().info.status == "FINISHED"


def test_malformed_options_are_usage_errors(ip):
    with pytest.raises(UsageError, match="key=value"):
        track(ip, "--tags oops", "pass")
    with pytest.raises(UsageError, match="not a variable name"):
        track(ip, "--params 'a-b'", "pass")


def test_no_auto_params_and_no_capture(ip):
    track(ip, "--no-auto-params --no-capture", "alpha = 0.5")
    run = last_run()
    assert run.data.params == {}
    assert run.source.code is None and run.source.env_hash is None
    assert run.source.git_commit is None


def test_failing_cell_keeps_values_records_traceback_and_raises(ip):
    with pytest.raises(ZeroDivisionError):
        track(ip, "-n broken", "alpha = 1\nnbtrack.log_metric('loss', 0.5)\n1 / 0")
    run = last_run()
    assert run.info.status == "FAILED"
    assert run.data.metrics == {"loss": 0.5} and run.data.params == {"alpha": "1"}
    assert run.data.tags["nbtrack.error"].startswith("ZeroDivisionError")
    local = nbtrack.Client().download_artifacts(run.info.run_id, "traceback.txt")
    assert "ZeroDivisionError" in Path(local).read_text()
    assert nbtrack.active_run() is None


def test_keyboard_interrupt_marks_killed(ip):
    with pytest.raises(KeyboardInterrupt):
        track(ip, "", "nbtrack.log_metric('loss', 1.0)\nraise KeyboardInterrupt")
    run = last_run()
    assert run.info.status == "KILLED" and run.data.metrics == {"loss": 1.0}


def test_rerun_starts_a_new_run_without_param_errors(ip):
    track(ip, "", "alpha = 0.1")
    first = last_run()
    track(ip, "", "alpha = 0.2")
    second = last_run()
    assert first.info.run_id != second.info.run_id
    assert second.data.params == {"alpha": "0.2"}


def test_cell_that_logs_a_param_itself_wins_over_auto_params(ip):
    track(ip, "", "alpha = 0.1\nnbtrack.log_param('alpha', 'tuned')")
    assert last_run().data.params == {"alpha": "tuned"}


def test_nested_cell_runs(ip):
    parent = nbtrack.start_run(run_name="outer")
    with pytest.raises(UsageError, match="--nested"):
        track(ip, "", "pass")
    track(ip, "--nested -n inner", "pass")
    nbtrack.end_run()
    inner = nbtrack.search_runs(search_all_experiments=True, filter_string="run_name = 'inner'")
    assert inner["parent_run_id"][0] == parent.run_id


def test_functions_and_classes_defined_in_a_tracked_cell_work_later(ip):
    track(ip, "", "def helper(v):\n    return v * 2\nclass Thing:\n    size = 3")
    ip.run_cell("result = helper(Thing.size)")
    assert ip.user_ns["result"] == 6


def test_last_expression_is_displayed(ip, capsys):
    track(ip, "", "alpha = 21\nalpha * 2")
    out = capsys.readouterr().out
    assert "42" in out
    assert out.index("42") < out.index("nbtrack: run")
    assert ip.user_ns["_"] == 42


def test_ipython_syntax_inside_a_tracked_cell(ip):
    track(ip, "", "x = 5\n%time y = x + 1")
    assert ip.user_ns["y"] == 6


def test_two_tracked_cells_in_a_row(ip):
    track(ip, "-n one", "alpha = 1")
    track(ip, "-n two", "alpha = 2")
    frame = nbtrack.search_runs(search_all_experiments=True, order_by=["start_time"])
    assert list(frame["run_name"])[-2:] == ["one", "two"]
    assert list(frame["status"])[-2:] == ["FINISHED", "FINISHED"]


def test_track_config(ip, capsys, tmp_path):
    ip.run_line_magic("track_config", f"-e configured --no-auto-params --no-summary "
                                      f"--tracking-uri {tmp_path / 'elsewhere'}")
    printed = capsys.readouterr().out
    assert "configured" in printed and "auto params:  off" in printed
    track(ip, "", "alpha = 3")
    run = last_run()
    assert run.data.params == {}
    assert nbtrack.get_experiment(run.info.experiment_id).name == "configured"
    assert "nbtrack: run" not in capsys.readouterr().out
    assert (tmp_path / "elsewhere" / "store.duckdb").exists()
    with pytest.raises(UsageError, match="not both"):
        ip.run_line_magic("track_config", "--capture --no-capture")


def test_track_runs_and_track_sql(ip):
    track(ip, "-e looking -n a", "rmse = 1.0\nnbtrack.log_metric('rmse', rmse)")
    track(ip, "-e looking -n b", "rmse = 2.0\nnbtrack.log_metric('rmse', rmse)")
    frame = ip.run_line_magic("track_runs", "-e looking -f metrics.rmse > 1.5")
    assert list(frame["run_name"]) == ["b"]
    ordered = ip.run_line_magic("track_runs", "-e looking -o 'metrics.rmse DESC' --max 1")
    assert list(ordered["run_name"]) == ["b"]
    line = ip.run_line_magic("track_sql", "SELECT count(*) AS n FROM runs")
    assert line["n"][0] == 2
    cell = ip.run_cell_magic("track_sql", "", "SELECT run_name FROM runs\nORDER BY run_name")
    assert list(cell["run_name"]) == ["a", "b"]


def test_magic_help_is_available(ip):
    doc = ip.magics_manager.magics["cell"]["track"].__doc__
    for option in ("--experiment", "--params", "--metrics", "--artifacts", "--tags", "--nested",
                   "--no-capture", "--no-auto-params"):
        assert option in doc


def test_dataframes_named_in_the_cell_are_fingerprinted(ip, capsys, monkeypatch):
    import pandas as pd

    from nbtrack.magics import track as track_module

    ip.user_ns["trips"] = pd.DataFrame({"km": [1.0, 2.5], "minutes": [4, 9]})
    ip.user_ns["huge"] = pd.DataFrame({"a": range(10)})
    monkeypatch.setattr(track_module, "MAX_FINGERPRINT_CELLS", 5)
    ip.user_ns["small"] = pd.DataFrame({"a": [1]})
    track(ip, "", "n = len(small)\nmodel = 'x'")
    inputs = last_run().inputs.dataset_inputs
    assert [(i.dataset.name, i.context) for i in inputs] == [("small", "cell")]
    first_digest = inputs[0].dataset.digest
    track(ip, "", "rows = len(huge)")
    assert last_run().inputs.dataset_inputs == []
    assert "'huge' (10 cells) is too large" in capsys.readouterr().err
    ip.user_ns["small"] = pd.DataFrame({"a": [2]})
    track(ip, "", "n = len(small)")
    assert last_run().inputs.dataset_inputs[0].dataset.digest != first_digest
    track(ip, "--no-capture", "n = len(small)")
    assert last_run().inputs.dataset_inputs == []


def test_autolog_option_covers_that_cell_only(ip):
    import numpy as np

    from nbtrack.tracking import autolog

    rng = np.random.default_rng(0)
    ip.user_ns["X"] = rng.uniform(0, 1, (40, 2))
    ip.user_ns["y"] = ip.user_ns["X"] @ [2.0, 1.0]
    track(ip, "--autolog -n auto",
          "from sklearn.linear_model import Ridge\nalpha = 0.1\n"
          "model = Ridge(alpha=alpha * 2).fit(X, y)")
    run = last_run()
    assert run.data.params["alpha"] == "0.2"  # what the estimator used beats the literal
    assert run.data.params["solver"] == "auto"
    assert "training_r2_score" in run.data.metrics
    assert [f.path for f in nbtrack.Client().list_artifacts(run.info.run_id)] == [
        "model", "feature_importances.csv"]
    assert not autolog.enabled()  # only for that cell
    track(ip, "-n plain", "model = Ridge(alpha=3.0).fit(X, y)")
    assert "solver" not in last_run().data.params
