"""MLflow's documented behaviour of the tracking and registry API, checked on nbtrack.

Each test follows what MLflow 3 does for the same calls, so that ``import nbtrack as mlflow``
works on code written for MLflow.
"""

import time

import pytest

import nbtrack as mlflow
from nbtrack.entities import Metric, PagedList, RunStatus
from nbtrack.exceptions import MlflowException


# 1. system tags ----------------------------------------------------------------------------
def test_system_tags_are_in_the_run_and_searchable(client, experiment_id, request):
    run = client.create_run(experiment_id, run_name="lasso", tags={"mlflow.user": "alice"})
    run_id = run.info.run_id
    # on the team store a run's user is the PostgreSQL role that made it, whatever it says
    user = ("alice" if request.node.callspec.params.get("store_dir", "duckdb") == "duckdb"
            else request.getfixturevalue("postgres_server").user)
    tags = client.get_run(run_id).data.tags
    assert tags["mlflow.runName"] == "lasso" and tags["mlflow.user"] == user
    assert tags["mlflow.source.type"] == run.source.type  # SCRIPT, NOTEBOOK or INTERACTIVE
    assert tags.get("mlflow.source.name") == run.source.name  # absent for a bare shell
    assert run.data.tags["mlflow.runName"] == "lasso"  # the returned run too
    assert client.get_run(run_id).info.user_id == user
    assert [r.info.run_id for r in client.search_runs(
        [experiment_id], f"attributes.user_id = '{user}'")] == [run_id]
    assert len(client.search_runs([experiment_id], "tags.mlflow.runName = 'lasso'")) == 1
    assert len(client.search_runs([experiment_id], f"tags.mlflow.user != '{user}'")) == 0


def test_setting_a_system_tag_changes_the_run(client, experiment_id):
    parent = client.create_run(experiment_id).info.run_id
    run_id = client.create_run(experiment_id, run_name="old").info.run_id
    client.set_tag(run_id, "mlflow.runName", "new")
    client.set_tags(run_id, {"mlflow.note.content": "about it", "mlflow.parentRunId": parent})
    run = client.get_run(run_id)
    assert run.info.run_name == "new" and run.info.description == "about it"
    assert run.info.parent_run_id == parent
    assert run.data.tags["mlflow.runName"] == "new"
    assert [r.info.run_id for r in client.search_runs(
        [experiment_id], "tags.mlflow.runName = 'new'")] == [run_id]
    assert len(client.search_runs([experiment_id], "attributes.run_name = 'old'")) == 0
    client.delete_tag(run_id, "mlflow.note.content")
    assert client.get_run(run_id).info.description is None
    assert "mlflow.note.content" not in client.get_run(run_id).data.tags
    with pytest.raises(MlflowException, match="cannot be deleted"):
        client.delete_tag(run_id, "mlflow.runName")


def test_system_tags_are_dataframe_columns(experiment_id):
    with mlflow.start_run(experiment_id=experiment_id, run_name="a", description="first"):
        mlflow.log_metric("m", 1)
    with mlflow.start_run(experiment_id=experiment_id, run_name="b"):
        pass
    frame = mlflow.search_runs([experiment_id], order_by=["attributes.run_name ASC"])
    assert list(frame["tags.mlflow.runName"]) == ["a", "b"]
    assert frame["tags.mlflow.note.content"].tolist()[0] == "first"
    assert frame["tags.mlflow.note.content"].isna().tolist() == [False, True]
    assert "tags.mlflow.user" in frame.columns and "tags.mlflow.source.type" in frame.columns
    assert "tags.mlflow.parentRunId" not in frame.columns  # no run has one, as in MLflow


def test_run_name_argument_and_tag_must_agree(client, experiment_id):
    with pytest.raises(MlflowException, match=r"Both 'run_name' argument and 'mlflow\.runName'"):
        client.create_run(experiment_id, run_name="a", tags={"mlflow.runName": "b"})
    run = client.create_run(experiment_id, tags={"mlflow.runName": "b"})
    assert run.info.run_name == "b"
    with pytest.raises(MlflowException, match="Description is already set via the tag") as err:
        mlflow.start_run(experiment_id=experiment_id, description="a",
                         tags={"mlflow.note.content": "b"})
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert mlflow.active_run() is None


# 2. return types and shapes ----------------------------------------------------------------
def test_searches_return_paged_lists(client, experiment_id):
    for i in range(3):
        client.create_run(experiment_id, run_name=f"r{i}")
    empty = client.search_runs([experiment_id], "metrics.x > 1")
    assert isinstance(empty, list) and empty == [] and empty.token is None
    page = client.search_runs([experiment_id], max_results=2)
    assert isinstance(page, PagedList) and len(page) == 2 and page.token
    rest = client.search_runs([experiment_id], max_results=2, page_token=page.token)
    assert len(rest) == 1 and rest.token is None
    assert {r.info.run_id for r in page + rest} == {
        r.info.run_id for r in client.search_runs([experiment_id])}

    client.create_experiment("second")
    first = client.search_experiments(max_results=1)
    assert isinstance(first, list) and [e.name for e in first] == ["second"] and first.token
    assert [e.name for e in client.search_experiments(max_results=1, page_token=first.token)
            ] == ["exp"]

    for name in ("m1", "m2", "m3"):
        client.create_registered_model(name)
    models = client.search_registered_models(max_results=2)
    assert isinstance(models, PagedList) and len(models) == 2 and models.token
    more = client.search_registered_models(max_results=2, page_token=models.token)
    assert {m.name for m in models + more} == {"m1", "m2", "m3"} and more.token is None
    assert client.search_model_versions(page_token=None) == []


