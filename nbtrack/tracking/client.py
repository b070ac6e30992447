"""``Client``: explicit, run-id based access to a store, with MLflow's method names."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence

from nbtrack.capture import environment, git
from nbtrack.capture import system as host
from nbtrack.capture.entry_point import current_entry_point
from nbtrack.clock import now_ms
from nbtrack.entities import (
    Experiment,
    LifecycleStage,
    Metric,
    PagedList,
    Param,
    Run,
    RunData,
    RunInfo,
    RunSource,
    RunStatus,
    RunTag,
    ViewType,
    system_tags,
)
from nbtrack.exceptions import InvalidValueError, NotFoundError, StoreBusyError
from nbtrack.search.paging import RUNS_PAGE_LIMIT, check_max_results, page_of
from nbtrack.store.base import NewRun
from nbtrack.store.registry import get_store
from nbtrack.tracking import names
from nbtrack.tracking.client_artifacts import ArtifactsClientMixin
from nbtrack.tracking.client_import import ImportClientMixin
from nbtrack.tracking.names import (
    INT64_MAX,
    INT64_MIN,
    MAX_EXPERIMENT_TAG_VALUE_LENGTH,
    MAX_PARAM_VALUE_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    check_key,
    check_text,
    check_value,
    metric_value,
    valid_keys,
    whole_number,
)
from nbtrack.tracking.registry_client import RegistryClientMixin

SEARCH_MAX_RESULTS = 1000
EXPERIMENT_CHECK_SECONDS = 5.0
#: how long starting a run waits for a busy store to check its experiment, then goes ahead
EXPERIMENT_CHECK_WAIT = 1.0



def _param(key, value) -> tuple[str, str]:
    key = check_key(key, "param")
    return key, check_value(value, "param", key, MAX_PARAM_VALUE_LENGTH)


def check_tag_value(key: str, value) -> str:
    """A run tag's value as text, checked against MLflow's limit."""
    return check_value(value, "tag", key, MAX_TAG_VALUE_LENGTH)


def _agree(name: str, argument, tag_value, tag: str):
    """The value given as an argument or as a system tag; both, differing, is an error."""
    if argument is not None and tag_value is not None and str(argument) != str(tag_value):
        if tag == system_tags.NOTE:
            raise InvalidValueError(
                f"Description is already set via the tag {tag} in tags. Remove the key {tag} "
                "from the tags or omit the description.")
        raise InvalidValueError(
            f"Both '{name}' argument and '{tag}' tag are specified, but with different values "
            f"({argument!r} and {tag_value!r}). Give one of them.")
    return argument if argument is not None else tag_value


class Client(ArtifactsClientMixin, ImportClientMixin, RegistryClientMixin):
    """Work with experiments and runs by id.

    Args:
        tracking_uri: the store to use; by default the one ``set_tracking_uri`` chose, else
            ``NBTRACK_TRACKING_URI``, else ``.nbtrack/`` under the working directory.

    """

    def __init__(self, tracking_uri: str | os.PathLike | None = None) -> None:
        from nbtrack.tracking.uri import get_tracking_uri

        self.tracking_uri = str(tracking_uri) if tracking_uri else get_tracking_uri()
        self._store = get_store(self.tracking_uri)
        self._active_experiments: dict[str, float] = {}

    @property
    def store(self):
        """The store behind this client."""
        return self._store

    @staticmethod
    def close_all() -> None:
        """Close every store this process opened (the exit path calls this once)."""
        from nbtrack.store.registry import close_all

        close_all()

    def sync(self) -> None:
        """Make every value this process logged durable on disk now (no store lock needed).

        Values become durable on their own within 20 ms; a run's start and end, and
        ``synchronous=True``, are durable when they return.
        """
        self._store.sync()

    def flush(self) -> None:
        """Make every logged value durable and merge it into the store, visible to all."""
        self._store.flush()

    # experiments --------------------------------------------------------------------------
    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict | None = None
    ) -> str:
        """Create an experiment and return its id."""
        return self._store.create_experiment(name, artifact_location, tags)

    def get_or_create_experiment(self, name: str) -> Experiment:
        """The active experiment of this name, created if missing (safe across processes)."""
        return self.get_experiment(self._store.create_experiment(name, exist_ok=True))

    def get_experiment(self, experiment_id: str) -> Experiment:
        """Return an experiment by id."""
        return self._store.get_experiment(str(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """Return an experiment by name, or None."""
        return self._store.get_experiment_by_name(name)

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int | None = SEARCH_MAX_RESULTS,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        """A page of experiments, newest first, e.g. ``filter_string="name LIKE 'nyc%'"``.

        Filters name ``name``, ``experiment_id``, ``lifecycle_stage``, ``artifact_location``,
        ``creation_time``, ``last_update_time`` and ``tags.<key>``; ``order_by`` the attributes.
        ``max_results=None`` returns every match in one page.
        """
        if max_results is None:
            return PagedList(self._store.search_experiments(view_type, None, filter_string,
                                                            order_by))
        limit = check_max_results(max_results, RUNS_PAGE_LIMIT)
        return page_of(
            lambda n: self._store.search_experiments(view_type, n, filter_string, order_by),
            limit, page_token)

    def delete_experiment(self, experiment_id: str) -> None:
        """Move an experiment to the trash (restore it with ``restore_experiment``)."""
        self._active_experiments.pop(str(experiment_id), None)
        self._store.set_experiment_lifecycle(str(experiment_id), LifecycleStage.DELETED)

    def restore_experiment(self, experiment_id: str) -> None:
        """Bring a deleted experiment back."""
        self._store.set_experiment_lifecycle(str(experiment_id), LifecycleStage.ACTIVE)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Rename an experiment."""
        self._store.rename_experiment(str(experiment_id), new_name)

    def set_experiment_tag(self, experiment_id: str, key: str, value) -> None:
        """Set a tag on an experiment."""
        key = check_key(key, "tag")
        self._store.set_experiment_tag(
            str(experiment_id), key,
            check_value(value, "tag", key, MAX_EXPERIMENT_TAG_VALUE_LENGTH))

    def _check_experiment_active(self, experiment_id: str) -> None:
        checked = self._active_experiments.get(experiment_id)
        if checked is not None and time.monotonic() - checked < EXPERIMENT_CHECK_SECONDS:
            return
        try:
            experiment = self._store.get_experiment(experiment_id, wait=EXPERIMENT_CHECK_WAIT)
        except StoreBusyError:
            return  # a busy store must not stop a run from starting; its values are durable
        if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidValueError(
                f"Experiment {experiment.name!r} is deleted; restore it with "
                f"Client().restore_experiment({experiment_id!r}) or log to another one."
            )
        self._active_experiments[experiment_id] = time.monotonic()

    # runs ---------------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict | None = None,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        description: str | None = None,
    ) -> Run:
        """Start a new RUNNING run, recording where it came from, and return it.

        MLflow's system tags in ``tags`` (``mlflow.runName``, ``mlflow.user``,
        ``mlflow.note.content``, ``mlflow.source.*``, ``mlflow.parentRunId``) set the run's
        name, user, description, source and parent.
        """
        system, tags = system_tags.split(tags or {})
        run_name = _agree("run_name", run_name, system.get("run_name"), system_tags.RUN_NAME)
        description = _agree("description", description, system.get("description"),
                             system_tags.NOTE)
        parent_run_id = _agree("parent_run_id", parent_run_id, system.get("parent_run_id"),
                               system_tags.PARENT_RUN_ID)
        self._check_experiment_active(str(experiment_id))
        if parent_run_id is not None:
            self._store.ensure_run(parent_run_id)
        run_id = uuid.uuid4().hex
        entry = current_entry_point()
        state = git.GitState()
        env_hash = None
        if entry.capture:
            if entry.folder:
                state = git.git_state(entry.folder)
            env_hash, env = environment.current_environment()
            self._store.add_environment(env_hash, env)
        user = str(system["user_id"]) if "user_id" in system else host.user()
        user = getattr(self._store, "role", None) or user  # the team store: the PostgreSQL role
        new = NewRun(
            run_id=run_id,
            experiment_id=str(experiment_id),
            run_name=check_text(str(run_name), "run name") if run_name
            else names.generate_run_name(),
            user_id=user,
            start_time=start_time if start_time is not None else now_ms(),
            parent_run_id=parent_run_id,
            description=None if description is None
            else check_text(str(description), "run description"),
            source=RunSource(
                type=system.get("source_type", entry.type),
                name=system.get("source_name", entry.name), code=entry.code,
                git_commit=system.get("git_commit", state.commit),
                git_branch=state.branch, git_dirty=state.dirty, git_diff=state.diff,
                host=host.host(), python_version=host.python_version(),
                platform=host.platform_name(), env_hash=env_hash,
            ),
            pid=os.getpid(),
        )
        self._store.create_run(new)
        if tags:
            self.set_tags(run_id, tags)
        info = RunInfo(
            run_id=run_id, experiment_id=new.experiment_id, run_name=new.run_name,
            user_id=user, status=RunStatus.RUNNING, start_time=new.start_time,
            end_time=None, lifecycle_stage=LifecycleStage.ACTIVE,
            artifact_uri=str(self._store.artifact_root / run_id),
            parent_run_id=parent_run_id, description=new.description,
        )
        columns = {"run_name": new.run_name, "user_id": user, "description": new.description,
                   "parent_run_id": parent_run_id, "source_type": new.source.type,
                   "source_name": new.source.name, "git_commit": new.source.git_commit}
        shown = {**{k: str(v) for k, v in tags.items()}, **system_tags.from_columns(columns)}
        return Run(info, RunData(tags=shown), source=new.source)

    def get_run(self, run_id: str, as_of=None) -> Run:
        """Return a run with its latest metrics, params, tags, inputs and source.

        ``as_of`` (team store only): the run as it was at that moment.
        """
        return self._store_at(as_of).get_run(run_id)

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        """Change a run's status or name. Setting RUNNING claims the run for this process."""
        self._store.ensure_run(run_id)
        status = None if status is None else RunStatus.check(status)
        self._store.update_run(
            run_id, status=status,
            run_name=None if name is None else check_text(str(name), "run name"),
            resumed_by=(host.host(), os.getpid()) if status == RunStatus.RUNNING else None,
        )

    def set_terminated(self, run_id: str, status: str = "FINISHED", end_time: int | None = None):
        """End a run as FINISHED, FAILED or KILLED."""
        status = RunStatus.check(status)
        if status not in RunStatus.TERMINAL:
            raise InvalidValueError(
                f"set_terminated takes FINISHED, FAILED or KILLED, not {status!r}; use "
                "update_run to set other states."
            )
        self._store.ensure_run(run_id)
        self._store.update_run(run_id, status=status, end_time=end_time or now_ms())

    def delete_run(self, run_id: str) -> None:
        """Move a run to the trash; ``restore_run`` brings it back."""
        self._store.set_run_lifecycle(run_id, LifecycleStage.DELETED)

    def restore_run(self, run_id: str) -> None:
        """Bring a deleted run back."""
        self._store.set_run_lifecycle(run_id, LifecycleStage.ACTIVE)

    # values -------------------------------------------------------------------------------
    def log_param(self, run_id: str, key: str, value) -> object:
        """Log a param; logging the same value again is a no-op, a different value an error."""
        self._store.add_params(run_id, [_param(key, value)])
        return value

    def log_metric(self, run_id: str, key: str, value, timestamp: int | None = None,
                   step: int | None = None) -> None:
        """Log a metric value at a step (default 0) and time (default now, epoch ms)."""
        # the hot path: cheap checks inline, the full ones only when they may fail
        store = self._store
        if not store.is_known_run(run_id):
            store.ensure_run(run_id)
        if key.__class__ is not str or key not in valid_keys:  # str first: a list is unhashable
            check_key(key, "metric")
        if step is None:
            step = 0
        elif step.__class__ is not int or not INT64_MIN <= step <= INT64_MAX:
            step = whole_number(key, "step", step)
        if timestamp is None:
            timestamp = time.time_ns() // 1_000_000  # now_ms, inline
        elif timestamp.__class__ is not int or not INT64_MIN <= timestamp <= INT64_MAX:
            timestamp = whole_number(key, "timestamp", timestamp)
        store.add_metric(
            run_id, key, value if value.__class__ is float else metric_value(key, value),
            step, timestamp,
        )

    def set_tag(self, run_id: str, key: str, value) -> None:
        """Set a tag; a later value replaces an earlier one."""
        self.set_tags(run_id, {key: value})

    def set_tags(self, run_id: str, tags: dict) -> None:
        """Set several tags. MLflow's system tags (``mlflow.runName``, …) change the run."""
        self._store.ensure_run(run_id)
        items: list[tuple[str, str | None]] = [
            (check_key(k, "tag"), check_tag_value(k, v)) for k, v in tags.items()]
        system, _ = system_tags.split(dict(items))
        if system:
            if system.get("parent_run_id"):
                self._store.ensure_run(str(system["parent_run_id"]))
            self._store.set_run_attributes(run_id, system)
        items = [(k, v) for k, v in items if k not in system_tags.COLUMNS]
        if items:
            self._store.set_tags(run_id, items)

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a tag from a run (a system tag clears what it stands for)."""
        if key not in self.get_run(run_id).data.tags:
            raise NotFoundError(f"No tag with name: {key} in run with id {run_id}.")
        if key == system_tags.RUN_NAME:
            raise InvalidValueError(
                f"A run's name cannot be deleted. Rename run {run_id} with "
                "set_tag('mlflow.runName', NEW) or update_run(run_id, name=NEW) instead.")
        if key in system_tags.COLUMNS:
            self._store.set_run_attributes(run_id, {system_tags.COLUMNS[key]: None})
        self._store.set_tags(run_id, [(key, None)])

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Log metrics, params and tags in one call."""
        self._store.ensure_run(run_id)
        if params:
            self._store.add_params(
                run_id, [_param(p.key, p.value) for p in params]
            )
        if tags:
            self.set_tags(run_id, {t.key: t.value for t in tags})
        if metrics:
            rows = [
                (run_id, check_key(m.key, "metric"), metric_value(m.key, m.value),
                 whole_number(m.key, "step", m.step or 0),
                 whole_number(m.key, "timestamp", m.timestamp) if m.timestamp is not None
                 else now_ms())
                for m in metrics
            ]
            self._store.add_metrics(rows)

    def logged_params(self, run_id: str) -> dict[str, str]:
        """The params a run has (checking that it exists and is active); cached per process."""
        return dict(self._store.ensure_run(run_id))

    def peek_latest_metrics(self, run_id: str) -> dict[str, float]:
        """The run's latest metric values, including those not merged into the store yet.

        For a run created in this process the answer comes from memory: no wait for the store.
        """
        return self._store.peek_latest_metrics(run_id)

    def follow_writes(self, listener) -> Callable[[], None]:
        """Call ``listener(rows)`` with the metric rows of each batch once it is durable.

        Rows are ``(run_id, key, value, step, timestamp)``. Returns a function that stops the
        calls. Live charts follow their run this way, without polling the store.
        """
        listeners = self._store.write_listeners

        def on_batch(batch) -> None:
            listener(batch.metrics)

        listeners.append(on_batch)

        def stop() -> None:
            with contextlib.suppress(ValueError):  # stopped already
                listeners.remove(on_batch)

        return stop

    def sync_soon(self) -> None:
        """Ask for what this process logged to be made durable now, without waiting for it."""
        self._store.write_soon()

    def has_unsynced(self) -> bool:
        """Whether values this process logged are not durable yet."""
        return self._store.has_unwritten()

    def get_metric_history(self, run_id: str, key: str):
        """Every logged value of a metric, by step: a list of ``Metric``."""
        self._store.ensure_run(run_id)
        return self._store.get_metric_history(run_id, key)

    def search_runs(
        self,
        experiment_ids: str | Iterable[str],
        filter_string: str = "",
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS,
        order_by: str | list[str] | None = None,
        page_token: str | None = None,
        as_of=None,
    ) -> PagedList:
        """A page of runs as ``Run`` entities; ``.token`` fetches the next page.

        ``max_results`` is at most 50,000, as in MLflow. ``as_of`` (a datetime, an ISO string
        or epoch ms; the team store only) answers as the store was at that moment.
        """
        check_max_results(max_results, RUNS_PAGE_LIMIT)
        ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
        runs, token = self._store_at(as_of).search_runs(
            [str(i) for i in ids], filter_string, run_view_type, max_results,
            [order_by] if isinstance(order_by, str) else order_by, page_token,
        )
        return PagedList(runs, token)

    # readers for dashboards: Arrow tables that travel to the browser as they are ------------
    def search_runs_table(self, experiment_ids: list[str], filter_string: str | None,
                          run_view_type: int, max_results: int, order_by: list[str] | None,
                          columns: list[str]):
        """``(pyarrow.Table, total)``: chosen columns of the matching runs, and the match count."""
        return self._store.search_runs_arrow(experiment_ids, filter_string, run_view_type,
                                             max_results, order_by, columns)

    def metric_histories(self, run_ids: list[str], key: str, max_points: int = 5000):
        """One metric's history for several runs, as Arrow ``run_id, step, timestamp, value``.

        Past ``max_points`` a run's points are thinned evenly.
        """
        return self._store.histories_arrow(run_ids, key, max_points)

    def key_counts(self, experiment_ids: list[str],
                   run_view_type: int = ViewType.ACTIVE_ONLY) -> dict[str, int]:
        """How many of the experiments' runs have each key column, most common first."""
        return self._store.key_counts(experiment_ids, run_view_type)

    def change_token(self) -> tuple:
        """A value that changes whenever any process writes to the store (a few ``stat``s)."""
        return self._store.change_token()

    def artifact_index(self, run_id: str) -> dict[str, tuple[int, str]]:
        """``{path: (size, sha256)}`` of every artifact the run logged."""
        return self._store.get_artifact_index(run_id)

    def get_environment(self, env_hash: str) -> dict | None:
        """The environment (python version, platform, packages) recorded under a hash."""
        return self._store.get_environment(env_hash)

    def search_runs_frame(self, experiment_ids: list[str], filter_string: str | None,
                          run_view_type: int, max_results: int,
                          order_by: str | list[str] | None, as_of=None):
        """The search as a pandas DataFrame with MLflow's columns (``as_of``: as it was then)."""
        return self._store_at(as_of).search_runs_frame(experiment_ids, filter_string, run_view_type,
                                             max_results,
                                             [order_by] if isinstance(order_by, str) else order_by)

    def sql(self, query: str, parameters: list | None = None, as_of=None):
        """One read-only SELECT over the store's documented views, as a DataFrame.

        ``as_of`` (team store only): over the views as they were at that moment.
        """
        return self._store_at(as_of).sql(query, parameters)
