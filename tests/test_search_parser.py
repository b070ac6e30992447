import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbtrack.exceptions import FilterSyntaxError
from nbtrack.search import parse_filter, parse_order_by
from nbtrack.search.ast import And, Comparison, Not, Or, OrderKey


def test_empty_filter_is_none():
    assert parse_filter("") is None
    assert parse_filter("   ") is None
    assert parse_filter(None) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("metrics.rmse < 0.5", Comparison("metric", "rmse", "<", 0.5)),
        ("metric.rmse >= -1e3", Comparison("metric", "rmse", ">=", -1000.0)),
        ("params.model = 'lasso'", Comparison("param", "model", "=", "lasso")),
        ('parameter.model != "ridge"', Comparison("param", "model", "!=", "ridge")),
        ("tags.team LIKE 'ml%'", Comparison("tag", "team", "LIKE", "ml%")),
        ("tag.team ilike 'ML%'", Comparison("tag", "team", "ILIKE", "ML%")),
        ("attributes.status = 'FINISHED'", Comparison("attribute", "status", "=", "FINISHED")),
        ("status IN ('FAILED', 'KILLED')",
         Comparison("attribute", "status", "IN", ("FAILED", "KILLED"))),
        ("run.run_name NOT IN ('a')", Comparison("attribute", "run_name", "NOT IN", ("a",))),
        ("created > 5", Comparison("attribute", "start_time", ">", 5.0)),
        ("attributes.`Run name` = 'x'", Comparison("attribute", "run_name", "=", "x")),
        ("metrics.`my-metric` = 1", Comparison("metric", "my-metric", "=", 1.0)),
        ('metrics."my metric" = 1', Comparison("metric", "my metric", "=", 1.0)),
        ("metrics.train.loss < 2", Comparison("metric", "train.loss", "<", 2.0)),
        ("metrics.rmse IS NULL", Comparison("metric", "rmse", "IS NULL", None)),
        ("params.a is not null", Comparison("param", "a", "IS NOT NULL", None)),
        ("dataset.name = 'trips'", Comparison("dataset", "name", "=", "trips")),
        ("params.q = 'it''s'", Comparison("param", "q", "=", "it's")),
        ("metrics.x <> 1", Comparison("metric", "x", "!=", 1.0)),
        ("metrics.x = nan", None),
    ],
)
def test_single_clauses(text, expected):
    node = parse_filter(text)
    if expected is None:
        assert node.value != node.value  # NaN
        return
    assert (node.entity, node.key, node.op, node.value) == (
        expected.entity, expected.key, expected.op, expected.value
    )


def test_precedence_and_parentheses():
    node = parse_filter("metrics.a > 1 OR metrics.b > 2 AND NOT (params.c = 'x' OR tags.d = 'y')")
    assert isinstance(node, Or)
    left, right = node.items
    assert isinstance(left, Comparison) and left.key == "a"
    assert isinstance(right, And)
    assert isinstance(right.items[1], Not)
    assert isinstance(right.items[1].item, Or)


@pytest.mark.parametrize(
    "text, position, fragment",
    [
        ("metrics.rmse < 'x'", 15, "Expected a number"),
        ("params.alpha = 0.1", 15, "quoted string"),
        ("metrics.a <", 11, "Expected a number"),
        ("(metrics.a > 1", 14, "Expected ')'"),
        ("foo = 'x'", 0, "Invalid attribute key 'foo'"),
        ("params.a > 'x'", 9, "> does not apply"),
        ("metrics.a = 1 garbage", 14, "Expected AND, OR"),
        ("metrics.a = 1 AND", 17, "Expected an identifier"),
        ("params.a = 'unterminated", 11, "Unclosed"),
        ("metrics.a IN ('x')", 0, "IN applies to text"),
        ("status IN ('a',", 15, "quoted string in the IN list"),
        ("metrics.a IS 5", 13, "Expected NULL"),
        ("metrics.a ; DROP TABLE runs", 10, "Unexpected character"),
        ("dataset.size = 'x'", 0, "Unknown dataset field"),
        ("metrics. = 1", 8, "Expected a key"),
    ],
)
def test_errors_point_at_the_problem(text, position, fragment):
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert info.value.position == position
    assert fragment in str(info.value)
    assert "^" in str(info.value)


def test_order_by():
    assert parse_order_by(None) == []
    assert parse_order_by("metrics.rmse") == [OrderKey("metric", "rmse", True)]
    assert parse_order_by(["metrics.rmse DESC", "start_time asc"]) == [
        OrderKey("metric", "rmse", False), OrderKey("attribute", "start_time", True)
    ]
    assert parse_order_by("params.`a b` DESC, tags.t") == [
        OrderKey("param", "a b", False), OrderKey("tag", "t", True)
    ]
    with pytest.raises(FilterSyntaxError, match="ASC, DESC"):
        parse_order_by("metrics.rmse SIDEWAYS")
    with pytest.raises(FilterSyntaxError, match="Invalid attribute key"):
        parse_order_by("nosuch")


# ---- property-based ---------------------------------------------------------------------
keys = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="`\x00"),
               min_size=1, max_size=12)
strings = st.text(max_size=12)
numbers = st.floats(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def clauses(draw):
    kind = draw(st.sampled_from(["metric", "param", "tag", "status"]))
    key = draw(keys)
    quoted_key = "`" + key + "`"
    if kind == "metric":
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
        value = draw(numbers)
        return f"metrics.{quoted_key} {op} {value!r}", Comparison("metric", key, op, value)
    if kind == "status":
        values = tuple(draw(st.lists(strings, min_size=1, max_size=3)))
        literal = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
        return f"status IN ({literal})", Comparison("attribute", "status", "IN", values)
    op = draw(st.sampled_from(["=", "!=", "LIKE", "ILIKE"]))
    value = draw(strings)
    literal = "'" + value.replace("'", "''") + "'"
    prefix = "params" if kind == "param" else "tags"
    return f"{prefix}.{quoted_key} {op} {literal}", Comparison(kind, key, op, value)


@st.composite
def filters(draw, depth=0):
    if depth > 2 or draw(st.booleans()):
        return draw(clauses())
    op = draw(st.sampled_from(["AND", "OR", "NOT"]))
    if op == "NOT":
        text, tree = draw(filters(depth=depth + 1))
        return f"NOT ({text})", Not(tree)
    parts = [draw(filters(depth=depth + 1)) for _ in range(draw(st.integers(2, 3)))]
    text = f" {op} ".join(f"({t})" for t, _ in parts)
    node = (And if op == "AND" else Or)(tuple(tree for _, tree in parts))
    return text, node


def _strip(node):
    if isinstance(node, Comparison):
        return (node.entity, node.key, node.op, node.value)
    if isinstance(node, Not):
        return ("NOT", _strip(node.item))
    return (type(node).__name__, tuple(_strip(n) for n in node.items))


@settings(max_examples=300, deadline=None)
@given(filters())
def test_generated_filters_parse_to_their_tree(case):
    text, tree = case
    assert _strip(parse_filter(text)) == _strip(tree)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_parses_or_raises_a_syntax_error(text):
    try:
        parse_filter(text)
    except FilterSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
