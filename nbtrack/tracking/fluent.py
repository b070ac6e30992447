"""The module-level API: thin functions over ``Client`` and the active run of each thread.

Logging with no active run starts one, as MLflow does; it ends when the process exits. What the
functions remember lives in ``nbtrack.tracking.state``.
"""

from __future__ import annotations

import atexit
import os
import sys
import warnings
from collections.abc import Iterable

from nbtrack.clock import now_ms
from nbtrack.entities import Experiment, LifecycleStage, Run, RunStatus, ViewType
from nbtrack.exceptions import NbtrackError
from nbtrack.tracking.client import Client
from nbtrack.tracking.state import state


def current_client() -> Client:
    """The client of the current tracking URI, shared by the fluent functions."""
    return state.client()


class ActiveRun:
    """The run a ``with start_run():`` block logs to. Ends the run when the block exits.

    The block ends the run as FINISHED, as FAILED when it raises, and as KILLED on
    KeyboardInterrupt; in every case what was logged is written first.
    """

    def __init__(self, run: Run, client: Client) -> None:
        self._run = run
        self.client = client
        self.run_id = run.info.run_id
        self.stack = state.active_runs  # the starting thread's stack

    @property
    def info(self):
        """The run's ``RunInfo`` as it was when the run started."""
        return self._run.info

    @property
    def data(self):
        """The run's ``RunData`` as it was when the run started."""
        return self._run.data

    def __repr__(self) -> str:
        return f"<ActiveRun {self.run_id} name={self.info.run_name!r}>"

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        # matched by id, as in MLflow: a tool may end the run and resume it under a new object
        current = next((a for a in reversed(self.stack) if a.run_id == self.run_id), None)
        if current is not None:
            try:
                _end(current, status)
            except Exception as end_error:
                if exc_type is None:
                    raise
                # keep the user's exception on top; the values stay in memory and the spool
                print(f"nbtrack: could not end run {self.run_id}: {end_error}", file=sys.stderr)


def set_experiment(experiment_name: str | None = None,
                   experiment_id: str | None = None) -> Experiment:
    """Make an experiment active for new runs, creating it by name if needed."""
    client = current_client()
    if (experiment_name is None) == (experiment_id is None):
        raise NbtrackError("set_experiment takes exactly one of experiment_name or experiment_id.")
    if experiment_id is not None:
        experiment = client.get_experiment(str(experiment_id))
    else:
        assert experiment_name is not None  # exactly one of the two was given
        found = client.get_experiment_by_name(experiment_name)
        if found is None or found.lifecycle_stage == LifecycleStage.ACTIVE:
            found = client.get_or_create_experiment(experiment_name)
        experiment = found
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise NbtrackError(
            f"Experiment {experiment.name!r} is deleted. Restore it with "
            f"Client().restore_experiment({experiment.experiment_id!r}), or pick another name."
        )
    state.experiment_id = experiment.experiment_id
    return experiment


def default_experiment_id(client: Client) -> str:
    """The experiment new runs go to: set_experiment's, else the environment's, else Default."""
    if state.experiment_id is not None:
        return state.experiment_id
    name = os.environ.get("NBTRACK_EXPERIMENT_NAME")
    if name:
        return set_experiment(name).experiment_id
    return os.environ.get("NBTRACK_EXPERIMENT_ID", "0")


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: dict | None = None,
    description: str | None = None,
) -> ActiveRun:
    """Start a run (or resume ``run_id``) and make it active; use it as a context manager.

    Args:
        nested: start the run under the active one. Without it, starting a run while another
            is active is an error.
        parent_run_id: the parent of a new run, when it is not the active run.

    """
    client = current_client()
    active_runs = state.active_runs
    if active_runs and not nested:
        raise NbtrackError(
            f"Run {active_runs[-1].run_id} is already active. End it with nbtrack.end_run() "
            "first, or pass nested=True to start a run inside it."
        )
    if run_id is not None:
        client.get_run(run_id)  # a clear error if there is no such run
        client.update_run(run_id, status=RunStatus.RUNNING, name=run_name)
        if description is not None:
            tags = {**(tags or {}), "mlflow.note.content": description}
        if tags:
            client.set_tags(run_id, tags)
        run = client.get_run(run_id)
    else:
        if nested and active_runs and parent_run_id is None:
            parent_run_id = active_runs[-1].run_id
        elif not active_runs and parent_run_id is None:
            # runs of a notebook executed by `nbtrack run` nest under its parent run
            parent_run_id = os.environ.get("NBTRACK_PARENT_RUN_ID") or None
        run = client.create_run(
            experiment_id=str(experiment_id) if experiment_id is not None
            else default_experiment_id(client),
            tags=tags,
            run_name=run_name,
            parent_run_id=parent_run_id,
            description=description,
        )
    active = ActiveRun(run, client)
    active_runs.append(active)
    return active


