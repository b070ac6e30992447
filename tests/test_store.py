import math

import duckdb
import pytest

import nbtrack
from nbtrack.entities import Metric, RunSource
from nbtrack.exceptions import (
    InvalidValueError,
    NbtrackError,
    NotAStoreError,
    NotFoundError,
    ParamConflictError,
    StoreVersionError,
)
from nbtrack.store import registry, schema
from nbtrack.store.base import NewRun
from nbtrack.store.duckdb_store import DuckDBStore


def user_tags(run) -> dict:
    """A run's tags without MLflow's system tags (``mlflow.runName``, ...)."""
    return {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}

@pytest.mark.embedded_only("the default store is a folder")
def test_default_location_is_dot_nbtrack_in_cwd(tmp_path, monkeypatch):
    nbtrack.set_tracking_uri(None)
    assert nbtrack.get_tracking_uri() == str(tmp_path / ".nbtrack")
    with nbtrack.start_run():
        nbtrack.log_param("a", 1)
    assert (tmp_path / ".nbtrack" / "store.duckdb").is_file()
    assert (tmp_path / ".nbtrack" / "artifacts").is_dir()


@pytest.mark.embedded_only("the folder forms of the tracking URI")
def test_env_var_and_set_tracking_uri_override(tmp_path, monkeypatch):
    nbtrack.set_tracking_uri(None)
    monkeypatch.setenv("NBTRACK_TRACKING_URI", str(tmp_path / "team"))
    assert nbtrack.get_tracking_uri() == str(tmp_path / "team")
    nbtrack.set_tracking_uri(f"file://{tmp_path}/mine")
    assert nbtrack.get_tracking_uri() == str(tmp_path / "mine")
    nbtrack.set_tracking_uri(f"duckdb://{tmp_path}/other/x.duckdb")
    with nbtrack.start_run():
        nbtrack.log_param("a", 1)
    nbtrack.flush()
    assert (tmp_path / "other" / "x.duckdb").is_file()
    with pytest.raises(NbtrackError, match="Unsupported tracking URI"):
        nbtrack.set_tracking_uri("http://server:5000")


@pytest.mark.embedded_only("reads the store.duckdb file itself")
def test_schema_version_is_recorded(store_dir, client):
    client.store.close()
    conn = duckdb.connect(str(store_dir / "store.duckdb"))
    version = conn.execute("SELECT value FROM nbtrack_meta WHERE key='schema_version'").fetchone()
    conn.close()
    assert int(version[0]) == schema.SCHEMA_VERSION


@pytest.mark.embedded_only("migrates a DuckDB file")
def test_forward_migration_runs_in_order(tmp_path, monkeypatch):
    store = DuckDBStore(tmp_path / "s")
    store.create_experiment("kept")
    store.close()
    registry.forget_stores()
    migration = "ALTER TABLE runs ADD COLUMN priority INTEGER; CREATE TABLE notes (x INTEGER);"
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, migration])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    store = DuckDBStore(tmp_path / "s")
    assert store.get_experiment_by_name("kept") is not None
    store.close()
    conn = duckdb.connect(str(tmp_path / "s" / "store.duckdb"))
    assert conn.execute("SELECT value FROM nbtrack_meta WHERE key='schema_version'").fetchone()[
        0] == str(schema.SCHEMA_VERSION)
    assert conn.execute("SELECT count(*) FROM notes").fetchone() == (0,)
    conn.close()


