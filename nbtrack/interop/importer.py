"""``nbtrack import-mlflow``: copy an MLflow store into the current nbtrack store.

Experiments are matched by name; runs keep MLflow's run ids, so importing the same store
again copies only what is new (a value, a metric point, a file, a version), and an import cut
short resumes. Everything is read through MLflow's public ``MlflowClient``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from nbtrack.entities import LifecycleStage, Metric, Param, RunSource, RunStatus
from nbtrack.exceptions import NbtrackError
from nbtrack.interop import registry_copy
from nbtrack.interop.source import client_for, pages, progress, quiet_mlflow, tracking_uri
from nbtrack.interop.summary import Summary

#: MLflow's batch limits, which nbtrack's log_batch also keeps
METRICS_PER_BATCH = 1000
PARAMS_PER_BATCH = 100
#: MLflow tags that name the run's source; they become nbtrack's source columns too
SOURCE_TAGS = {"mlflow.source.type": "type", "mlflow.source.name": "name",
               "mlflow.source.git.commit": "git_commit", "mlflow.source.git.branch": "git_branch"}
#: set by nbtrack export-mlflow on the MLflow run: the nbtrack run it came from
EXPORTED_FROM = "nbtrack.sourceRunId"


def import_mlflow(source: str, client=None, show_progress: bool = True,
                  artifact_root: str | Path | None = None) -> Summary:
    """Copy the MLflow store at ``source`` into nbtrack (``client``'s store, or the current).

    ``artifact_root`` is the folder a tracking server kept artifacts in (``mlflow server
    --artifacts-destination``, ``./mlartifacts`` by default): artifacts the store records as
    ``mlflow-artifacts:/...`` are read from there, without the server. Returns a ``Summary``
    of what was copied, what was already there, and what was skipped and why.
    """
    from nbtrack.tracking.client import Client

    uri = tracking_uri(source)
    mlflow_client = client_for(uri)
    client = client or Client()
    summary = Summary("Imported from", uri)
    importer = _Importer(mlflow_client, client, summary,
                         None if artifact_root is None else Path(artifact_root).resolve())
    from mlflow.entities import ViewType

    experiments = pages(mlflow_client.search_experiments, view_type=ViewType.ALL,
                        max_results=1000)
    runs = {e.experiment_id: pages(mlflow_client.search_runs, experiment_ids=[e.experiment_id],
                                   run_view_type=ViewType.ALL, max_results=1000)
            for e in experiments}
    bar = progress(sum(len(r) for r in runs.values()), "import-mlflow") if show_progress \
        else None
    try:
        with quiet_mlflow():
            for experiment in experiments:
                importer.experiment(experiment, runs[experiment.experiment_id], bar)
    finally:
        if bar is not None:
            bar.close()
    registry_copy.import_registry(mlflow_client, client, summary, importer.model_sources,
                                  importer.run_ids)
    client.flush()
    return summary


class _Importer:
    def __init__(self, mlflow_client, client, summary: Summary,
                 artifact_root: Path | None) -> None:
        self.mlflow = mlflow_client
        self.client = client
        self.summary = summary
        self.artifact_root = artifact_root
        #: the nbtrack store's run ids before the import, listed once
        self.existing_runs = self.run_ids_in_store()
        #: MLflow logged-model ids -> ``runs:/`` URIs of their copies in nbtrack
        self.model_sources: dict[str, str] = {}
        #: MLflow run ids -> nbtrack run ids (the same, but for runs nbtrack exported)
        self.run_ids: dict[str, str] = {}

    def run_ids_in_store(self) -> set[str]:
        from nbtrack.entities import ViewType

        experiments = [e.experiment_id for e in
                       self.client.search_experiments(view_type=ViewType.ALL)]
        if not experiments:
            return set()
        return {r.info.run_id for r in pages(self.client.search_runs, experiment_ids=experiments,
                                            run_view_type=ViewType.ALL, max_results=1000)}

    # experiments ---------------------------------------------------------------------------
    def experiment(self, experiment, runs: list, bar) -> None:
        found = self.client.get_experiment_by_name(experiment.name)
        if found is None:
            experiment_id = self.client.create_experiment(experiment.name)
            self.summary.copy("experiments")
        else:
            experiment_id = found.experiment_id
            self.summary.already("experiments")
        current = {} if found is None else found.tags
        for key, value in experiment.tags.items():
            if current.get(key) != value:
                self.client.set_experiment_tag(experiment_id, key, value)
        if found is not None and found.lifecycle_stage == LifecycleStage.DELETED:
            self.client.restore_experiment(experiment_id)  # values cannot go to a deleted one
        models = self.logged_models(experiment.experiment_id)
        from mlflow.exceptions import MlflowException

        for run in sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id)):
            try:
                self.run(run, experiment_id, models.get(run.info.run_id, []))
            except (NbtrackError, MlflowException, OSError) as exc:
                # the rest of the store is still copied; importing again completes this run
                self.summary.skip("run", run.info.run_id, str(exc).splitlines()[0])
            if bar is not None:
                bar.update(1)
        for model in models.get(None, []):
            self.summary.skip("logged model", model.model_id, "it belongs to no run")
        deleted_here = found is not None and found.lifecycle_stage == LifecycleStage.DELETED
        if experiment.lifecycle_stage == LifecycleStage.DELETED and found is not None \
                and not deleted_here:
            self.summary.note(f"Experiment {experiment.name!r} is deleted in MLflow but was "
                              "active in nbtrack before the import; it stays active.")
        elif experiment.lifecycle_stage == LifecycleStage.DELETED or deleted_here:
            self.client.delete_experiment(experiment_id)

    def logged_models(self, experiment_id: str) -> dict[str | None, list]:
        """MLflow 3's logged models of an experiment, by the run that logged them."""
        search = getattr(self.mlflow, "search_logged_models", None)
        by_run: dict[str | None, list] = {}
        if search is None:  # MLflow 2: models are run artifacts, copied with them
            return by_run
        for model in pages(search, experiment_ids=[experiment_id], max_results=100):
            by_run.setdefault(model.source_run_id, []).append(model)
        return by_run

    # runs ----------------------------------------------------------------------------------
    def run(self, run, experiment_id: str, models: list) -> None:
        info, tags = run.info, dict(run.data.tags)
        run_id = tags.pop(EXPORTED_FROM, None) or info.run_id
        if "mlflow.parentRunId" in tags:  # parents come first (by start time): map theirs
            tags["mlflow.parentRunId"] = self.run_ids.get(tags["mlflow.parentRunId"],
                                                          tags["mlflow.parentRunId"])
        known_new = run_id not in self.existing_runs
        created = self.client.import_run(
            run_id, experiment_id, info.run_name or run_id[:8], info.start_time or 0,
            known_new=known_new,
            user_id=info.user_id or tags.get("mlflow.user"),
            parent_run_id=tags.get("mlflow.parentRunId"),
            description=tags.get("mlflow.note.content"),
            source=RunSource(**{field: tags[tag] for tag, field in SOURCE_TAGS.items()
                                if tag in tags}),
        )
        self.run_ids[info.run_id] = run_id
        if not created:
            existing = self.client.get_run(run_id)
            if existing.info.lifecycle_stage == LifecycleStage.DELETED:
                self.summary.already("runs")  # copied in full before it was deleted
                for model in models:
                    self.model_sources[model.model_id] = f"runs:/{run_id}/{model.name}"
                return
        if created:
            self.summary.copy("runs")
        else:
            self.summary.already("runs")
        self.values(run_id, run, tags, created)
        self.inputs(run_id, run, created)
        self.artifacts(run_id, info, created)
        for model in models:
            self.logged_model(run_id, model)
        self.finish(run_id, info, created)

    def values(self, run_id: str, run, tags: dict, created: bool) -> None:
        current = None if created else self.client.get_run(run_id)
        params = {k: v for k, v in run.data.params.items()
                  if current is None or current.data.params.get(k) != v}
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=items[start:start + PARAMS_PER_BATCH])
        self.summary.copy("params", len(items))
        self.summary.already("params", len(run.data.params) - len(items))
        changed = {k: v for k, v in tags.items()
                   if current is None or current.data.tags.get(k) != v}
        if changed:
            self.client.set_tags(run_id, changed)
        self.summary.copy("tags", len(changed))
        self.summary.already("tags", len(tags) - len(changed))
        for key in run.data.metrics:
            history = self.mlflow.get_metric_history(run.info.run_id, key)
            have = set() if created else {
                (m.step, m.timestamp, repr(float(m.value)))
                for m in self.client.get_metric_history(run_id, key)}
            new = [Metric(key, m.value, m.timestamp, m.step) for m in history
                   if (m.step, m.timestamp, repr(float(m.value))) not in have]
            for start in range(0, len(new), METRICS_PER_BATCH):
                self.client.log_batch(run_id, metrics=new[start:start + METRICS_PER_BATCH])
            self.summary.copy("metric values", len(new))
            self.summary.already("metric values", len(history) - len(new))

    def inputs(self, run_id: str, run, created: bool) -> None:
        inputs = getattr(run, "inputs", None)
        dataset_inputs = list(getattr(inputs, "dataset_inputs", None) or [])
        have = set() if created else {
            (i.dataset.name, i.dataset.digest, i.context)
            for i in self.client.get_run(run_id).inputs.dataset_inputs}
        for dataset_input in dataset_inputs:
            dataset = dataset_input.dataset
            context = next((t.value for t in dataset_input.tags
                            if t.key == "mlflow.data.context"), None)
            if (dataset.name, dataset.digest, context) in have:
                self.summary.already("dataset inputs")
                continue
            self.client.log_input_record(run_id, {
                "name": dataset.name, "digest": dataset.digest,
                "source_type": dataset.source_type, "source": dataset.source,
                "schema": dataset.schema or None, "profile": dataset.profile or None,
            }, context)
            self.summary.copy("dataset inputs")

    def local_uri(self, uri: str) -> str | None:
        """``mlflow-artifacts:/x`` as a file URI under ``artifact_root``, if one was given."""
        if self.artifact_root is None or not uri.startswith("mlflow-artifacts:"):
            return None
        return (self.artifact_root / uri[len("mlflow-artifacts:"):].lstrip("/")).as_uri()

    def artifact_reader(self, info):
        """``(list(path), download(path, dst))`` for a run's artifacts."""
        local = self.local_uri(info.artifact_uri or "")
        if local is None:
            return (lambda path: self.mlflow.list_artifacts(info.run_id, path),
                    lambda path, dst: self.mlflow.download_artifacts(info.run_id, path, dst))
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repository = get_artifact_repository(local)
        return repository.list_artifacts, repository.download_artifacts

    def artifacts(self, run_id: str, info, created: bool) -> None:
        index = {} if created else self.client.artifact_index(run_id)
        listing, download = self.artifact_reader(info)

        def files(path: str | None) -> list:
            found = []
            for entry in listing(path):
                found.extend(files(entry.path) if entry.is_dir else [entry])
            return found

        every = files(None)
        missing = [f for f in every if f.path not in index]
        self.summary.already("artifact files", len(every) - len(missing))
        if not missing:
            return
        with tempfile.TemporaryDirectory(prefix="nbtrack-import-") as scratch:
            for entry in missing:
                local = download(entry.path, scratch)
                folder = str(Path(entry.path).parent)
                self.client.log_artifact(run_id, local, None if folder == "." else folder)
                self.summary.copy("artifact files")

    def logged_model(self, run_id: str, model) -> None:
        """Copy an MLflow 3 logged model into the run's artifacts under its name."""
        from mlflow.artifacts import download_artifacts

        index = self.client.artifact_index(run_id)
        path = model.name
        taken = any(p.startswith(f"{path}/") for p in index)
        if taken and not self.same_model(run_id, path, model.model_id):
            path = f"{model.name}-{model.model_id}"
            taken = any(p.startswith(f"{path}/") for p in index)
        self.model_sources[model.model_id] = f"runs:/{run_id}/{path}"
        if taken:
            self.summary.already("models")
            return
        with tempfile.TemporaryDirectory(prefix="nbtrack-import-") as scratch:
            location = self.local_uri(model.artifact_location) or model.artifact_location
            local = download_artifacts(artifact_uri=location, dst_path=scratch,
                                       tracking_uri=self.mlflow.tracking_uri)
            self.client.log_artifacts(run_id, local, path)
        self.summary.copy("models")

    def same_model(self, run_id: str, path: str, model_id: str) -> bool:
        import yaml

        mlmodel = self.client.artifact_path(run_id) / path / "MLmodel"
        if not mlmodel.is_file():
            return False
        meta = yaml.safe_load(mlmodel.read_text()) or {}
        return model_id in (meta.get("model_id"), meta.get("model_uuid"))

    def finish(self, run_id: str, info, created: bool) -> None:
        status = RunStatus.check(info.status)
        if created or self.client.get_run(run_id).info.status != status:
            if status in RunStatus.TERMINAL:
                self.client.set_terminated(run_id, status, info.end_time)
            elif status != RunStatus.RUNNING:
                self.client.update_run(run_id, status=status)
        if info.lifecycle_stage == LifecycleStage.DELETED:
            self.client.delete_run(run_id)