def _end(active: ActiveRun, status: str) -> None:
    active.stack.remove(active)
    active.client.set_terminated(active.run_id, status)
    state.last_run_id = active.run_id


def end_run(status: str = RunStatus.FINISHED) -> None:
    """End the active run (the innermost one) with ``status``."""
    active_runs = state.active_runs
    if active_runs:
        _end(active_runs[-1], RunStatus.check(status))


def active_run() -> ActiveRun | None:
    """The innermost active run, or None."""
    active_runs = state.active_runs
    return active_runs[-1] if active_runs else None


def last_active_run() -> Run | None:
    """The active run, or else the run that ended last in this process."""
    active = active_run()
    if active is not None:
        return active.client.get_run(active.run_id)
    return current_client().get_run(state.last_run_id) if state.last_run_id else None


def _active() -> ActiveRun:
    active_runs = state.active_runs
    if active_runs:
        return active_runs[-1]
    # `nbtrack run` hands a notebook without %%track cells its run to log into
    return start_run(run_id=os.environ.get("NBTRACK_RUN_ID") or None)


def target(run_id: str | None) -> tuple[Client, str]:
    """The client and run a call logs to: ``run_id``, or the active run (started if none)."""
    return _target(run_id)


def _target(run_id: str | None) -> tuple[Client, str]:
    if run_id is None:
        run = _active()
        return run.client, run.run_id
    return current_client(), run_id


class RunOperations:
    """What a ``log_*(…, synchronous=False)`` call returns: ``wait()`` until it is durable."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def wait(self) -> None:
        """Return once the values logged so far are durable on disk."""
        self._client.sync()


def _written(client: Client, synchronous: bool | None) -> RunOperations | None:
    if synchronous:
        client.sync()
    elif synchronous is False:
        return RunOperations(client)
    return None


def log_param(key: str, value, synchronous: bool | None = None) -> object:
    """Log a param to the active run (starting one if none is active).

    ``synchronous=True`` writes it before returning; by default it is written in the background
    (and before any read), which is much faster.
    """
    run = _active()
    run.client.log_param(run.run_id, key, value)
    return _written(run.client, synchronous) or value


def log_params(params: dict, synchronous: bool | None = None,
               run_id: str | None = None) -> RunOperations | None:
    """Log several params to the active run, or to ``run_id``."""
    from nbtrack.entities import Param

    client, target = _target(run_id)
    client.log_batch(target, params=[Param(k, v) for k, v in params.items()])
    return _written(client, synchronous)


def log_metric(key: str, value, step: int | None = None, synchronous: bool | None = None,
               timestamp: int | None = None, run_id: str | None = None) -> RunOperations | None:
    """Log a metric value to the active run (or ``run_id``): buffered, ~1 µs per call.

    ``synchronous=True`` writes it before returning; ``synchronous=False`` returns an object
    whose ``wait()`` does.
    """
    if run_id is None:
        active_runs = state.active_runs
        run = active_runs[-1] if active_runs else _active()
        client, run_id = run.client, run.run_id
    else:
        client = current_client()
    client.log_metric(run_id, key, value, timestamp, step)
    if synchronous is not None:
        return _written(client, synchronous)
    return None


def log_metrics(metrics: dict, step: int | None = None, synchronous: bool | None = None,
                run_id: str | None = None,
                timestamp: int | None = None) -> RunOperations | None:
    """Log several metrics at one step."""
    from nbtrack.entities import Metric

    client, target = _target(run_id)
    when = now_ms() if timestamp is None else timestamp
    client.log_batch(
        target, metrics=[Metric(k, v, when, step or 0) for k, v in metrics.items()]
    )
    return _written(client, synchronous)


def set_tag(key: str, value, synchronous: bool | None = None) -> RunOperations | None:
    """Set a tag on the active run."""
    run = _active()
    run.client.set_tag(run.run_id, key, value)
    return _written(run.client, synchronous)


def set_tags(tags: dict, synchronous: bool | None = None) -> RunOperations | None:
    """Set several tags on the active run."""
    run = _active()
    run.client.set_tags(run.run_id, tags)
    return _written(run.client, synchronous)


def log_artifact(local_path, artifact_path: str | None = None) -> None:
    """Copy a file into the active run's artifacts."""
    run = _active()
    run.client.log_artifact(run.run_id, local_path, artifact_path)


