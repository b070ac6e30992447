"""run_index must always equal what the normalised tables say, and searches past its column cap
must still be right."""

import contextlib
import math
import random

import pytest

import nbtrack
from nbtrack.entities import system_tags
from nbtrack.store import run_index

SYSTEM_TAGS = set(system_tags.COLUMNS)


def _differences_from_a_rebuild(store) -> dict:
    """Rebuild the index in a rolled-back transaction and compare it with the live one in SQL
    (which, unlike pandas, tells NULL from NaN)."""
    with store._connection.use() as conn:
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute("CREATE TEMP TABLE _before AS SELECT * FROM run_index")
            before = {r[0] for r in conn.execute("DESCRIBE _before").fetchall()}
            run_index.rebuild(conn)
            after = [r[0] for r in conn.execute("DESCRIBE run_index").fetchall()]
            columns = ", ".join(run_index.quote(c) for c in after)
            missing = [c for c in after if c not in before]
            stale = sorted(
                c for c in before - set(after)
                if conn.execute(f"SELECT count(*) FROM _before WHERE {run_index.quote(c)} "
                                "IS NOT NULL").fetchone()[0]
            )
            only_live = only_rebuilt = None
            if not missing:
                only_live = conn.execute(
                    f"SELECT count(*) FROM (SELECT {columns} FROM _before "
                    f"EXCEPT ALL SELECT {columns} FROM run_index)").fetchone()[0]
                only_rebuilt = conn.execute(f"SELECT count(*) FROM (SELECT {columns} FROM "
                                            "run_index EXCEPT ALL SELECT "
                                            f"{columns} FROM _before)").fetchone()[0]
            rows = conn.execute("SELECT count(*) FROM run_index").fetchone()[0]
        finally:
            conn.execute("ROLLBACK")
            conn.execute("DROP TABLE IF EXISTS _before")
    return {"missing": missing, "stale": stale, "only_live": only_live,
            "only_rebuilt": only_rebuilt, "rows": rows}


@pytest.mark.parametrize("seed", range(4))
def test_index_matches_a_rebuild_after_random_work(client, experiment_id, seed, request):
    rng = random.Random(seed)
    runs = []
    # the same code keeps the index on both stores; on the team store, where each change is a
    # catalog commit (~0.15 s), fewer steps per seed keep the suite's time in bounds
    steps = 120 if request.node.callspec.params.get("store_dir") != "ducklake" else 40
    for _ in range(steps):
        action = rng.random()
        if action < 0.15 or not runs:
            runs.append(client.create_run(experiment_id).info.run_id)
            continue
        run_id = rng.choice(runs)
        key = f"k{rng.randint(0, 6)}"
        if action < 0.35:
            client.log_metric(run_id, key, rng.choice([rng.random(), math.nan, math.inf]),
                              step=rng.randint(0, 3))
        elif action < 0.5:
            with contextlib.suppress(nbtrack.exceptions.ParamConflictError):
                client.log_param(run_id, key, rng.randint(0, 2))
        elif action < 0.65:
            client.set_tag(run_id, key, rng.random())
        elif action < 0.7:
            tags = [k for k in client.get_run(run_id).data.tags if not k.startswith("mlflow.")]
            if tags:
                client.delete_tag(run_id, next(iter(tags)))
        elif action < 0.8:
            client.set_terminated(run_id, rng.choice(["FINISHED", "FAILED", "KILLED"]))
        elif action < 0.85:
            client.delete_run(run_id)
            client.restore_run(run_id) if rng.random() < 0.5 else runs.remove(run_id)
        else:
            client.store.flush()
    client.store.flush()
    report = _differences_from_a_rebuild(client.store)
    # a column may outlive its key (a deleted tag), but then it must be empty
    assert report["rows"] > 0
    assert report == {"missing": [], "stale": [], "only_live": 0, "only_rebuilt": 0,
                      "rows": report["rows"]}


def test_index_columns_follow_mlflow_names(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "alpha", 0.5)
    client.log_metric(run_id, "rmse", 1.5)
    client.set_tag(run_id, "team", "ml")
    wide = nbtrack.sql('SELECT "params.alpha", "metrics.rmse", "tags.team" FROM runs_wide')
    assert wide.iloc[0].tolist() == ["0.5", 1.5, "ml"]


def test_search_past_the_column_cap(client, experiment_id, monkeypatch):
    monkeypatch.setattr(run_index, "MAX_KEY_COLUMNS", 3)
    ids = []
    for i in range(4):
        run_id = client.create_run(experiment_id, run_name=f"r{i}").info.run_id
        client.log_metric(run_id, "a", float(i))
        client.log_metric(run_id, "b", float(-i))
        client.log_param(run_id, "c", str(i % 2))
        client.log_param(run_id, "d", str(i))
        client.set_tag(run_id, "e", "x" if i < 2 else "y")
        ids.append(run_id)
    client.store.flush()
    keys, complete = client.store.index_columns(client.store._connection.use().__enter__())
    assert len(keys) == 3 and not complete
    found = client.search_runs([experiment_id], "params.d = '3' OR tags.e = 'x'",
                               order_by=["metrics.b ASC"])
    assert [r.info.run_name for r in found] == ["r3", "r1", "r0"]
    for run in found:  # entities are complete even for keys the index lacks
        assert set(run.data.params) == {"c", "d"} and set(run.data.tags) - SYSTEM_TAGS == {"e"}
        assert set(run.data.metrics) == {"a", "b"}
    frame = nbtrack.search_runs(experiment_ids=[experiment_id], order_by=["metrics.a DESC"])
    for column in ("metrics.a", "metrics.b", "params.c", "params.d", "tags.e"):
        assert column in frame.columns
    assert frame["params.d"].tolist() == ["3", "2", "1", "0"]
    assert frame["tags.e"].tolist() == ["y", "y", "x", "x"]


def test_an_index_wider_than_the_cap_is_rebuilt_at_the_next_write(client, experiment_id,
                                                                   monkeypatch):
    """Older nbtracks gave up to 2,000 keys a column; the next write narrows such an index."""
    from nbtrack.entities import Metric, Param

    monkeypatch.setattr(run_index, "MAX_KEY_COLUMNS", 50)
    ids = []
    for i in range(3):
        run_id = client.create_run(experiment_id, run_name=f"r{i}").info.run_id
        client.log_batch(run_id, [Metric(f"m{k}", float(i), 0, 0) for k in range(10)],
                         [Param(f"p{k}", str(i)) for k in range(5 * i, 5 * i + 5)])
        ids.append(run_id)
    client.store.flush()
    with client.store._connection.use() as conn:
        assert len(run_index.key_columns(conn)) == 25
    monkeypatch.setattr(run_index, "MAX_KEY_COLUMNS", 12)
    client.log_metric(ids[0], "m0", 9.0, step=1)
    client.store.flush()
    with client.store._connection.use() as conn:
        columns = run_index.key_columns(conn)
    # the columns go to the keys most runs have: the ten metrics, then params by name
    assert len(columns) == 12 and {f"metrics.m{k}" for k in range(10)} <= set(columns)
    assert client.get_run(ids[0]).data.metrics["m0"] == 9.0
    found = client.search_runs([experiment_id], "params.p12 = '2' OR metrics.m0 > 5",
                               order_by=["attributes.run_name"])
    assert [r.info.run_name for r in found] == ["r0", "r2"]
    report = _differences_from_a_rebuild(client.store)
    assert report == {"missing": [], "stale": [], "only_live": 0, "only_rebuilt": 0, "rows": 3}
