"""``nbtrack import-mlflow`` and ``export-mlflow`` on stores MLflow itself wrote.

The MLflow stores are made with MLflow's own client (sqlite and a ``mlruns/`` folder); the
round trip MLflow -> nbtrack -> MLflow compares every value MLflow reports.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import nbtrack
import nbtrack.pyfunc
import nbtrack.xgboost
from nbtrack.exceptions import NbtrackError
from nbtrack.interop import export_mlflow, import_mlflow

pytest.importorskip("mlflow")
import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType

X = pd.DataFrame({"a": np.arange(12.0), "b": np.arange(12.0) % 5})


class Tripler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input["a"] * 3

Y = X["a"] * 3 - X["b"]
T0 = 1_700_000_000_000


def make_mlflow_store(uri: str, folder) -> dict:
    """An MLflow store with what users keep in one: written by MLflow, returned as ids."""
    import mlflow
    import mlflow.sklearn

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("taxi", tags={"team": "ml"},
                                   artifact_location=(folder / "artifacts").as_uri())
    parent = client.create_run(exp, start_time=T0, run_name="parent",
                               tags={"mlflow.user": "alice", "mlflow.source.name": "train.py",
                                     "mlflow.source.type": "LOCAL", "kind": "baseline",
                                     "mlflow.note.content": "first try"})
    pid = parent.info.run_id
    client.log_batch(pid, params=[Param("alpha", "0.5"), Param("layers", "[64, 32]")],
                     metrics=[Metric("loss", 1.0 / (s + 1), T0 + 10 * s, s) for s in range(50)]
                     + [Metric("loss", 0.25, T0 + 7, 3), Metric("acc", float("nan"), T0, 0)])
    (folder / "notes").mkdir(exist_ok=True)
    (folder / "notes" / "readme.txt").write_text("hello from mlflow")
    client.log_artifact(pid, str(folder / "notes" / "readme.txt"), "docs/deep")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        dataset = mlflow.data.from_pandas(X, name="train-set")
        client.log_inputs(pid, [mlflow.entities.DatasetInput(
            dataset._to_mlflow_entity(),
            tags=[mlflow.entities.InputTag("mlflow.data.context", "training")])])
        model = LinearRegression().fit(X, Y)
        with mlflow.start_run(run_id=pid):
            info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(2),
                                            registered_model_name="taxi-model",
                                            pip_requirements=["scikit-learn"])
            legacy = folder / "legacy"
            mlflow.sklearn.save_model(model, str(legacy), serialization_format="cloudpickle",
                                      pip_requirements=["scikit-learn"])
            mlflow.log_artifacts(str(legacy), "legacy_model")
    finally:
        mlflow.set_tracking_uri(None)
    client.set_terminated(pid, "FINISHED", end_time=T0 + 5_000)
    child = client.create_run(exp, start_time=T0 + 100, run_name="child",
                              tags={"mlflow.parentRunId": pid})
    client.log_metric(child.info.run_id, "loss", 0.3, timestamp=T0 + 200, step=7)
    client.set_terminated(child.info.run_id, "FAILED", end_time=T0 + 300)
    gone = client.create_run(exp, start_time=T0 + 400, run_name="gone")
    client.log_param(gone.info.run_id, "p", "1")
    client.set_terminated(gone.info.run_id, "KILLED", end_time=T0 + 500)
    client.delete_run(gone.info.run_id)
    running = client.create_run(exp, start_time=T0 + 600, run_name="still-running")
    client.log_metric(running.info.run_id, "loss", 2.0, timestamp=T0 + 601, step=0)

    client.update_registered_model("taxi-model", "predicts fares")
    client.set_registered_model_tag("taxi-model", "domain", "transport")
    client.update_model_version("taxi-model", "1", "the first one")
    client.set_model_version_tag("taxi-model", "1", "validated", "yes")
    client.transition_model_version_stage("taxi-model", "1", "Staging")
    client.set_registered_model_alias("taxi-model", "champion", "1")
    client.create_registered_model("legacy")
    client.create_model_version("legacy", f"runs:/{pid}/legacy_model", pid)
    client.transition_model_version_stage("legacy", "1", "Production")
    old = client.create_experiment("old", artifact_location=(folder / "old").as_uri())
    client.create_run(old, start_time=T0, run_name="in-old")
    client.delete_experiment(old)
    return {"parent": pid, "child": child.info.run_id, "gone": gone.info.run_id,
            "running": running.info.run_id, "model_id": info.model_id, "model": model}


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    """An empty MLflow sqlite file, its tables made once: copies of it skip the migrations."""
    folder = tmp_path_factory.mktemp("mlflow-template")
    path = folder / "empty.db"
    # MLflow fixes its Default experiment's artifact folder (./mlruns) from the working folder:
    # make it here, not in the checkout
    before = os.getcwd()
    os.chdir(folder)
    try:
        MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    finally:
        os.chdir(before)
    return path


@pytest.fixture
def new_db(empty_db, tmp_path):
    """``new_db(name)``: the URI of a fresh MLflow sqlite store in the test's folder."""
    def make(name: str) -> str:
        shutil.copyfile(empty_db, tmp_path / name)
        return f"sqlite:///{tmp_path / name}"
    return make


