"""``nbtrack push``: send this machine's store to another nbtrack store, usually the team store.

A laptop or a cluster node tracks into its embedded store with no network. ``nbtrack push --to
URI`` (or ``nbtrack.push(to=URI)``) later sends its experiments, its runs (params, tags, every
metric point, dataset inputs, environments, artifact files, status, times and the run's origin:
user, notebook, code, git state, host) and its registered models (versions, stages, aliases,
tags, descriptions), through the target's ordinary Client methods.

Safe to repeat, safe to cut off:

- Experiments are matched by name (each store numbers its own); runs keep their ids.
- Each run is compared with the target's copy first and only what is missing is sent, so
  pushing twice adds nothing, and a push that was killed or lost its network, run again, sends
  what the first one did not make durable. A run's status is sent after its values and files.
- A run id that the target holds with other content (another experiment or start time, a
  param with another value, a metric point or an artifact file the local run does not have) is
  not this run: nothing of it is sent, everything else is, and the push ends with
  ``PushConflictError`` naming each such run and what differs. What a run may change later is
  brought up to date: tags, name, description, status and end time, deletion.
- Runs still RUNNING are pushed as they are and counted in a note; pushing again once they end
  sends their new values and final status. The target never marks them KILLED (no process of
  its own runs them).
"""

from __future__ import annotations

import math
import os
import signal
import socket
from collections import Counter
from pathlib import Path

from nbtrack.entities import LifecycleStage, Metric, Param, RunStatus, ViewType, system_tags
from nbtrack.exceptions import NbtrackError
from nbtrack.interop import registry_copy
from nbtrack.interop.importer import METRICS_PER_BATCH, PARAMS_PER_BATCH
from nbtrack.interop.source import pages, progress
from nbtrack.interop.summary import Summary

#: set to N, the push kills its own process (SIGKILL) in the middle of its Nth run: after the
#: run's values are handed to the target, before its files and status (tests of resuming)
KILL_AT_RUN = "NBTRACK_PUSH_KILL_AT_RUN"

#: the pushed runs' rows and metric fingerprints (only theirs: a team store holds many more)
_RUNS = ("SELECT run_id, experiment_id, start_time, user_id, status, end_time, lifecycle_stage, "
         "run_name, description FROM runs WHERE run_id IN (SELECT unnest(?))")
_FINGERPRINTS = ('SELECT run_id, count(*) AS n, CAST(sum(CAST(hash(key, step, "timestamp", '
                 'value) AS HUGEINT)) AS VARCHAR) AS h FROM metrics '
                 "WHERE run_id IN (SELECT unnest(?)) GROUP BY run_id")
_HISTORY = 'SELECT key, value, step, "timestamp" FROM metrics WHERE run_id = ?'
_PARAMS = "SELECT key, value FROM params WHERE run_id = ?"


class PushConflictError(NbtrackError):
    """Runs whose ids the target holds with other content: nothing of them was sent."""

    def __init__(self, conflicts: list[tuple[str, str]], summary: Summary) -> None:
        lines = "\n".join(f"  run {run_id}: {why}" for run_id, why in conflicts)
        super().__init__(
            f"{len(conflicts)} run(s) exist in {summary.source} with other content, so push "
            f"sent nothing of them (it never overwrites a run):\n{lines}\nEverything else was "
            "pushed. Compare the two copies with Client(URI).get_run(RUN_ID) on each store; run "
            "ids are random, so the target's copy was changed there, or came from another store.")
        self.conflicts = conflicts
        self.summary = summary


class _Different(Exception):
    """The run's id is in the target with other content (the message says what differs)."""


def push(to, experiment_names: list[str] | None = None, tracking_uri: str | None = None,
         show_progress: bool = True) -> Summary:
    """Send the store at ``tracking_uri`` (default: the current one) to the store ``to``.

    ``to`` is a tracking URI (``ducklake:postgresql://…`` for the team store, or a folder) or a
    ``Client``; ``experiment_names`` limits the push to those experiments (and the registered
    model versions of their runs). Returns a ``Summary`` of what was sent, what was there
    already and what was skipped; raises ``PushConflictError`` (with ``.summary``) at the end if
    some run ids were in the target with other content.
    """
    from nbtrack.tracking.client import Client

    source = Client(tracking_uri)
    target = to if isinstance(to, Client) else Client(str(to))
    if _same_place(source.tracking_uri, target.tracking_uri):
        raise NbtrackError(f"push sends a store to another one; {target.tracking_uri} is the "
                           "store it would read. Give the team store's URI with --to.")
    summary = Summary("Pushed to", str(target.tracking_uri))
    experiments = chosen_experiments(source, experiment_names)
    runs = {e.experiment_id: sorted(
        pages(source.search_runs, experiment_ids=[e.experiment_id], run_view_type=ViewType.ALL,
              max_results=1000), key=lambda r: (r.info.start_time or 0, r.info.run_id))
        for e in experiments}
    pusher = _Pusher(source, target, summary,
                     [r.info.run_id for listed in runs.values() for r in listed])
    bar = progress(sum(len(r) for r in runs.values()), "push") if show_progress else None
    try:
        for experiment in experiments:
            pusher.experiment(experiment, runs[experiment.experiment_id], bar)
    finally:
        if bar is not None:
            bar.close()
    pusher.registry(everything=not experiment_names)
    target.flush()
    if pusher.running:
        summary.note(f"{pusher.running} run(s) were still RUNNING here and were pushed as they "
                     "are; push again once they end to send the rest and their final status.")
    if pusher.conflicts:
        raise PushConflictError(pusher.conflicts, summary)
    return summary


