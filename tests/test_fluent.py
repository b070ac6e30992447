import json
from pathlib import Path

import pytest

import nbtrack
from nbtrack.exceptions import NbtrackError


def test_start_run_context_manager_logs_and_finishes():
    nbtrack.set_experiment("nyc-taxi")
    with nbtrack.start_run(run_name="lasso", tags={"team": "ml"}, description="d") as run:
        assert nbtrack.active_run().run_id == run.info.run_id
        nbtrack.log_param("alpha", 0.1)
        nbtrack.log_params({"model": "lasso", "n": 3})
        nbtrack.log_metric("rmse", 4.0, step=0)
        nbtrack.log_metric("rmse", 3.5, step=1)
        nbtrack.log_metrics({"mae": 2.0, "r2": 0.8}, step=1)
        nbtrack.set_tag("stage", "dev")
        nbtrack.set_tags({"x": 1})
    assert nbtrack.active_run() is None
    got = nbtrack.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.info.end_time >= got.info.start_time
    assert got.info.run_name == "lasso" and got.info.description == "d"
    assert got.data.params == {"alpha": "0.1", "model": "lasso", "n": "3"}
    assert got.data.metrics == {"rmse": 3.5, "mae": 2.0, "r2": 0.8}
    tags = got.data.tags
    assert {k: v for k, v in tags.items() if not k.startswith("mlflow.")} == {
        "team": "ml", "stage": "dev", "x": "1"}
    assert tags["mlflow.runName"] == "lasso" and tags["mlflow.note.content"] == "d"
    assert got.info.experiment_id == nbtrack.get_experiment_by_name("nyc-taxi").experiment_id
    assert nbtrack.last_active_run().info.run_id == run.info.run_id


def test_run_source_is_captured():
    with nbtrack.start_run() as run:
        pass
    got = nbtrack.get_run(run.info.run_id)
    assert got.info.user_id
    assert got.source.host and got.source.python_version and got.source.platform
    assert got.source.type in ("SCRIPT", "INTERACTIVE")
    assert got.source.env_hash
    env = nbtrack.Client().store.get_environment(got.source.env_hash)
    assert "duckdb" in env["packages"]


def test_failing_block_keeps_values_and_marks_failed():
    with pytest.raises(ZeroDivisionError), nbtrack.start_run() as run:
        nbtrack.log_param("alpha", 1)
        for step in range(3):
            nbtrack.log_metric("loss", 1.0 / (step + 1), step=step)
        raise ZeroDivisionError("midway")
    got = nbtrack.get_run(run.info.run_id)
    assert got.info.status == "FAILED"
    assert got.data.params == {"alpha": "1"}
    assert len(nbtrack.Client().get_metric_history(run.info.run_id, "loss")) == 3


def test_keyboard_interrupt_marks_killed():
    with pytest.raises(KeyboardInterrupt), nbtrack.start_run() as run:
        nbtrack.log_metric("loss", 1.0)
        raise KeyboardInterrupt
    got = nbtrack.get_run(run.info.run_id)
    assert got.info.status == "KILLED"
    assert got.data.metrics == {"loss": 1.0}


def test_nested_runs_and_the_active_stack():
    with nbtrack.start_run(run_name="parent") as parent:
        with pytest.raises(NbtrackError, match="nested=True"):
            nbtrack.start_run()
        with nbtrack.start_run(run_name="child", nested=True) as child:
            assert nbtrack.active_run().run_id == child.info.run_id
        assert nbtrack.active_run().run_id == parent.info.run_id
    assert nbtrack.get_run(child.info.run_id).info.parent_run_id == parent.info.run_id
    frame = nbtrack.search_runs(filter_string=f"parent_run_id = '{parent.info.run_id}'")
    assert list(frame["run_name"]) == ["child"]


