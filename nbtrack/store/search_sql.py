"""Compile a parsed filter and order-by keys to SQL with ``?`` placeholders.

Values only ever travel as parameters. Column and table names come from fixed tables in this
module (never from the filter's text).

Runs are searched in ``run_index`` (alias ``r``), which has a column for most keys: a clause on
``metrics.rmse`` tests ``r."metrics.rmse"`` (a column named by ``run_index.column_names``, so
``metrics.Loss`` and ``metrics.loss`` stay apart). While the index is complete, a key with no
column was never logged, so its clauses are false; past the index's column cap such keys are
joined from the normalised tables instead, once per key (``LEFT JOIN params kN ON ... AND
kN.key = ?``), where keys compare case-sensitively. Every clause is wrapped so that a key the run
lacks makes it false, never NULL: ``NOT`` and ``OR`` behave as users expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nbtrack.entities import system_tags
from nbtrack.exceptions import InvalidValueError
from nbtrack.search.ast import (
    ATTRIBUTE,
    DATASET,
    METRIC,
    And,
    Comparison,
    Node,
    Not,
    Or,
    OrderKey,
)
from nbtrack.store.run_index import quote

_ATTRIBUTE_SQL = {
    "run_id": "r.run_id",
    "run_name": "r.run_name",
    "status": "r.status",
    "user_id": "r.user_id",
    "artifact_uri": "r.artifact_uri",
    "parent_run_id": "r.parent_run_id",
    "source_type": "r.source_type",
    "source_name": "r.source_name",
    "git_commit": "r.git_commit",
    "git_branch": "r.git_branch",
    "start_time": "r.start_time",
    "end_time": "r.end_time",
    "duration": "(r.end_time - r.start_time)",
}
_KEYED_TABLES = {METRIC: "latest_metrics", "param": "params", "tag": "tags"}
_DATASET_SQL = {"name": "d.name", "digest": "d.digest", "context": "i.context"}
_SIMPLE_OPS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
               "LIKE": "LIKE", "ILIKE": "ILIKE"}


_PREFIXES = {METRIC: "metrics.", "param": "params.", "tag": "tags."}


@dataclass
class SearchPlan:
    """The pieces of a run search: joins, WHERE and ORDER BY, each with its parameters."""

    indexed: dict[str, str] = field(default_factory=dict)
    complete: bool = True
    joins: list[str] = field(default_factory=list)
    join_params: list = field(default_factory=list)
    aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    where: str = "TRUE"
    where_params: list = field(default_factory=list)
    order: str = ""

    def value_column(self, entity: str, key: str) -> str:
        """The SQL for a metric, param or tag key's value: an index column, or a join."""
        if entity == "tag" and key in system_tags.COLUMNS:  # kept in a column of the run
            return f"nullif(r.{system_tags.COLUMNS[key]}, '')"
        column = self.indexed.get(_PREFIXES[entity] + key)
        if column is not None:
            return "r." + quote(column)
        if self.complete:  # never logged in this store
            return "CAST(NULL AS DOUBLE)" if entity == METRIC else "CAST(NULL AS VARCHAR)"
        alias = self.aliases.get((entity, key))
        if alias is None:
            alias = f"k{len(self.aliases)}"
            self.aliases[(entity, key)] = alias
            self.joins.append(
                f"LEFT JOIN {_KEYED_TABLES[entity]} {alias} "
                f"ON {alias}.run_id = r.run_id AND {alias}.key = ?"
            )
            self.join_params.append(key)
        return f"{alias}.value"


def plan_search(node: Node | None, keys: list[OrderKey], indexed: dict[str, str],
                complete: bool) -> SearchPlan:
    """Plan the joins, WHERE clause and ORDER BY for a filter tree and order keys.

    ``indexed`` maps key names (``metrics.rmse``) to their ``run_index`` columns; ``complete``
    says whether every logged key has one.
    """
    plan = SearchPlan(indexed=indexed, complete=complete)
    if node is not None:
        plan.where = _compile(node, plan)
    plan.order = _order_by(keys, plan)
    return plan


def _compile(node: Node, plan: SearchPlan, negated: bool = False) -> str:
    """Compile a filter tree to a WHERE condition.

    Outside NOT, a NULL clause already drops the row as FALSE would, so clauses stay bare and
    DuckDB can push them into the scan; under NOT each is made two-valued with ``coalesce``.
    """
    if isinstance(node, And):
        return "(" + " AND ".join(_compile(n, plan, negated) for n in node.items) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(_compile(n, plan, negated) for n in node.items) + ")"
    if isinstance(node, Not):
        return "(NOT " + _compile(node.item, plan, True) + ")"
    test = _comparison(node, plan)
    return f"coalesce({test}, FALSE)" if negated else f"({test})"