def chosen_experiments(source, names: list[str] | None) -> list:
    """The source's experiments to push: all, or those named (each must exist)."""
    every = source.search_experiments(view_type=ViewType.ALL, max_results=None)
    every.sort(key=lambda e: int(e.experiment_id) if e.experiment_id.isdigit() else 0)
    if not names:
        return every
    by_name = {e.name: e for e in every}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise NbtrackError(
            f"No experiment named {', '.join(map(repr, missing))} in {source.tracking_uri}; "
            f"its experiments are {', '.join(repr(e.name) for e in every)}.")
    return [by_name[n] for n in dict.fromkeys(names)]


def _same_place(one: str, other: str) -> bool:
    if one == other:
        return True
    if "://" in one or "://" in other or ":" in one[:12] or ":" in other[:12]:
        return False
    return Path(one).expanduser().resolve() == Path(other).expanduser().resolve()


def _records(frame) -> list[dict]:
    """A DataFrame's rows as dicts, with None (not NaN) for missing values."""
    rows = frame.to_dict("records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and math.isnan(value):
                row[key] = None
    return rows


def _point(key: str, value: float, step: int, timestamp: int) -> tuple:
    return key, repr(float(value)), int(step), int(timestamp)


class _Pusher:
    def __init__(self, source, target, summary: Summary, run_ids: list[str]) -> None:
        self.source, self.target, self.summary = source, target, summary
        self.target_runs = {r["run_id"]: r for r in _records(target.sql(_RUNS, [run_ids]))}
        self.target_prints = {r["run_id"]: (r["n"], r["h"])
                              for r in _records(target.sql(_FINGERPRINTS, [run_ids]))}
        self.source_prints = {r["run_id"]: (r["n"], r["h"])
                              for r in _records(source.sql(_FINGERPRINTS, [run_ids]))}
        #: environments in the target (read once: each read there merges its pending writes)
        self.environments = set(target.sql("SELECT env_hash FROM environments")["env_hash"])
        self.pushed: set[str] = set()  # run ids in the target, this run's or before
        self.conflicts: list[tuple[str, str]] = []
        self.running = 0
        self.started = 0
        self.kill_at = int(os.environ.get(KILL_AT_RUN) or 0)
        self.source_host = socket.gethostname()

    # experiments ---------------------------------------------------------------------------
    def experiment(self, experiment, runs: list, bar) -> None:
        found = self.target.get_experiment_by_name(experiment.name)
        if found is None:
            experiment_id = self.target.create_experiment(experiment.name,
                                                          tags=dict(experiment.tags) or None)
            self.summary.copy("experiments")
        else:
            experiment_id = found.experiment_id
            self.summary.already("experiments")
            for key, value in experiment.tags.items():
                if found.tags.get(key) != value:
                    self.target.set_experiment_tag(experiment_id, key, value)
        deleted_there = found is not None and found.lifecycle_stage == LifecycleStage.DELETED
        if deleted_there:
            self.target.restore_experiment(experiment_id)  # runs cannot go to a deleted one
        for run in runs:
            self.run(run, experiment_id)
            if bar is not None:
                bar.update(1)
        deleted_here = experiment.lifecycle_stage == LifecycleStage.DELETED
        if deleted_here and found is not None and not deleted_there:
            self.summary.note(f"Experiment {experiment.name!r} is deleted here but active in "
                              "the target; it stays active there.")
        elif deleted_here or deleted_there:
            self.target.delete_experiment(experiment_id)

    # runs ----------------------------------------------------------------------------------
    def run(self, run, experiment_id: str) -> None:
        info = run.info
        there = self.target_runs.get(info.run_id)
        self.started += 1
        if there is not None and there["lifecycle_stage"] == LifecycleStage.DELETED:
            self.pushed.add(info.run_id)
            if info.lifecycle_stage == LifecycleStage.DELETED:
                self.summary.already("runs")  # pushed in full before it was deleted
            else:
                self.summary.skip("runs", info.run_id, "it is deleted in the target; restore it "
                                  "there (Client().restore_run) and push again to send it")
            return
        try:
            self.check_identity(run, experiment_id, there)
            params = self.new_params(run, there is not None)
            points = self.new_points(info.run_id, there is not None)
            files = self.new_files(info.run_id, there is not None)
        except _Different as exc:
            self.conflicts.append((info.run_id, str(exc)))
            self.summary.skip("runs", info.run_id, f"in the target with other content: {exc}")
            return
        if there is None:
            self.target.import_run(
                info.run_id, experiment_id, info.run_name, info.start_time,
                user_id=info.user_id, parent_run_id=info.parent_run_id,
                description=info.description, source=run.source, known_new=True)
            self.summary.copy("runs")
        else:
            self.summary.already("runs")
        self.pushed.add(info.run_id)
        self.environment(run)
        for start in range(0, len(params), PARAMS_PER_BATCH):
            self.target.log_batch(info.run_id, params=params[start:start + PARAMS_PER_BATCH])
        self.summary.copy("params", len(params))
        self.summary.already("params", len(run.data.params) - len(params))
        self.tags(run, there is not None)
        for start in range(0, len(points), METRICS_PER_BATCH):
            self.target.log_batch(info.run_id, metrics=points[start:start + METRICS_PER_BATCH])
        self.summary.copy("metric values", len(points))
        self.inputs(run, there is not None)
        if self.started == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        self.artifacts(info.run_id, files)
        self.finish(run, there)

    def check_identity(self, run, experiment_id: str, there: dict | None) -> None:
        if there is None:
            return
        info = run.info
        if there["experiment_id"] != experiment_id:
            theirs = self.target.get_experiment(there["experiment_id"]).name
            mine = self.target.get_experiment(experiment_id).name
            raise _Different(f"it is in experiment {theirs!r} there, {mine!r} here (renamed "
                             "here? rename it there too)")
        # not the user: a team store may record the PostgreSQL role that pushed it instead
        if int(info.start_time) != int(there["start_time"]):
            raise _Different(f"its start time is {int(there['start_time'])} there, "
                             f"{int(info.start_time)} here")

    def new_params(self, run, exists: bool) -> list[Param]:
        have = dict(self.target.sql(_PARAMS, [run.info.run_id]).values.tolist()) \
            if exists else {}
        for key, value in run.data.params.items():
            if key in have and have[key] != value:
                raise _Different(f"param {key!r} is {have[key]!r} there, {value!r} here")
        return [Param(k, v) for k, v in run.data.params.items() if k not in have]

    def new_points(self, run_id: str, exists: bool) -> list[Metric]:
        """The metric points the target lacks (a point logged twice counts twice)."""
        mine = self.source_prints.get(run_id)
        if mine is None:
            mine = (0, None)
        if exists and self.target_prints.get(run_id, (0, None)) == mine:
            if mine[0]:
                self.summary.already("metric values", mine[0])
            return []
        here = Counter(_point(*row) for row in self.source.sql(_HISTORY, [run_id]).values
                       .tolist()) if mine[0] else Counter()
        there = Counter(_point(*row) for row in self.target.sql(_HISTORY, [run_id]).values
                        .tolist()) if exists else Counter()
        extra = there - here
        if extra:
            key, value, step, timestamp = next(iter(extra))
            raise _Different(f"it has {sum(extra.values())} metric point(s) this run lacks, "
                             f"e.g. {key}={value} at step {step}, time {timestamp}")
        self.summary.already("metric values", sum(there.values()))
        return [Metric(key, float(value), timestamp, step)
                for (key, value, step, timestamp), count in (here - there).items()
                for _ in range(count)]

    def new_files(self, run_id: str, exists: bool) -> dict[str, tuple[int, str]]:
        mine = self.source.artifact_index(run_id)
        have = self.target.artifact_index(run_id) if exists else {}
        for path, (_size, sha256) in mine.items():
            if path in have and have[path][1] != sha256:
                raise _Different(f"its artifact {path!r} has other content there (sha256 "
                                 f"{have[path][1][:12]}…, here {sha256[:12]}…)")
        self.summary.already("artifact files", len(set(mine) & set(have)))
        return {p: v for p, v in mine.items() if p not in have}

    def environment(self, run) -> None:
        env_hash = run.source.env_hash
        if not env_hash or env_hash in self.environments:
            return
        self.environments.add(env_hash)
        environment = self.source.get_environment(env_hash)
        if environment is not None:
            self.target.import_environment(env_hash, environment)
            self.summary.copy("environments")

    def tags(self, run, exists: bool) -> None:
        wanted = {k: v for k, v in run.data.tags.items() if k not in system_tags.COLUMNS}
        have = self.target.get_run(run.info.run_id).data.tags if exists else {}
        changed = {k: v for k, v in wanted.items() if have.get(k) != v}
        if changed:
            self.target.set_tags(run.info.run_id, changed)
        self.summary.copy("tags", len(changed))
        self.summary.already("tags", len(wanted) - len(changed))

    def inputs(self, run, exists: bool) -> None:
        have = {(i.dataset.name, i.dataset.digest, i.context)
                for i in self.target.get_run(run.info.run_id).inputs.dataset_inputs} \
            if exists else set()
        for item in run.inputs.dataset_inputs:
            dataset = item.dataset
            if (dataset.name, dataset.digest, item.context) in have:
                self.summary.already("dataset inputs")
                continue
            self.target.log_input_record(run.info.run_id, {
                "name": dataset.name, "digest": dataset.digest,
                "source_type": dataset.source_type, "source": dataset.source,
                "schema": dataset.schema, "profile": dataset.profile}, item.context)
            self.summary.copy("dataset inputs")

    def artifacts(self, run_id: str, files: dict[str, tuple[int, str]]) -> None:
        root = self.source.artifact_path(run_id)
        for relative in sorted(files):
            folder = relative.rpartition("/")[0]
            self.target.log_artifact(run_id, str(root / relative), folder or None)
            self.summary.copy("artifact files")

    def finish(self, run, there: dict | None) -> None:
        info, run_id = run.info, run.info.run_id
        if there is not None and there["run_name"] != info.run_name:
            self.target.update_run(run_id, name=info.run_name)
        if there is not None and info.description and there["description"] != info.description:
            self.target.set_tag(run_id, system_tags.NOTE, info.description)
        status = RunStatus.check(info.status)
        same = there is not None and there["status"] == status and \
            there["end_time"] == info.end_time
        if status == RunStatus.RUNNING:
            self.running += 1
        elif status in RunStatus.TERMINAL and not same:
            self.target.set_terminated(run_id, status, info.end_time)
        elif not same:
            self.target.update_run(run_id, status=status)
        if info.lifecycle_stage == LifecycleStage.DELETED:
            self.target.delete_run(run_id)

    # the registry --------------------------------------------------------------------------
    def version_source(self, version) -> str | None:
        """A version's source in the target: ``runs:/`` of a pushed run, else None."""
        text = str(version.source)
        if text.startswith("runs:/"):
            return text if text[len("runs:/"):].split("/", 1)[0] in self.pushed else None
        if text.startswith("models:/"):
            return text
        run_id = version.run_id
        if run_id in self.pushed:
            folder = self.source.artifact_path(run_id)
            try:
                inside = Path(text).resolve().relative_to(folder.resolve())
            except ValueError:
                return None
            return f"runs:/{run_id}/{inside.as_posix()}"
        return None

    def registry(self, everything: bool) -> None:
        """Registered models (all, or with ``everything`` False those with a pushed version)."""
        names = None
        if not everything:
            versions = pages(self.source.search_model_versions, max_results=10_000)
            names = {v.name for v in versions if self.version_source(v)}
        copies = registry_copy.import_registry(
            self.source, self.target, self.summary, {}, {r: r for r in self.pushed},
            self.version_source, names, copied="pushed")
        for name, numbers in copies.items():
            self.history(name, numbers)

    def history(self, name: str, numbers: dict[str, str]) -> None:
        """The model's audit log entries the target lacks, with their times and users.

        They follow the entries the push's own changes made, and end in the same state, so
        ``get_model_version_at`` replays the local history on the target too. Entries of
        versions not pushed are left out; version numbers are the target's.
        """
        def number(value) -> str | None:
            return None if value is None else numbers.get(str(int(float(value))))

        def key(event: dict) -> tuple:
            return tuple(None if event[f] is None else str(event[f]) for f in (
                "timestamp", "user_id", "action", "version", "field", "from_value",
                "to_value"))

        have = {key(e) for e in _records(self.target.get_registry_events(name))}
        new = []
        for event in _records(self.source.get_registry_events(name)):
            event = {f: event[f] for f in ("timestamp", "user_id", "action", "name", "version",
                                           "field", "from_value", "to_value", "comment")}
            if event["version"] is not None:
                if number(event["version"]) is None:
                    continue
                event["version"] = int(number(event["version"]) or 0)
            if str(event["field"] or "").startswith("aliases."):
                event["from_value"] = number(event["from_value"])
                event["to_value"] = number(event["to_value"])
            event["timestamp"] = int(event["timestamp"])
            if key(event) in have:
                self.summary.already("registry events")
                continue
            event["comment"] = f"pushed from {self.source_host}" + (
                f": {event['comment']}" if event["comment"] else "")
            new.append(event)
        self.target.import_registry_events(new)
        self.summary.copy("registry events", len(new))
