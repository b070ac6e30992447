"""The tracking store interface: experiments, runs, their values, artifacts and inputs.

Only the Client talks to a store. A backend (the embedded DuckDB file today, DuckLake for teams
later) is chosen by tracking URI in ``nbtrack.store.registry`` and implements this interface and
``nbtrack.store.registry_base.RegistryStore``. Methods take typed values; how they are kept
(columns, SQL) is the store's business. Writes of run values may be buffered by a store: every
read method must first make the caller's own earlier writes visible, and ``sync`` makes them
durable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtrack.entities import Experiment, Run, RunSource

if TYPE_CHECKING:
    from nbtrack.store.pending import Batch


@dataclass(frozen=True)
class NewRun:
    """A run to record, as the Client knows it when the run starts (it starts RUNNING)."""

    run_id: str
    experiment_id: str
    run_name: str
    user_id: str | None
    start_time: int
    parent_run_id: str | None
    description: str | None
    source: RunSource
    #: the process that runs it, so that a run left RUNNING by a dead process is marked KILLED
    pid: int | None


class Store(ABC):
    """Experiments, runs and their values, artifacts index and inputs."""

    uri: str
    artifact_root: Path
    #: where artifacts are kept when not in ``artifact_root`` (``s3://bucket/prefix/artifacts``);
    #: ``artifact_root`` is then this machine's cache of them
    artifact_remote: str | None = None

    # experiments -------------------------------------------------------------------------
    @abstractmethod
    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict | None = None,
        exist_ok: bool = False,
    ) -> str:
        """Create an experiment and return its id.

        If the name is taken, raise; with ``exist_ok``, return the existing active
        experiment's id instead, atomically.
        """

    @abstractmethod
    def get_experiment(self, experiment_id: str, wait: float | None = None) -> Experiment:
        """Return an experiment by id or raise NotFoundError (StoreBusyError after ``wait``)."""

    @abstractmethod
    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """Return an experiment by name, or None."""

    @abstractmethod
    def search_experiments(
        self, view_type: int, max_results: int | None, filter_string: str | None = None,
        order_by: list[str] | None = None,
    ) -> list[Experiment]:
        """Experiments in a lifecycle view matching a filter (attributes and tags)."""

    @abstractmethod
    def set_experiment_lifecycle(self, experiment_id: str, stage: str) -> None:
        """Move an experiment to ``active`` or ``deleted``."""

    @abstractmethod
    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Give an experiment a new, unused name."""

    @abstractmethod
    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        """Set a tag on an experiment."""

    # runs --------------------------------------------------------------------------------
    @abstractmethod
    def create_run(self, run: NewRun) -> None:
        """Record a new RUNNING run."""

    @abstractmethod
    def update_run(self, run_id: str, status: str | None = None, end_time: int | None = None,
                   run_name: str | None = None, resumed_by: tuple[str, int] | None = None
                   ) -> None:
        """Change a run's status, end time or name.

        ``resumed_by`` (host, pid) makes a run RUNNING again in that process: its end time is
        cleared, and a run of a process that died is told apart from it.
        """

    @abstractmethod
    def get_run(self, run_id: str) -> Run:
        """Return a run with its latest metrics, params, tags, inputs and source."""

    def peek_latest_metrics(self, run_id: str) -> dict[str, float]:
        """The run's latest metric values, including those this process has not written yet.

        Stores that buffer writes answer without forcing a write; this default reads the run.
        """
        return dict(self.get_run(run_id).data.metrics)

    @abstractmethod
    def ensure_run(self, run_id: str) -> dict[str, str]:
        """Raise unless the run exists and is active; return its params."""

    def is_known_run(self, run_id: str) -> bool:
        """Whether ``ensure_run`` already vouched for this run (a cache hit, no I/O)."""
        return False

    @abstractmethod
    def add_params(self, run_id: str, items: list[tuple[str, str]]) -> None:
        """Record params; the same value again is a no-op, a different one ParamConflictError."""

    @abstractmethod
    def set_tags(self, run_id: str, items: list[tuple[str, str | None]]) -> None:
        """Set tags; a value of None deletes the tag."""

    @abstractmethod
    def set_run_attributes(self, run_id: str, attributes: Mapping[str, str | None]) -> None:
        """Change the run columns that MLflow's system tags stand for.

        Keys are the columns of ``entities.system_tags.COLUMNS`` (``run_name``, ``user_id``,
        ``description``, ...); None clears a column.
        """

    @abstractmethod
    def add_metric(self, run_id: str, key: str, value: float, step: int, timestamp: int) -> None:
        """Record one metric value; callers check the run with ``ensure_run`` first."""

    @abstractmethod
    def add_metrics(self, rows: list[tuple[str, str, float, int, int]]) -> None:
        """Record metric rows ``(run_id, key, value, step, timestamp)``."""

    @abstractmethod
    def get_metric_history(self, run_id: str, key: str):
        """A metric's full history, ordered by step then timestamp."""

    @abstractmethod
    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str | None,
        view_type: int,
        max_results: int,
        order_by: list[str] | None,
        page_token: str | None,
    ) -> tuple[list[Run], str | None]:
        """A page of runs matching a filter, and the token for the next page."""

    @abstractmethod
    def search_runs_frame(
        self,
        experiment_ids: list[str],
        filter_string: str | None,
        view_type: int,
        max_results: int,
        order_by: list[str] | None,
    ):
        """The same search as a pandas DataFrame with MLflow's columns."""

    @abstractmethod
    def search_runs_arrow(self, experiment_ids: list[str], filter_string: str | None,
                          view_type: int, max_results: int, order_by: list[str] | None,
                          keys: list[str]):
        """``(pyarrow.Table, total)``: chosen key columns of the matching runs, for widgets."""

    @abstractmethod
    def histories_arrow(self, run_ids: list[str], key: str, max_points: int = 5000):
        """One metric's history for several runs: Arrow ``run_id, step, timestamp, value``."""

    @abstractmethod
    def key_counts(self, experiment_ids: list[str], view_type: int) -> dict[str, int]:
        """How many of the experiments' runs have each key column, most common first."""

    @abstractmethod
    def set_run_lifecycle(self, run_id: str, stage: str) -> None:
        """Move a run to ``active`` or ``deleted``."""

    # artifacts, inputs, environments -----------------------------------------------------
    @abstractmethod
    def add_artifact(self, run_id: str, path: str, size: int, sha256: str) -> None:
        """Index an artifact file that was copied into the run's folder."""

    @abstractmethod
    def get_artifact_index(self, run_id: str) -> dict[str, tuple[int, str]]:
        """``{path: (size, sha256)}`` for a run's artifacts."""

    @abstractmethod
    def add_input(self, run_id: str, dataset: dict, context: str | None) -> None:
        """Record that a run used a dataset."""

    @abstractmethod
    def add_environment(self, env_hash: str, env: dict) -> None:
        """Record an environment once per distinct hash."""

    @abstractmethod
    def get_environment(self, env_hash: str) -> dict | None:
        """An environment by hash: python version, platform and packages."""

    # whole store -------------------------------------------------------------------------
    def at(self, as_of) -> Any:
        """The store as it was at ``as_of``, read-only: only the team store keeps the past."""
        from nbtrack.store.lake_snapshots import EMBEDDED, TimeTravelError

        raise TimeTravelError(EMBEDDED)

    @abstractmethod
    def sql(self, query: str, parameters: list | None = None):
        """Run one read-only SELECT over the documented views; return a DataFrame."""

    @abstractmethod
    def sync(self) -> None:
        """Make every value this process logged durable, without waiting for other processes."""

    @abstractmethod
    def write_soon(self) -> None:
        """Ask for what this process logged to be made durable now, without waiting for it."""

    @abstractmethod
    def has_unwritten(self) -> bool:
        """Whether values this process logged are not durable yet."""

    @property
    @abstractmethod
    def write_listeners(self) -> list[Callable[[Batch], None]]:
        """Called with each batch of values once it is durable (live charts follow runs so)."""

    @abstractmethod
    def change_token(self) -> tuple:
        """A value that changes whenever any process writes to the store."""

    @abstractmethod
    def flush(self) -> None:
        """Write everything pending now; raise if it cannot be written."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release every resource."""
