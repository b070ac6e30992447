"""Checks on keys and values, and friendly generated run names."""

from __future__ import annotations

import operator
import random
import re
from typing import SupportsFloat, SupportsIndex, cast

from nbtrack.exceptions import InvalidValueError

MAX_KEY_LENGTH = 250
#: MLflow's longest values, in characters: a param's, a run tag's, an experiment tag's, a
#: registered model's or version's tag
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_TAG_VALUE_LENGTH = 20000
MAX_REGISTRY_TAG_VALUE_LENGTH = 100_000
#: steps and timestamps are stored as signed 64-bit integers, as in MLflow
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
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


#: keys already checked in this process, so that the hot path checks a key once
valid_keys: set[str] = set()


def check_key(key: object, what: str) -> str:
    """Return ``key`` if it is a valid name for a param, metric or tag, or raise."""
    try:
        if key in valid_keys:
            return key
    except TypeError:  # unhashable, so not a string: told below
        pass
    if type(key) is str and len(key) <= MAX_KEY_LENGTH and _KEY.fullmatch(key) and ".." not in key:
        if len(valid_keys) < 100_000:
            valid_keys.add(key)
        return key
    if not isinstance(key, str):
        raise InvalidValueError(f"A {what} key must be a string, not {type(key).__name__} {key!r}.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidValueError(
            f"'{what.capitalize()} key' exceeds the maximum length of {MAX_KEY_LENGTH} "
            f"characters: {key[:40]!r}... is {len(key)} characters long. Use a shorter key.")
    raise InvalidValueError(
        f"Invalid {what} key {key!r}: use letters, digits, '_', '-', '.', ' ', '/' or ':', "
        f"at most {MAX_KEY_LENGTH} characters, without '..'."
    )


def whole_number(key: str, what: str, value: object) -> int:
    """Return a metric's step or timestamp as an int that fits int64, or raise naming both."""
    try:
        number = operator.index(cast("SupportsIndex", value))  # int, bool, numpy integers
    except TypeError:
        if not (isinstance(value, float) and value.is_integer()):
            raise InvalidValueError(
                f"The {what} of metric {key!r} must be a whole number, got "
                f"{type(value).__name__} {value!r}. Pass an int (fractions are not truncated)."
            ) from None
        number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidValueError(
            f"The {what} of metric {key!r} is {number}, outside the signed 64-bit range "
            f"[{INT64_MIN}, {INT64_MAX}] that MLflow and nbtrack store."
        )
    return number


def check_text(value: str, what: str) -> str:
    """Return ``value`` if it can be stored (encodes as UTF-8), or raise naming it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidValueError(
            f"The {what} {value!r} cannot be stored: it is not valid Unicode ({exc.reason} at "
            f"position {exc.start}), as happens with os.fsdecode of a file name that is not "
            "UTF-8. Clean it first, e.g. value.encode('utf-8', 'replace').decode()."
        ) from None
    return value


def check_value(value: object, what: str, key: str, limit: int) -> str:
    """``value`` as text if it is storable and at most ``limit`` characters, or raise.

    MLflow truncates a longer value with a warning; nbtrack refuses it, so nothing is cut.
    """
    text = check_text(str(value), f"value of {what} {key!r}")
    if len(text) > limit:
        raise InvalidValueError(
            f"'{what.capitalize()} value' exceeds the maximum length of {limit} characters: the "
            f"value of {what} {key!r} is {len(text)} characters long. Log long text as an "
            "artifact with log_text(), or shorten it.")
    return text


def metric_value(key: str, value: object) -> float:
    """Return ``value`` as a float, or raise naming the metric and the type."""
    if type(value) is float or type(value) is int:
        return float(value)
    kind = type(value)
    if isinstance(value, (str, bytes)) or value is None:
        raise InvalidValueError(
            f"Metric {key!r} must be a number, got {kind.__name__} {value!r}. Log numbers "
            "(int, float, numpy scalars); log text as a tag or a param."
        )
    try:
        return float(cast("SupportsFloat", value))  # numpy scalars, Decimal, 0-d tensors
    except (TypeError, ValueError):
        raise InvalidValueError(
            f"Metric {key!r} must be a number, got {kind.__name__} {value!r}."
        ) from None


def generate_run_name() -> str:
    """A readable name such as ``swift-otter-417``."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(100, 999)}"
