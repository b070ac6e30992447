"""Datasets for ``log_input``, with MLflow's ``mlflow.data`` constructors.

``from_pandas`` and ``from_numpy`` wrap data with a name, a source and a content digest::

    dataset = nbtrack.data.from_pandas(train, source="s3://bucket/train.parquet", name="train")
    nbtrack.log_input(dataset, context="training")
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nbtrack.capture.datasets import describe_dataset


@dataclass
class Dataset:
    """Data with a name, a digest, a source, a schema and a profile, as ``log_input`` records."""

    name: str
    digest: str
    source: str
    source_type: str
    schema: str | None = None
    profile: str | None = None
    targets: str | None = None
    data: Any = field(default=None, repr=False)

    def to_record(self) -> dict:
        """The fields a run input stores."""
        return {"name": self.name, "digest": self.digest, "source_type": self.source_type,
                "source": self.source, "schema": self.schema, "profile": self.profile}

    def to_dict(self) -> dict:
        """The dataset's description as a dict (MLflow's ``Dataset.to_dict``)."""
        return {**self.to_record(), "targets": self.targets}

    def to_json(self) -> str:
        """``to_dict`` as JSON."""
        return json.dumps(self.to_dict())


@dataclass
class PandasDataset(Dataset):
    """A DataFrame as a dataset; ``df`` is the frame."""

    @property
    def df(self):
        """The DataFrame."""
        return self.data


@dataclass
class NumpyDataset(Dataset):
    """Arrays as a dataset; ``features`` and ``targets_array`` are the arrays."""

    targets_array: Any = field(default=None, repr=False)

    @property
    def features(self):
        """The feature array."""
        return self.data


def _dataset(kind, data, source, name, digest, targets, **extra):
    record = describe_dataset(data, name)
    return kind(name=record["name"], digest=digest or record["digest"],
                source=str(source) if source is not None else record["source"],
                source_type=record["source_type"], schema=record["schema"],
                profile=record["profile"], targets=targets, data=data, **extra)


def from_pandas(df, source=None, targets: str | None = None, name: str | None = None,
                digest: str | None = None, predictions: str | None = None) -> PandasDataset:
    """A dataset of a DataFrame. ``targets`` names its label column (which must exist)."""
    from nbtrack.exceptions import InvalidValueError

    for column, what in ((targets, "targets"), (predictions, "predictions")):
        if column is not None and column not in df.columns:
            raise InvalidValueError(f"{what}={column!r} is not a column of the DataFrame; its "
                                    f"columns are {', '.join(map(str, df.columns))}.")
    return _dataset(PandasDataset, df, source, name or "dataset", digest, targets)


def from_numpy(features, source=None, targets=None, name: str | None = None,
               digest: str | None = None) -> NumpyDataset:
    """A dataset of a feature array (and an optional target array)."""
    dataset = _dataset(NumpyDataset, features, source, name or "dataset", digest, None,
                       targets_array=targets)
    if targets is not None:
        target_digest = describe_dataset(targets)["digest"]
        dataset.digest = digest or (dataset.digest[:8] + target_digest[:8])
    return dataset


__all__ = ["Dataset", "NumpyDataset", "PandasDataset", "from_numpy", "from_pandas"]