@pytest.mark.embedded_only("a DuckDB file's schema version")
def test_store_from_a_newer_nbtrack_is_refused(tmp_path):
    DuckDBStore(tmp_path / "s").close()
    conn = duckdb.connect(str(tmp_path / "s" / "store.duckdb"))
    conn.execute("UPDATE nbtrack_meta SET value = '999' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(StoreVersionError, match="Upgrade nbtrack"):
        DuckDBStore(tmp_path / "s")


@pytest.mark.embedded_only("a DuckDB file")
def test_duckdb_file_that_is_not_a_store(tmp_path):
    (tmp_path / "s").mkdir()
    conn = duckdb.connect(str(tmp_path / "s" / "store.duckdb"))
    conn.execute("CREATE TABLE sales (x INTEGER)")
    conn.close()
    with pytest.raises(NotAStoreError, match="not an nbtrack store"):
        DuckDBStore(tmp_path / "s")


@pytest.mark.embedded_only("a file that is not DuckDB's")
def test_garbage_file_is_not_a_store(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "store.duckdb").write_bytes(b"this is not a database" * 100)
    with pytest.raises(NotAStoreError, match="cannot be opened"):
        DuckDBStore(tmp_path / "s")


@pytest.mark.embedded_only("a folder that is a file")
def test_tracking_path_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotAStoreError, match="is a file"):
        DuckDBStore(tmp_path / "f")


def test_unknown_experiment_and_run_say_what_to_do(client):
    with pytest.raises(NotFoundError, match="search_experiments"):
        client.get_experiment("42")
    with pytest.raises(NotFoundError, match="search_runs"):
        client.get_run("nope")
    with pytest.raises(NotFoundError):
        client.log_metric("nope", "m", 1.0)
    with pytest.raises(NotFoundError):
        client.log_param("nope", "p", 1)


def test_params_are_immutable(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "alpha", 0.1)
    client.log_param(run_id, "alpha", 0.1)  # the same value again is a no-op
    with pytest.raises(ParamConflictError) as info:
        client.log_param(run_id, "alpha", 0.2)
    message = str(info.value)
    assert "'alpha'" in message and "'0.1'" in message and "'0.2'" in message
    assert client.get_run(run_id).data.params == {"alpha": "0.1"}


def test_param_conflict_is_found_for_runs_from_other_processes(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "alpha", "1")
    client.store.flush()
    client.store._known_runs.clear()  # as if another process logged it
    with pytest.raises(ParamConflictError):
        client.log_param(run_id, "alpha", "2")


def test_metric_history_and_latest_follow_mlflow(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "loss", 3.0, timestamp=10, step=2)
    client.log_metric(run_id, "loss", 5.0, timestamp=99, step=1)  # later, but a lower step
    client.log_metric(run_id, "loss", 4.0, timestamp=11, step=2)  # same step, later time
    client.log_metric(run_id, "odd", math.nan, step=0)
    client.log_metric(run_id, "odd", math.inf, step=1)
    client.log_metric(run_id, "neg", -math.inf)
    run = client.get_run(run_id)
    assert run.data.metrics["loss"] == 4.0
    assert run.data.metrics["odd"] == math.inf
    assert run.data.metrics["neg"] == -math.inf
    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 5.0), (2, 3.0), (2, 4.0)]
    assert isinstance(history[0], Metric)
    odd = client.get_metric_history(run_id, "odd")
    assert math.isnan(odd[0].value) and odd[1].value == math.inf
    frame = history.to_pandas()
    assert list(frame.columns) == ["step", "value", "timestamp"]


def test_latest_is_kept_across_batches(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "m", 1.0, step=5)
    client.store.flush()
    client.log_metric(run_id, "m", 2.0, step=3)
    assert client.get_run(run_id).data.metrics["m"] == 1.0
    client.log_metric(run_id, "m", 7.0, step=6)
    assert client.get_run(run_id).data.metrics["m"] == 7.0


