"""Compile a parsed filter and order-by keys to SQL with ``?`` placeholders.

Values only ever travel as parameters. Column names come from fixed tables in this module
(never from the filter's text), and every clause is two-valued: a clause on a key the run lacks
is false, so ``NOT`` and ``OR`` behave as users expect.
"""

from __future__ import annotations

from nbtrack.search.ast import (
    ATTRIBUTE,
    DATASET,
    METRIC,
    PARAM,
    TAG,
    And,
    Comparison,
    Node,
    Not,
    Or,
    OrderKey,
)

_ATTRIBUTE_SQL = {
    "run_id": "r.run_id",
    "run_name": "r.run_name",
    "status": "r.status",
    "user_id": "r.user_id",
    "artifact_uri": "r.artifact_uri",
    "lifecycle_stage": "r.lifecycle_stage",
    "parent_run_id": "r.parent_run_id",
    "experiment_id": "r.experiment_id",
    "source_type": "r.source_type",
    "source_name": "r.source_name",
    "git_commit": "r.git_commit",
    "git_branch": "r.git_branch",
    "start_time": "r.start_time",
    "end_time": "r.end_time",
    "duration": "(r.end_time - r.start_time)",
}
_KEYED_TABLES = {METRIC: "latest_metrics", PARAM: "params", TAG: "tags"}
_DATASET_SQL = {"name": "d.name", "digest": "d.digest", "context": "i.context"}
_SIMPLE_OPS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
               "LIKE": "LIKE", "ILIKE": "ILIKE"}


def compile_filter(node: Node | None) -> tuple[str, list]:
    """Return ``(sql, params)`` for a WHERE clause over runs aliased ``r``."""
    if node is None:
        return "TRUE", []
    params: list = []
    return _compile(node, params), params


def _compile(node: Node, params: list) -> str:
    if isinstance(node, And):
        return "(" + " AND ".join(_compile(n, params) for n in node.items) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(_compile(n, params) for n in node.items) + ")"
    if isinstance(node, Not):
        return "(NOT " + _compile(node.item, params) + ")"
    return _comparison(node, params)


def _value_test(column: str, clause: Comparison, params: list, numeric: bool) -> str:
    op = clause.op
    if op in ("IN", "NOT IN"):
        params.append(list(clause.value))
        test = f"list_contains(?, {column})"
        return test if op == "IN" else f"NOT {test}"
    params.append(clause.value)
    test = f"{column} {_SIMPLE_OPS[op]} ?"
    if numeric and op != "!=":
        test += f" AND NOT isnan({column})"  # NaN matches no ordered comparison
    return test


def _comparison(clause: Comparison, params: list) -> str:
    if clause.entity in _KEYED_TABLES:
        table = _KEYED_TABLES[clause.entity]
        params.append(clause.key)
        exists = f"EXISTS (SELECT 1 FROM {table} k WHERE k.run_id = r.run_id AND k.key = ?"
        if clause.op == "IS NULL":
            return "NOT " + exists + ")"
        if clause.op == "IS NOT NULL":
            return exists + ")"
        numeric = clause.entity == METRIC
        return exists + " AND " + _value_test("k.value", clause, params, numeric) + ")"
    if clause.entity == DATASET:
        column = _DATASET_SQL[clause.key]
        body = (
            "EXISTS (SELECT 1 FROM inputs i JOIN datasets d ON d.name = i.dataset_name "
            "AND d.digest = i.dataset_digest WHERE i.run_id = r.run_id"
        )
        if clause.op == "IS NULL":
            return "NOT " + body + f" AND {column} IS NOT NULL)"
        if clause.op == "IS NOT NULL":
            return body + f" AND {column} IS NOT NULL)"
        return body + " AND " + _value_test(column, clause, params, numeric=False) + ")"
    assert clause.entity == ATTRIBUTE
    column = _ATTRIBUTE_SQL[clause.key]
    if clause.op == "IS NULL":
        return f"({column} IS NULL)"
    if clause.op == "IS NOT NULL":
        return f"({column} IS NOT NULL)"
    if clause.key == "status" and clause.op in ("=", "!=", "IN", "NOT IN"):
        value = clause.value
        upper = value.upper() if isinstance(value, str) else tuple(v.upper() for v in value)
        clause = Comparison(clause.entity, clause.key, clause.op, upper, clause.position)
    return f"coalesce({_value_test(column, clause, params, numeric=False)}, FALSE)"


def compile_order_by(keys: list[OrderKey]) -> tuple[str, str, list]:
    """Return ``(joins, order_sql, params)``: LEFT JOINs that expose each key, then ORDER BY.

    Missing values and NaN sort last in both directions, as in MLflow; ties fall back to the
    newest start time, then the run id, so pages are stable.
    """
    joins: list[str] = []
    order: list[str] = []
    params: list = []
    for i, key in enumerate(keys):
        direction = "ASC" if key.ascending else "DESC"
        if key.entity in _KEYED_TABLES:
            alias = f"o{i}"
            joins.append(
                f"LEFT JOIN {_KEYED_TABLES[key.entity]} {alias} "
                f"ON {alias}.run_id = r.run_id AND {alias}.key = ?"
            )
            params.append(key.key)
            column = f"{alias}.value"
        elif key.entity == ATTRIBUTE:
            column = _ATTRIBUTE_SQL[key.key]
        else:
            raise ValueError(f"Runs cannot be ordered by dataset fields ({key.key}).")
        if key.entity == METRIC:
            order.append(f"({column} IS NULL OR isnan({column})) ASC")
        else:
            order.append(f"({column} IS NULL) ASC")
        order.append(f"{column} {direction}")
    order += ["r.start_time DESC", "r.run_id ASC"]
    return " ".join(joins), ", ".join(order), params
