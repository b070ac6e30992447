"""``nbtrack export-mlflow``: copy the current nbtrack store into an MLflow store.

MLflow chooses the ids of the runs it creates, so each exported run carries the tag
``nbtrack.sourceRunId`` (the nbtrack run id): exporting again finds it and copies only what is
new, and importing that MLflow store into nbtrack maps the run back to its id. Everything is
written through MLflow's public ``MlflowClient``.
"""

from __future__ import annotations

from nbtrack.entities import LifecycleStage, RunStatus, ViewType
from nbtrack.interop import registry_copy
from nbtrack.interop.importer import EXPORTED_FROM, METRICS_PER_BATCH, PARAMS_PER_BATCH
from nbtrack.interop.source import (
    artifact_location,
    client_for,
    pages,
    progress,
    quiet_mlflow,
    tracking_uri,
)
from nbtrack.interop.summary import Summary

TAGS_PER_BATCH = 100


def export_mlflow(dest: str, client=None, show_progress: bool = True) -> Summary:
    """Copy nbtrack's store (``client``'s, or the current) into the MLflow store at ``dest``.

    ``dest`` is an MLflow tracking URI (``sqlite:///mlflow.db``, a database URI) or a folder,
    which becomes a ``mlruns/``-style file store. Returns a ``Summary``.
    """
    from nbtrack.tracking.client import Client

    uri = tracking_uri(dest, must_exist=False)
    mlflow_client = client_for(uri)
    client = client or Client()
    summary = Summary("Exported to", uri)
    if uri.startswith("file:"):
        summary.note("MLflow 3 opens a folder store only with MLFLOW_ALLOW_FILE_STORE=true "
                     "(e.g. MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri "
                     f"{uri}); sqlite:///path/mlflow.db is the form it recommends.")
    exporter = _Exporter(mlflow_client, client, summary)
    experiments = client.search_experiments(view_type=ViewType.ALL)
    runs = {e.experiment_id: pages(client.search_runs, experiment_ids=[e.experiment_id],
                                   run_view_type=ViewType.ALL, max_results=1000)
            for e in experiments}
    bar = progress(sum(len(r) for r in runs.values()), "export-mlflow") if show_progress \
        else None
    try:
        with quiet_mlflow():
            for experiment in sorted(experiments, key=lambda e: int(e.experiment_id)
                                     if e.experiment_id.isdigit() else 0):
                exporter.experiment(experiment, runs[experiment.experiment_id], bar)
    finally:
        if bar is not None:
            bar.close()
    registry_copy.export_registry(client, mlflow_client, summary, exporter.run_ids)
    return summary


