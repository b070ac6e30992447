"""Artifacts and inputs on ``Client``: a run's files, datasets and their index in the store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from nbtrack.artifact_files import RunArtifacts
from nbtrack.artifact_s3 import S3RunArtifacts
from nbtrack.capture.datasets import describe_dataset
from nbtrack.entities import FileInfo
from nbtrack.tracking import serialize
from nbtrack.tracking.names import check_text

if TYPE_CHECKING:
    from nbtrack.store.registry_base import Backend


class ArtifactsClientMixin:
    """Log, list and download a run's artifacts; record the datasets it used."""

    _store: Backend

    # artifacts and inputs -----------------------------------------------------------------
    def _artifacts(self, run_id: str) -> RunArtifacts:
        remote = self._store.artifact_remote
        if remote:
            return S3RunArtifacts(self._store.artifact_root, run_id, remote)
        return RunArtifacts(self._store.artifact_root, run_id)

    def _index(self, run_id: str, rows: list[tuple]) -> None:
        for relative, size, sha in rows:
            check_text(relative, "artifact path")
            self._store.add_artifact(run_id, relative, size, sha)

    def log_artifact(self, run_id: str, local_path: str | os.PathLike,
                     artifact_path: str | None = None) -> None:
        """Copy a file into the run's artifacts, under ``artifact_path`` if given."""
        self._store.ensure_run(run_id)
        self._index(run_id, self._artifacts(run_id).log_file(local_path, artifact_path))

    def log_artifacts(self, run_id: str, local_dir: str | os.PathLike,
                      artifact_path: str | None = None) -> None:
        """Copy a folder's files into the run's artifacts."""
        self._store.ensure_run(run_id)
        self._index(run_id, self._artifacts(run_id).log_folder(local_dir, artifact_path))

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """Save text as an artifact file."""
        self._store.ensure_run(run_id)
        row = self._artifacts(run_id).write_bytes(str(text).encode("utf-8"), artifact_file)
        self._index(run_id, [row])

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        """Save bytes as an artifact file (images and tables use it)."""
        self._store.ensure_run(run_id)
        self._index(run_id, [self._artifacts(run_id).write_bytes(bytes(data), artifact_file)])

    def log_dict(self, run_id: str, dictionary: dict, artifact_file: str) -> None:
        """Save a dict as JSON (or YAML, by suffix) in the run's artifacts."""
        self._store.ensure_run(run_id)
        data = serialize.dict_bytes(dictionary, artifact_file)
        self._index(run_id, [self._artifacts(run_id).write_bytes(data, artifact_file)])

    def log_figure(self, run_id: str, figure, artifact_file: str) -> None:
        """Save a matplotlib or plotly figure; the suffix picks the format."""
        self._store.ensure_run(run_id)
        data = serialize.figure_bytes(figure, artifact_file)
        self._index(run_id, [self._artifacts(run_id).write_bytes(data, artifact_file)])

    def log_input(self, run_id: str, dataset, context: str | None = None,
                  name: str | None = None) -> dict:
        """Record a DataFrame, array or file the run used, with a content digest."""
        self._store.ensure_run(run_id)
        record = describe_dataset(dataset, name)
        for field, text in record.items():
            if isinstance(text, str):
                check_text(text, f"dataset {field}")
        self._store.add_input(run_id, record, context)
        return record

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """The run's artifact entries directly under ``path``."""
        self._store.get_run(run_id)
        index = self._store.get_artifact_index(run_id)
        return self._artifacts(run_id).list(path, index)

    def download_artifacts(self, run_id: str, path: str = "",
                           dst_path: str | os.PathLike | None = None) -> str:
        """Copy an artifact file or folder to ``dst_path``; return the local path."""
        self._store.get_run(run_id)
        return self._artifacts(run_id).download(path, dst_path)

    def artifact_path(self, run_id: str) -> Path:
        """The folder holding a run's artifacts (on S3: this machine's cache, made current)."""
        artifacts = self._artifacts(run_id)
        if isinstance(artifacts, S3RunArtifacts):
            artifacts.fetch()
        return artifacts.root
