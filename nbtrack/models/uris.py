"""Model URIs: from ``runs:/``, ``models:/``, ``file://`` or a folder to a checked model folder.

Accepted URIs: ``runs:/<run_id>/<path>``; ``models:/<name>/<version>``,
``models:/<name>/<stage>`` and ``models:/<name>@<alias>`` (through the registry);
``file:///abs/path`` and plain local paths. Resolving checks every file's sha256 against the
model's manifest, and for ``runs:/`` also against the store's artifact index, so a model
changed on disk is refused.
"""

from __future__ import annotations

from pathlib import Path

from nbtrack.artifact_files import file_sha256, safe_relative_path
from nbtrack.exceptions import ModelIntegrityError, NbtrackError, NotFoundError
from nbtrack.models.model import MLMODEL, Model, verify_files


def split_model_uri(model_uri: str) -> tuple[str, str, str]:
    """Split a ``models:/`` URI into ``(name, kind, reference)``.

    ``models:/taxi/3`` gives kind "version", ``models:/taxi/Production`` "stage",
    ``models:/taxi/latest`` "latest" (the newest version) and ``models:/taxi@champion`` "alias".
    """
    body = model_uri[len("models:/"):].strip("/")
    if "@" in body and "/" not in body.split("@", 1)[1]:
        name, alias = body.rsplit("@", 1)
        return name, "alias", alias
    name, _, ref = body.rpartition("/")
    if not name or not ref:
        raise NbtrackError(f"{model_uri!r} is not a model URI; use models:/<name>/<version>, "
                           "models:/<name>/<stage>, models:/<name>/latest or "
                           "models:/<name>@<alias>.")
    if ref.lower() == "latest":
        return name, "latest", ref
    return name, ("version" if ref.isdigit() else "stage"), ref


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


def checked_folder(path: str | Path) -> tuple[Path, Model]:
    """A local model folder and its ``MLmodel``, after the sha256 check of its manifest."""
    folder = local_folder(str(path))
    model = Model.load(folder)
    verify_files(folder, model)
    return folder, model


def resolve(model_uri: str | Path, client, _depth: int = 0) -> tuple[Path, Model]:
    """The local folder of a model URI and its ``MLmodel``, after the integrity checks.

    ``client`` (a ``Client``) finds runs and registered models.
    """
    text = str(model_uri)
    if text.startswith("models:/"):
        if _depth > 3:
            raise NbtrackError(f"{text!r} refers to registered models in a loop.")
        return resolve(client.resolve_model_version(text).source, client, _depth + 1)
    if text.startswith("runs:/"):
        run_id, _, path = text[len("runs:/"):].strip("/").partition("/")
        if not run_id or not path:
            raise NbtrackError(f"{text!r} is not a run URI; the form is runs:/<run_id>/<path>, "
                               "e.g. runs:/3f2a.../model.")
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
        return checked_folder(text)
    return checked_folder(folder)
