"""Checks on keys and values, and friendly generated run names."""

from __future__ import annotations

import random
import re

from nbtrack.exceptions import InvalidValueError

MAX_KEY_LENGTH = 250
_KEY = re.compile(r"^[\w\-. /:]+$")
_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crisp", "eager", "fair", "gentle", "glad",
    "keen", "lively", "lucid", "merry", "nimble", "noble", "quiet", "rapid", "steady", "sunny",
    "swift", "tidy", "vivid", "wise",
)
_NOUNS = (
    "badger", "bear", "crane", "dolphin", "eagle", "falcon", "finch", "fox", "hare", "heron",
    "ibis", "lynx", "moth", "newt", "otter", "owl", "panda", "quail", "raven", "seal", "stork",
    "swan", "wolf", "wren",
)


_valid_keys: set[str] = set()


def check_key(key: object, what: str) -> str:
    """Return ``key`` if it is a valid name for a param, metric or tag, or raise."""
    if key in _valid_keys:
        return key  # type: ignore[return-value]
    if type(key) is str and len(key) <= MAX_KEY_LENGTH and _KEY.match(key) and ".." not in key:
        if len(_valid_keys) < 100_000:
            _valid_keys.add(key)
        return key
    if not isinstance(key, str):
        raise InvalidValueError(f"A {what} key must be a string, not {type(key).__name__} {key!r}.")
    raise InvalidValueError(
        f"Invalid {what} key {key!r}: use letters, digits, '_', '-', '.', ' ', '/' or ':', "
        f"at most {MAX_KEY_LENGTH} characters, without '..'."
    )


def metric_value(key: str, value: object) -> float:
    """Return ``value`` as a float, or raise naming the metric and the type."""
    kind = type(value)
    if kind is float or kind is int:
        return float(value)
    if isinstance(value, (str, bytes)) or value is None:
        raise InvalidValueError(
            f"Metric {key!r} must be a number, got {kind.__name__} {value!r}. Log numbers "
            "(int, float, numpy scalars); log text as a tag or a param."
        )
    try:
        return float(value)  # numpy scalars, Decimal, 0-d tensors
    except (TypeError, ValueError):
        raise InvalidValueError(
            f"Metric {key!r} must be a number, got {kind.__name__} {value!r}."
        ) from None


def generate_run_name() -> str:
    """A readable name such as ``swift-otter-417``."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(100, 999)}"
