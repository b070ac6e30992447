"""Model registry entities, with MLflow's names: ``RegisteredModel`` and ``ModelVersion``."""

from __future__ import annotations

from dataclasses import dataclass, field

STAGES = ("None", "Staging", "Production", "Archived")


def check_stage(stage: str) -> str:
    """The canonical spelling of a stage (any case), or a ValueError listing the stages."""
    from nbtrack.exceptions import InvalidValueError

    for known in STAGES:
        if isinstance(stage, str) and stage.lower() == known.lower():
            return known
    raise InvalidValueError(f"Unknown stage {stage!r}: use one of {', '.join(STAGES)}.")


@dataclass(frozen=True)
class RegisteredModelTag:
    """A tag on a registered model."""

    key: str
    value: str


@dataclass(frozen=True)
class ModelVersionTag:
    """A tag on a model version."""

    key: str
    value: str


@dataclass(frozen=True)
class ModelVersion:
    """One version of a registered model. ``version`` is a number, as in MLflow 3 (``3``)."""

    name: str
    version: int
    source: str
    run_id: str | None
    current_stage: str
    description: str | None
    user_id: str | None
    status: str
    creation_timestamp: int
    last_updated_timestamp: int
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RegisteredModel:
    """A named model and its versions' summary: the latest version in each stage."""

    name: str
    description: str | None
    creation_timestamp: int
    last_updated_timestamp: int
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)  # alias -> version
    latest_versions: list[ModelVersion] = field(default_factory=list)
