"""Turn the front end's axis brushes into a search filter (parsed like any user filter).

A brush is ``{column: {"ranges": [[lo, hi], ...]}}`` for metrics, or
``{column: {"values": [...]}}`` for params, tags and attributes (text in the store).
The brush comes from the front end as a message, so its shape is checked: anything else is an
``InvalidValueError`` that names what is wrong, never a ``TypeError`` from deep inside.
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


def _number(value, column: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidValueError(f"A brush range on {column!r} needs numbers, not {value!r}.")
    try:
        number = float(value)
    except ValueError:
        raise InvalidValueError(
            f"A brush range on {column!r} needs numbers, not {value!r}.") from None
    if not math.isfinite(number):
        raise InvalidValueError(f"A brush range needs finite numbers, not {value!r}.")
    return repr(number)


def _range(item, column: str) -> tuple:
    if not isinstance(item, (list, tuple)) or len(item) != 2:
        raise InvalidValueError(f"A brush range on {column!r} is a pair [low, high], "
                                f"not {item!r}.")
    return tuple(item)


def _clause(column, spec) -> str:
    if not isinstance(column, str) or not (_PLAIN.match(column) or "." in column[1:]):
        raise InvalidValueError(f"A brush names its column (e.g. 'metrics.rmse'), "
                                f"not {column!r}.")
    if not isinstance(spec, dict):
        raise InvalidValueError(f"A brush on {column!r} is {{'ranges': [[low, high], ...]}} or "
                                f"{{'values': [...]}}, not {spec!r}.")
    key = key_expression(column)
    if "ranges" in spec:
        ranges = spec["ranges"]
        if not isinstance(ranges, (list, tuple)):
            raise InvalidValueError(f"A brush on {column!r} needs a list of ranges, "
                                    f"not {ranges!r}.")
        parts = []
        for lo, hi in (_range(item, column) for item in ranges):
            parts.append(f"({key} >= {_number(lo, column)} AND {key} <= {_number(hi, column)})")
    elif "values" in spec:
        values = spec["values"]
        if not isinstance(values, (list, tuple)) or any(
                isinstance(v, (dict, list, tuple)) for v in values):
            raise InvalidValueError(f"A brush on {column!r} needs a list of values, "
                                    f"not {values!r}.")
        parts = [f"{key} IN ({', '.join(_string(v) for v in values)})"] if values \
            else [_NOTHING]
    else:
        raise InvalidValueError(f"A brush on {column!r} needs 'ranges' or 'values'.")
    return "(" + " OR ".join(parts) + ")" if parts else ""


def brush_filter(brush: dict) -> str:
    """The filter clauses for a brush (all axes must hold), or '' for no brush.

    Raises ``InvalidValueError`` for a brush of any other shape.
    """
    if not isinstance(brush, dict):
        raise InvalidValueError(f"A brush is a dict of columns, not {brush!r}.")
    clauses = [_clause(column, spec) for column, spec in sorted(brush.items(), key=str)]
    return " AND ".join(c for c in clauses if c)
