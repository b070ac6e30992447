"""Brushes from the parallel-coordinates plot become parsed filters, never pasted SQL."""

import pytest

import nbtrack
from nbtrack.analysis.brush import brush_filter, key_expression
from nbtrack.exceptions import InvalidValueError
from nbtrack.search.parser import parse_filter


def test_keys_are_quoted_when_needed():
    assert key_expression("metrics.rmse") == "metrics.rmse"
    assert key_expression("metrics.val loss") == "metrics.`val loss`"
    assert key_expression("params.a`b") == "params.`a``b`"
    assert key_expression("run_name") == "run_name"


def test_ranges_and_values_parse_in_the_grammar():
    text = brush_filter({"metrics.rmse": {"ranges": [[1, 2], [3.5, 4]]},
                         "params.model": {"values": ["lasso", "o'brien"]}})
    assert text == ("((metrics.rmse >= 1.0 AND metrics.rmse <= 2.0) OR "
                    "(metrics.rmse >= 3.5 AND metrics.rmse <= 4.0)) AND "
                    "(params.model IN ('lasso', 'o''brien'))")
    parse_filter(text)
    assert brush_filter({}) == ""
    with pytest.raises(InvalidValueError, match="finite"):
        brush_filter({"metrics.rmse": {"ranges": [[float("nan"), 1]]}})
    with pytest.raises(InvalidValueError, match="'ranges' or 'values'"):
        brush_filter({"metrics.rmse": {"sql": "1=1"}})


def test_a_hostile_brush_value_stays_a_value():
    nbtrack.set_experiment("e")
    with nbtrack.start_run():
        nbtrack.log_param("model", "lasso")
    widget = nbtrack.compare("e")
    widget.brush = {"params.model": {"values": ["x') OR 1=1 --"]}}
    assert widget.row_count == 0 and widget.filter_error == ""
    widget.brush = {"params.model": {"values": []}}  # a brush on empty space
    assert widget.row_count == 0
    widget.brush = {}
    assert widget.row_count == 1