class _Exporter:
    def __init__(self, mlflow_client, client, summary: Summary) -> None:
        self.mlflow = mlflow_client
        self.client = client
        self.summary = summary
        #: nbtrack run ids -> MLflow run ids
        self.run_ids: dict[str, str] = {}

    def experiment(self, experiment, runs: list, bar) -> None:
        from mlflow.entities import ViewType as MlflowViewType

        found = self.mlflow.get_experiment_by_name(experiment.name)
        if found is None:
            experiment_id = self.mlflow.create_experiment(
                experiment.name, tags=dict(experiment.tags),
                artifact_location=artifact_location(self.mlflow.tracking_uri, experiment.name))
            self.summary.copy("experiments")
        else:
            experiment_id = found.experiment_id
            self.summary.already("experiments")
            for key, value in experiment.tags.items():
                if found.tags.get(key) != value:
                    self.mlflow.set_experiment_tag(experiment_id, key, value)
            if found.lifecycle_stage == LifecycleStage.DELETED:
                self.mlflow.restore_experiment(experiment_id)
        exported = {r.data.tags[EXPORTED_FROM]: r for r in pages(
            self.mlflow.search_runs, experiment_ids=[experiment_id],
            run_view_type=MlflowViewType.ALL, max_results=1000) if EXPORTED_FROM in r.data.tags}
        for run in sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id)):
            self.run(run, experiment_id, exported.get(run.info.run_id))
            if bar is not None:
                bar.update(1)
        was_active = found is not None and found.lifecycle_stage != LifecycleStage.DELETED
        if experiment.lifecycle_stage == LifecycleStage.DELETED and was_active:
            self.summary.note(f"Experiment {experiment.name!r} is deleted in nbtrack but was "
                              "active in MLflow before the export; it stays active.")
        elif experiment.lifecycle_stage == LifecycleStage.DELETED or (
                found is not None and not was_active):
            self.mlflow.delete_experiment(experiment_id)

    def run(self, run, experiment_id: str, existing) -> None:
        from mlflow.entities import Param, RunTag

        info = run.info
        tags = {**dict(run.data.tags), EXPORTED_FROM: info.run_id}
        tags.setdefault("mlflow.runName", info.run_name)
        if info.user_id and info.user_id != "unknown":
            tags.setdefault("mlflow.user", info.user_id)
        elif tags.get("mlflow.user") == "unknown":  # MLflow's user_id when no tag was given
            del tags["mlflow.user"]
        if info.parent_run_id:  # the parent's MLflow id, once exported
            tags["mlflow.parentRunId"] = self.run_ids.get(info.parent_run_id,
                                                          info.parent_run_id)
        if info.description:
            tags.setdefault("mlflow.note.content", info.description)
        if existing is None:
            user = {"mlflow.user": tags["mlflow.user"]} if "mlflow.user" in tags else {}
            created = self.mlflow.create_run(experiment_id, start_time=info.start_time,
                                             tags=user, run_name=info.run_name)
            mlflow_id = created.info.run_id
            current_params: dict = {}
            current_tags: dict = dict(created.data.tags)
            self.summary.copy("runs")
        else:
            mlflow_id = existing.info.run_id
            current_params, current_tags = existing.data.params, existing.data.tags
            self.summary.already("runs")
            if existing.info.lifecycle_stage == LifecycleStage.DELETED:
                self.run_ids[info.run_id] = mlflow_id
                return
        self.run_ids[info.run_id] = mlflow_id
        params = [Param(k, v) for k, v in run.data.params.items() if k not in current_params]
        for start in range(0, len(params), PARAMS_PER_BATCH):
            self.mlflow.log_batch(mlflow_id, params=params[start:start + PARAMS_PER_BATCH])
        self.summary.copy("params", len(params))
        self.summary.already("params", len(run.data.params) - len(params))
        changed = [RunTag(k, v) for k, v in tags.items() if current_tags.get(k) != v]
        self.summary.copy("tags", len(changed))
        self.summary.already("tags", len(tags) - len(changed))
        for start in range(0, len(changed), TAGS_PER_BATCH):
            self.mlflow.log_batch(mlflow_id, tags=changed[start:start + TAGS_PER_BATCH])
        self.metrics(run, mlflow_id, existing is None)
        self.inputs(run, mlflow_id, existing)
        self.artifacts(info.run_id, mlflow_id, existing is None)
        self.finish(info, mlflow_id, existing)

    def metrics(self, run, mlflow_id: str, created: bool) -> None:
        from mlflow.entities import Metric

        new: list = []  # every key's new points, sent in full batches
        for key in run.data.metrics:
            history = self.client.get_metric_history(run.info.run_id, key)
            have = set() if created else {
                (m.step, m.timestamp, repr(float(m.value)))
                for m in self.mlflow.get_metric_history(mlflow_id, key)}
            fresh = [Metric(key, m.value, m.timestamp, m.step) for m in history
                     if (m.step, m.timestamp, repr(float(m.value))) not in have]
            new.extend(fresh)
            self.summary.copy("metric values", len(fresh))
            self.summary.already("metric values", len(history) - len(fresh))
        for start in range(0, len(new), METRICS_PER_BATCH):
            self.mlflow.log_batch(mlflow_id, metrics=new[start:start + METRICS_PER_BATCH])

    def inputs(self, run, mlflow_id: str, existing) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        have = set() if existing is None else {
            (i.dataset.name, i.dataset.digest,
             next((t.value for t in i.tags if t.key == "mlflow.data.context"), None))
            for i in existing.inputs.dataset_inputs}
        new = []
        for item in run.inputs.dataset_inputs:
            dataset = item.dataset
            if (dataset.name, dataset.digest, item.context) in have:
                self.summary.already("dataset inputs")
                continue
            tags = [InputTag("mlflow.data.context", item.context)] if item.context else []
            new.append(DatasetInput(Dataset(
                name=dataset.name, digest=dataset.digest, source_type=dataset.source_type,
                source=dataset.source, schema=dataset.schema, profile=dataset.profile),
                tags=tags))
        if new:
            self.mlflow.log_inputs(mlflow_id, datasets=new)
        self.summary.copy("dataset inputs", len(new))

    def artifacts(self, run_id: str, mlflow_id: str, created: bool) -> None:
        index = self.client.artifact_index(run_id)
        have: set[str] = set()
        if not created:
            have = {f.path for f in self.mlflow_files(mlflow_id)}
        root = self.client.artifact_path(run_id)
        for relative in sorted(index):
            if relative in have:
                self.summary.already("artifact files")
                continue
            folder = relative.rpartition("/")[0]
            self.mlflow.log_artifact(mlflow_id, str(root / relative), folder or None)
            self.summary.copy("artifact files")

    def mlflow_files(self, run_id: str, path: str | None = None) -> list:
        files = []
        for entry in self.mlflow.list_artifacts(run_id, path):
            files.extend(self.mlflow_files(run_id, entry.path) if entry.is_dir else [entry])
        return files

    def finish(self, info, mlflow_id: str, existing) -> None:
        status = RunStatus.check(info.status)
        if existing is None or existing.info.status != status:
            if status in RunStatus.TERMINAL:
                self.mlflow.set_terminated(mlflow_id, status, info.end_time)
            elif status != RunStatus.RUNNING:
                self.mlflow.update_run(mlflow_id, status=status)
        if info.lifecycle_stage == LifecycleStage.DELETED:
            self.mlflow.delete_run(mlflow_id)
