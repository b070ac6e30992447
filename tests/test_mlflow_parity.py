"""The same script against MLflow and against nbtrack gives the same answers.

Each scenario is written once, as MLflow code taking the ``mlflow`` module, and run on MLflow 3
(on a SQLite store in a temporary folder) and on nbtrack (``import nbtrack as mlflow``). Their
observations must be equal. This is the promise "switching is a change of import", tested.
"""

import pytest

import nbtrack

mlflow_module = pytest.importorskip("mlflow")

pytestmark = pytest.mark.slow  # MLflow's import and its SQLite schema take seconds


def outcome(call):
    """What a call gave: ``("ok", value)`` or ``("error", error_code)``."""
    try:
        return ("ok", call())
    except Exception as exc:  # both libraries' errors carry MLflow's error_code
        return ("error", getattr(exc, "error_code", type(exc).__name__))


def tracking_scenario(mlflow):
    client = mlflow.MlflowClient()
    seen = {}
    eid = client.create_experiment("first")
    client.create_experiment("second")
    seen["experiment order"] = [e.name for e in client.search_experiments()][:2]
    run = client.create_run(eid, run_name="lasso", tags={"mlflow.user": "alice", "team": "ml"})
    run_id = run.info.run_id
    got = client.get_run(run_id)
    seen["user"] = got.info.user_id
    seen["tag keys"] = sorted(k for k in got.data.tags
                              if k in ("mlflow.runName", "mlflow.user", "team"))
    seen["run name tag"] = got.data.tags["mlflow.runName"]
    client.set_tag(run_id, "mlflow.runName", "ridge")
    seen["renamed"] = client.get_run(run_id).info.run_name
    seen["by name tag"] = len(client.search_runs([eid], "tags.mlflow.runName = 'ridge'"))
    seen["by user"] = len(client.search_runs([eid], "attributes.user_id = 'alice'"))
    empty = client.search_runs([eid], "metrics.rmse > 100")
    seen["empty page"] = (empty == [], empty.token)
    for step in range(3):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), timestamp=1000 + step, step=step)
    seen["history"] = [(m.key, m.value, m.step, m.timestamp)
                       for m in client.get_metric_history(run_id, "loss")]
    client.log_param(run_id, "alpha", "0.1")
    seen["param change"] = outcome(lambda: client.log_param(run_id, "alpha", "0.2"))
    seen["unknown run"] = outcome(lambda: client.get_run("0" * 32))
    seen["unknown experiment"] = outcome(lambda: client.get_experiment("12345"))
    seen["duplicate experiment"] = outcome(lambda: client.create_experiment("first"))
    seen["max_results 0"] = outcome(lambda: client.search_runs([eid], max_results=0))
    seen["max_results 50001"] = outcome(lambda: client.search_runs([eid], max_results=50_001))
    seen["lifecycle filter"] = outcome(
        lambda: client.search_runs([eid], "attributes.lifecycle_stage = 'active'"))
    seen["quoted key"] = outcome(lambda: len(client.search_runs([eid], "params.'alpha' = '0.1'")))
    seen["long key"] = outcome(lambda: client.log_param(run_id, "k" * 251, 1))
    seen["missing tag"] = outcome(lambda: client.delete_tag(run_id, "nope"))
    client.set_terminated(run_id)
    with mlflow.start_run(run_id=run_id, run_name="resumed"):
        now = client.get_run(run_id)
        seen["resumed"] = (now.info.status, now.info.run_name)
    seen["after block"] = client.get_run(run_id).info.status
    seen["both descriptions"] = outcome(lambda: mlflow.start_run(
        experiment_id=eid, description="a", tags={"mlflow.note.content": "b"}))
    frame = mlflow.search_runs(experiment_names=["no such experiment"])
    seen["unknown names"] = (len(frame), "run_id" in frame.columns)
    frame = mlflow.search_runs([eid])
    seen["frame tags"] = sorted(c for c in frame.columns
                                if c in ("tags.mlflow.runName", "tags.mlflow.user", "tags.team"))
    seen["status names"] = (mlflow.entities.RunStatus.to_string(
        mlflow.entities.RunStatus.from_string("KILLED")))
    return seen


def registry_scenario(mlflow):
    client = mlflow.MlflowClient()
    seen = {}
    for name in ("a", "b", "c"):
        client.create_registered_model(name)
    page = client.search_registered_models(max_results=2)
    rest = client.search_registered_models(max_results=2, page_token=page.token)
    seen["pages"] = (len(page), bool(page.token), len(rest), rest.token)
    client.update_registered_model("a", description="")
    seen["empty description"] = client.get_registered_model("a").description
    seen["unknown model"] = outcome(lambda: client.get_registered_model("zzz"))
    seen["duplicate model"] = outcome(lambda: client.create_registered_model("a"))
    seen["too many"] = outcome(lambda: client.search_registered_models(max_results=1001))
    return seen


@pytest.fixture
def mlflow_store(tmp_path):
    """MLflow pointed at a new SQLite store in its own folder (and back after)."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield mlflow
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


@pytest.mark.parametrize("scenario", [tracking_scenario, registry_scenario])
def test_nbtrack_answers_as_mlflow_does(scenario, mlflow_store, monkeypatch):
    expected = scenario(mlflow_store)
    got = scenario(nbtrack)
    assert got == expected