def test_wrong_value_types_are_rejected_clearly(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    with pytest.raises(InvalidValueError, match="must be a number, got str"):
        client.log_metric(run_id, "rmse", "0.5")
    with pytest.raises(InvalidValueError, match="must be a number"):
        client.log_metric(run_id, "rmse", None)
    with pytest.raises(InvalidValueError, match="must be a number"):
        client.log_metric(run_id, "rmse", [1.0])
    with pytest.raises(InvalidValueError, match="key must be a string"):
        client.log_param(run_id, 3, "x")
    with pytest.raises(InvalidValueError, match="Invalid metric key"):
        client.log_metric(run_id, "../etc", 1.0)
    import numpy as np

    client.log_metric(run_id, "np", np.float32(0.25))
    client.log_metric(run_id, "int", np.int64(3))
    assert client.get_run(run_id).data.metrics == {"np": 0.25, "int": 3.0}


def test_tags_overwrite_and_delete(client, experiment_id):
    run_id = client.create_run(experiment_id, tags={"a": "1"}).info.run_id
    client.set_tag(run_id, "a", "2")
    client.set_tag(run_id, "b", 3)
    assert user_tags(client.get_run(run_id)) == {"a": "2", "b": "3"}
    client.delete_tag(run_id, "a")
    assert user_tags(client.get_run(run_id)) == {"b": "3"}
    with pytest.raises(NotFoundError):
        client.delete_tag(run_id, "a")


def test_run_lifecycle_and_status(client, experiment_id):
    run = client.create_run(experiment_id, run_name="r1", description="first try")
    assert run.info.status == "RUNNING"
    client.set_terminated(run.info.run_id, "KILLED", end_time=123)
    got = client.get_run(run.info.run_id)
    assert (got.info.status, got.info.end_time, got.info.description) == ("KILLED", 123,
                                                                          "first try")
    client.update_run(run.info.run_id, name="renamed")
    assert client.get_run(run.info.run_id).info.run_name == "renamed"
    with pytest.raises(ValueError, match="Unknown run status"):
        client.set_terminated(run.info.run_id, "DONE")
    client.delete_run(run.info.run_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(NbtrackError, match="Restore it"):
        client.log_param(run.info.run_id, "x", 1)
    client.restore_run(run.info.run_id)
    client.log_param(run.info.run_id, "x", 1)


def test_experiments(client):
    eid = client.create_experiment("e1", tags={"owner": "ana"})
    assert client.get_experiment(eid).tags == {"owner": "ana"}
    with pytest.raises(NbtrackError, match="already exists"):
        client.create_experiment("e1")
    with pytest.raises(InvalidValueError):
        client.create_experiment("  ")
    client.rename_experiment(eid, "e2")
    assert client.get_experiment_by_name("e2").experiment_id == eid
    assert client.get_experiment_by_name("e1") is None
    client.set_experiment_tag(eid, "owner", "bo")
    assert client.get_experiment(eid).tags == {"owner": "bo"}
    client.delete_experiment(eid)
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert [e.name for e in client.search_experiments(nbtrack.ViewType.DELETED_ONLY)] == ["e2"]
    with pytest.raises(InvalidValueError, match="deleted"):
        client.create_run(eid)
    with pytest.raises(NbtrackError, match="deleted"):
        nbtrack.set_experiment("e2")
    client.restore_experiment(eid)
    assert client.get_experiment(eid).lifecycle_stage == "active"
    assert [e.name for e in client.search_experiments(filter_string="name LIKE 'e%'")] == ["e2"]
    client.create_experiment("f1", tags={"team": "ml"})
    found = client.search_experiments(filter_string="tags.team = 'ml' OR name = 'e2'",
                                      order_by=["name DESC"])
    assert [e.name for e in found] == ["f1", "e2"]
    assert [e.name for e in client.search_experiments(filter_string="tags.team IS NULL")] == [
        "e2", "Default"]  # newest first, as in MLflow
    assert [e.name for e in client.search_experiments(
        filter_string="creation_time > 0 AND NOT name ILIKE 'D%'", max_results=1)] == ["f1"]
    with pytest.raises(NbtrackError, match="cannot be used here"):
        client.search_experiments(filter_string="metrics.rmse < 1")
    with pytest.raises(NbtrackError, match="Invalid attribute key"):
        client.search_experiments(filter_string="status = 'x'")


@pytest.mark.embedded_only("opens a DuckDBStore of its own")
def test_sync_writes_option_writes_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_SYNC_WRITES", "1")
    store = DuckDBStore(tmp_path / "s")
    assert store.sync_writes
    store.create_run(NewRun(run_id="r", experiment_id="0", run_name="r", user_id=None,
                            start_time=1, parent_run_id=None, description=None,
                            source=RunSource(), pid=None))
    store.add_metric("r", "m", 1.0, 0, 1)
    assert not store.has_unwritten()
    assert store._writes.has_unmerged()  # durable in the spool, merged later
    store.close()
