"""``nbtrack push``: a store sent to another, embedded to embedded (fast) and to the team store.

Every test tracks into the test's own store (``.nbtrack/``), pushes to another real store, and
reads both back through the Client.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from team_stores import open_team_store
from tqdm import tqdm

import nbtrack
import nbtrack.tracking.client
from nbtrack.cli import main
from nbtrack.entities import ViewType
from nbtrack.interop import push as push_module
from nbtrack.interop.push import KILL_AT_RUN, PushConflictError
from nbtrack.store import registry

CHECKOUT = Path(__file__).resolve().parent.parent


def track(client: nbtrack.Client, tmp_path: Path) -> dict:
    """Runs with everything a run holds, and a registered model; returns their ids."""
    taxi = client.create_experiment("taxi", tags={"team": "ml"})
    ids = {}
    for name, rmse in (("lasso", 5.0), ("ridge", 4.0), ("forest", 2.5)):
        run = client.create_run(taxi, run_name=name, description=f"{name} on 2024",
                                tags={"mlflow.user": "ana", "data": "jan"})
        run_id = ids[name] = run.info.run_id
        client.log_batch(run_id, params=[nbtrack.entities.Param("model", name),
                                         nbtrack.entities.Param("alpha", "0.1")])
        for step in range(5):
            client.log_metric(run_id, "rmse", rmse + 1 / (step + 1), step=step,
                              timestamp=1_000 + step)
        client.log_metric(run_id, "rmse", rmse, step=5, timestamp=2_000)
        client.log_metric(run_id, "rmse", rmse, step=5, timestamp=2_000)  # twice, on purpose
        client.log_text(run_id, f"weights of {name}", "model/weights.txt")
        client.log_input(run_id, pd.DataFrame({"x": [1, 2, 3]}), context="training",
                         name="trips")
        client.set_terminated(run_id, "FINISHED", end_time=9_000)
    child = client.create_run(taxi, run_name="fold-1", parent_run_id=ids["lasso"])
    ids["child"] = child.info.run_id
    client.log_metric(ids["child"], "rmse", 6.0)
    client.set_terminated(ids["child"], "FAILED")
    gone = client.create_run(taxi, run_name="mistake")
    ids["gone"] = gone.info.run_id
    client.log_param(ids["gone"], "model", "oops")
    client.set_terminated(ids["gone"])
    client.delete_run(ids["gone"])
    other = client.create_experiment("scratch")
    ids["scratch"] = client.create_run(other, run_name="try").info.run_id
    client.set_terminated(ids["scratch"])
    client.create_registered_model("taxi", tags={"owner": "ana"}, description="fares")
    client.create_model_version("taxi", f"runs:/{ids['ridge']}/model", ids["ridge"])
    folder = client.artifact_path(ids["forest"]) / "model"
    client.create_model_version("taxi", str(folder), ids["forest"], tags={"cv": "5"})
    client.transition_model_version_stage("taxi", 1, "Archived")
    client.transition_model_version_stage("taxi", 2, "Production")
    client.set_registered_model_alias("taxi", "champion", 2)
    client.create_model_version("elsewhere", str(tmp_path), None)
    client.flush()
    return ids


def everything(client: nbtrack.Client) -> dict:
    """What a store holds, by run id and model, comparable across stores."""
    runs = {}
    for experiment in client.search_experiments(view_type=ViewType.ALL):
        for run in client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL):
            info, run_id = run.info, run.info.run_id
            history = client.sql('SELECT key, value, step, "timestamp" FROM metrics '
                                 "WHERE run_id = ?", [run_id]).values.tolist()
            files = client.artifact_index(run_id)
            runs[run_id] = {
                "experiment": experiment.name, "name": info.run_name, "user": info.user_id,
                "status": info.status, "start": info.start_time, "end": info.end_time,
                "stage": info.lifecycle_stage, "parent": info.parent_run_id,
                "description": info.description, "params": run.data.params,
                "tags": run.data.tags, "metrics": run.data.metrics,
                "history": Counter(map(tuple, history)), "source": run.source,
                "inputs": sorted((i.dataset.name, i.dataset.digest, i.context)
                                 for i in run.inputs.dataset_inputs),
                "files": files,
                "environment": client.get_environment(run.source.env_hash)
                if run.source.env_hash else None,
            }
    models = {}
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        models[model.name] = {
            "description": model.description, "tags": model.tags, "aliases": model.aliases,
            "versions": sorted((v.version, v.source, v.run_id, v.current_stage, v.tags)
                               for v in versions)}
    return {"runs": runs, "models": models}


def without_users(runs: dict) -> dict:
    """``everything``'s runs without their user: the team store may record its role instead."""
    return {run_id: {**run, "user": None,
                     "tags": {k: v for k, v in run["tags"].items() if k != "mlflow.user"}}
            for run_id, run in runs.items()}


