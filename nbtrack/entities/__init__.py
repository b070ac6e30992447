"""Small frozen data classes for what the store holds, named as MLflow names them.

``tracking``: experiments, runs and their values; ``registry``: registered models and versions.
"""

from nbtrack.entities.registry import (
    STAGES,
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelTag,
    check_stage,
)
from nbtrack.entities.tracking import (
    Dataset,
    DatasetInput,
    Experiment,
    ExperimentTag,
    FileInfo,
    InputTag,
    LifecycleStage,
    Metric,
    MetricHistory,
    PagedList,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunSource,
    RunStatus,
    RunTag,
    ViewType,
)

__all__ = [
    "STAGES", "Dataset", "DatasetInput", "Experiment", "ExperimentTag", "FileInfo", "InputTag",
    "LifecycleStage", "Metric", "MetricHistory", "ModelVersion", "ModelVersionTag", "PagedList",
    "Param", "RegisteredModel", "RegisteredModelTag", "Run", "RunData", "RunInfo", "RunInputs",
    "RunSource", "RunStatus", "RunTag", "ViewType", "check_stage",
]
