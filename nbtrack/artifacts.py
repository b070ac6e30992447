"""MLflow's ``mlflow.artifacts`` functions: read a run's artifacts by URI.

An artifact URI is ``runs:/<run_id>/<path>``, a run's ``artifact_uri`` (a local folder, or a
``file://`` URI) followed by a path, or any local file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from nbtrack.entities import FileInfo
from nbtrack.exceptions import InvalidValueError, NotFoundError


def _client(tracking_uri: str | None):
    from nbtrack.tracking.client import Client

    return Client(tracking_uri) if tracking_uri else Client()


def _split_runs_uri(artifact_uri: str) -> tuple[str, str]:
    run_id, _, path = artifact_uri[len("runs:/"):].strip("/").partition("/")
    if not run_id:
        raise InvalidValueError(f"{artifact_uri!r} names no run: use runs:/<run_id>/<path>.")
    return run_id, path


def download_artifacts(artifact_uri: str | None = None, run_id: str | None = None,
                       artifact_path: str | None = None, dst_path: str | os.PathLike | None = None,
                       tracking_uri: str | None = None) -> str:
    """Copy an artifact file or folder to ``dst_path`` (a new temporary folder by default).

    Give either ``artifact_uri`` or ``run_id`` (with an optional ``artifact_path``). Returns
    the local path of the copy.
    """
    if (artifact_uri is None) == (run_id is None):
        raise InvalidValueError("download_artifacts takes either artifact_uri, or run_id with "
                                "an optional artifact_path.")
    client = _client(tracking_uri)
    if run_id is not None:
        return client.download_artifacts(run_id, artifact_path or "", dst_path)
    assert artifact_uri is not None  # one of the two was given
    if artifact_path is not None:
        raise InvalidValueError("artifact_path goes with run_id; put the path in artifact_uri.")
    if artifact_uri.startswith("runs:/"):
        return client.download_artifacts(*_split_runs_uri(artifact_uri), dst_path)
    source = Path(artifact_uri.removeprefix("file://")).expanduser()
    if not source.exists():
        raise NotFoundError(f"No artifact at {artifact_uri!r}.")
    if dst_path is None:
        return str(source.resolve())
    import shutil

    target = Path(dst_path) / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
    return str(target)


def list_artifacts(artifact_uri: str | None = None, run_id: str | None = None,
                   artifact_path: str | None = None,
                   tracking_uri: str | None = None) -> list[FileInfo]:
    """The artifact entries directly under a run's folder or one of its subfolders."""
    if artifact_uri is not None:
        if run_id is not None or artifact_path is not None:
            raise InvalidValueError("list_artifacts takes either artifact_uri, or run_id with "
                                    "an optional artifact_path.")
        if not artifact_uri.startswith("runs:/"):
            raise InvalidValueError(f"list_artifacts reads runs:/<run_id>/<path> URIs, not "
                                    f"{artifact_uri!r}.")
        run_id, artifact_path = _split_runs_uri(artifact_uri)
    if run_id is None:
        raise InvalidValueError("list_artifacts needs artifact_uri or run_id.")
    return _client(tracking_uri).list_artifacts(run_id, artifact_path or None)


def _read(artifact_uri: str) -> tuple[bytes, str]:
    path = Path(download_artifacts(artifact_uri))
    if not path.is_file():
        raise InvalidValueError(f"{artifact_uri!r} is a folder; give the URI of a file in it.")
    return path.read_bytes(), path.name


def load_text(artifact_uri: str) -> str:
    """The content of a text artifact."""
    data, _ = _read(artifact_uri)
    return data.decode("utf-8")


def load_dict(artifact_uri: str) -> dict:
    """A dict saved with ``log_dict``: JSON, or YAML for ``.yaml``/``.yml`` files."""
    data, name = _read(artifact_uri)
    if PurePosixPath(name).suffix.lower() in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(data)
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidValueError(f"{artifact_uri!r} is not a JSON file ({exc}).") from None


def load_image(artifact_uri: str):
    """An image artifact as a ``PIL.Image.Image`` (needs Pillow)."""
    import io

    from nbtrack.tracking.media import pillow

    data, _ = _read(artifact_uri)
    image = pillow().open(io.BytesIO(data))
    image.load()
    return image
