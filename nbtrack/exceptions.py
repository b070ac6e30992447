"""Errors raised by nbtrack. Each one names the thing, the problem and what to do."""

from __future__ import annotations


class NbtrackError(Exception):
    """Base class of every error nbtrack raises on purpose."""


class NotFoundError(NbtrackError, LookupError):
    """An experiment, run, artifact or model that does not exist."""


class ParamConflictError(NbtrackError, ValueError):
    """A param logged again on the same run with a different value."""

    def __init__(self, run_id: str, key: str, old: str, new: str) -> None:
        super().__init__(
            f"Param {key!r} of run {run_id} is already {old!r}; it cannot change to {new!r}. "
            "Params are immutable once logged: start a new run for the new value, "
            "or log it under another key."
        )
        self.run_id, self.key, self.old, self.new = run_id, key, old, new


class InvalidValueError(NbtrackError, ValueError):
    """A value of the wrong type or shape."""


class FilterSyntaxError(NbtrackError, ValueError):
    """A search filter or order-by clause that does not parse."""

    def __init__(self, text: str, position: int, message: str) -> None:
        pointer = " " * position + "^"
        super().__init__(f"{message} at position {position}:\n  {text}\n  {pointer}")
        self.text, self.position, self.reason = text, position, message


class StoreError(NbtrackError):
    """The store cannot be opened or written."""


class StoreVersionError(StoreError):
    """The store was written by a newer nbtrack."""


class NotAStoreError(StoreError):
    """A file at the store's path that is not an nbtrack store."""


class StoreBusyError(StoreError):
    """Another program kept the store locked for longer than the timeout."""


class ArtifactPathError(NbtrackError, ValueError):
    """An artifact path that is absolute or would escape the run's artifact folder."""


class SchemaMismatchError(NbtrackError, ValueError):
    """Input given to a model does not match the model's signature."""


class ModelIntegrityError(NbtrackError):
    """A model's files changed after it was saved (a sha256 does not match)."""


class StoreCorruptError(NotAStoreError):
    """The store's DuckDB file is damaged (or is not a DuckDB file at all).

    ``path`` is the file, ``detail`` DuckDB's own words about the damage.
    """

    def __init__(self, path, detail: str, problem: str = "is damaged") -> None:
        super().__init__(
            f"The store file {path} cannot be opened or read: it {problem} ({detail}). "
            f"Run `nbtrack doctor {path}` to see what is still readable, then "
            f"`nbtrack doctor {path} --repair NEW_FOLDER` to salvage it into a new store; "
            "or restore the file from a backup."
        )
        self.path, self.detail = str(path), detail
