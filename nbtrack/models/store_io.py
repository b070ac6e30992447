"""Putting a saved model folder into a run (the active one, or a given run id).

Finding a model folder from a model URI is ``nbtrack.models.uris``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from nbtrack.artifact_files import safe_relative_path
from nbtrack.exceptions import NbtrackError
from nbtrack.models.model import Model, ModelInfo, remove_folder

HISTORY_TAG = "nbtrack.log-model.history"


def target_run(run_id: str | None = None):
    """The client and run id a model goes to: ``run_id``, or the active run (started if none)."""
    from nbtrack.tracking import fluent

    return fluent.target(run_id)


def already_logged(run_id: str, digest: str) -> ModelInfo | None:
    """The ModelInfo of this exact model already logged to this run by this process, if any."""
    from nbtrack.tracking.state import state

    return state.logged_models.get((run_id, digest))


def model_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def log_folder(client, run_id: str, folder: Path, model: Model, digest: str) -> ModelInfo:
    """Copy a finished model folder into the run's artifacts; record it; remove the folder."""
    artifact_path = model.artifact_path
    try:
        assert artifact_path is not None, "a model being logged has its artifact path"
        client.log_artifacts(run_id, folder, artifact_path)
    finally:
        remove_folder(folder)
    info = ModelInfo(
        model_uri=f"runs:/{run_id}/{artifact_path}", run_id=run_id,
        artifact_path=artifact_path, flavors=model.flavors, signature=model.signature,
        model_uuid=model.model_uuid, utc_time_created=model.utc_time_created,
    )
    history = json.loads(client.get_run(run_id).data.tags.get(HISTORY_TAG, "[]"))
    history.append({"artifact_path": model.artifact_path, "flavors": sorted(model.flavors),
                    "model_uuid": model.model_uuid, "utc_time_created": model.utc_time_created})
    client.set_tag(run_id, HISTORY_TAG, json.dumps(history))
    from nbtrack.tracking.state import state

    state.logged_models[(run_id, digest)] = info
    return info


def register_logged(client, info: ModelInfo, registered_model_name: str | None) -> ModelInfo:
    """Register a logged model as the next version of ``registered_model_name``, if given."""
    if not registered_model_name:
        return info
    version = client.register_model(info.model_uri, registered_model_name)
    return dataclasses.replace(info, registered_model_version=version.version)


def log_written(write, name: str | None, artifact_path: str | None,
                run_id: str | None, registered_model_name: str | None = None) -> ModelInfo:
    """Log a model that ``write(folder, model) -> (model, digest)`` saves into a new folder.

    The model goes to the active run (or ``run_id``) under ``name``; the same model logged to
    the same run again returns the first ``ModelInfo`` instead of a second copy.
    ``registered_model_name`` also registers it as a new version of that model.
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
        return register_logged(client, found, registered_model_name)
    return register_logged(client, log_folder(client, run_id, folder, model, digest),
                           registered_model_name)


def model_name(name: str | None, artifact_path: str | None) -> str:
    """The artifact path a model is logged under (``name``, or MLflow 2's ``artifact_path``)."""
    chosen = name or artifact_path or "model"
    relative = safe_relative_path(chosen, "name")
    if not relative:
        raise NbtrackError("A model needs a name, such as 'model'.")
    return relative
