"""The model registry: models, versions, stages, aliases, tags, history, lineage, promotion."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

import nbtrack
import nbtrack.pyfunc
import nbtrack.sklearn
from nbtrack.exceptions import InvalidValueError, NbtrackError, NotFoundError
from nbtrack.tracking.promotion import PromotionRefused, parse_requirement

WORKERS = str(Path(__file__).with_name("workers.py"))


def logged_model(rmse: float, alpha: float = 1.0) -> str:
    """A run with an rmse metric and a fitted Ridge logged as 'model'; returns its URI."""
    X = pd.DataFrame({"distance": np.arange(20.0), "hour": np.arange(20) % 24})
    y = 3 * X["distance"]
    with nbtrack.start_run():
        nbtrack.log_param("alpha", alpha)
        nbtrack.log_metric("rmse", rmse)
        nbtrack.log_input(X, context="training", name="trips")
        return nbtrack.sklearn.log_model(Ridge(alpha=alpha).fit(X, y), "model",
                                         input_example=X).model_uri


def test_register_and_number_versions(client):
    uri = logged_model(4.0)
    first = nbtrack.register_model(uri, "taxi")
    second = client.register_model(uri, "taxi", tags={"team": "ml"})
    assert (first.version, second.version) == (1, 2)
    assert first.source == uri and first.run_id == uri.split("/")[1]
    assert first.current_stage == "None" and second.tags == {"team": "ml"}
    other = client.register_model(uri, "other")
    assert other.version == 1  # numbered per name
    with pytest.raises(NotFoundError, match="has no model at 'nope'"):
        client.register_model(uri.replace("/model", "/nope"), "taxi")


def test_registered_models_crud_and_search(client):
    client.create_registered_model("taxi", tags={"domain": "mobility"}, description="trips")
    with pytest.raises(NbtrackError, match="already exists"):
        client.create_registered_model("taxi")
    client.create_registered_model("churn")
    assert [m.name for m in client.search_registered_models()] == ["churn", "taxi"]
    assert [m.name for m in client.search_registered_models("name LIKE 'ta%'")] == ["taxi"]
    assert [m.name for m in client.search_registered_models("tags.domain = 'mobility'")] == [
        "taxi"]
    client.update_registered_model("taxi", description="trip durations")
    client.set_registered_model_tag("taxi", "owner", "ana")
    model = client.get_registered_model("taxi")
    assert model.description == "trip durations"
    assert model.tags == {"domain": "mobility", "owner": "ana"}
    client.delete_registered_model_tag("taxi", "owner")
    client.register_model(logged_model(3.0), "taxi")
    renamed = client.rename_registered_model("taxi", "nyc-taxi")
    assert renamed.name == "nyc-taxi" and client.get_model_version("nyc-taxi", 1).version == 1
    with pytest.raises(NotFoundError, match="Registered Model with name=taxi not found"):
        client.get_registered_model("taxi")
    client.delete_registered_model("nyc-taxi")
    assert [m.name for m in client.search_registered_models()] == ["churn"]


def test_versions_tags_descriptions_and_search(client):
    uri = logged_model(4.0)
    for _ in range(3):
        client.register_model(uri, "taxi")
    client.update_model_version("taxi", 2, description="retrained on May")
    client.set_model_version_tag("taxi", "2", "validated", "yes")
    version = client.get_model_version("taxi", 2)
    assert version.description == "retrained on May" and version.tags == {"validated": "yes"}
    found = client.search_model_versions("name = 'taxi' AND version_number >= 2",
                                         order_by=["version_number ASC"])
    assert [v.version for v in found] == [2, 3]
    assert [v.version for v in client.search_model_versions("tags.validated = 'yes'")] == [2]
    client.delete_model_version_tag("taxi", 2, "validated")
    client.delete_model_version("taxi", 3)
    with pytest.raises(NotFoundError, match=r"Model Version \(name=taxi, version=3\) not found"):
        client.get_model_version("taxi", 3)
    with pytest.raises(InvalidValueError, match="whole number"):
        client.get_model_version("taxi", "latest")


def test_stages_aliases_and_latest_versions(client):
    uri = logged_model(4.0)
    for _ in range(3):
        client.register_model(uri, "taxi")
    client.transition_model_version_stage("taxi", 1, "Production")
    client.transition_model_version_stage("taxi", 2, "staging")
    moved = client.transition_model_version_stage("taxi", 3, "Production",
                                                  archive_existing_versions=True)
    assert moved.current_stage == "Production"
    assert client.get_model_version("taxi", 1).current_stage == "Archived"
    latest = {v.current_stage: v.version for v in client.get_latest_versions("taxi")}
    assert latest == {"Archived": 1, "Staging": 2, "Production": 3}
    assert [v.version for v in client.get_latest_versions("taxi", ["Staging"])] == [2]
    with pytest.raises(InvalidValueError, match="use one of None, Staging"):
        client.transition_model_version_stage("taxi", 1, "Prod")
    client.set_registered_model_alias("taxi", "champion", 2)
    client.set_registered_model_alias("taxi", "champion", 3)  # moves
    assert client.get_model_version_by_alias("taxi", "champion").version == 3
    assert client.get_registered_model("taxi").aliases == {"champion": 3}
    with pytest.raises(InvalidValueError, match="cannot be an alias"):
        client.set_registered_model_alias("taxi", "v2", 2)
    client.delete_registered_model_alias("taxi", "champion")
    with pytest.raises(NotFoundError, match="no alias 'champion'"):
        client.get_model_version_by_alias("taxi", "champion")


def test_models_uris_load_by_version_stage_and_alias(client):
    uri = logged_model(4.0)
    client.register_model(uri, "taxi")
    client.register_model(logged_model(3.0, alpha=5.0), "taxi")
    client.transition_model_version_stage("taxi", 2, "Production")
    client.set_registered_model_alias("taxi", "champion", 1)
    X = pd.DataFrame({"distance": [1.0, 2.0], "hour": [1, 2]})
    by_stage = nbtrack.pyfunc.load_model("models:/taxi/Production").predict(X)
    by_number = nbtrack.pyfunc.load_model("models:/taxi/2").predict(X)
    by_alias = nbtrack.sklearn.load_model("models:/taxi@champion")
    np.testing.assert_allclose(by_stage, by_number)
    assert by_alias.alpha == 1.0
    with pytest.raises(NotFoundError, match="has no version in Staging"):
        nbtrack.pyfunc.load_model("models:/taxi/Staging")
    with pytest.raises(NbtrackError, match="not a model URI"):
        nbtrack.pyfunc.load_model("models:/taxi")


@pytest.mark.slow
def test_two_processes_registering_at_once_never_share_a_number():
    store = nbtrack.get_tracking_uri()  # the test's store, embedded or team
    procs = [subprocess.Popen([sys.executable, WORKERS, "register_versions", store, "taxi",
                               "15", "runs:/x/model"], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    numbers = []
    for proc in procs:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0
        numbers += [int(line) for line in out.split()]
    assert sorted(numbers) == list(range(1, 46))  # 45 distinct numbers, none skipped


def test_every_change_is_in_the_audit_log_and_replays(client):
    uri = logged_model(4.0)
    client.register_model(uri, "taxi")
    client.register_model(uri, "taxi")
    client.transition_model_version_stage("taxi", 1, "Production")
    time.sleep(0.01)
    between = int(time.time() * 1000)
    time.sleep(0.01)
    client.transition_model_version_stage("taxi", 2, "Production", archive_existing_versions=True)
    client.set_registered_model_alias("taxi", "champion", 2)
    events = client.get_registry_events("taxi")
    assert list(events["action"]) == ["create_model", "create_version", "create_version",
                                      "transition_stage", "transition_stage",
                                      "transition_stage", "set_alias"]
    archived = events.iloc[4]
    assert (archived.version, archived.from_value, archived.to_value) == (1, "Production",
                                                                          "Archived")
    # who made the runs made the changes: the login name here, the PostgreSQL role on the team
    # store (tests/test_team_roles.py checks that it is the role)
    maker = client.get_run(client.get_model_version("taxi", 1).run_id).info.user_id
    assert set(events["user_id"]) == {maker}
    assert client.get_model_version("taxi", 2).user_id == maker
    assert str(events["time"].dtype).startswith("datetime64")
    assert client.get_model_version_at("taxi", "Production", between).version == 1
    assert client.get_model_version_at("taxi", "Production", time.time() * 1000).version == 2
    assert client.get_model_version_at("taxi", "Production", 0) is None
    assert len(nbtrack.sql("SELECT * FROM registry_events")) == 7  # and in SQL


def test_lineage_leads_from_a_version_to_its_run(client):
    uri = logged_model(3.5, alpha=2.0)
    client.register_model(uri, "taxi")
    lineage = client.get_model_version_lineage("taxi", 1)
    assert lineage["params"] == {"alpha": "2.0"} and lineage["metrics"] == {"rmse": 3.5}
    assert lineage["datasets"][0]["name"] == "trips" and lineage["datasets"][0]["digest"]
    assert lineage["environment"]["packages"]
    assert lineage["run"].info.run_id == lineage["model_version"].run_id


def test_guarded_promotion(client):
    client.register_model(logged_model(4.0), "taxi")
    client.register_model(logged_model(4.5), "taxi")
    client.register_model(logged_model(3.2), "taxi")
    first = nbtrack.promote("taxi", 1, to="Production", require="metrics.rmse <= current")
    assert first.current_stage == "Production"  # nothing held Production: it passes
    with pytest.raises(PromotionRefused, match=r"metrics.rmse: 4.5 <= 4 \(current Production "
                                               r"version 1\) does not hold"):
        nbtrack.promote("taxi", 2, to="Production", require="metrics.rmse <= current")
    assert client.get_model_version("taxi", 2).current_stage == "None"
    promoted = nbtrack.promote("taxi", 3, require="metrics.rmse <= current AND "
                                                  "metrics.rmse < 3.5", comment="May retrain")
    assert promoted.current_stage == "Production"
    assert client.get_model_version("taxi", 1).current_stage == "Archived"
    events = client.get_registry_events("taxi")
    refused = events[events["action"] == "promotion_refused"].iloc[0]
    assert refused.version == 2 and "4.5 <= 4" in refused.comment
    last = events[(events["action"] == "transition_stage") & (events["version"] == 3)].iloc[0]
    assert last.comment.startswith("May retrain | guarded: metrics.rmse: 3.2 <= 4")
    with pytest.raises(InvalidValueError, match=r"metrics\.mae, which no version of 'taxi' has\. "
                                                r"Its versions' runs have: metrics\.rmse"):
        nbtrack.promote("taxi", 2, require="metrics.mae < 1")


def test_requirements_are_parsed_not_evaluated():
    assert parse_requirement("metrics.rmse <= current AND metrics.`val loss` < 0.5") == [
        ("rmse", "<=", "current"), ("val loss", "<", "0.5")]
    for bad in ("rmse <= current", "metrics.rmse <= __import__('os')", "metrics.rmse ~ 1"):
        with pytest.raises(InvalidValueError, match="Cannot read the requirement"):
            parse_requirement(bad)


def test_public_module_paths_still_resolve():
    import nbtrack.tracking.promotion as promotion

    assert nbtrack.promotion.PromotionRefused is promotion.PromotionRefused
    assert nbtrack.xgboost.autolog is not None and nbtrack.sklearn.log_model is not None