def test_experiments_come_newest_first(client):
    client.create_experiment("old")
    time.sleep(0.005)
    client.create_experiment("new")
    assert [e.name for e in client.search_experiments()] == ["new", "old", "Default"]
    assert [e.name for e in mlflow.search_experiments()] == ["new", "old", "Default"]


def test_metric_history_is_a_list_of_metrics(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    for step in range(3):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), timestamp=1000 + step, step=step)
    history = client.get_metric_history(run_id, "loss")
    assert isinstance(history, list)
    assert history == [Metric("loss", 1.0, 1000, 0), Metric("loss", 0.5, 1001, 1),
                       Metric("loss", 1.0 / 3, 1002, 2)]
    assert client.get_metric_history(run_id, "nothing") == []


def test_registry_versions_and_aliases_are_ints(client, tmp_path):
    from sklearn.linear_model import LinearRegression

    import nbtrack.sklearn

    with mlflow.start_run():
        nbtrack.sklearn.log_model(LinearRegression().fit([[0], [1]], [0, 1]), "model")
        uri = f"runs:/{mlflow.active_run().info.run_id}/model"
    version = mlflow.register_model(uri, "taxi")
    assert version.version == 1 and isinstance(version.version, int)
    client.set_registered_model_alias("taxi", "champion", "1")
    assert client.get_registered_model("taxi").aliases == {"champion": 1}
    assert client.get_model_version("taxi", 1).aliases == ["champion"]
    assert client.get_model_version_by_alias("taxi", "champion").version == 1
    assert [v.version for v in client.search_model_versions("name = 'taxi'")] == [1]


def test_an_emptied_description_is_an_empty_string(client):
    client.create_registered_model("m", description="about")
    client.update_registered_model("m", description="")
    assert client.get_registered_model("m").description == ""


def test_asynchronous_logging_returns_something_to_wait_on():
    with mlflow.start_run() as run:
        operations = [
            mlflow.log_metric("m", 1.0, synchronous=False),
            mlflow.log_metrics({"a": 1.0}, synchronous=False),
            mlflow.log_param("p", 1, synchronous=False),
            mlflow.log_params({"q": 2}, synchronous=False),
            mlflow.set_tag("t", "x", synchronous=False),
            mlflow.set_tags({"u": "y"}, synchronous=False),
        ]
        for operation in operations:
            operation.wait()
        assert mlflow.log_param("r", 3) == 3  # the default still returns the value
        assert mlflow.log_metric("n", 1.0) is None
    data = mlflow.get_run(run.info.run_id).data
    assert data.metrics == {"m": 1.0, "a": 1.0, "n": 1.0}
    assert data.params == {"p": "1", "q": "2", "r": "3"}


# 3. run lifecycle --------------------------------------------------------------------------
def test_resuming_a_run_renames_it_and_the_block_ends_it(client, experiment_id):
    run_id = client.create_run(experiment_id, run_name="first").info.run_id
    client.set_terminated(run_id)
    with mlflow.start_run(run_id=run_id, run_name="second") as active:
        run = client.get_run(run_id)
        assert run.info.status == "RUNNING" and run.info.run_name == "second"
        assert active.info.run_name == "second"
    assert client.get_run(run_id).info.status == "FINISHED"


def test_the_block_ends_its_run_matched_by_id(client, experiment_id):
    # a tool that ends the run and resumes it under a new ActiveRun, as some AutoML tools do
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.end_run()
        mlflow.start_run(run_id=run.info.run_id)
    assert mlflow.active_run() is None
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


def test_searching_unknown_experiment_names_finds_nothing(experiment_id):
    with mlflow.start_run(experiment_id=experiment_id):
        pass
    with pytest.warns(UserWarning, match="No experiment named 'unknown'"):
        frame = mlflow.search_runs(experiment_names=["unknown"])
    assert frame.empty and "run_id" in frame.columns
    with pytest.warns(UserWarning):
        assert len(mlflow.search_runs(experiment_names=["unknown", "exp"])) == 1


# 4. names ----------------------------------------------------------------------------------
def test_mlflow_names_resolve():
    import nbtrack.entities as entities
    import nbtrack.tracking

    assert nbtrack.tracking.MlflowClient is nbtrack.MlflowClient is nbtrack.Client
    assert nbtrack.MlflowException is MlflowException
    for name in ("ExperimentTag", "RunTag", "RegisteredModelTag", "ModelVersionTag", "InputTag"):
        tag = getattr(entities, name)("k", "v")
        assert (tag.key, tag.value) == ("k", "v")
    assert RunStatus.to_string(RunStatus.from_string("FINISHED")) == "FINISHED"
    assert RunStatus.from_string("KILLED") == 5 and RunStatus.to_string(1) == "RUNNING"
    assert RunStatus.is_terminated("FAILED") and not RunStatus.is_terminated("RUNNING")
    with pytest.raises(ValueError, match="Unknown run status"):
        RunStatus.to_string(9)


