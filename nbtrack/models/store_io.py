"""Putting a saved model folder into a run, and finding a model folder from a model URI.

Accepted URIs: ``runs:/<run_id>/<path>``; ``models:/<name>/<version>``,
``models:/<name>/<stage>`` and ``models:/<name>@<alias>`` (through the registry);
``file:///abs/path`` and plain local paths. Loading checks every file's sha256 against the
model's manifest, and for ``runs:/`` also against the store's artifact index, so a model
changed on disk is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from nbtrack.artifacts import file_sha256, safe_relative_path
from nbtrack.exceptions import ModelIntegrityError, NbtrackError, NotFoundError
from nbtrack.models.model import MLMODEL, Model, ModelInfo, remove_folder, verify_files

HISTORY_TAG = "nbtrack.log-model.history"
# (run_id, sha256 of the serialized model) -> ModelInfo: the same model is logged once per run
_logged: dict[tuple[str, str], ModelInfo] = {}


def target_run(run_id: str | None = None):
    """The client and run id a model goes to: ``run_id``, or the active run (started if none)."""
    from nbtrack.tracking import fluent

    return fluent.target(run_id)


def already_logged(run_id: str, digest: str) -> ModelInfo | None:
    """The ModelInfo of this exact model already logged to this run by this process, if any."""
    return _logged.get((run_id, digest))


def model_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def log_folder(client, run_id: str, folder: Path, model: Model, digest: str) -> ModelInfo:
    """Copy a finished model folder into the run's artifacts; record it; remove the folder."""
    try:
        client.log_artifacts(run_id, folder, model.artifact_path)
    finally:
        remove_folder(folder)
    info = ModelInfo(
        model_uri=f"runs:/{run_id}/{model.artifact_path}", run_id=run_id,
        artifact_path=model.artifact_path, flavors=model.flavors, signature=model.signature,
        model_uuid=model.model_uuid, utc_time_created=model.utc_time_created,
    )
    history = json.loads(client.get_run(run_id).data.tags.get(HISTORY_TAG, "[]"))
    history.append({"artifact_path": model.artifact_path, "flavors": sorted(model.flavors),
                    "model_uuid": model.model_uuid, "utc_time_created": model.utc_time_created})
    client.set_tag(run_id, HISTORY_TAG, json.dumps(history))
    _logged[(run_id, digest)] = info
    return info


def log_written(write, name: str | None, artifact_path: str | None,
                run_id: str | None) -> ModelInfo:
    """Log a model that ``write(folder, model) -> (model, digest)`` saves into a new folder.

    The model goes to the active run (or ``run_id``) under ``name``; the same model logged to
    the same run again returns the first ``ModelInfo`` instead of a second copy.
    """
    from nbtrack.models.model import prepare_folder

    client, run_id = target_run(run_id)
    folder = prepare_folder(None)
    try:
        model, digest = write(folder, Model(run_id=run_id,
                                            artifact_path=model_name(name, artifact_path)))
    except BaseException:
        remove_folder(folder)
        raise
    if (found := already_logged(run_id, digest)) is not None:
        remove_folder(folder)
        return found
    return log_folder(client, run_id, folder, model, digest)


def model_name(name: str | None, artifact_path: str | None) -> str:
    """The artifact path a model is logged under (``name``, or MLflow 2's ``artifact_path``)."""
    chosen = name or artifact_path or "model"
    relative = safe_relative_path(chosen, "name")
    if not relative:
        raise NbtrackError("A model needs a name, such as 'model'.")
    return relative


def _check_against_index(client, run_id: str, folder: Path, prefix: str) -> None:
    index = client.artifact_index(run_id)
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        relative = f"{prefix}/{path.relative_to(folder).as_posix()}"
        recorded = index.get(relative)
        if recorded is None:
            raise ModelIntegrityError(f"{relative} is in the run's folder but was never logged.")
        if file_sha256(path) != recorded[1]:
            raise ModelIntegrityError(
                f"The artifact {relative} of run {run_id} changed after it was logged (its "
                "sha256 differs from the one recorded). Refusing to load it."
            )


def local_folder(text: str) -> Path:
    """The folder of a ``file://`` URI or a local path, made absolute."""
    return Path(text.removeprefix("file://")).expanduser().resolve()


def resolve(model_uri: str | Path, _depth: int = 0) -> tuple[Path, Model]:
    """The local folder of a model URI and its ``MLmodel``, after the integrity checks."""
    text = str(model_uri)
    if text.startswith("models:/"):
        from nbtrack.tracking.client import Client

        if _depth > 3:
            raise NbtrackError(f"{text!r} refers to registered models in a loop.")
        return resolve(Client().resolve_model_version(text).source, _depth + 1)
    if text.startswith("runs:/"):
        from nbtrack.tracking.client import Client

        run_id, _, path = text[len("runs:/"):].strip("/").partition("/")
        if not run_id or not path:
            raise NbtrackError(f"{text!r} is not a run URI; the form is runs:/<run_id>/<path>, "
                               "e.g. runs:/3f2a.../model.")
        client = Client()
        client.get_run(run_id)  # a clear error for an unknown run
        relative = safe_relative_path(path, "model path")
        folder = client.artifact_path(run_id) / relative
        if not (folder / MLMODEL).is_file():
            raise NotFoundError(f"Run {run_id} has no model at {relative!r}. See its artifacts "
                                f"with nbtrack.Client().list_artifacts({run_id!r}).")
        _check_against_index(client, run_id, folder, relative)
    elif "://" in text and not text.startswith("file://"):
        raise NbtrackError(
            f"Cannot load a model from {text!r}. Give runs:/<run_id>/<path>, "
            "models:/<name>/<version or stage>, models:/<name>@<alias>, file:///path or a "
            "local folder written by save_model."
        )
    else:
        folder = local_folder(text)
    model = Model.load(folder)
    verify_files(folder, model)
    return folder, model
