"""The model registry on ``Client``, with MLflow's method names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbtrack.entities import ModelVersion, PagedList, RegisteredModel, check_stage
from nbtrack.exceptions import NotFoundError
from nbtrack.search.paging import (
    MODEL_VERSIONS_PAGE_LIMIT,
    REGISTERED_MODELS_PAGE_LIMIT,
    check_max_results,
    page_of,
)

if TYPE_CHECKING:
    from nbtrack.store.registry_base import Backend

SEARCH_MAX_RESULTS = 100  # MLflow's defaults
MODEL_VERSIONS_DEFAULT = 10_000


class RegistryClientMixin:
    """Registered models and their versions, stages, aliases, tags and audit history."""

    _store: Backend

    def _store_at(self, as_of):
        """The store, or with ``as_of`` the team store as it was at that moment (read-only)."""
        return self._store if as_of is None else self._store.at(as_of)

    # registered models ----------------------------------------------------------------------
    def create_registered_model(self, name: str, tags: dict | None = None,
                                description: str | None = None) -> RegisteredModel:
        """Create an empty registered model."""
        self._store.create_registered_model(name, description, tags)
        return self._store.get_registered_model(name)

    def get_registered_model(self, name: str, as_of=None) -> RegisteredModel:
        """A registered model, with its latest version in each stage (``as_of``: as it was)."""
        return self._store_at(as_of).get_registered_model(name)

    def search_registered_models(self, filter_string: str | None = None,
                                 max_results: int = SEARCH_MAX_RESULTS,
                                 order_by: list[str] | None = None,
                                 page_token: str | None = None, as_of=None) -> PagedList:
        """A page of registered models matching a filter such as ``name LIKE '%taxi%'``."""
        limit = check_max_results(max_results, REGISTERED_MODELS_PAGE_LIMIT, allow_zero=True)
        store = self._store_at(as_of)
        return page_of(
            lambda n: store.search_registered_models(filter_string, n, order_by),
            limit, page_token)

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        """Rename a model (its versions follow)."""
        self._store.rename_registered_model(name, new_name)
        return self._store.get_registered_model(new_name)

    def update_registered_model(self, name: str, description: str | None = None):
        """Change a model's description."""
        self._store.update_registered_model(name, description)
        return self._store.get_registered_model(name)

    def delete_registered_model(self, name: str) -> None:
        """Delete a model and all its versions (the audit log keeps the record)."""
        self._store.delete_registered_model(name)

    def set_registered_model_tag(self, name: str, key: str, value) -> None:
        """Set a tag on a registered model."""
        self._store.set_registered_model_tag(name, key, str(value))

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        """Remove a tag from a registered model."""
        self._store.set_registered_model_tag(name, key, None)

    # versions --------------------------------------------------------------------------------
    def create_model_version(self, name: str, source: str, run_id: str | None = None,
                             tags: dict | None = None,
                             description: str | None = None) -> ModelVersion:
        """Add a version from a model's location (numbered 1, 2, ... per name)."""
        return self._store.create_model_version(name, str(source), run_id, description, tags)

    def register_model(self, model_uri: str, name: str, tags: dict | None = None,
                       description: str | None = None) -> ModelVersion:
        """Register the model at ``model_uri`` (``runs:/<id>/model`` or a folder) as ``name``."""
        from nbtrack.models import uris

        _, model = uris.resolve(model_uri, self)  # a clear error if there is no model there
        text = str(model_uri)
        source = text if text.startswith(("runs:/", "models:/")) else str(
            uris.local_folder(text))
        run_id = text[len("runs:/"):].split("/", 1)[0] if text.startswith("runs:/") \
            else model.run_id
        return self.create_model_version(name, source, run_id, tags, description)

    def get_model_version(self, name: str, version, as_of=None) -> ModelVersion:
        """One version of a registered model (``as_of``: as it was at that moment)."""
        return self._store_at(as_of).get_model_version(name, version)

    def get_model_version_download_uri(self, name: str, version) -> str:
        """The local folder holding a version's model files (checked against their sha256)."""
        from nbtrack.models import uris

        folder, _ = uris.resolve(self.get_model_version(name, version).source, self)
        return str(folder)

    def copy_model_version(self, src_model_uri: str, dst_name: str) -> ModelVersion:
        """Copy a version (``models:/name/3``) as the next version of ``dst_name``.

        ``dst_name`` is created if needed, as MLflow does when promoting across models.
        """
        source = self.resolve_model_version(src_model_uri)  # pinned: a stage may move later
        return self.create_model_version(dst_name, f"models:/{source.name}/{source.version}",
                                         source.run_id, dict(source.tags), source.description)

    def search_model_versions(self, filter_string: str | None = None,
                              max_results: int = MODEL_VERSIONS_DEFAULT,
                              order_by: list[str] | None = None,
                              page_token: str | None = None, as_of=None) -> PagedList:
        """A page of versions matching a filter such as ``name = 'taxi' AND tags.team = 'ml'``.

        ``as_of`` (a datetime, an ISO string or epoch ms; the team store only): the versions,
        stages and tags as they were at that moment, e.g. ``current_stage = 'Production'``.
        """
        limit = check_max_results(max_results, MODEL_VERSIONS_PAGE_LIMIT, allow_zero=True)
        store = self._store_at(as_of)
        return page_of(
            lambda n: store.search_model_versions(filter_string, n, order_by),
            limit, page_token)

    def update_model_version(self, name: str, version, description: str | None = None):
        """Change a version's description."""
        self._store.update_model_version(name, version, description)
        return self._store.get_model_version(name, version)

    def delete_model_version(self, name: str, version) -> None:
        """Delete one version."""
        self._store.delete_model_version(name, version)

    def set_model_version_tag(self, name: str, version, key: str, value) -> None:
        """Set a tag on a version."""
        self._store.set_model_version_tag(name, version, key, str(value))

    def delete_model_version_tag(self, name: str, version, key: str) -> None:
        """Remove a tag from a version."""
        self._store.set_model_version_tag(name, version, key, None)

    def transition_model_version_stage(self, name: str, version, stage: str,
                                       archive_existing_versions: bool = False,
                                       comment: str | None = None) -> ModelVersion:
        """Move a version to None, Staging, Production or Archived."""
        return self._store.transition_model_version_stage(
            name, version, stage, archive_existing_versions, comment)

    def set_registered_model_alias(self, name: str, alias: str, version) -> None:
        """Point an alias (``champion``) at a version."""
        self._store.set_registered_model_alias(name, alias, version)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        """Remove an alias."""
        self._store.delete_registered_model_alias(name, alias)

    def get_model_version_by_alias(self, name: str, alias: str, as_of=None) -> ModelVersion:
        """The version an alias points at (``as_of``: pointed at then; team store only)."""
        return self._store_at(as_of).get_model_version_by_alias(name, alias)

    def get_latest_versions(self, name: str, stages: list[str] | None = None,
                            as_of=None) -> list:
        """The newest version in each stage, or in each of ``stages``.

        ``as_of`` (team store only): as they were at that moment, e.g. what was in Production.
        """
        return self._store_at(as_of).get_latest_versions(name, stages)

    def resolve_model_version(self, model_uri: str) -> ModelVersion:
        """The version a ``models:/`` URI names (by number, stage, ``latest`` or alias)."""
        from nbtrack.models.uris import split_model_uri

        name, kind, ref = split_model_uri(model_uri)
        if kind == "version":
            return self.get_model_version(name, ref)
        if kind == "alias":
            return self.get_model_version_by_alias(name, ref)
        if kind == "latest":
            newest = self.get_latest_versions(name)
            if not newest:
                raise NotFoundError(f"Registered model {name!r} has no versions yet. Register "
                                    f"one with nbtrack.register_model(model_uri, {name!r}).")
            return max(newest, key=lambda v: v.version)
        stage = check_stage(ref)
        found = self.get_latest_versions(name, [stage])
        if not found:
            raise NotFoundError(f"Registered model {name!r} has no version in {stage}. "
                                f"Promote one with nbtrack.promote({name!r}, <version>, "
                                f"to={stage!r}).")
        return found[0]

    # history and lineage ---------------------------------------------------------------------
    def record_registry_event(self, action: str, name: str, version=None, comment: str = "",
                              field: str | None = None, from_value=None, to_value=None) -> None:
        """Append a decision that changed nothing, such as a refused promotion, to the audit log.

        The registry records its changes itself; this is for what was decided against.
        """
        self._store.record_registry_event(action, name, version, comment, field, from_value,
                                          to_value)

    def get_registry_events(self, name: str | None = None):
        """The audit log (who, when, what, from, to) as a DataFrame, oldest first."""
        import pandas as pd

        frame = self._store.registry_events(name)
        frame["time"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
        return frame

    def get_model_version_at(self, name: str, stage: str, at) -> ModelVersion | None:
        """The version that was the newest in ``stage`` at time ``at`` (datetime or ms).

        Answers "what was in Production on date D" by replaying the audit log.
        """
        import pandas as pd

        stage = check_stage(stage)
        when = int(pd.Timestamp(at).timestamp() * 1000) if not isinstance(at, (int, float)) \
            else int(at)
        stages: dict[int, str] = {}
        events = self._store.registry_events(name)
        for row in events[events["timestamp"] <= when].itertuples():
            if row.action == "create_version":
                stages[int(row.version)] = "None"
            elif row.action == "transition_stage":
                stages[int(row.version)] = row.to_value
            elif row.action == "delete_version":
                stages.pop(int(row.version), None)
            elif row.action == "delete_model":
                stages.clear()
        held = [v for v, s in stages.items() if s == stage]
        if not held:
            return None
        try:
            return self.get_model_version(name, max(held))
        except NotFoundError:  # deleted since: describe it from the log
            return None

    def get_model_version_lineage(self, name: str, version) -> dict:
        """Where a version came from: its run's params, metrics, code, data and environment."""
        model_version = self.get_model_version(name, version)
        if not model_version.run_id:
            return {"model_version": model_version, "run": None}
        run = self._store.get_run(model_version.run_id)
        environment = self._store.get_environment(run.source.env_hash) \
            if run.source.env_hash else None
        return {
            "model_version": model_version, "run": run, "params": dict(run.data.params),
            "metrics": dict(run.data.metrics), "code": run.source.code,
            "notebook": run.source.name, "git_commit": run.source.git_commit,
            "datasets": [{"name": i.dataset.name, "digest": i.dataset.digest,
                          "context": i.context} for i in run.inputs.dataset_inputs],
            "environment": environment,
        }
