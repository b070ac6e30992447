"""The registry store interface: registered models, versions, stages, aliases and the audit log.

As MLflow keeps a model registry store beside its tracking store, nbtrack has two interfaces;
the embedded DuckDB store implements both. Every change is recorded in the audit log in the
same transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from nbtrack.entities import ModelVersion, RegisteredModel
from nbtrack.store.base import Store


class RegistryStore(ABC):
    """Registered models and their versions."""

    # registered models ------------------------------------------------------------------------
    @abstractmethod
    def create_registered_model(self, name: str, description: str | None = None,
                                tags: dict | None = None, exist_ok: bool = False) -> None:
        """Create a registered model (an error if the name is taken, unless ``exist_ok``)."""

    @abstractmethod
    def get_registered_model(self, name: str) -> RegisteredModel:
        """A registered model with its tags, aliases and latest version per stage."""

    @abstractmethod
    def search_registered_models(self, filter_string: str | None, max_results: int | None,
                                 order_by: list[str] | None) -> list[RegisteredModel]:
        """Registered models matching a filter such as ``name LIKE '%taxi%'``."""

    @abstractmethod
    def rename_registered_model(self, name: str, new_name: str) -> None:
        """Rename a model and everything that refers to it."""

    @abstractmethod
    def update_registered_model(self, name: str, description: str | None) -> None:
        """Change a model's description."""

    @abstractmethod
    def delete_registered_model(self, name: str) -> None:
        """Delete a model with all its versions, tags and aliases (the audit log keeps them)."""

    @abstractmethod
    def set_registered_model_tag(self, name: str, key: str, value: str | None) -> None:
        """Set (or, with ``None``, delete) a tag on a registered model."""

    # versions ---------------------------------------------------------------------------------
    @abstractmethod
    def create_model_version(self, name: str, source: str, run_id: str | None,
                             description: str | None = None,
                             tags: dict | None = None) -> ModelVersion:
        """Add the next version of ``name`` (created if new); numbers never repeat."""

    @abstractmethod
    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        """One version, with its tags and aliases."""

    @abstractmethod
    def search_model_versions(self, filter_string: str | None, max_results: int | None,
                              order_by: list[str] | None) -> list[ModelVersion]:
        """Versions matching a filter such as ``name = 'taxi' AND tags.team = 'ml'``."""

    @abstractmethod
    def update_model_version(self, name: str, version: int | str,
                             description: str | None) -> None:
        """Change a version's description."""

    @abstractmethod
    def delete_model_version(self, name: str, version: int | str) -> None:
        """Delete one version, its tags and the aliases pointing at it."""

    @abstractmethod
    def set_model_version_tag(self, name: str, version: int | str, key: str,
                              value: str | None) -> None:
        """Set (or, with ``None``, delete) a tag on a version."""

    @abstractmethod
    def transition_model_version_stage(self, name: str, version: int | str, stage: str,
                                       archive_existing_versions: bool = False,
                                       comment: str | None = None) -> ModelVersion:
        """Move a version to a stage; optionally archive the others in that stage."""

    @abstractmethod
    def get_latest_versions(self, name: str, stages: list[str] | None = None
                            ) -> list[ModelVersion]:
        """The newest version in each stage (or in each of ``stages``)."""

    # aliases ----------------------------------------------------------------------------------
    @abstractmethod
    def set_registered_model_alias(self, name: str, alias: str, version: int | str) -> None:
        """Point ``alias`` at a version (moving it if it pointed elsewhere)."""

    @abstractmethod
    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        """Remove an alias."""

    @abstractmethod
    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version an alias points at."""

    # audit log --------------------------------------------------------------------------------
    @abstractmethod
    def record_registry_event(self, action: str, name: str, version: int | str | None = None,
                              comment: str = "", field: str | None = None,
                              from_value: object = None, to_value: object = None) -> None:
        """Append a decision that changed nothing (a refused promotion) to the audit log."""

    @abstractmethod
    def append_registry_events(self, events: list[dict]) -> None:
        """Append audit log entries as another store recorded them, keeping times and users."""

    @abstractmethod
    def registry_events(self, name: str | None = None):
        """The audit log, oldest first, as a DataFrame (one model's, or all of it)."""


class Backend(Store, RegistryStore, ABC):
    """What a tracking URI opens: a tracking store that also keeps the model registry."""
