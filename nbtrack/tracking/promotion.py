"""Guarded promotion: move a model version to a stage only if it beats the current holder.

    nbtrack.promote("nyc-taxi-regressor", 4, to="Production",
                    require="metrics.rmse <= current AND metrics.mae < 3.5")

Each clause of ``require`` compares one metric of the candidate's run with a number or with
``current``, the same metric of the newest version now in the target stage (a clause against
``current`` holds when no version is in that stage yet). A refusal raises ``PromotionRefused``
naming both numbers; the decision, either way, goes into the registry's audit log. A metric that
no version of the model has is a mistake in the requirement: ``InvalidValueError`` names it and
lists the metrics there are, and nothing is recorded.
"""

from __future__ import annotations

import operator
import re

from nbtrack.entities import ModelVersion, check_stage
from nbtrack.exceptions import InvalidValueError, NbtrackError

_CLAUSE = re.compile(
    r"^\s*metrics\.(?:`(?P<quoted>[^`]+)`|(?P<key>[\w\-./: ]+?))\s*"
    r"(?P<op><=|>=|<|>|==|=|!=)\s*(?P<rhs>current|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "=": operator.eq, "==": operator.eq, "!=": operator.ne}


class PromotionRefused(NbtrackError):
    """A guarded promotion whose condition does not hold."""


def parse_requirement(require: str) -> list[tuple[str, str, str]]:
    """``"metrics.rmse <= current AND ..."`` -> ``[("rmse", "<=", "current"), ...]``."""
    clauses = []
    for part in re.split(r"\s+AND\s+", require.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(part)
        if not match:
            raise InvalidValueError(
                f"Cannot read the requirement {part!r}: write clauses such as "
                "'metrics.rmse <= current' or 'metrics.r2 >= 0.8', joined by AND.")
        clauses.append((match["quoted"] or match["key"], match["op"], match["rhs"]))
    return clauses


def _metric(client, version: ModelVersion, key: str) -> float | None:
    if not version.run_id:
        return None
    return client.get_run(version.run_id).data.metrics.get(key)


def _check_keys(client, name: str, keys: list[str]) -> None:
    """Refuse a requirement naming a metric that no version of ``name`` has (a typo, surely)."""
    if not keys:
        return
    escaped = name.replace("'", "''")
    known: set[str] = set()
    for version in client.search_model_versions(f"name = '{escaped}'"):
        if version.run_id:
            known.update(client.get_run(version.run_id).data.metrics)
    unknown = [k for k in dict.fromkeys(keys) if k not in known]
    if unknown:
        listed = ", ".join(f"metrics.{k}" for k in sorted(known)) or "none"
        raise InvalidValueError(
            f"The requirement names {', '.join(f'metrics.{k}' for k in unknown)}, which no "
            f"version of {name!r} has. Its versions' runs have: {listed}.")


def promote(name: str, version, to: str = "Production", require: str | None = None,
            archive_existing: bool = True, comment: str | None = None,
            client=None) -> ModelVersion:
    """Move ``version`` of ``name`` to stage ``to`` if ``require`` holds; else refuse, saying why.

    With ``archive_existing`` the versions now in ``to`` move to Archived.
    """
    from nbtrack.tracking.client import Client

    client = client or Client()
    stage = check_stage(to)
    candidate = client.get_model_version(name, version)
    holders = [v for v in client.get_latest_versions(name, [stage])
               if v.version != candidate.version]
    current = holders[0] if holders else None
    clauses = parse_requirement(require) if require else []
    _check_keys(client, name, [key for key, _, _ in clauses])
    reasons, checks = [], []
    for key, op, rhs in clauses:
        mine = _metric(client, candidate, key)
        if mine is None:
            reasons.append(f"version {candidate.version} has no metrics.{key}")
            continue
        if rhs == "current":
            if current is None:
                checks.append(f"metrics.{key} = {mine:.6g} (no version in {stage} yet)")
                continue
            theirs = _metric(client, current, key)
            if theirs is None:
                reasons.append(f"the current {stage} version {current.version} has no "
                               f"metrics.{key} to compare against")
                continue
            label = f"current {stage} version {current.version}"
        else:
            theirs, label = float(rhs), "the threshold"
        text = f"metrics.{key}: {mine:.6g} {op} {theirs:.6g} ({label})"
        if _OPS[op](mine, theirs):
            checks.append(text)
        else:
            reasons.append(f"{text} does not hold")
    if reasons:
        why = "; ".join(reasons)
        client.record_registry_event(
            "promotion_refused", name, candidate.version, comment=f"to {stage}: {why}",
            field="stage", from_value=candidate.current_stage, to_value=stage)
        raise PromotionRefused(
            f"Version {candidate.version} of {name!r} was not promoted to {stage}: {why}. The "
            "refusal is in the registry's history.")
    note = "; ".join(checks)
    text = " | ".join(p for p in (comment, f"guarded: {note}" if note else None) if p)
    return client.transition_model_version_stage(name, candidate.version, stage,
                                                 archive_existing, text or None)
