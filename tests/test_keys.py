"""Keys are case-sensitive everywhere, as in MLflow, and a store with very many keys works.

DuckDB column names ignore case, so ``run_index`` names the columns of keys that differ only in
case apart (``metrics.^Loss`` beside ``metrics.loss``); every test runs both with the index
holding every key and past its column cap, where keys are joined from the normalised tables.
"""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import nbtrack
from nbtrack.entities import Metric, Param, RunTag
from nbtrack.store import run_index
from nbtrack.widgets.payload import from_ipc


@pytest.fixture(params=["indexed", "past-the-cap"])
def cap(request, monkeypatch):
    """Run the test with every key indexed, and with an index of two columns only."""
    if request.param == "past-the-cap":
        monkeypatch.setattr(run_index, "MAX_KEY_COLUMNS", 2)
    return request.param


@pytest.fixture
def twins(client, cap):
    """Three runs whose keys differ only in case; ``Loss`` arrives after ``loss`` was indexed."""
    experiment_id = client.create_experiment("case")
    a, b, c = (client.create_run(experiment_id, run_name=n).info.run_id for n in "abc")
    client.log_metric(a, "loss", 0.5)
    client.log_param(a, "alpha", "a")
    client.set_tag(a, "team", "x")
    client.store.flush()  # the lower-case keys get their columns first
    client.log_metric(a, "Loss", 2.0)
    client.log_param(a, "Alpha", "A")
    client.set_tag(a, "Team", "X")
    client.log_batch(b, [Metric("loss", 3.0, 0, 0), Metric("Loss", 0.2, 0, 0)],
                     [Param("alpha", "b")], [RunTag("Team", "Y")])
    client.log_metric(c, "LOSS", 0.1)
    client.store.flush()
    return experiment_id, {"a": a, "b": b, "c": c}


def names(runs):
    return [run.info.run_name for run in runs]


def test_log_and_get_run_keep_keys_apart(client, twins):
    _, ids = twins
    run = client.get_run(ids["a"])
    assert run.data.metrics == {"loss": 0.5, "Loss": 2.0}
    assert run.data.params == {"alpha": "a", "Alpha": "A"}
    assert {k: v for k, v in run.data.tags.items() if k.lower() == "team"} == {
        "team": "x", "Team": "X"}
    assert client.get_run(ids["c"]).data.metrics == {"LOSS": 0.1}
    # later writes and reads in the same process still work
    client.log_metric(ids["a"], "loss", 0.25, step=1)
    client.log_metric(ids["a"], "lOSS", 7.0)
    assert client.get_run(ids["a"]).data.metrics == {"loss": 0.25, "Loss": 2.0, "lOSS": 7.0}


@pytest.mark.parametrize(("filter_string", "expected"), [
    ("metrics.Loss < 1", ["b"]),
    ("metrics.loss < 1", ["a"]),
    ("metrics.LOSS < 1", ["c"]),
    ("metrics.Loss IS NULL", ["c"]),
    ("params.Alpha = 'A'", ["a"]),
    ("params.alpha = 'A'", []),
    ("params.alpha IN ('a', 'b')", ["a", "b"]),
    ("tags.Team = 'Y'", ["b"]),
    ("tags.team = 'Y'", []),
    ("NOT metrics.Loss > 1", ["b", "c"]),
])
def test_search_filters_are_case_sensitive(client, twins, filter_string, expected):
    experiment_id, _ = twins
    found = client.search_runs([experiment_id], filter_string, order_by=["attributes.run_name"])
    assert names(found) == expected


def test_order_by_is_case_sensitive(client, twins):
    experiment_id, _ = twins
    assert names(client.search_runs([experiment_id], order_by=["metrics.Loss ASC"])) == [
        "b", "a", "c"]
    assert names(client.search_runs([experiment_id], order_by=["metrics.loss ASC"])) == [
        "a", "b", "c"]
    assert names(client.search_runs([experiment_id], order_by=["metrics.loss DESC"])) == [
        "b", "a", "c"]


def test_dataframe_has_a_column_per_key(twins):
    frame = nbtrack.search_runs(experiment_names=["case"], order_by=["attributes.run_name"])
    assert frame["run_name"].tolist() == ["a", "b", "c"]
    assert frame["metrics.loss"].tolist()[:2] == [0.5, 3.0]
    assert frame["metrics.Loss"].tolist()[:2] == [2.0, 0.2]
    assert math.isnan(frame["metrics.Loss"].tolist()[2])
    assert frame["metrics.LOSS"].tolist()[2] == 0.1
    assert frame["params.alpha"].fillna("-").tolist() == ["a", "b", "-"]
    assert frame["params.Alpha"].fillna("-").tolist() == ["A", "-", "-"]
    assert frame["tags.Team"].fillna("-").tolist() == ["X", "Y", "-"]
    keys = [c for c in frame.columns if "." in c and not c.startswith("tags.mlflow")]
    assert keys == sorted(keys)  # metrics, then params, then tags, each sorted


