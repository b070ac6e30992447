"""The compare widget's model: data as Arrow IPC, filtering and sorting in DuckDB, selection."""

import os
import subprocess
import sys

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


def test_brushing_narrows_the_table_and_a_new_filter_clears_it(taxi_runs):
    widget = nbtrack.compare("nyc-taxi")
    widget.brush = {"metrics.rmse": {"ranges": [[4.0, 5.0]]}}
    assert widget.row_count == 2
    widget.brush = {"metrics.rmse": {"ranges": [[4.0, 5.0]]},
                    "params.model": {"values": ["lasso"]}}
    assert sorted(table_of(widget).column("metrics.rmse").to_pylist()) == [4.2, 4.8]
    widget.order_by = ["metrics.rmse DESC"]  # sorting keeps the brush
    assert table_of(widget).column("metrics.rmse").to_pylist() == [4.8, 4.2]
    widget.filter = "params.model != 'ridge'"
    assert widget.brush == {} and widget.row_count == 3


def test_selected_runs_get_curves_and_a_diff(taxi_runs):
    nbtrack.set_experiment("nyc-taxi")
    for run_id, base in zip(taxi_runs[:2], (1.0, 2.0), strict=True):
        for step in range(5):
            nbtrack.log_metric("rmse", base + step, step=step, run_id=run_id)
    widget = nbtrack.compare("nyc-taxi")
    assert widget.curve_metric == "metrics.rmse" and widget.history == b""
    widget.selected_run_ids = taxi_runs[:2]
    history = from_ipc(widget.history)
    assert history.column_names == ["run_id", "step", "timestamp", "value"]
    first = history.filter(history.column("run_id").to_numpy(zero_copy_only=False)
                           == taxi_runs[0])
    assert first.column("step").to_pylist() == [0, 0, 1, 2, 3, 4]
    diff = widget.diff
    assert [r["run_id"] for r in diff["runs"]] == taxi_runs[:2]
    params = next(s for s in diff["sections"] if s["title"] == "params")
    model_row = next(r for r in params["rows"] if r["key"] == "model")
    assert model_row == {"key": "model", "values": ["lasso", "ridge"], "differs": True}
    assert any(s["title"] == "packages" for s in diff["sections"])
    widget.selected_run_ids = [taxi_runs[0]]
    assert widget.diff == {} and widget.history != b""


def test_code_diff_of_two_cells():
    from nbtrack.analysis.diff import _code_diff

    same = _code_diff("a", "x = 1\ny = 2", "b", "x = 1\ny = 2")
    assert same["lines"] == [] and same["same"]
    changed = _code_diff("a", "alpha = 0.1\nfit(alpha)", "b", "alpha = 0.5\nfit(alpha)")
    ops = [(line["op"], line["text"]) for line in changed["lines"]]
    assert ("-", "alpha = 0.1") in ops and ("+", "alpha = 0.5") in ops
    assert (" ", "fit(alpha)") in ops and ops[0][0] == "@"


def test_parameter_importance_ranks_the_param_that_drives_the_metric():
    import numpy as np

    nbtrack.set_experiment("sweep")
    rng = np.random.default_rng(0)
    for _ in range(40):
        alpha, noise = rng.uniform(0, 1), rng.uniform(0, 1)
        model = rng.choice(["a", "b"])
        with nbtrack.start_run():
            nbtrack.log_params({"alpha": round(alpha, 4), "noise": round(noise, 4),
                                "model": model})
            nbtrack.log_metric("loss", 3 * alpha + rng.normal(0, 0.05))
    widget = nbtrack.compare("sweep")
    assert widget.importance == {}
    widget.importance_metric = "metrics.loss"
    result = widget.importance
    assert result["runs"] == 40 and result["note"] == ""
    top = result["rows"][0]
    assert top["param"] == "params.alpha" and top["kind"] == "r"
    assert top["correlation"] > 0.95 and top["importance"] > 0.8
    model = next(r for r in result["rows"] if r["param"] == "params.model")
    assert model["kind"] == "η" and 0 <= model["correlation"] < 0.5


def test_importance_explains_when_there_is_too_little(taxi_runs):
    widget = nbtrack.compare("nyc-taxi", runs=taxi_runs[:2])
    widget.importance_metric = "metrics.rmse"
    assert widget.importance["rows"] == []
    assert widget.importance["note"].startswith("Needs at least 3 runs")


@pytest.mark.slow
def test_auto_refresh_follows_other_processes(taxi_runs, store_dir):
    import time

    widget = nbtrack.compare("nyc-taxi", auto_refresh=True)
    widget.refresh_interval = 0.1
    code = ("import nbtrack, sys; nbtrack.set_tracking_uri(sys.argv[1]); "
            "nbtrack.set_experiment('nyc-taxi'); r = nbtrack.start_run(); "
            "nbtrack.log_metric('rmse', 0.5); nbtrack.end_run()")
    done = subprocess.run([sys.executable, "-c", code, str(store_dir)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 20
    while widget.row_count < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert widget.row_count == 5
    widget.auto_refresh = False
    widget.close()


def test_text_fallback_keeps_the_first_rows(taxi_runs):
    widget = nbtrack.compare("nyc-taxi", order_by=["metrics.rmse ASC"])
    text = widget._repr_mimebundle_()[0]["text/plain"] if isinstance(
        widget._repr_mimebundle_(), tuple) else widget._repr_mimebundle_()["text/plain"]
    lines = text.splitlines()
    assert lines[0] == "<nbtrack compare: 4 runs in nyc-taxi>"
    assert lines[1].split()[:3] == ["run_name", "status", "metrics.rmse"]
    assert lines[2].split()[:3] == ["run-1", "FINISHED", "3.9"]
    assert len(lines) == 6
    assert "... 2 more" in widget.snapshot_text(rows=2)


def test_a_first_dashboard_does_not_wait_for_pandas(tmp_path):
    """Making the widget and its output (text included) in a fresh process imports no pandas:
    the page shows a kernel's first dashboard only once its output is sent."""
    script = ("import sys, nbtrack\n"
              "with nbtrack.start_run():\n"
              "    nbtrack.log_metric('rmse', 0.5)\n"
              "    nbtrack.log_param('lr', '0.1')\n"
              "nbtrack.flush()\n"
              "widget = nbtrack.compare('Default')\n"
              "text = widget._repr_mimebundle_()[0]['text/plain']\n"
              "assert text.splitlines()[2].split()[1:] == ['FINISHED', '0.5', '0.1'], text\n"
              "assert 'pandas' not in sys.modules, 'pandas was imported'\n")
    env = {**os.environ, "NBTRACK_TRACKING_URI": str(tmp_path / "store"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_new_order_is_marked_so_the_front_end_keeps_its_plot(taxi_runs):
    """The front end redraws no chart for a table whose reason is "order" (same rows)."""
    widget = nbtrack.compare("nyc-taxi")
    sent = []
    widget.observe(lambda change: sent.append((widget.table_reason, change["new"])),
                   names=["table"])
    widget.order_by = ["metrics.rmse DESC"]
    assert [reason for reason, _ in sent] == ["order"]
    assert table_of(widget).column("metrics.rmse").to_pylist() == [5.1, 4.8, 4.2, 3.9]
    widget.filter = "metrics.rmse < 5"
    widget.brush = {"metrics.rmse": {"ranges": [[4, 5]]}}
    assert [reason for reason, _ in sent] == ["order", "rows", "rows"]
    assert widget.row_count == 2
