"""Turn the front end's axis brushes into a search filter (parsed like any user filter).

A brush is ``{column: {"ranges": [[lo, hi], ...]}}`` for metrics, or
``{column: {"values": [...]}}`` for params, tags and attributes (text in the store).
"""

from __future__ import annotations

import math
import re

from nbtrack.exceptions import InvalidValueError

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NOTHING = "attributes.run_id = ''"  # run ids are never empty: matches no run


def key_expression(column: str) -> str:
    """``metrics.rmse``, or ``metrics.`val loss``` for keys that need quoting."""
    prefix, dot, key = column.partition(".")
    if not dot or _PLAIN.match(key):
        return column
    return f"{prefix}.`{key.replace('`', '``')}`"


def _string(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _number(value) -> str:
    number = float(value)
    if not math.isfinite(number):
        raise InvalidValueError(f"A brush range needs finite numbers, not {value!r}.")
    return repr(number)


def brush_filter(brush: dict) -> str:
    """The filter clauses for a brush (all axes must hold), or '' for no brush."""
    clauses = []
    for column, spec in sorted(brush.items()):
        key = key_expression(column)
        if "ranges" in spec:
            parts = [f"({key} >= {_number(lo)} AND {key} <= {_number(hi)})"
                     for lo, hi in spec["ranges"]]
        elif "values" in spec:
            values = list(spec["values"])
            parts = [f"{key} IN ({', '.join(_string(v) for v in values)})"] if values \
                else [_NOTHING]
        else:
            raise InvalidValueError(f"A brush on {column!r} needs 'ranges' or 'values'.")
        if parts:
            clauses.append("(" + " OR ".join(parts) + ")")
    return " AND ".join(clauses)