def test_sql_views_keep_keys_apart(twins):
    maps = nbtrack.sql("SELECT run_name, metrics['Loss'] AS upper, metrics['loss'] AS lower "
                       "FROM runs ORDER BY run_name")
    assert maps["upper"].tolist()[:2] == [2.0, 0.2]
    assert maps["lower"].tolist()[:2] == [0.5, 3.0]
    wide = nbtrack.sql('SELECT run_name, "metrics.loss", "metrics.^Loss", "metrics.^L^O^S^S", '
                       '"params.alpha", "params.^Alpha", "tags.team", "tags.^Team" '
                       "FROM runs_wide ORDER BY run_name")
    wide = wide.astype(object).where(wide.notna(), None)
    assert wide.iloc[0].tolist() == ["a", 0.5, 2.0, None, "a", "A", "x", "X"]
    assert wide.iloc[1].tolist() == ["b", 3.0, 0.2, None, "b", None, None, "Y"]
    assert wide.iloc[2].tolist()[:4] == ["c", None, None, 0.1]
    # a key without a case twin keeps its plain name; the view is rolled back afterwards
    assert nbtrack.sql("SELECT count(*) AS n FROM runs_wide")["n"][0] == 3
    assert "runs_wide" in nbtrack.sql(
        "SELECT view_name FROM duckdb_views() WHERE schema_name = 'nbtrack'")["view_name"].tolist()


def test_compare_widget_payload_keeps_keys_apart(twins):
    widget = nbtrack.compare("case", columns=["metrics.loss", "metrics.Loss", "metrics.LOSS",
                                              "params.Alpha"], order_by=["run_name ASC"])
    assert {"metrics.loss", "metrics.Loss", "metrics.LOSS", "params.alpha", "params.Alpha",
            "tags.team", "tags.Team"} <= set(widget.available_columns)
    table = from_ipc(widget.table)
    assert table.column_names[-4:] == ["metrics.loss", "metrics.Loss", "metrics.LOSS",
                                       "params.Alpha"]
    assert table.column("metrics.loss").to_pylist() == [0.5, 3.0, None]
    assert table.column("metrics.Loss").to_pylist() == [2.0, 0.2, None]
    assert table.column("metrics.LOSS").to_pylist() == [None, None, 0.1]
    assert table.column("params.Alpha").to_pylist() == ["A", None, None]
    widget.filter = "metrics.Loss < 1"
    assert from_ipc(widget.table).column("run_name").to_pylist() == ["b"]
    counts = widget._client.store.key_counts([widget._experiment_ids[0]], 1)
    assert counts["metrics.loss"] == 2 and counts["metrics.Loss"] == 2
    assert counts["metrics.LOSS"] == 1


def test_twins_in_one_batch_and_many_twins(client, cap):
    experiment_id = client.create_experiment("many")
    run_id = client.create_run(experiment_id).info.run_id
    spellings = ["acc", "Acc", "ACC", "aCC", "acC"]
    client.log_batch(run_id, [Metric(k, float(i), 0, 0) for i, k in enumerate(spellings)])
    client.store.flush()
    assert client.get_run(run_id).data.metrics == {k: float(i) for i, k in enumerate(spellings)}
    for i, key in enumerate(spellings):
        found = client.search_runs([experiment_id], f"metrics.{key} = {i}")
        assert len(found) == 1, key


@given(st.lists(st.text(alphabet="aAbB.^_É", min_size=1, max_size=5), unique=True))
def test_column_names_are_unique_regardless_of_case_and_decode(keys):
    names = ["metrics." + k for k in keys]
    columns = run_index.column_names(names)
    assert len({run_index.fold(c) for c in columns.values()}) == len(names)
    assert all(run_index.key_name(c) == n for n, c in columns.items())
    lone = [n for n in names if sum(run_index.fold(m) == run_index.fold(n) for m in names) == 1]
    assert all(columns[n] == n.replace("^", "^^") for n in lone)


def test_a_twin_renames_the_column_of_the_key_it_arrives_after(client):
    experiment_id = client.create_experiment("late")
    first = client.create_run(experiment_id).info.run_id
    client.log_metric(first, "Loss", 1.0)
    client.store.flush()
    with client.store._connection.use() as conn:
        assert run_index.key_columns(conn)["metrics.Loss"] == "metrics.Loss"
    second = client.create_run(experiment_id).info.run_id
    client.log_metric(second, "loss", 2.0)
    client.log_metric(first, "Loss", 3.0, step=1)
    client.store.flush()
    with client.store._connection.use() as conn:
        columns = run_index.key_columns(conn)
    assert columns["metrics.Loss"] == "metrics.^Loss" and columns["metrics.loss"] == "metrics.loss"
    assert client.get_run(first).data.metrics == {"Loss": 3.0}
    assert client.get_run(second).data.metrics == {"loss": 2.0}
    assert [r.info.run_id for r in client.search_runs([experiment_id], "metrics.Loss > 0")] == [
        first]