def test_logging_without_a_run_starts_one_implicitly():
    nbtrack.log_metric("m", 1.0)
    run = nbtrack.active_run()
    assert run is not None
    nbtrack.log_param("p", "v")
    nbtrack.end_run()
    got = nbtrack.get_run(run.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.metrics == {"m": 1.0} and got.data.params == {"p": "v"}


def test_end_run_status_and_resume():
    run = nbtrack.start_run()
    nbtrack.end_run("KILLED")
    assert nbtrack.get_run(run.run_id).info.status == "KILLED"
    with nbtrack.start_run(run_id=run.run_id):
        assert nbtrack.get_run(run.run_id).info.status == "RUNNING"
        nbtrack.log_metric("late", 1)
    assert nbtrack.get_run(run.run_id).info.status == "FINISHED"
    with pytest.raises(ValueError, match="Unknown run status"):
        nbtrack.start_run()
        nbtrack.end_run("NOPE")
    nbtrack.end_run()


def test_set_experiment_returns_it_and_creates_once():
    first = nbtrack.set_experiment("a")
    second = nbtrack.set_experiment("a")
    assert first.experiment_id == second.experiment_id and first.name == "a"
    assert nbtrack.set_experiment(experiment_id=first.experiment_id).name == "a"
    with pytest.raises(NbtrackError, match="exactly one"):
        nbtrack.set_experiment()
    eid = nbtrack.create_experiment("b")
    assert nbtrack.get_experiment(eid).name == "b"
    assert {e.name for e in nbtrack.search_experiments()} == {"Default", "a", "b"}
    nbtrack.delete_experiment(eid)
    assert {e.name for e in nbtrack.search_experiments()} == {"Default", "a"}


def test_experiment_from_environment(monkeypatch):
    monkeypatch.setenv("NBTRACK_EXPERIMENT_NAME", "from-env")
    with nbtrack.start_run() as run:
        pass
    assert nbtrack.get_experiment(run.info.experiment_id).name == "from-env"


def test_artifacts_text_dict_and_files(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "x.txt").write_text("x")
    (folder / "sub" / "y.txt").write_text("y")
    with nbtrack.start_run() as run:
        nbtrack.log_artifact(data)
        nbtrack.log_artifact(data, artifact_path="inputs")
        nbtrack.log_artifacts(folder, artifact_path="bundle")
        nbtrack.log_text("hello", "notes/readme.txt")
        nbtrack.log_dict({"a": 1}, "config.json")
        uri = nbtrack.get_artifact_uri()
    client = nbtrack.Client()
    run_id = run.info.run_id
    top = {f.path: f for f in client.list_artifacts(run_id)}
    assert set(top) == {"bundle", "inputs", "notes", "config.json", "data.csv"}
    assert top["bundle"].is_dir and not top["data.csv"].is_dir
    assert top["data.csv"].file_size == 8 and len(top["data.csv"].sha256) == 64
    assert [f.path for f in client.list_artifacts(run_id, "bundle")] == ["bundle/sub",
                                                                         "bundle/x.txt"]
    local = client.download_artifacts(run_id, "config.json", tmp_path / "out")
    assert json.loads(Path(local).read_text()) == {"a": 1}
    folder_copy = client.download_artifacts(run_id, "bundle", tmp_path / "out2")
    assert (Path(folder_copy) / "sub" / "y.txt").read_text() == "y"
    assert uri.endswith(run_id)
    index = nbtrack.sql("SELECT path, file_size FROM artifacts ORDER BY path")
    assert "bundle/sub/y.txt" in list(index["path"])


def test_log_figure_matplotlib_and_plotly():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    with nbtrack.start_run() as run:
        nbtrack.log_figure(fig, "curve.png")
        nbtrack.log_figure(go.Figure(go.Scatter(y=[1, 3, 2])), "curve.html")
        nbtrack.log_figure(go.Figure(go.Scatter(y=[1, 3, 2])), "curve.json")
        with pytest.raises(NbtrackError, match="suffix"):
            nbtrack.log_figure(fig, "curve")
        with pytest.raises(NbtrackError, match="matplotlib or plotly"):
            nbtrack.log_figure(object(), "x.png")
    files = {f.path: f for f in nbtrack.Client().list_artifacts(run.info.run_id)}
    assert files["curve.png"].file_size > 1000
    png = nbtrack.Client().artifact_path(run.info.run_id) / "curve.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "plotly" in (nbtrack.Client().artifact_path(run.info.run_id) / "curve.html").read_text()


def test_log_input_records_content_digests(tmp_path):
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"x": [1, 2, 3], "y": [0.1, 0.2, 0.3]})
    path = tmp_path / "trips.csv"
    frame.to_csv(path)
    with nbtrack.start_run() as run:
        first = nbtrack.log_input(frame, context="training", name="trips")
        nbtrack.log_input(path, context="raw")
        nbtrack.log_input(np.arange(5), name="ids")
        with pytest.raises(NbtrackError, match="cannot fingerprint"):
            nbtrack.log_input({"a": 1})
    same = nbtrack.Client().log_input(run.info.run_id, frame.copy(), name="trips")
    changed = frame.copy()
    changed.loc[0, "x"] = 99
    other = nbtrack.Client().log_input(run.info.run_id, changed, name="trips")
    assert same["digest"] == first["digest"] != other["digest"]
    inputs = nbtrack.get_run(run.info.run_id).inputs.dataset_inputs
    assert {(i.dataset.name, i.context) for i in inputs} >= {
        ("trips", "training"), ("trips.csv", "raw"), ("ids", None)
    }
    found = nbtrack.search_runs(filter_string="dataset.name = 'trips' AND dataset.context = "
                                              "'training'")
    assert list(found["run_id"]) == [run.info.run_id]


