"""Time travel (``as_of``) on the team store, with real snapshots on a real PostgreSQL catalog.

Each test logs, notes the time, changes the store (new runs, a better metric, another version in
Production), then asks as of the noted time and sees the old leaderboard and the old Production.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from team_stores import open_team_store

import nbtrack
import nbtrack.tracking.client
from nbtrack.store import registry
from nbtrack.store.lake_snapshots import TimeTravelError, epoch_ms


@pytest.fixture
def lake(request, tmp_path, monkeypatch):
    """A Client on a team store of this test's own."""
    team = open_team_store(request, tmp_path, monkeypatch)
    nbtrack.set_tracking_uri(team.uri)
    yield nbtrack.Client(team.uri)
    registry.forget_stores()
    team.drop()


def moment() -> int:
    """Now in epoch ms, with the store's last commit strictly before it and the next after."""
    time.sleep(0.05)
    now = int(time.time() * 1000)
    time.sleep(0.05)
    return now


def log_run(client, experiment_id: str, name: str, rmse: float) -> str:
    run = client.create_run(experiment_id, run_name=name)
    client.log_param(run.info.run_id, "model", name)
    client.log_metric(run.info.run_id, "rmse", rmse)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_as_of_takes_a_datetime_an_iso_string_or_epoch_ms():
    ms = 1_796_000_000_123
    moment_utc = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    assert epoch_ms(ms) == ms
    assert epoch_ms(moment_utc) == ms
    assert epoch_ms(moment_utc.isoformat()) == ms
    assert epoch_ms(moment_utc.astimezone().replace(tzinfo=None)) == ms  # naive: local time
    with pytest.raises(nbtrack.MlflowException, match="ISO 8601"):
        epoch_ms("yesterday")
    with pytest.raises(nbtrack.MlflowException, match="not True"):
        epoch_ms(True)


def test_the_embedded_store_says_time_travel_needs_the_team_store(client):
    with pytest.raises(TimeTravelError, match="needs the team store"):
        client.search_runs(["0"], as_of=int(time.time() * 1000))
    with pytest.raises(TimeTravelError, match="needs the team store"):
        nbtrack.sql("SELECT count(*) AS n FROM runs", as_of=datetime.now())
    with pytest.raises(TimeTravelError, match="needs the team store"):
        client.search_model_versions("name = 'taxi'", as_of="2026-01-01T00:00")


@pytest.mark.slow
def test_the_leaderboard_as_it_was(lake):
    experiment_id = lake.create_experiment("taxi")
    lasso = log_run(lake, experiment_id, "lasso", 5.0)
    ridge = log_run(lake, experiment_id, "ridge", 4.0)
    lake.flush()
    then = moment()
    forest = log_run(lake, experiment_id, "forest", 2.5)
    run = lake.get_run(lasso)
    lake.log_metric(lasso, "rmse", 1.0, step=1)  # lasso improves: now the best
    lake.set_tag(lasso, "stage", "tuned")
    lake.delete_run(ridge)
    lake.flush()
    assert run.data.metrics["rmse"] == 5.0

    now = lake.search_runs([experiment_id], order_by=["metrics.rmse ASC"])
    assert [r.info.run_name for r in now] == ["lasso", "forest"]
    old = lake.search_runs([experiment_id], order_by=["metrics.rmse ASC"], as_of=then)
    assert [r.info.run_name for r in old] == ["ridge", "lasso"]
    assert old[1].data.metrics["rmse"] == 5.0 and "stage" not in old[1].data.tags
    assert lake.get_run(lasso, as_of=then).data.metrics["rmse"] == 5.0
    assert lake.get_run(lasso, as_of=then).info.artifact_uri == run.info.artifact_uri
    with pytest.raises(nbtrack.MlflowException, match="did not exist yet"):
        lake.get_run(forest, as_of=then)

    # the fluent search (DataFrame), the ISO string and a datetime give the same past
    iso = datetime.fromtimestamp(then / 1000).isoformat()
    nbtrack.set_experiment("taxi")
    frame = nbtrack.search_runs(order_by=["metrics.rmse ASC"], as_of=iso)
    assert list(frame["tags.mlflow.runName"]) == ["ridge", "lasso"]
    assert list(frame["metrics.rmse"]) == [4.0, 5.0]
    listed = nbtrack.search_runs(output_format="list", as_of=datetime.fromtimestamp(then / 1000))
    assert {r.info.run_id for r in listed} == {lasso, ridge}

    # nbtrack.sql over the views as they were, and as they are
    query = ("SELECT run_name, metrics['rmse'] AS rmse FROM runs WHERE experiment_id = ? "
             "AND lifecycle_stage = 'active' ORDER BY rmse")
    assert nbtrack.sql(query, [experiment_id], as_of=then)["run_name"].tolist() == \
        ["ridge", "lasso"]
    assert nbtrack.sql(query, [experiment_id])["run_name"].tolist() == ["lasso", "forest"]
    history = nbtrack.sql("SELECT count(*) AS n FROM metrics WHERE run_id = ?", [lasso],
                          as_of=then)
    assert history["n"].tolist() == [1]
    with pytest.raises(nbtrack.MlflowException, match="runs_wide"):
        nbtrack.sql("SELECT * FROM runs_wide", as_of=then)