def test_push_sends_every_part_of_a_run_and_the_registry(client, tmp_path, monkeypatch):
    ids = track(client, tmp_path)
    team = nbtrack.Client(tmp_path / "team")
    team.create_experiment("someone-elses")  # ids differ: taxi is 2 here, not 1
    before = everything(client)

    summary = nbtrack.push(to=str(tmp_path / "team"))

    after = everything(team)
    assert team.get_experiment_by_name("taxi").experiment_id != \
        client.get_experiment_by_name("taxi").experiment_id
    assert team.get_experiment_by_name("taxi").tags == {"team": "ml"}
    assert after["runs"] == before["runs"]
    assert after["runs"][ids["gone"]]["stage"] == "deleted"
    assert after["runs"][ids["lasso"]]["history"][("rmse", 5.0, 5, 2000)] == 2
    assert after["runs"][ids["child"]]["parent"] == ids["lasso"]
    assert after["runs"][ids["lasso"]]["environment"]["packages"]
    for run_id in (ids["lasso"], ids["forest"]):
        assert (team.artifact_path(run_id) / "model/weights.txt").read_text() == \
            (client.artifact_path(run_id) / "model/weights.txt").read_text()
    taxi = after["models"]["taxi"]
    assert taxi["description"] == "fares" and taxi["tags"] == {"owner": "ana"}
    assert taxi["aliases"] == {"champion": 2}
    assert taxi["versions"] == [
        (1, f"runs:/{ids['ridge']}/model", ids["ridge"], "Archived", {}),
        # a folder in a pushed run's artifacts points at the pushed copy
        (2, f"runs:/{ids['forest']}/model", ids["forest"], "Production", {"cv": "5"}),
    ]
    assert "elsewhere" in after["models"] and not after["models"]["elsewhere"]["versions"]
    assert [s[:2] for s in summary.skipped] == [("model version", "elsewhere/1")]
    assert summary.copied["runs"] == 6 and summary.copied["metric values"] == 22

    shown = io.StringIO()  # the bar, shown at once rather than after its usual second
    monkeypatch.setattr(push_module, "progress", lambda total, what: tqdm(
        total=total, desc=what, unit=" runs", file=shown, delay=0))
    again = nbtrack.push(to=str(tmp_path / "team"))
    assert "push: 100%" in shown.getvalue() and "6/6" in shown.getvalue()
    assert sum(again.copied.values()) == 0, str(again)
    assert again.present["runs"] == 6 and again.present["metric values"] == 22
    assert everything(team) == after


def test_running_runs_are_pushed_as_they_are_and_completed_later(client, tmp_path):
    experiment_id = client.create_experiment("hpc")
    run_id = client.create_run(experiment_id, run_name="long").info.run_id
    client.log_metric(run_id, "loss", 1.0, step=0)
    client.flush()
    first = nbtrack.push(to=str(tmp_path / "team"))
    team = nbtrack.Client(tmp_path / "team")
    assert team.get_run(run_id).info.status == "RUNNING"
    assert any("still RUNNING" in note for note in first.notes)

    client.log_metric(run_id, "loss", 0.5, step=1)
    client.log_param(run_id, "epochs", "2")
    client.set_tag(run_id, "phase", "done")
    client.set_terminated(run_id, end_time=5_000)
    second = nbtrack.push(to=str(tmp_path / "team"))
    run = team.get_run(run_id)
    assert (run.info.status, run.info.end_time) == ("FINISHED", 5_000)
    assert [m.value for m in team.get_metric_history(run_id, "loss")] == [1.0, 0.5]
    assert run.data.params == {"epochs": "2"} and run.data.tags["phase"] == "done"
    assert second.copied["metric values"] == 1 and not second.notes

    team.delete_run(run_id)  # deleted on the team store: push leaves it so, and says so
    client.set_tag(run_id, "phase", "again")
    third = nbtrack.push(to=str(tmp_path / "team"))
    assert [s[:2] for s in third.skipped] == [("runs", run_id)]
    assert "deleted in the target" in third.skipped[0][2]
    assert team.get_run(run_id).data.tags["phase"] == "done"


