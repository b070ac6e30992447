import math

import pytest

import nbtrack
from nbtrack.entities import Metric, Param, RunTag, ViewType
from nbtrack.exceptions import FilterSyntaxError, InvalidValueError


@pytest.fixture
def runs(client, experiment_id):
    """Five runs with a mix of present, missing and NaN values."""
    spec = [
        ("a", {"rmse": 1.0, "acc": 0.9}, {"model": "lasso", "alpha": "0.1"}, {"team": "ml"}),
        ("b", {"rmse": 2.0}, {"model": "ridge", "alpha": "1"}, {"team": "ML-ops"}),
        ("c", {"rmse": math.nan}, {"model": "ridge"}, {}),
        ("d", {"acc": 0.5}, {"model": "tree"}, {"team": "data"}),
        ("e", {"rmse": 0.5, "my-metric": 3.0}, {"model": "lasso", "a b": "x"}, {}),
    ]
    ids = {}
    for i, (name, metrics, params, tags) in enumerate(spec):
        run = client.create_run(experiment_id, run_name=name, start_time=1000 + i)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run.info.run_id, "FAILED" if name == "d" else "FINISHED")
        ids[name] = run.info.run_id
    return ids


def names(client, experiment_id, filter_string="", order_by=None, **kw):
    return [r.info.run_name for r in
            client.search_runs([experiment_id], filter_string, order_by=order_by, **kw)]


@pytest.mark.parametrize(
    "filter_string, expected",
    [
        ("metrics.rmse < 1.5", {"a", "e"}),
        ("metrics.rmse >= 0", {"a", "b", "e"}),  # NaN matches no ordered comparison
        ("metrics.rmse != 1", {"b", "c", "e"}),  # a missing key is false, even for !=
        ("metrics.rmse IS NULL", {"d"}),
        ("metrics.rmse IS NOT NULL", {"a", "b", "c", "e"}),
        ("params.model = 'ridge'", {"b", "c"}),
        ("params.model != 'ridge'", {"a", "d", "e"}),
        ("params.alpha != '0.1'", {"b"}),
        ("params.model LIKE 'la%'", {"a", "e"}),
        ("tags.team LIKE 'ml%'", {"a"}),
        ("tags.team ILIKE 'ml%'", {"a", "b"}),
        ("tags.team IS NULL", {"c", "e"}),
        ("params.`a b` = 'x'", {"e"}),
        ("metrics.`my-metric` > 2", {"e"}),
        ("status = 'FAILED'", {"d"}),
        ("attributes.status = 'failed'", {"d"}),
        ("status IN ('FAILED', 'KILLED')", {"d"}),
        ("status NOT IN ('FAILED')", {"a", "b", "c", "e"}),
        ("params.model IN ('ridge', 'tree')", {"b", "c", "d"}),
        ("params.model NOT IN ('ridge')", {"a", "d", "e"}),  # a missing key is false
        ("tags.team IN ('ml')", {"a"}),
        ("run_name = 'c'", {"c"}),
        ("attributes.run_name LIKE '_'", {"a", "b", "c", "d", "e"}),
        ("metrics.rmse < 1.5 OR params.model = 'tree'", {"a", "d", "e"}),
        ("(params.model = 'ridge' OR params.model = 'tree') AND metrics.acc > 0",
         {"d"}),
        ("NOT params.model = 'lasso'", {"b", "c", "d"}),
        ("NOT metrics.rmse > 1", {"a", "c", "d", "e"}),
        ("start_time >= 1003", {"d", "e"}),
        ("created < 1001", {"a"}),
        ("end_time IS NOT NULL", {"a", "b", "c", "d", "e"}),
        ("metrics.nosuch = 1 OR metrics.nosuch != 1", set()),
    ],
)
def test_filter_semantics(client, experiment_id, runs, filter_string, expected):
    assert set(names(client, experiment_id, filter_string)) == expected


def test_order_by_puts_nan_and_missing_last_both_ways(client, experiment_id, runs):
    assert names(client, experiment_id, order_by=["metrics.rmse ASC"]) == ["e", "a", "b", "c", "d"]
    assert names(client, experiment_id, order_by=["metrics.rmse DESC"]) == ["b", "a", "e", "c", "d"]