def log_artifacts(local_dir, artifact_path: str | None = None) -> None:
    """Copy a folder into the active run's artifacts."""
    run = _active()
    run.client.log_artifacts(run.run_id, local_dir, artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    """Save text as an artifact of the active run."""
    run = _active()
    run.client.log_text(run.run_id, text, artifact_file)


def log_dict(dictionary: dict, artifact_file: str) -> None:
    """Save a dict as a JSON or YAML artifact of the active run."""
    run = _active()
    run.client.log_dict(run.run_id, dictionary, artifact_file)


def log_figure(figure, artifact_file: str) -> None:
    """Save a matplotlib or plotly figure as an artifact of the active run."""
    run = _active()
    run.client.log_figure(run.run_id, figure, artifact_file)


def log_input(dataset, context: str | None = None, tags: dict | None = None,
              name: str | None = None) -> dict:
    """Record a dataset the active run used, with its content digest.

    ``dataset`` is one of ``nbtrack.data.from_pandas``/``from_numpy``, a DataFrame, an array
    or a file path. ``tags`` may hold MLflow's ``mlflow.data.context`` instead of ``context``.
    """
    tags = dict(tags or {})
    context = tags.pop("mlflow.data.context", context)
    if tags:
        raise NbtrackError(f"Input tags other than mlflow.data.context are not stored yet: "
                           f"{', '.join(tags)}. Give the context with context=.")
    run = _active()
    return run.client.log_input(run.run_id, dataset, context, name)


def delete_tag(key: str) -> None:
    """Remove a tag from the active run."""
    run = _active()
    run.client.delete_tag(run.run_id, key)


def set_experiment_tag(key: str, value) -> None:
    """Set a tag on the active experiment (``set_experiment``'s, else the default)."""
    client = current_client()
    client.set_experiment_tag(default_experiment_id(client), key, value)


def set_experiment_tags(tags: dict) -> None:
    """Set several tags on the active experiment."""
    for key, value in tags.items():
        set_experiment_tag(key, value)


def get_parent_run(run_id: str) -> Run | None:
    """The parent of a nested run, or None for a top-level run."""
    client = current_client()
    parent = client.get_run(run_id).info.parent_run_id
    return client.get_run(parent) if parent else None


def get_artifact_uri(artifact_path: str | None = None) -> str:
    """The local path of the active run's artifacts (or of one artifact in them)."""
    run = _active()
    root = run.client.artifact_path(run.run_id)
    return str(root / artifact_path) if artifact_path else str(root)


def _experiment_ids(client: Client, experiment_ids, experiment_names, search_all) -> list[str]:
    if search_all:
        return [e.experiment_id for e in client.search_experiments(ViewType.ALL)]
    ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids or [])
    for name in experiment_names or []:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:  # as in MLflow, an unknown name adds no runs
            warnings.warn(f"No experiment named {name!r}: it adds no runs to the search. List "
                          "the experiments with nbtrack.search_experiments().", stacklevel=3)
        else:
            ids.append(experiment.experiment_id)
    if not ids and experiment_ids is None and not experiment_names:
        ids = [default_experiment_id(client)]
    return [str(i) for i in ids]