# 5. validation and errors ------------------------------------------------------------------
def test_max_results_limits(client, experiment_id):
    with pytest.raises(MlflowException, match="It must be a positive integer") as err:
        client.search_runs([experiment_id], max_results=0)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="It must be at most 50000"):
        client.search_runs([experiment_id], max_results=50_001)
    assert client.search_runs([experiment_id], max_results=50_000) == []
    with pytest.raises(MlflowException, match="at most 1000"):
        client.search_registered_models(max_results=1001)
    with pytest.raises(MlflowException, match="It must be at most 50000"):
        client.search_experiments(max_results=50_001)


def test_length_limits(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "k" * 250, 1)
    with pytest.raises(MlflowException, match="'Param key' exceeds the maximum length of 250"):
        client.log_param(run_id, "k" * 251, 1)
    client.log_param(run_id, "long", "v" * 6000)
    with pytest.raises(MlflowException, match="'Param value' exceeds the maximum length of 6000"):
        client.log_param(run_id, "longer", "v" * 6001)
    client.set_tag(run_id, "long", "v" * 8000)
    with pytest.raises(MlflowException, match="'Tag value' exceeds the maximum length of 8000"):
        client.set_tag(run_id, "longer", "v" * 8001)
    with pytest.raises(MlflowException, match="'Metric key' exceeds"):
        client.log_metric(run_id, "m" * 251, 1.0)
    client.set_experiment_tag(experiment_id, "note", "v" * 20000)
    with pytest.raises(MlflowException, match="maximum length of 20000"):
        client.set_experiment_tag(experiment_id, "note", "v" * 20001)
    run = client.get_run(run_id)
    assert run.data.params["long"] == "v" * 6000 and "longer" not in run.data.params


@pytest.mark.parametrize("clause", [
    "attributes.lifecycle_stage = 'active'", "attributes.experiment_id = '1'",
    "attributes.nonsense = 'x'",
])
def test_unknown_attributes_are_errors(client, experiment_id, clause):
    client.create_run(experiment_id)
    with pytest.raises(MlflowException, match="Invalid attribute key") as err:
        client.search_runs([experiment_id], clause)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="Invalid attribute key"):
        client.search_runs([experiment_id], order_by=[clause.split(" ")[0]])


def test_single_quoted_keys(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "my key", "a")
    client.log_metric(run_id, "my metric", 2.0)
    assert len(client.search_runs([experiment_id], "params.'my key' = 'a'")) == 1
    assert len(client.search_runs([experiment_id], "metrics.'my metric' > 1")) == 1
    assert len(client.search_runs([experiment_id], "params.`my key` = 'b'")) == 0


@pytest.mark.parametrize("depth", [5000])
def test_deep_nesting_is_a_clear_error_not_a_recursion_error(client, experiment_id, depth):
    client.create_run(experiment_id)
    for text in ("(" * depth + "metrics.a > 1" + ")" * depth, "NOT " * depth + "metrics.a > 1"):
        with pytest.raises(MlflowException, match="nests NOT and parentheses more than 100"):
            client.search_runs([experiment_id], text)
    assert client.search_runs([experiment_id], "(" * 50 + "metrics.a > 1" + ")" * 50) == []


def test_errors_carry_mlflow_codes_and_wording(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "p", 1)
    cases = [
        (lambda: client.get_run("nope"), "RESOURCE_DOES_NOT_EXIST", "Run with id=nope not found"),
        (lambda: client.get_experiment("999"), "RESOURCE_DOES_NOT_EXIST",
         "No Experiment with id=999 exists"),
        (lambda: client.create_experiment("exp"), "RESOURCE_ALREADY_EXISTS",
         r"Experiment\(name=exp\) already exists"),
        (lambda: client.get_registered_model("zzz"), "RESOURCE_DOES_NOT_EXIST",
         "Registered Model with name=zzz not found"),
        (lambda: client.log_param(run_id, "p", 2), "INVALID_PARAMETER_VALUE",
         "Changing param values is not allowed. Param with key='p' was already logged with "
         "value='1'"),
        (lambda: client.delete_tag(run_id, "nokey"), "RESOURCE_DOES_NOT_EXIST",
         "No tag with name: nokey in run with id"),
        (lambda: client.search_runs([experiment_id], "metrics.x >"), "INVALID_PARAMETER_VALUE",
         ""),
    ]
    for call, code, wording in cases:
        with pytest.raises(MlflowException, match=wording) as err:
            call()
        assert err.value.error_code == code
        assert err.value.message.startswith(wording.replace("\\", "")[:20])
    client.create_registered_model("m")
    with pytest.raises(MlflowException, match=r"Registered Model \(name=m\) already exists") as err:
        client.create_registered_model("m")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert err.value.get_http_status_code() == 400
