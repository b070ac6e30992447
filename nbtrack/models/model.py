"""A saved model: a folder with an ``MLmodel`` file, the serialized model and its context.

The folder is an MLflow model, so MLflow's ``mlflow.pyfunc.load_model`` and MLflow-format
model servers load it too::

    MLmodel                metadata, as YAML in MLflow's layout: flavors (always
                           ``python_function`` with its ``loader_module``), versions, time,
                           run id, signature
    model.pkl              the model (the flavor decides the file and format)
    requirements.txt       the packages it needs, pinned
    conda.yaml             the same, as a conda environment
    python_env.yaml        the same, as MLflow's virtualenv description
    input_example.json     a few rows of input
    nbtrack-manifest.json  the sha256 of every other file, checked at every load

Models written by older nbtrack versions (``MLmodel`` as JSON holding ``files``) and models
written by MLflow (no manifest) load too.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from nbtrack._version import __version__
from nbtrack.artifact_files import file_sha256
from nbtrack.exceptions import ModelIntegrityError, NbtrackError, NotFoundError
from nbtrack.models import env_files
from nbtrack.models.signature import ModelSignature, infer_signature

MLMODEL = "MLmodel"
MANIFEST = "nbtrack-manifest.json"
REQUIREMENTS = env_files.REQUIREMENTS
INPUT_EXAMPLE = "input_example.json"
EXAMPLE_ROWS = 5


@dataclass
class Model:
    """The contents of an ``MLmodel`` file."""

    flavors: dict[str, dict] = field(default_factory=dict)
    run_id: str | None = None
    artifact_path: str | None = None
    model_uuid: str = field(default_factory=lambda: uuid.uuid4().hex)
    utc_time_created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    nbtrack_version: str | None = __version__
    python_version: str = field(default_factory=platform.python_version)
    signature: ModelSignature | None = None
    saved_input_example: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256

    def to_dict(self) -> dict:
        """The ``MLmodel`` contents: MLflow's keys, the signature in MLflow's form."""
        data = {k: v for k, v in self.__dict__.items() if k != "files" and v is not None}
        data["signature"] = self.signature.to_mlflow() if self.signature else None
        return data

    @classmethod
    def load(cls, folder: str | Path) -> Model:
        """Read ``folder/MLmodel``."""
        path = Path(folder) / MLMODEL
        if not path.is_file():
            raise NotFoundError(
                f"{folder} is not a saved model: it has no {MLMODEL} file. Give the folder "
                "that log_model or save_model wrote, e.g. runs:/<run_id>/model."
            )
        import yaml  # YAML reads JSON too: MLmodel files of older nbtrack versions

        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise NbtrackError(f"{path} is not a model file ({exc}).") from None
        if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
            raise NbtrackError(f"{path} is not a model file: it has no flavors.")
        signature = data.pop("signature", None)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("utc_time_created", "model_uuid"):
            if key in known:
                known[key] = str(known[key])
        if "nbtrack_version" not in data:
            known["nbtrack_version"] = None  # written by MLflow
        manifest = Path(folder) / MANIFEST
        if manifest.is_file():
            known["files"] = json.loads(manifest.read_text())["files"]
        return cls(**known, signature=ModelSignature.from_dict(signature) if signature else None)

    def flavor(self, name: str, folder: str | Path) -> dict:
        """The configuration of one flavor, with an error naming the ones the model has."""
        if name not in self.flavors:
            raise NbtrackError(
                f"The model in {folder} has no {name!r} flavor; it has "
                f"{', '.join(sorted(self.flavors))}. Load it with the flavor it has, or with "
                "nbtrack.pyfunc.load_model."
            )
        return self.flavors[name]


def verify_files(folder: Path, model: Model) -> None:
    """Check every file in the manifest still has the sha256 it was saved with.

    A model nbtrack wrote without its manifest is refused; a model MLflow wrote has none.
    """
    if model.nbtrack_version is not None and not model.files:
        raise ModelIntegrityError(
            f"The model in {folder} lacks its {MANIFEST}, which holds the sha256 of its files; "
            "refusing to load it unchecked. Log the model again."
        )
    for relative, expected in model.files.items():
        path = folder / relative
        if not path.is_file():
            raise ModelIntegrityError(f"The model in {folder} lacks its file {relative!r}.")
        actual = file_sha256(path)
        if actual != expected:
            raise ModelIntegrityError(
                f"{path} changed after the model was saved (sha256 {actual[:12]}..., saved as "
                f"{expected[:12]}...). Refusing to load it: log the model again."
            )


def _example_frame(example):
    import numpy as np
    import pandas as pd

    if isinstance(example, pd.DataFrame):
        return example.head(EXAMPLE_ROWS)
    if isinstance(example, dict):
        return pd.DataFrame(example).head(EXAMPLE_ROWS)
    array = np.asarray(example)[:EXAMPLE_ROWS]
    return array


def write_example(folder: Path, example) -> str:
    """Save up to five rows of input as JSON (pandas 'split' orientation for frames)."""
    import numpy as np

    rows = _example_frame(example)
    if isinstance(rows, np.ndarray):
        payload = {"type": "ndarray", "dtype": str(rows.dtype), "data": rows.tolist()}
    else:
        payload = {"type": "dataframe", **json.loads(rows.to_json(orient="split",
                                                                   date_format="iso"))}
    (folder / INPUT_EXAMPLE).write_text(json.dumps(payload))
    return INPUT_EXAMPLE


def finish_folder(folder: Path, model: Model, *, input_example=None, signature=None,
                  predict=None, requirements: list[str] | None = None) -> Model:
    """Write the example, requirements and ``MLmodel`` of a folder holding a saved model.

    The signature is inferred from the example (and ``predict`` on it) unless given.
    """
    if input_example is not None:
        model.saved_input_example = write_example(folder, input_example)
        if signature is None:
            example = _example_frame(input_example)
            output = None
            if predict is not None:
                try:
                    output = predict(example)
                except Exception:  # the signature then just lacks outputs
                    output = None
            signature = infer_signature(example, output)
    model.signature = signature
    pins = [*(requirements or []), *env_files.own_requirement(requirements or [])]
    env_files.write(folder, pins, model.python_version)
    pyfunc = model.flavors.get("python_function")
    if pyfunc is not None:
        pyfunc.setdefault("python_version", model.python_version)
        pyfunc.setdefault("env", dict(env_files.ENV))
    import yaml

    (folder / MLMODEL).write_text(yaml.safe_dump(model.to_dict(), default_flow_style=False))
    model.files = {
        p.relative_to(folder).as_posix(): file_sha256(p)
        for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST
    }
    (folder / MANIFEST).write_text(json.dumps({"files": model.files}, indent=1) + "\n")
    return model


@dataclass(frozen=True)
class ModelInfo:
    """What ``log_model`` returns: where the model is and what it holds."""

    model_uri: str
    run_id: str
    artifact_path: str
    flavors: dict
    signature: ModelSignature | None
    model_uuid: str
    utc_time_created: str
    #: the version ``log_model(..., registered_model_name=...)`` registered, else None
    registered_model_version: int | None = None


def prepare_folder(path: str | Path | None) -> Path:
    """A new empty folder for ``save_model`` (an error if ``path`` exists and is not empty)."""
    if path is None:
        return Path(tempfile.mkdtemp(prefix="nbtrack-model-"))
    folder = Path(path)
    if folder.exists() and any(folder.iterdir()):
        raise NbtrackError(f"{folder} already exists and is not empty; save the model to a new "
                           "folder, or delete that one first.")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