@pytest.fixture(scope="module")
def sqlite_source(tmp_path_factory, empty_db):
    folder = tmp_path_factory.mktemp("mlflow-sqlite")
    shutil.copyfile(empty_db, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return uri, make_mlflow_store(uri, folder)


def run_values(client, run_id: str, history_keys=None) -> dict:
    """Everything MLflow's client (or nbtrack's, same names) reports about a run."""
    run = client.get_run(run_id)
    keys = history_keys or run.data.metrics
    histories = {k: sorted((m.step, m.timestamp, repr(float(m.value)))
                           for m in client.get_metric_history(run_id, k)) for k in keys}
    inputs = sorted((i.dataset.name, i.dataset.digest, i.dataset.source_type)
                    for i in run.inputs.dataset_inputs)
    return {"name": run.info.run_name, "status": run.info.status,
            "start": run.info.start_time, "end": run.info.end_time,
            "stage": run.info.lifecycle_stage, "params": dict(run.data.params),
            "tags": {k: v for k, v in run.data.tags.items() if k != "nbtrack.sourceRunId"},
            "histories": histories, "inputs": inputs}


def test_import_from_sqlite_copies_runs_models_and_registry(sqlite_source):
    uri, ids = sqlite_source
    summary = import_mlflow(uri, show_progress=False)
    client = nbtrack.Client()
    source = MlflowClient(tracking_uri=uri)
    parent = client.get_run(ids["parent"])  # MLflow's run id is kept
    assert parent.info.run_name == "parent" and parent.info.status == "FINISHED"
    assert (parent.info.start_time, parent.info.end_time) == (T0, T0 + 5_000)
    assert parent.info.user_id == "alice"
    assert parent.data.params == {"alpha": "0.5", "layers": "[64, 32]"}
    assert parent.data.tags["kind"] == "baseline"
    history = client.get_metric_history(ids["parent"], "loss")
    assert len(history) == 51
    assert sorted((m.step, m.timestamp, m.value) for m in history) == sorted(
        (m.step, m.timestamp, m.value) for m in source.get_metric_history(ids["parent"], "loss"))
    assert np.isnan(client.get_metric_history(ids["parent"], "acc")[0].value)
    [used] = parent.inputs.dataset_inputs
    assert (used.dataset.name, used.context) == ("train-set", "training")
    downloaded = client.download_artifacts(ids["parent"], "docs/deep/readme.txt")
    assert Path(downloaded).read_text() == "hello from mlflow"

    child = client.get_run(ids["child"])
    assert child.info.status == "FAILED" and child.info.parent_run_id == ids["parent"]
    assert client.get_run(ids["gone"]).info.lifecycle_stage == "deleted"
    assert client.get_run(ids["running"]).info.status == "RUNNING"
    old = client.get_experiment_by_name("old")
    assert old is not None and old.lifecycle_stage == "deleted"
    assert client.get_experiment_by_name("taxi").tags["team"] == "ml"

    # the registry, and a model MLflow registered loads through nbtrack
    registered = client.get_registered_model("taxi-model")
    assert registered.description == "predicts fares"
    assert registered.tags["domain"] == "transport"
    assert registered.aliases == {"champion": "1"} or registered.aliases == {"champion": 1}
    version = client.get_model_version("taxi-model", 1)
    assert version.current_stage == "Staging" and version.description == "the first one"
    assert version.tags["validated"] == "yes" and version.run_id == ids["parent"]
    expected = ids["model"].predict(X)
    for model_uri in ("models:/taxi-model/1", "models:/taxi-model@champion",
                      "models:/taxi-model/Staging", "models:/legacy/1"):
        np.testing.assert_allclose(nbtrack.pyfunc.load_model(model_uri).predict(X), expected)
    assert client.get_model_version("legacy", 1).current_stage == "Production"

    assert summary.copied["runs"] == 5 and summary.copied["experiments"] == 2
    assert summary.copied["metric values"] == 54
    assert summary.copied["model versions"] == 2 and summary.copied["aliases"] == 1
    assert summary.copied["models"] == 1 and summary.copied["artifact files"] >= 2
    assert "runs" in str(summary) and "copied" in str(summary)

    # again: nothing new is copied, nothing is doubled
    again = import_mlflow(uri, show_progress=False)
    assert sum(again.copied.values()) == 0, again
    assert again.present["runs"] == 5 and again.present["model versions"] == 2
    assert len(client.get_metric_history(ids["parent"], "loss")) == 51
    assert len(client.search_model_versions("name = 'taxi-model'")) == 1


def test_round_trip_mlflow_nbtrack_mlflow_keeps_every_value(sqlite_source, new_db):
    uri, ids = sqlite_source
    import_mlflow(uri, show_progress=False)
    dest = new_db("back.db")
    summary = export_mlflow(dest, show_progress=False)
    assert summary.copied["runs"] == 5, summary
    source, back = MlflowClient(tracking_uri=uri), MlflowClient(tracking_uri=dest,
                                                                 registry_uri=dest)
    exported = {r.data.tags["nbtrack.sourceRunId"]: r.info.run_id for r in back.search_runs(
        [e.experiment_id for e in back.search_experiments(view_type=ViewType.ALL)],
        run_view_type=ViewType.ALL)}
    assert set(exported) == {ids["parent"], ids["child"], ids["gone"], ids["running"]} | {
        r.info.run_id for r in source.search_runs(
            [source.get_experiment_by_name("old").experiment_id], run_view_type=ViewType.ALL)}
    for original, copy in exported.items():
        before, after = run_values(source, original), run_values(back, copy)
        if "mlflow.parentRunId" in before["tags"]:
            assert after["tags"]["mlflow.parentRunId"] == exported[
                before["tags"].pop("mlflow.parentRunId")]
            after["tags"].pop("mlflow.parentRunId")
        assert after == before, original
    for name in ("taxi", "old"):
        a, b = source.get_experiment_by_name(name), back.get_experiment_by_name(name)
        assert (a.lifecycle_stage, a.tags) == (b.lifecycle_stage, b.tags)
    for name in ("taxi-model", "legacy"):
        a, b = source.get_registered_model(name), back.get_registered_model(name)
        assert (a.description, a.tags, a.aliases) == (b.description, b.tags, b.aliases)
        va, vb = source.get_model_version(name, "1"), back.get_model_version(name, "1")
        assert (va.current_stage, va.description, va.tags) == \
               (vb.current_stage, vb.description, vb.tags)
        assert vb.run_id == exported[va.run_id]
    import mlflow.pyfunc

    mlflow.set_tracking_uri(dest)
    mlflow.set_registry_uri(dest)
    try:
        loaded = mlflow.pyfunc.load_model("models:/taxi-model/1")
    finally:
        mlflow.set_tracking_uri(None)
    np.testing.assert_allclose(loaded.predict(X), ids["model"].predict(X))
    # exporting again adds nothing
    again = export_mlflow(dest, show_progress=False)
    assert sum(again.copied.values()) == 0, again
    # and importing the exported store maps its runs back to nbtrack's ids
    back_in = import_mlflow(dest, show_progress=False)
    assert back_in.copied["runs"] == 0 and back_in.present["runs"] == 5, back_in
    assert sum(back_in.copied.values()) == 0, back_in
    assert nbtrack.Client().get_run(ids["child"]).data.tags["mlflow.parentRunId"] == ids["parent"]


@pytest.mark.slow
def test_import_from_a_mlruns_folder(tmp_path, monkeypatch):
    folder = tmp_path / "src"
    folder.mkdir()
    mlruns = folder / "mlruns"
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 discourages them
    ids = make_mlflow_store(mlruns.as_uri(), folder)
    summary = import_mlflow(str(mlruns), show_progress=False)
    assert summary.copied["runs"] == 5, summary
    client = nbtrack.Client()
    source = MlflowClient(tracking_uri=mlruns.as_uri())
    assert sorted((m.step, m.timestamp, m.value)
                  for m in client.get_metric_history(ids["parent"], "loss")) == sorted(
        (m.step, m.timestamp, m.value) for m in source.get_metric_history(ids["parent"], "loss"))
    np.testing.assert_allclose(nbtrack.pyfunc.load_model("models:/taxi-model/1").predict(X),
                               ids["model"].predict(X))
    assert sum(import_mlflow(str(mlruns), show_progress=False).copied.values()) == 0


def test_cli_import_and_export(sqlite_source, new_db, tmp_path, capsys):
    from nbtrack.cli import main

    uri, _ = sqlite_source
    assert main(["import-mlflow", uri, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Imported from" in out and "runs" in out
    assert main(["export-mlflow", new_db("out.db"), "--no-progress"]) == 0
    assert "Exported to" in capsys.readouterr().out
    assert main(["import-mlflow", str(tmp_path / "nothing-here")]) == 1
    assert "neither an MLflow store URI nor a folder" in capsys.readouterr().err


def test_a_missing_mlflow_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(NbtrackError, match="pip install mlflow"):
        import_mlflow(str(tmp_path), show_progress=False)


def test_import_skips_what_it_cannot_place_and_says_why(tmp_path, new_db):
    uri = new_db("odd.db")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("odd", artifact_location=(tmp_path / "a").as_uri())
    run = client.create_run(exp, run_name="r")
    client.log_batch(run.info.run_id, tags=[RunTag("ok", "1")])
    client.create_registered_model("elsewhere")
    client.create_model_version("elsewhere", "s3://bucket/some/model", None)
    summary = import_mlflow(uri, show_progress=False)
    assert ("model version", "elsewhere/1",
            "its source s3://bucket/some/model is not in a run that was imported") \
        in summary.skipped
    assert "Skipped:" in str(summary) and "elsewhere/1" in str(summary)


def test_a_tracking_servers_artifacts_are_read_from_its_artifact_root(tmp_path, new_db):
    """A server's store names artifacts mlflow-artifacts:/...; they are read from its folder."""
    uri = new_db("server.db")
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("served", artifact_location="mlflow-artifacts:/7")
    run = client.create_run(exp, run_name="r")
    assert run.info.artifact_uri == f"mlflow-artifacts:/7/{run.info.run_id}/artifacts"
    served = tmp_path / "mlartifacts" / "7" / run.info.run_id / "artifacts" / "plots"
    served.mkdir(parents=True)
    (served / "curve.csv").write_text("x,y\n1,2\n")
    summary = import_mlflow(uri, show_progress=False, artifact_root=tmp_path / "mlartifacts")
    assert summary.copied["artifact files"] == 1, summary
    local = nbtrack.Client().download_artifacts(run.info.run_id, "plots/curve.csv")
    assert Path(local).read_text() == "x,y\n1,2\n"


@pytest.fixture
def postgres_uri(postgres_server):
    """A database of its own on the session's PostgreSQL server, as an MLflow store URI."""
    pytest.importorskip("psycopg2")
    database = postgres_server.create_database("mlflow")
    return postgres_server.url(database).replace("postgresql://", "postgresql+psycopg2://", 1)


@pytest.mark.slow
def test_import_from_postgresql(postgres_uri, tmp_path):
    ids = make_mlflow_store(postgres_uri, tmp_path)
    summary = import_mlflow(postgres_uri, show_progress=False)
    assert summary.copied["runs"] == 5 and summary.copied["model versions"] == 2, summary
    client = nbtrack.Client()
    assert client.get_run(ids["parent"]).data.params == {"alpha": "0.5", "layers": "[64, 32]"}
    assert len(client.get_metric_history(ids["parent"], "loss")) == 51
    np.testing.assert_allclose(nbtrack.pyfunc.load_model("models:/taxi-model@champion")
                               .predict(X), ids["model"].predict(X))
    assert sum(import_mlflow(postgres_uri, show_progress=False).copied.values()) == 0


def test_an_nbtrack_model_exported_loads_in_mlflow_by_its_registered_name(new_db):
    import mlflow.pyfunc

    import nbtrack.sklearn

    model = LinearRegression().fit(X, Y)
    with nbtrack.start_run(run_name="native") as run:
        nbtrack.log_metric("rmse", 0.5)
        nbtrack.sklearn.log_model(model, name="model", input_example=X)
    nbtrack.register_model(f"runs:/{run.info.run_id}/model", "native-model")
    nbtrack.Client().set_registered_model_alias("native-model", "prod", 1)
    dest = new_db("dest.db")
    summary = export_mlflow(dest, show_progress=False)
    assert summary.copied["model versions"] == 1 and summary.copied["aliases"] == 1, summary
    mlflow.set_tracking_uri(dest)
    mlflow.set_registry_uri(dest)
    try:
        loaded = mlflow.pyfunc.load_model("models:/native-model@prod")
    finally:
        mlflow.set_tracking_uri(None)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))
    [copy] = MlflowClient(tracking_uri=dest).search_runs(
        [MlflowClient(tracking_uri=dest).get_experiment_by_name("Default").experiment_id])
    assert copy.data.tags["nbtrack.sourceRunId"] == run.info.run_id
    assert copy.data.metrics == {"rmse": 0.5} and copy.info.run_name == "native"


def test_the_progress_bar_shows_only_on_long_copies():
    from nbtrack.interop.source import progress

    bar = progress(500, "import-mlflow")
    try:
        assert bar.total == 500 and bar.delay >= 1.0  # nothing drawn in the first second
    finally:
        bar.close()


def test_an_active_nbtrack_experiment_is_not_deleted_by_an_import(sqlite_source):
    uri, _ = sqlite_source
    mine = nbtrack.Client().create_experiment("old")  # deleted in the MLflow store
    summary = import_mlflow(uri, show_progress=False)
    assert nbtrack.Client().get_experiment(mine).lifecycle_stage == "active"
    assert any("'old' is deleted in MLflow" in note for note in summary.notes)


def test_version_numbers_survive_deleted_versions_both_ways(new_db):
    source = new_db("gaps.db")
    client = MlflowClient(tracking_uri=source, registry_uri=source)
    exp = client.create_experiment("gaps")
    run = client.create_run(exp)
    folder = f"runs:/{run.info.run_id}/m"
    client.create_registered_model("gappy")
    for _ in range(4):
        client.create_model_version("gappy", folder, run.info.run_id)
    client.delete_model_version("gappy", "2")
    client.delete_model_version("gappy", "3")
    client.set_registered_model_alias("gappy", "best", "4")
    import_mlflow(source, show_progress=False)
    nb = nbtrack.Client()
    assert sorted(int(v.version) for v in nb.search_model_versions("name = 'gappy'")) == [1, 4]
    assert int(nb.get_model_version_by_alias("gappy", "best").version) == 4
    assert sum(import_mlflow(source, show_progress=False).copied.values()) == 0
    assert int(nb.get_model_version_by_alias("gappy", "best").version) == 4
    dest = new_db("gaps-back.db")
    export_mlflow(dest, show_progress=False)
    back = MlflowClient(tracking_uri=dest, registry_uri=dest)
    assert sorted(int(v.version) for v in back.search_model_versions("name = 'gappy'")) == [1, 4]
    assert int(back.get_model_version_by_alias("gappy", "best").version) == 4
    assert sum(export_mlflow(dest, show_progress=False).copied.values()) == 0
    assert int(back.get_model_version_by_alias("gappy", "best").version) == 4


def test_xgboost_and_custom_models_mlflow_logged_load_in_nbtrack_after_import(new_db):
    import mlflow.xgboost
    import xgboost

    uri = new_db("flavors.db")
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(X, label=Y), num_boost_round=3)
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment("flavors")
        with mlflow.start_run() as run:
            mlflow.xgboost.log_model(booster, name="booster", pip_requirements=["xgboost"],
                                     input_example=X.head(2))
            logged = mlflow.pyfunc.log_model(name="tripler", python_model=Tripler(),
                                             pip_requirements=["mlflow"])
    finally:
        mlflow.set_tracking_uri(None)
    # straight from MLflow's folder, and from the run after the import
    direct = nbtrack.pyfunc.load_model(
        MlflowClient(tracking_uri=uri).get_logged_model(logged.model_id).artifact_location)
    np.testing.assert_allclose(np.asarray(direct.predict(X)), X["a"] * 3)
    import_mlflow(uri, show_progress=False)
    run_id = run.info.run_id
    np.testing.assert_allclose(nbtrack.xgboost.load_model(f"runs:/{run_id}/booster")
                               .predict(xgboost.DMatrix(X)), booster.predict(xgboost.DMatrix(X)))
    np.testing.assert_allclose(nbtrack.pyfunc.load_model(f"runs:/{run_id}/booster").predict(X),
                               booster.predict(xgboost.DMatrix(X)), rtol=1e-6)
    tripled = nbtrack.pyfunc.load_model(f"runs:/{run_id}/tripler")
    np.testing.assert_allclose(np.asarray(tripled.predict(X)), X["a"] * 3)


def test_an_active_mlflow_experiment_is_not_deleted_by_an_export(new_db):
    dest = new_db("keep.db")
    MlflowClient(tracking_uri=dest).create_experiment("shared")
    client = nbtrack.Client()
    client.delete_experiment(client.create_experiment("shared"))
    summary = export_mlflow(dest, show_progress=False)
    assert MlflowClient(tracking_uri=dest).get_experiment_by_name(
        "shared").lifecycle_stage == "active"
    assert any("'shared' is deleted in nbtrack" in note for note in summary.notes)