def search_runs(
    experiment_ids: str | Iterable[str] | None = None,
    filter_string: str = "",
    run_view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int = 100_000,
    order_by: str | list[str] | None = None,
    output_format: str = "pandas",
    search_all_experiments: bool = False,
    experiment_names: list[str] | None = None,
    as_of=None,
):
    """Search runs; by default a DataFrame with MLflow's columns, or ``output_format="list"``.

    Filters take MLflow's grammar plus OR, NOT and parentheses, e.g.
    ``"metrics.rmse < 5 AND (params.model = 'lasso' OR params.model = 'ridge')"``.
    ``as_of`` (a datetime, an ISO string or epoch ms; the team store only) answers as the
    store was at that moment: the leaderboard of date D.
    """
    client = current_client()
    ids = _experiment_ids(client, experiment_ids, experiment_names, search_all_experiments)
    if output_format == "list":
        token: str | None = None
        out: list[Run] = []
        while True:
            page = client.search_runs(ids, filter_string, run_view_type,
                                      min(max_results - len(out), 50_000), order_by, token,
                                      as_of=as_of)
            out.extend(page)
            token = page.token
            if not token or len(out) >= max_results:
                return out
    if output_format != "pandas":
        raise NbtrackError(f"output_format is 'pandas' or 'list', not {output_format!r}.")
    return client.search_runs_frame(ids, filter_string, run_view_type, max_results,
                                    order_by, as_of=as_of)


def get_run(run_id: str) -> Run:
    """Return a run by id."""
    return current_client().get_run(run_id)


def delete_run(run_id: str) -> None:
    """Move a run to the trash."""
    current_client().delete_run(run_id)


def create_experiment(name: str, artifact_location: str | None = None,
                      tags: dict | None = None) -> str:
    """Create an experiment and return its id."""
    return current_client().create_experiment(name, artifact_location, tags)


def get_experiment(experiment_id: str) -> Experiment:
    """Return an experiment by id."""
    return current_client().get_experiment(experiment_id)


def get_experiment_by_name(name: str) -> Experiment | None:
    """Return an experiment by name, or None."""
    return current_client().get_experiment_by_name(name)


def search_experiments(view_type: int = ViewType.ACTIVE_ONLY, max_results: int | None = None,
                       filter_string: str | None = None,
                       order_by: list[str] | None = None) -> list[Experiment]:
    """List experiments, optionally filtered (``"name LIKE 'nyc%'"``) and ordered."""
    return current_client().search_experiments(view_type, max_results, filter_string, order_by)


def delete_experiment(experiment_id: str) -> None:
    """Move an experiment to the trash."""
    current_client().delete_experiment(experiment_id)


def sql(query: str, parameters: list | None = None, as_of=None):
    """Run one read-only SELECT over the store's views and return a DataFrame.

    Views: ``experiments``, ``runs`` (one row per run with ``params``, ``metrics`` and ``tags``
    maps), ``params``, ``tags``, ``metrics`` (full history), ``latest_metrics``, ``artifacts``,
    ``inputs``, ``environments``, ``registered_models``, ``model_versions``,
    ``registry_events``. ``as_of`` (a datetime, an ISO string or epoch ms; the team store
    only) queries the views as they were at that moment.
    """
    return current_client().sql(query, parameters, as_of=as_of)


def flush() -> None:
    """Make everything logged so far durable and visible to every reader, now."""
    current_client().flush()


def _shut_down() -> None:
    """The one exit path: end every thread's active runs, innermost first, then the stores.

    Closing a store makes what is pending durable and tries one short merge.
    """
    for active in reversed(state.every_active_run()):
        try:
            _end(active, RunStatus.FINISHED)
        except Exception as exc:  # the run stays RUNNING and is marked KILLED later
            print(f"nbtrack: could not end run {active.run_id} at exit: {exc}", file=sys.stderr)
    Client.close_all()


atexit.register(_shut_down)
