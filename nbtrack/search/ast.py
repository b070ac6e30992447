"""The parsed form of a search filter and of order-by keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

METRIC, PARAM, TAG, ATTRIBUTE, DATASET = "metric", "param", "tag", "attribute", "dataset"

#: Run attributes that hold text, with the column that stores each. As in MLflow, a run's
#: experiment and lifecycle stage are chosen by ``experiment_ids`` and ``run_view_type``, not
#: by the filter.
STRING_ATTRIBUTES = (
    "run_id",
    "run_name",
    "status",
    "user_id",
    "artifact_uri",
    "parent_run_id",
    "source_type",
    "source_name",
    "git_commit",
    "git_branch",
)
#: Run attributes that hold numbers (epoch milliseconds).
NUMERIC_ATTRIBUTES = ("start_time", "end_time", "duration")
#: Other spellings users write, mapped to the attribute they mean (MLflow's included).
ATTRIBUTE_ALIASES = {
    "created": "start_time",
    "run name": "run_name",
    "runname": "run_name",
    "user": "user_id",
    "run_uuid": "run_id",
    "id": "run_id",
}
DATASET_FIELDS = ("name", "digest", "context")


@dataclass(frozen=True)
class Comparison:
    """One clause such as ``metrics.rmse < 0.5``.

    ``op`` is one of ``= != < <= > >= LIKE ILIKE IN NOT IN IS NULL IS NOT NULL``; ``value`` is a
    float, a string, a tuple of strings (IN) or None (IS NULL).
    """

    entity: str
    key: str
    op: str
    value: float | str | tuple[str, ...] | None
    position: int = 0


@dataclass(frozen=True)
class And:
    """All of ``items`` hold."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """At least one of ``items`` holds."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """``item`` does not hold."""

    item: Node


Node = Union[Comparison, And, Or, Not]  # noqa: UP007 - a runtime alias, valid on 3.10


@dataclass(frozen=True)
class OrderKey:
    """One order-by key, e.g. ``metrics.rmse DESC``."""

    entity: str
    key: str
    ascending: bool = True
