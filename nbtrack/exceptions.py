"""Errors raised by nbtrack. Each one names the thing, the problem and what to do.

Every error is an ``MlflowException`` with MLflow's ``error_code``, so code written against
MLflow (``except MlflowException as e: if e.error_code == "RESOURCE_DOES_NOT_EXIST"``) works
unchanged. Messages start with MLflow's wording for the same case, then nbtrack's advice.
"""

from __future__ import annotations

#: MLflow's error codes that nbtrack raises
INTERNAL_ERROR = "INTERNAL_ERROR"
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
INVALID_STATE = "INVALID_STATE"
TEMPORARILY_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"
BAD_REQUEST = "BAD_REQUEST"

_HTTP_STATUS = {
    INTERNAL_ERROR: 500, INVALID_PARAMETER_VALUE: 400, RESOURCE_DOES_NOT_EXIST: 404,
    RESOURCE_ALREADY_EXISTS: 400, INVALID_STATE: 400, TEMPORARILY_UNAVAILABLE: 503,
    BAD_REQUEST: 400,
}


class MlflowException(Exception):
    """An error with MLflow's ``error_code`` (``INVALID_PARAMETER_VALUE``, …) and ``message``.

    ``MlflowException(message, error_code=...)`` as in MLflow; subclasses carry their code.
    """

    error_code = INTERNAL_ERROR

    def __init__(self, message="", error_code: str | None = None, **kwargs) -> None:
        super().__init__(message)
        self.message = str(message)
        if error_code is not None:
            self.error_code = error_code
        self.json_kwargs = kwargs

    def get_http_status_code(self) -> int:
        """The HTTP status MLflow's server would answer with for this error."""
        return _HTTP_STATUS.get(self.error_code, 500)

    @classmethod
    def invalid_parameter_value(cls, message, **kwargs) -> MlflowException:
        """An ``INVALID_PARAMETER_VALUE`` error, as MLflow's constructor of that name."""
        return cls(message, error_code=INVALID_PARAMETER_VALUE, **kwargs)


class NbtrackError(MlflowException):
    """Base class of every error nbtrack raises on purpose."""


class NotFoundError(NbtrackError, LookupError):
    """An experiment, run, artifact or model that does not exist."""

    error_code = RESOURCE_DOES_NOT_EXIST


class AlreadyExistsError(NbtrackError, ValueError):
    """An experiment or registered model whose name is taken."""

    error_code = RESOURCE_ALREADY_EXISTS


class ParamConflictError(NbtrackError, ValueError):
    """A param logged again on the same run with a different value."""

    error_code = INVALID_PARAMETER_VALUE

    def __init__(self, run_id: str, key: str, old: str, new: str) -> None:
        super().__init__(
            f"Changing param values is not allowed. Param with key={key!r} was already logged "
            f"with value={old!r} for run ID={run_id!r}. Attempted logging new value {new!r}. "
            "Params are immutable once logged: start a new run for the new value, "
            "or log it under another key."
        )
        self.run_id, self.key, self.old, self.new = run_id, key, old, new


class InvalidValueError(NbtrackError, ValueError):
    """A value of the wrong type or shape."""

    error_code = INVALID_PARAMETER_VALUE


class FilterSyntaxError(NbtrackError, ValueError):
    """A search filter or order-by clause that does not parse."""

    error_code = INVALID_PARAMETER_VALUE

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

    error_code = TEMPORARILY_UNAVAILABLE


class ArtifactPathError(NbtrackError, ValueError):
    """An artifact path that is absolute or would escape the run's artifact folder."""

    error_code = INVALID_PARAMETER_VALUE


class SchemaMismatchError(NbtrackError, ValueError):
    """Input given to a model does not match the model's signature."""

    error_code = INVALID_PARAMETER_VALUE


class ModelIntegrityError(NbtrackError):
    """A model's files changed after it was saved (a sha256 does not match)."""

    error_code = INVALID_STATE


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