def test_delete_run_and_view_types():
    with nbtrack.start_run() as run:
        pass
    nbtrack.delete_run(run.info.run_id)
    assert nbtrack.search_runs().empty
    deleted = nbtrack.search_runs(run_view_type=nbtrack.ViewType.DELETED_ONLY)
    assert list(deleted["run_id"]) == [run.info.run_id]


def test_search_runs_errors():
    with pytest.warns(UserWarning, match="No experiment named 'missing'"):
        assert nbtrack.search_runs(experiment_names=["missing"]).empty  # as in MLflow
    with pytest.raises(NbtrackError, match="output_format"):
        nbtrack.search_runs(output_format="json")
    with pytest.raises(NbtrackError, match="position"):
        nbtrack.search_runs(filter_string="metrics.x >")


def test_mlflow_names_exist():
    from nbtrack.entities import ViewType

    for name in ("set_tracking_uri", "get_tracking_uri", "set_experiment", "create_experiment",
                 "get_experiment_by_name", "search_experiments", "start_run", "active_run",
                 "end_run", "log_param", "log_params", "log_metric", "log_metrics", "set_tag",
                 "set_tags", "log_artifact", "log_artifacts", "log_text", "log_dict",
                 "log_figure", "log_input", "search_runs", "get_run", "delete_run"):
        assert callable(getattr(nbtrack, name)), name
    for name in ("get_metric_history", "set_terminated", "restore_run", "list_artifacts",
                 "download_artifacts", "search_runs", "log_batch", "create_run"):
        assert callable(getattr(nbtrack.Client, name)), name
    assert (ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL) == (1, 2, 3)
    assert ViewType.from_string("all") == ViewType.ALL


def test_synchronous_and_run_id_arguments():
    with nbtrack.start_run() as first:
        pass
    store = nbtrack.Client().store
    with nbtrack.start_run() as second:
        nbtrack.log_metric("async", 1.0)
        nbtrack.log_metric("sync", 2.0, synchronous=True)
        assert not store.has_unwritten()
        nbtrack.log_param("p", 1, synchronous=True)
        nbtrack.set_tag("t", "v", synchronous=True)
        assert not store.has_unwritten()
        nbtrack.log_metric("elsewhere", 3.0, run_id=first.info.run_id)
        nbtrack.log_metrics({"a": 1.0, "b": 2.0}, step=3, run_id=first.info.run_id,
                            synchronous=True)
        nbtrack.log_params({"q": "x"}, run_id=first.info.run_id)
    assert nbtrack.get_run(second.info.run_id).data.metrics == {"async": 1.0, "sync": 2.0}
    got = nbtrack.get_run(first.info.run_id)
    assert got.data.metrics == {"elsewhere": 3.0, "a": 1.0, "b": 2.0}
    assert got.data.params == {"q": "x"}
    assert nbtrack.Client().get_metric_history(first.info.run_id, "a")[0].step == 3


def test_active_runs_are_per_thread():
    import threading

    seen = {}
    with nbtrack.start_run() as main_run:
        def other():
            seen["before"] = nbtrack.active_run()
            with nbtrack.start_run() as theirs:  # no "already active" error: another thread
                seen["inside"] = nbtrack.active_run().run_id == theirs.run_id
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(30)
        assert nbtrack.active_run().run_id == main_run.run_id
    assert seen == {"before": None, "inside": True}


@pytest.mark.slow
def test_the_exit_path_ends_the_runs_of_every_thread():
    import subprocess
    import sys

    code = (
        "import threading, nbtrack, sys\n"
        "nbtrack.set_tracking_uri(sys.argv[1])\n"
        "started = threading.Event()\n"
        "def work():\n"
        "    r = nbtrack.start_run(run_name='in-thread'); nbtrack.log_metric('m', 1.0)\n"
        "    started.set()\n"
        "threading.Thread(target=work).start(); started.wait(30)\n"
        "nbtrack.start_run(run_name='in-main'); nbtrack.log_param('p', 'v')\n"
    )
    done = subprocess.run([sys.executable, "-c", code, nbtrack.get_tracking_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    runs = {r.info.run_name: r for r in nbtrack.search_runs(output_format="list")}
    assert {name: r.info.status for name, r in runs.items()} == {
        "in-thread": "FINISHED", "in-main": "FINISHED"}
    assert runs["in-thread"].data.metrics == {"m": 1.0}
    assert runs["in-main"].data.params == {"p": "v"}


def test_state_reset_forgets_runs_experiment_and_client():
    from nbtrack.tracking.state import state

    nbtrack.set_experiment("kept")
    nbtrack.start_run()
    client = state.client()
    state.reset()
    assert nbtrack.active_run() is None
    assert state.experiment_id is None and state.last_run_id is None
    assert state.client() is not client
