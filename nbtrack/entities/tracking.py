"""Small frozen data classes for what the store holds, named as MLflow names them."""

from __future__ import annotations

import gc
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, NamedTuple


class ViewType:
    """Which runs or experiments a search returns, by lifecycle stage."""

    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3

    _NAMES = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}

    @classmethod
    def from_string(cls, name: str) -> int:
        """Map ``"ACTIVE_ONLY"``, ``"DELETED_ONLY"`` or ``"ALL"`` to its value."""
        try:
            return cls._NAMES[name.upper()]
        except KeyError:
            raise ValueError(
                f"Unknown view type {name!r}: use one of {', '.join(cls._NAMES)}."
            ) from None

    @classmethod
    def stages(cls, view_type: int) -> tuple[str, ...]:
        """The lifecycle stages a view type selects."""
        if view_type == cls.ACTIVE_ONLY:
            return (LifecycleStage.ACTIVE,)
        if view_type == cls.DELETED_ONLY:
            return (LifecycleStage.DELETED,)
        if view_type == cls.ALL:
            return (LifecycleStage.ACTIVE, LifecycleStage.DELETED)
        raise ValueError(
            f"Unknown view type {view_type!r}: use ViewType.ACTIVE_ONLY, DELETED_ONLY or ALL."
        )


class LifecycleStage:
    """Whether an experiment or run is live or in the trash."""

    ACTIVE = "active"
    DELETED = "deleted"


class RunStatus:
    """The states of a run. A run ends as FINISHED, FAILED or KILLED."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    ALL = (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED)
    TERMINAL = (FINISHED, FAILED, KILLED)
    #: MLflow's numbers for the states (``RunStatus.from_string("FINISHED") == 3``)
    NUMBERS = {RUNNING: 1, SCHEDULED: 2, FINISHED: 3, FAILED: 4, KILLED: 5}

    @classmethod
    def check(cls, status: str | int) -> str:
        """Return ``status`` as its upper-case name (MLflow's numbers are accepted too)."""
        value = cls.to_string(status) if isinstance(status, int) else str(status).upper()
        if value not in cls.ALL:
            raise ValueError(f"Unknown run status {status!r}: use one of {', '.join(cls.ALL)}.")
        return value

    @classmethod
    def to_string(cls, status: str | int) -> str:
        """The name of a status given as MLflow's number (or as a name): ``3`` -> FINISHED."""
        if isinstance(status, str):
            return cls.check(status)
        for name, number in cls.NUMBERS.items():
            if number == status:
                return name
        raise ValueError(f"Unknown run status {status!r}: use one of {', '.join(cls.ALL)}.")

    @classmethod
    def from_string(cls, status: str) -> int:
        """MLflow's number of a status name: ``"FINISHED"`` -> 3."""
        return cls.NUMBERS[cls.check(status)]

    @classmethod
    def is_terminated(cls, status: str | int) -> bool:
        """Whether a status is one a run ends with (FINISHED, FAILED or KILLED)."""
        return cls.check(status) in cls.TERMINAL


@dataclass(frozen=True)
class Experiment:
    """A named group of runs."""

    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    creation_time: int | None = None
    last_update_time: int | None = None
    tags: dict[str, str] = field(default_factory=dict)


class Metric(NamedTuple):
    """One measurement of a metric: its value at a step and a time (epoch ms).

    A named tuple: a history of 100,000 points is built as fast as Python allows.
    """

    key: str
    value: float
    timestamp: int
    step: int


@dataclass(frozen=True)
class Param:
    """A run's input setting; immutable once logged."""

    key: str
    value: str


@dataclass(frozen=True)
class RunTag:
    """A free-form label on a run; may be overwritten."""

    key: str
    value: str


@dataclass(frozen=True)
class ExperimentTag:
    """A tag on an experiment."""

    key: str
    value: str


@dataclass(frozen=True)
class InputTag:
    """A tag on a run's input, such as its ``mlflow.data.context``."""

    key: str
    value: str


@dataclass(frozen=True)
class RunInfo:
    """A run's identity, state and timing."""

    run_id: str
    experiment_id: str
    run_name: str
    user_id: str
    status: str
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str
    parent_run_id: str | None = None
    description: str | None = None

    @property
    def run_uuid(self) -> str:
        """The run id under MLflow's older name."""
        return self.run_id


@dataclass(frozen=True)
class RunData:
    """A run's logged values: latest metrics, params and tags."""

    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSource:
    """Where a run came from: its entry point, code, git state, host and environment."""

    type: str | None = None
    name: str | None = None
    code: str | None = None
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    git_diff: str | None = None
    host: str | None = None
    python_version: str | None = None
    platform: str | None = None
    env_hash: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A dataset identified by its content digest."""

    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None


@dataclass(frozen=True)
class DatasetInput:
    """A dataset used by a run, in a context such as ``training``."""

    dataset: Dataset
    context: str | None = None


@dataclass(frozen=True)
class RunInputs:
    """The datasets a run used."""

    dataset_inputs: list[DatasetInput] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    """A run: ``info``, ``data``, ``inputs`` and ``source``."""

    info: RunInfo
    data: RunData
    inputs: RunInputs = field(default_factory=RunInputs)
    source: RunSource = field(default_factory=RunSource)


@dataclass(frozen=True)
class FileInfo:
    """An entry of a run's artifact folder."""

    path: str
    is_dir: bool
    file_size: int | None = None
    sha256: str | None = None


class PagedList(list):
    """A page of results (a list) plus ``token``, which fetches the next page (None at the end).

    As MLflow's: ``page == []`` holds for an empty page, and ``page.token`` is passed back as
    ``page_token``.
    """

    def __init__(self, items: Iterable[Any] = (), token: str | None = None) -> None:
        super().__init__(items)
        self.token = token

    @property
    def items(self) -> list[Any]:
        """The page's results as a plain list."""
        return list(self)

    def __repr__(self) -> str:
        return f"PagedList({list.__repr__(self)}, token={self.token!r})"


class MetricHistory(list):
    """A metric's full history: a list of ``Metric`` by step, as MLflow returns it.

    ``to_pandas()`` gives a DataFrame with columns step, value, timestamp.
    """

    def __init__(self, key: str, values, steps, timestamps) -> None:
        # the collector would scan the growing list again and again while it fills; a
        # history holds no cycles, so it pauses for the fill (twice as fast at 100k points)
        enabled = gc.isenabled()
        gc.disable()
        try:
            super().__init__(map(Metric._make, zip(
                repeat(key), values.tolist(), timestamps.tolist(), steps.tolist(),
                strict=False)))
        finally:
            if enabled:
                gc.enable()
        self.key = key
        self.values, self.steps, self.timestamps = values, steps, timestamps

    def to_pandas(self):
        """The history as a DataFrame with columns step, value, timestamp."""
        import pandas as pd

        return pd.DataFrame(
            {"step": self.steps, "value": self.values, "timestamp": self.timestamps}
        )