def test_a_run_id_with_other_content_in_the_target_is_an_error_not_an_overwrite(
        client, tmp_path, capsys):
    experiment_id = client.create_experiment("taxi")
    runs = [client.create_run(experiment_id, run_name=n, start_time=1_000).info.run_id
            for n in ("a", "b")]
    for run_id in runs:
        client.log_param(run_id, "alpha", "0.1")
        client.set_terminated(run_id)
    client.flush()
    user = client.get_run(runs[0]).info.user_id
    team = nbtrack.Client(tmp_path / "team")
    team_experiment = team.create_experiment("taxi")
    team.import_run(runs[0], team_experiment, "a", 1_000, user_id=user)
    team.log_param(runs[0], "alpha", "0.9")
    team.flush()

    with pytest.raises(PushConflictError, match=rf"run {runs[0]}: param 'alpha' is '0.9' there, "
                                                r"'0.1' here") as caught:
        nbtrack.push(to=str(tmp_path / "team"))
    assert team.get_run(runs[0]).data.params == {"alpha": "0.9"}
    assert team.get_run(runs[0]).info.status == "RUNNING"  # nothing of it was sent
    assert team.get_run(runs[1]).data.params == {"alpha": "0.1"}  # the rest was
    assert caught.value.summary.copied["runs"] == 1

    # another start time is another run too; and so is a point the local run lacks
    other = nbtrack.Client(tmp_path / "other")
    other_experiment = other.create_experiment("taxi")
    other.import_run(runs[1], other_experiment, "b", 2_000, user_id=user)
    with pytest.raises(PushConflictError, match="start time is 2000 there, 1000 here"):
        nbtrack.push(to=str(tmp_path / "other"))
    other.rename_experiment(other_experiment, "taxi-old")  # the run is in another experiment
    assert main(["push", "--to", str(tmp_path / "other"), "--no-progress"]) == 1
    printed = capsys.readouterr()
    assert "it is in experiment 'taxi-old' there, 'taxi' here" in printed.err
    assert re.search(r"runs +0 copied, +0 already there, +2 skipped", printed.out), printed.out
    third = nbtrack.Client(tmp_path / "third")
    third_experiment = third.create_experiment("taxi")
    third.import_run(runs[1], third_experiment, "b", 1_000, user_id=user)
    third.log_metric(runs[1], "rmse", 3.0)
    with pytest.raises(PushConflictError, match="1 metric point"):
        nbtrack.push(to=str(tmp_path / "third"))


def test_push_of_chosen_experiments_takes_their_models_only(client, tmp_path, capsys):
    ids = track(client, tmp_path)
    summary = nbtrack.push(to=str(tmp_path / "team"), experiment_names=["scratch"])
    team = nbtrack.Client(tmp_path / "team")
    assert [e.name for e in team.search_experiments()] == ["scratch", "Default"]
    assert team.get_run(ids["scratch"]).info.status == "FINISHED"
    assert len(team.search_registered_models()) == 0
    assert summary.copied["runs"] == 1
    with pytest.raises(nbtrack.MlflowException, match="No experiment named 'nope'"):
        nbtrack.push(to=str(tmp_path / "team"), experiment_names=["nope"])
    # the command: --experiment, repeated
    assert main(["push", "--to", str(tmp_path / "cli"), "--experiment", "scratch",
                 "--experiment", "Default", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"runs +1 copied", printed) and "registered models" not in printed
    pushed = nbtrack.Client(tmp_path / "cli")
    assert sorted(e.name for e in pushed.search_experiments()) == ["Default", "scratch"]
    with pytest.raises(nbtrack.MlflowException, match="store it would read"):
        nbtrack.push(to=nbtrack.get_tracking_uri())


def test_the_registry_history_is_pushed_with_its_times_and_users(client, tmp_path):
    experiment_id = client.create_experiment("taxi")
    runs = []
    for name in ("lasso", "forest"):
        runs.append(client.create_run(experiment_id, run_name=name).info.run_id)
        client.set_terminated(runs[-1])
    client.create_model_version("taxi", f"runs:/{runs[0]}/model", runs[0])
    client.transition_model_version_stage("taxi", 1, "Production")
    client.set_registered_model_alias("taxi", "champion", 1)
    time.sleep(0.05)
    first_in_production = int(time.time() * 1000)
    time.sleep(0.05)
    client.create_model_version("taxi", f"runs:/{runs[1]}/model", runs[1])
    client.transition_model_version_stage("taxi", 2, "Production", archive_existing_versions=True)
    client.set_registered_model_alias("taxi", "champion", 2)
    team = nbtrack.Client(tmp_path / "team")
    team.create_registered_model("taxi")  # the team's numbers are the same: none taken yet
    local = client.get_registry_events("taxi")

    summary = nbtrack.push(to=str(tmp_path / "team"))

    # the target replays the local history: at that moment version 1 was in Production
    assert team.get_model_version_at("taxi", "Production", first_in_production).version == 1
    assert team.get_model_version_by_alias("taxi", "champion").version == 2
    events = team.get_registry_events("taxi")
    pushed = events[events["comment"].fillna("").str.startswith("pushed from")]
    assert pushed["timestamp"].tolist() == local["timestamp"].tolist()
    assert pushed["user_id"].tolist() == local["user_id"].tolist()
    assert pushed["action"].tolist() == local["action"].tolist()
    assert summary.copied["registry events"] == len(local)
    again = nbtrack.push(to=str(tmp_path / "team"))
    assert again.copied["registry events"] == 0
    assert again.present["registry events"] == len(local)
    assert len(team.get_registry_events("taxi")) == len(events)


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(CHECKOUT), **(env or {})}
    environment.pop(KILL_AT_RUN, None) if env is None or KILL_AT_RUN not in env else None
    return subprocess.run([sys.executable, "-m", "nbtrack.cli", *args], capture_output=True,
                          text=True, env=environment, timeout=300, check=False)