@pytest.mark.slow
def test_production_as_it_was(lake):
    experiment_id = lake.create_experiment("taxi")
    first = log_run(lake, experiment_id, "lasso", 5.0)
    second = log_run(lake, experiment_id, "forest", 2.5)
    lake.create_model_version("taxi", f"runs:/{first}/model", first)
    lake.transition_model_version_stage("taxi", 1, "Production")
    lake.set_registered_model_alias("taxi", "champion", 1)
    then = moment()
    lake.create_model_version("taxi", f"runs:/{second}/model", second)
    lake.transition_model_version_stage("taxi", 2, "Production", archive_existing_versions=True)
    lake.set_registered_model_alias("taxi", "champion", 2)
    lake.set_model_version_tag("taxi", 2, "validated", "yes")

    assert [v.version for v in lake.get_latest_versions("taxi", ["Production"])] == [2]
    past = lake.get_latest_versions("taxi", ["Production"], as_of=then)
    assert [(v.version, v.run_id) for v in past] == [(1, first)]
    assert lake.get_model_version_by_alias("taxi", "champion", as_of=then).version == 1
    assert lake.get_model_version_by_alias("taxi", "champion").version == 2
    versions = lake.search_model_versions("name = 'taxi'", as_of=then)
    assert [(v.version, v.current_stage) for v in versions] == [(1, "Production")]
    now = lake.search_model_versions("name = 'taxi' AND current_stage = 'Archived'")
    assert [v.version for v in now] == [1]
    model = lake.get_registered_model("taxi", as_of=then)
    assert model.aliases == {"champion": 1}
    assert [v.version for v in model.latest_versions] == [1]
    with pytest.raises(nbtrack.MlflowException, match="not found"):
        lake.get_model_version("taxi", 2, as_of=then)
    events = nbtrack.sql("SELECT action, version FROM registry_events ORDER BY event_id",
                         as_of=then)
    assert events["action"].tolist()[-2:] == ["transition_stage", "set_alias"]


@pytest.mark.slow
def test_a_moment_before_the_team_store_is_a_clear_error(lake):
    with pytest.raises(TimeTravelError, match="before the team store existed"):
        lake.search_runs(["0"], as_of="2000-01-01T00:00:00+00:00")
    with pytest.raises(TimeTravelError, match="first snapshot is of"):
        nbtrack.sql("SELECT 1 AS one", as_of=0)
    # a moment after the last change answers as now
    assert len(lake.search_runs(["0"], as_of=int(time.time() * 1000) + 60_000)) == 0