def test_order_by_several_keys_and_default(client, experiment_id, runs):
    assert names(client, experiment_id) == ["e", "d", "c", "b", "a"]  # newest first
    assert names(client, experiment_id, order_by=["params.model", "run_name DESC"]) == [
        "e", "a", "c", "b", "d"
    ]
    assert names(client, experiment_id, order_by="start_time ASC") == ["a", "b", "c", "d", "e"]


def test_paging_with_tokens(client, experiment_id, runs):
    seen, token = [], None
    while True:
        page = client.search_runs([experiment_id], "", max_results=2,
                                  order_by=["start_time"], page_token=token)
        seen += [r.info.run_name for r in page]
        token = page.token
        if token is None:
            break
    assert seen == ["a", "b", "c", "d", "e"]
    with pytest.raises(InvalidValueError, match="page token"):
        client.search_runs([experiment_id], page_token="not-a-token")
    with pytest.raises(InvalidValueError, match="max_results"):
        client.search_runs([experiment_id], max_results=-1)


def test_view_types(client, experiment_id, runs):
    client.delete_run(runs["b"])
    assert "b" not in names(client, experiment_id)
    assert names(client, experiment_id, run_view_type=ViewType.DELETED_ONLY) == ["b"]
    assert len(names(client, experiment_id, run_view_type=ViewType.ALL)) == 5
    client.restore_run(runs["b"])
    assert "b" in names(client, experiment_id)


def test_search_returns_full_run_entities(client, experiment_id, runs):
    (run,) = client.search_runs([experiment_id], "run_name = 'a'")
    assert run.info.run_id == runs["a"]
    assert run.info.status == "FINISHED"
    assert run.info.start_time == 1000
    assert run.data.metrics == {"rmse": 1.0, "acc": 0.9}
    assert run.data.params == {"model": "lasso", "alpha": "0.1"}
    assert {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")} == {
        "team": "ml"}


def test_dataframe_columns_follow_mlflow(experiment_id, runs):
    frame = nbtrack.search_runs(experiment_ids=[experiment_id], order_by=["metrics.rmse"])
    for column in ("run_id", "experiment_id", "status", "artifact_uri", "start_time",
                   "end_time", "metrics.rmse", "metrics.acc", "params.model", "tags.team"):
        assert column in frame.columns
    assert list(frame["run_name"]) == ["e", "a", "b", "c", "d"]
    assert str(frame["start_time"].dtype).startswith("datetime64")
    assert math.isnan(frame.loc[frame.run_name == "d", "metrics.rmse"].iloc[0])
    by_name = nbtrack.search_runs(experiment_names=["exp"], filter_string="params.model='tree'")
    assert list(by_name["run_name"]) == ["d"]
    as_list = nbtrack.search_runs(experiment_ids=[experiment_id], output_format="list")
    assert len(as_list) == 5


INJECTIONS = [
    "metrics.rmse < 1; DROP TABLE runs",
    "params.model = 'x' OR 1=1",
    "params.model = 'x'; DELETE FROM runs; --'",
    "params.model = 'x'' OR ''1''=''1'",
    "tags.`x` = 'y' UNION SELECT * FROM runs",
    "metrics.rmse < 1 -- comment",
    "params.model = 'lasso' /* */",
    "status IN ('FINISHED') OR (SELECT 1)",
    "run_id = '' OR run_id LIKE '%'",
    "params.`model' OR '1'='1` = 'x'",
    "metrics.\"rmse\\\" OR 1=1 --\" < 5",
    "params.model = \"x\"\" OR 1=1 --\"",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_corpus_never_reaches_sql(client, experiment_id, runs, text):
    try:
        found = names(client, experiment_id, text)
    except FilterSyntaxError:
        found = None
    if found is not None:  # parsed: the odd text was a literal value or key, matching nothing
        assert found == [] or set(found) <= {"a", "b", "c", "d", "e"}
        assert "OR 1=1" not in "".join(found)
    assert len(names(client, experiment_id)) == 5  # the store is intact
    assert nbtrack.sql("SELECT count(*) AS n FROM runs")["n"][0] == 5


def test_injected_like_matches_only_as_a_literal(client, experiment_id, runs):
    assert names(client, experiment_id, "params.model = 'x'' OR ''1''=''1'") == []
    assert names(client, experiment_id, "run_id = '' OR run_id LIKE '%'") == [
        "e", "d", "c", "b", "a"
    ]  # a real OR of two real clauses, parsed, not pasted
