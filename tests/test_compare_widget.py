"""The compare widget's model: data as Arrow IPC, filtering and sorting in DuckDB, selection."""

import pytest

import nbtrack
from nbtrack.exceptions import NbtrackError
from nbtrack.widgets.compare import CompareWidget
from nbtrack.widgets.payload import from_ipc


@pytest.fixture
def taxi_runs():
    nbtrack.set_experiment("nyc-taxi")
    ids = []
    for i, (model, alpha, rmse) in enumerate([("lasso", 0.1, 4.2), ("ridge", 1.0, 3.9),
                                              ("lasso", 0.5, 4.8), ("linear", None, 5.1)]):
        with nbtrack.start_run(run_name=f"run-{i}") as run:
            nbtrack.log_param("model", model)
            if alpha is not None:
                nbtrack.log_param("alpha", alpha)
            nbtrack.log_metric("rmse", rmse)
            nbtrack.set_tag("team", "ml")
            ids.append(run.run_id)
    nbtrack.set_experiment("other")
    with nbtrack.start_run():
        nbtrack.log_metric("rmse", 1.0)
    return ids


def table_of(widget):
    return from_ipc(widget.table)


def test_shows_the_experiments_runs_as_arrow(taxi_runs):
    widget = nbtrack.compare("nyc-taxi")
    assert isinstance(widget, CompareWidget)
    assert widget.row_count == 4 and widget.total_count == 4
    assert widget.status == "4 runs"
    table = table_of(widget)
    assert table.column_names[:3] == ["run_id", "run_name", "status"]
    assert widget.columns == ["metrics.rmse", "params.model", "params.alpha", "tags.team"]
    assert table.column_names[-4:] == widget.columns
    assert sorted(table.column("run_id").to_pylist()) == sorted(taxi_runs)


def test_sorting_and_filtering_run_in_the_store(taxi_runs):
    widget = nbtrack.compare("nyc-taxi")
    widget.order_by = ["metrics.rmse ASC"]
    assert table_of(widget).column("metrics.rmse").to_pylist() == [3.9, 4.2, 4.8, 5.1]
    widget.filter = "params.model = 'lasso' OR metrics.rmse > 5"
    assert widget.row_count == 3 and widget.filter_error == ""
    assert table_of(widget).column("params.model").to_pylist() == ["lasso", "lasso", "linear"]


def test_a_bad_filter_shows_its_error_and_keeps_the_rows(taxi_runs):
    widget = nbtrack.compare("nyc-taxi")
    before = widget.table
    widget.filter = "metrics.rmse <"
    assert widget.filter_error.startswith("Expected a number to compare metrics.rmse with")
    assert "at position 14:\n  metrics.rmse <\n" in widget.filter_error
    assert widget.table == before and widget.row_count == 4
    widget.filter = "metrics.rmse < 4.5"
    assert widget.filter_error == "" and widget.row_count == 2


def test_choosing_columns(taxi_runs):
    widget = nbtrack.compare("nyc-taxi", columns=["params.alpha"])
    assert table_of(widget).column_names[-1:] == ["params.alpha"]
    assert {"metrics.rmse", "params.model", "params.alpha", "tags.team"} <= set(
        widget.available_columns)
    widget.columns = ["metrics.rmse", "params.never_logged"]
    table = table_of(widget)
    assert table.column_names[-2:] == ["metrics.rmse", "params.never_logged"]
    assert table.column("params.never_logged").null_count == 4


def test_runs_argument_and_selection(taxi_runs):
    widget = nbtrack.compare("nyc-taxi", runs=taxi_runs[:2])
    assert widget.row_count == 2
    widget.selected_run_ids = [taxi_runs[0]]  # as the front end sets it
    assert widget.selected_run_ids == [taxi_runs[0]]
    widget.filter = "metrics.rmse < 4"  # run 0 (4.2) drops out: so does its selection
    assert widget.selected_run_ids == []
    with pytest.raises(ValueError, match="not a run id"):
        nbtrack.compare("nyc-taxi", runs=["x' OR 1=1 --"])


def test_refresh_sees_new_runs_and_the_cap_is_reported(taxi_runs):
    widget = nbtrack.compare("nyc-taxi")
    widget.max_rows = 2
    nbtrack.set_experiment("nyc-taxi")
    with nbtrack.start_run():
        nbtrack.log_metric("rmse", 2.0)
    widget._on_message(widget, {"type": "refresh"}, [])  # the Refresh button
    assert widget.total_count == 5 and widget.row_count == 2
    assert widget.status == "showing 2 of 5 runs: narrow the filter"


def test_default_experiment_unknown_names_and_text_fallback(taxi_runs):
    nbtrack.set_experiment("nyc-taxi")
    widget = nbtrack.compare()
    assert widget.experiment_names == ["nyc-taxi"]
    assert repr(widget) == "<nbtrack compare: 4 runs in nyc-taxi>"
    widget.filter = "params.model = 'lasso'"
    assert repr(widget) == ("<nbtrack compare: 2 runs in nyc-taxi, "
                            "filter \"params.model = 'lasso'\">")
    both = nbtrack.compare(["nyc-taxi", "other"])
    assert both.row_count == 5
    with pytest.raises(NbtrackError, match="No experiment named 'nope'"):
        nbtrack.compare("nope")