def test_a_push_killed_midway_and_run_again_loses_and_duplicates_nothing(client, tmp_path):
    experiment_id = client.create_experiment("sweep")
    for number in range(8):
        run_id = client.create_run(experiment_id, run_name=f"r{number}").info.run_id
        client.log_param(run_id, "n", str(number))
        client.log_batch(run_id, metrics=[
            nbtrack.entities.Metric("loss", 1 / (step + 1), 1_000 + step, step)
            for step in range(3_000)])
        client.log_text(run_id, "x" * number, f"out/{number}.txt")
        client.set_terminated(run_id)
    client.flush()
    source = str(client.tracking_uri)
    target = str(tmp_path / "team")

    killed = cli("push", "--to", target, "--tracking-uri", source, "--no-progress",
                 env={KILL_AT_RUN: "4"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    team = nbtrack.Client(target)
    halfway = everything(team)["runs"]
    assert 4 <= len(halfway) < 8
    assert sum(1 for r in halfway.values() if r["status"] == "FINISHED") == 3  # the 4th: cut

    resumed = cli("push", "--to", target, "--tracking-uri", source)
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"metric values +\d+ copied", resumed.stdout)
    nbtrack.store.registry.forget_stores()
    assert everything(nbtrack.Client(target))["runs"] == everything(client)["runs"]
    again = cli("push", "--to", target, "--tracking-uri", source, "--no-progress")
    assert again.returncode == 0 and again.stderr == ""
    assert re.search(r"runs +0 copied, +8 already there", again.stdout)
    assert re.search(r"metric values +0 copied, +24000 already there", again.stdout)


# to the team store (slow: a real PostgreSQL catalog) -----------------------------------------
@pytest.fixture
def team_uri(request, tmp_path, monkeypatch):
    """The URI of a new team store of this test's own (a ``ducklake:`` URI opens it)."""
    lake = open_team_store(request, tmp_path, monkeypatch)
    yield lake.uri
    registry.forget_stores()
    lake.drop()


@pytest.mark.slow
def test_push_to_the_team_store(client, tmp_path, team_uri):
    ids = track(client, tmp_path)
    before = everything(client)
    summary = nbtrack.push(to=team_uri)
    team = nbtrack.Client(team_uri)
    after = everything(team)
    assert without_users(after["runs"]) == without_users(before["runs"])
    assert after["models"]["taxi"]["aliases"] == {"champion": 2}
    assert [v[3] for v in after["models"]["taxi"]["versions"]] == ["Archived", "Production"]
    assert summary.copied["runs"] == 6
    for run_id in (ids["lasso"], ids["ridge"]):
        assert (team.artifact_path(run_id) / "model/weights.txt").is_file()
    again = nbtrack.push(to=team_uri)
    assert sum(again.copied.values()) == 0, str(again)
    assert everything(team) == after


@pytest.mark.slow
def test_a_push_to_the_team_store_killed_midway_resumes(client, tmp_path, team_uri):
    experiment_id = client.create_experiment("sweep")
    for number in range(5):
        run_id = client.create_run(experiment_id, run_name=f"r{number}").info.run_id
        client.log_param(run_id, "n", str(number))
        client.log_batch(run_id, metrics=[
            nbtrack.entities.Metric("loss", 1 / (step + 1), 1_000 + step, step)
            for step in range(2_000)])
        client.log_text(run_id, "x" * number, f"out/{number}.txt")
        client.set_terminated(run_id)
    client.flush()
    script = (f"import nbtrack\nnbtrack.set_tracking_uri({client.tracking_uri!r})\n"
                          f"print(nbtrack.push(to={team_uri!r}, show_progress=False))\n")
    environment = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**environment, KILL_AT_RUN: "3"}, timeout=300, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env=environment, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"runs +\d copied, +[1-4] already there", resumed.stdout), resumed.stdout
    team = nbtrack.Client(team_uri)
    assert without_users(everything(team)["runs"]) == without_users(everything(client)["runs"])
    counts = team.sql("SELECT count(*) AS n, count(DISTINCT run_id) AS runs FROM metrics")
    assert counts.values.tolist() == [[10_000, 5]]
