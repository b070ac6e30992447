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


MALFORMED = [
    ({"metrics.rmse": {"ranges": [[0]]}}, "is a pair [low, high], not [0]"),
    ({"metrics.rmse": {"ranges": [[{}, 1]]}}, "needs numbers, not {}"),
    ({"metrics.rmse": {"ranges": [["x", 1]]}}, "needs numbers, not 'x'"),
    ({"metrics.rmse": {"ranges": [[True, 1]]}}, "needs numbers, not True"),
    ({"metrics.rmse": {"ranges": 5}}, "a list of ranges, not 5"),
    ({"metrics.rmse": {"ranges": [[0, 1, 2]]}}, "is a pair"),
    ({"ranges": [[0]]}, "is {'ranges': [[low, high], ...]} or {'values': [...]}"),
    ({"params.model": {"values": [{}]}}, "a list of values"),
    ({"params.model": {"values": "lasso"}}, "a list of values"),
    ({"x) OR (1": {"values": ["a"]}}, "names its column"),
    ([[{}, 1]], "A brush is a dict of columns, not [[{}, 1]]"),
    (None, "A brush is a dict of columns, not None"),
]


@pytest.mark.parametrize(("brush", "message"), MALFORMED)
def test_a_malformed_brush_is_a_clear_error(brush, message):
    with pytest.raises(InvalidValueError) as caught:
        brush_filter(brush)
    assert message in str(caught.value)


def test_a_malformed_brush_message_shows_an_inline_error():
    nbtrack.set_experiment("e")
    for rmse in (0.2, 0.6):
        with nbtrack.start_run():
            nbtrack.log_metric("rmse", rmse)
    widget = nbtrack.compare("e")
    widget.brush = {"metrics.rmse": {"ranges": [[0, 0.5]]}}
    assert widget.row_count == 1 and widget.brush_error == ""
    for brush, message in MALFORMED:
        # as the front end's message arrives: ipywidgets calls set_state, then the observers
        widget.set_state({"brush": brush})
        assert message in widget.brush_error
        assert widget.brush_error.startswith("The plot's brush was ignored: ")
        assert widget.row_count == 2 and widget.filter_error == ""  # the filter alone
    widget.set_state({"brush": {"metrics.rmse": {"ranges": [[0.5, 1]]}}})
    assert widget.brush_error == "" and widget.row_count == 1