def test_a_store_with_ten_thousand_keys(client):
    """10,000 distinct keys: reads and a 2,000-value flush stay right (timings: bench/)."""
    experiment_id = client.create_experiment("wide")
    runs = []
    for i in range(10):
        run_id = client.create_run(experiment_id, run_name=f"r{i}").info.run_id
        client.log_batch(run_id, [Metric(f"m{i}_{k}", float(k), 0, 0) for k in range(500)],
                         [Param(f"p{i}_{k}", k) for k in range(250)],
                         [RunTag(f"t{i}_{k}", str(k)) for k in range(250)])
        runs.append(run_id)
    lone = client.create_run(experiment_id, run_name="lone").info.run_id
    client.log_param(lone, "alpha", "1")
    client.store.flush()
    with client.store._connection.use() as conn:
        assert len(run_index.key_columns(conn)) == run_index.MAX_KEY_COLUMNS
    assert client.get_run(lone).data.params == {"alpha": "1"}
    assert client.get_run(lone).data.metrics == {}
    full = client.get_run(runs[5]).data
    assert full.metrics == {f"m5_{k}": float(k) for k in range(500)}
    assert full.params == {f"p5_{k}": str(k) for k in range(250)}
    assert {k: v for k, v in full.tags.items() if k.startswith("t5_")} == {
        f"t5_{k}": str(k) for k in range(250)}

    # 2,000 values into a run the index has (20 keys x 100 steps), one flush
    client.log_batch(runs[3], [Metric(f"m3_{k}", float(s), 1000 + s, s)
                               for k in range(20) for s in range(100)])
    client.store.flush()
    metrics = client.get_run(runs[3]).data.metrics
    assert all(metrics[f"m3_{k}"] == 99.0 for k in range(20))
    assert all(metrics[f"m3_{k}"] == float(k) for k in range(20, 500))
    assert len(client.get_metric_history(runs[3], "m3_7")) == 101
    # 2,000 values of 2,000 new keys in a new run, one flush
    fresh = client.create_run(experiment_id, run_name="fresh").info.run_id
    client.log_batch(fresh, [Metric(f"new_{k}", float(k), 0, 0) for k in range(2000)])
    client.store.flush()
    assert client.get_run(fresh).data.metrics == {f"new_{k}": float(k) for k in range(2000)}

    assert names(client.search_runs([experiment_id], "metrics.new_1999 = 1999")) == ["fresh"]
    assert names(client.search_runs([experiment_id], "metrics.m3_5 = 99")) == ["r3"]
    assert names(client.search_runs([experiment_id], "params.p7_3 = '3' OR tags.t2_9 = '9'",
                                    order_by=["attributes.run_name DESC"])) == ["r7", "r2"]
    ordered = client.search_runs([experiment_id], "metrics.m1_1 >= 0 OR metrics.m8_1 >= 0",
                                 order_by=["metrics.m8_2 DESC"])
    assert names(ordered) == ["r8", "r1"]
    frame = nbtrack.search_runs(experiment_names=["wide"], filter_string="metrics.m4_0 >= 0")
    assert len(frame) == 1 and frame["params.p4_249"].tolist() == ["249"]
    assert len([c for c in frame.columns if c.startswith("metrics.")]) == 500


@pytest.mark.embedded_only("nbtrack doctor salvages a DuckDB file")
def test_doctor_refills_twin_keys_from_a_salvaged_index_under_their_own_names(client, twins,
                                                                            cap):
    from nbtrack.store import repair

    with client.store._connection.use() as conn:
        conn.execute(f"CREATE TABLE {repair.SALVAGED_INDEX} AS SELECT * FROM run_index")
        for table in ("params", "tags", "latest_metrics"):
            conn.execute(f"DELETE FROM {table}")
        repair._from_index(conn)
        metrics = conn.execute("SELECT key, value FROM latest_metrics ORDER BY ALL").fetchall()
        params = conn.execute("SELECT key, value FROM params ORDER BY ALL").fetchall()
    every = [("LOSS", 0.1), ("Loss", 0.2), ("Loss", 2.0), ("loss", 0.5), ("loss", 3.0)]
    if cap == "indexed":
        assert metrics == every
        assert params == [("Alpha", "A"), ("alpha", "a"), ("alpha", "b")]
    else:  # the index held two keys only: what it held comes back under the right names
        assert set(metrics) <= set(every)