def _value_test(column: str, clause: Comparison, params: list, numeric: bool) -> str:
    op = clause.op
    if op in ("IN", "NOT IN"):
        assert isinstance(clause.value, tuple), "IN takes a tuple of strings"
        params.append(list(clause.value))
        test = f"list_contains(?, {column})"
        return test if op == "IN" else f"NOT {test}"
    params.append(clause.value)
    test = f"{column} {_SIMPLE_OPS[op]} ?"
    if numeric and op != "!=":
        test += f" AND NOT isnan({column})"  # NaN matches no ordered comparison
    return test


def _comparison(clause: Comparison, plan: SearchPlan) -> str:
    params = plan.where_params
    if clause.entity in _KEYED_TABLES:
        column = plan.value_column(clause.entity, clause.key)
        if clause.op == "IS NULL":
            return f"({column} IS NULL)"
        if clause.op == "IS NOT NULL":
            return f"({column} IS NOT NULL)"
        return _value_test(column, clause, params, numeric=clause.entity == METRIC)
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
        assert isinstance(value, (str, tuple)), "status compares with text"
        upper = value.upper() if isinstance(value, str) else tuple(v.upper() for v in value)
        clause = Comparison(clause.entity, clause.key, clause.op, upper, clause.position)
    return _value_test(column, clause, params, numeric=False)


def _order_by(keys: list[OrderKey], plan: SearchPlan) -> str:
    """ORDER BY where missing values and NaN sort last in both directions, as in MLflow.

    Ties fall back to the newest start time, then the run id, so pages are stable.
    """
    order: list[str] = []
    for key in keys:
        direction = "ASC" if key.ascending else "DESC"
        if key.entity in _KEYED_TABLES:
            column = plan.value_column(key.entity, key.key)
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
    return ", ".join(order)


_EXPERIMENT_SQL = {
    "name": "e.name", "experiment_id": "e.experiment_id", "lifecycle_stage": "e.lifecycle_stage",
    "artifact_location": "e.artifact_location", "creation_time": "e.creation_time",
    "last_update_time": "e.last_update_time",
}


def entity_where(node: Node | None, params: list, columns: dict[str, str],
                 tag_exists: str) -> str:
    """A WHERE clause for entities with attributes and ``tags.<key>`` (experiments, models).

    ``columns`` maps attribute names to SQL columns; ``tag_exists`` is the start of an EXISTS
    over the entity's tags, with one ``?`` for the key and its value as ``t.value``.
    """
    if node is None:
        return "TRUE"
    if isinstance(node, (And, Or)):
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(entity_where(n, params, columns, tag_exists)
                                 for n in node.items) + ")"
    if isinstance(node, Not):
        return "(NOT " + entity_where(node.item, params, columns, tag_exists) + ")"
    if node.entity == ATTRIBUTE:
        column = columns[node.key]
        if node.op in ("IS NULL", "IS NOT NULL"):
            return f"({column} {node.op})"
        return f"coalesce({_value_test(column, node, params, numeric=False)}, FALSE)"
    params.append(node.key)
    if node.op == "IS NULL":
        return "NOT " + tag_exists + ")"
    if node.op == "IS NOT NULL":
        return tag_exists + ")"
    return tag_exists + " AND " + _value_test("t.value", node, params, numeric=False) + ")"


def entity_order(keys: list[OrderKey], columns: dict[str, str], tie_break: str) -> str:
    """ORDER BY over attribute keys, then ``tie_break``."""
    order = []
    for key in keys:
        if key.entity != ATTRIBUTE:
            raise InvalidValueError(
                f"Order by attributes only, not by {key.entity} {key.key!r}.")
        order.append(f"{columns[key.key]} {'ASC' if key.ascending else 'DESC'}")
    return ", ".join([*order, tie_break])


def experiment_where(node: Node | None, params: list) -> str:
    """A WHERE clause over experiments aliased ``e`` (attributes and ``tags.<key>``)."""
    return entity_where(node, params, _EXPERIMENT_SQL,
                        "EXISTS (SELECT 1 FROM experiment_tags t "
                        "WHERE t.experiment_id = e.experiment_id AND t.key = ?")


def experiment_order(keys: list[OrderKey]) -> str:
    """ORDER BY for experiments: attribute keys (newest first by default), then the id."""
    if not keys:
        return "e.creation_time DESC, CAST(e.experiment_id AS BIGINT) DESC"
    return entity_order(keys, _EXPERIMENT_SQL, "CAST(e.experiment_id AS BIGINT)")
