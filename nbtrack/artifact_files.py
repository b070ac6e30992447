"""Artifact files: copied into ``<store>/artifacts/<run_id>/``, hashed, never outside it."""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
from pathlib import Path, PurePosixPath

from nbtrack.entities import FileInfo
from nbtrack.exceptions import ArtifactPathError, NotFoundError

_CHUNK = 1 << 20


def safe_relative_path(artifact_path: str | os.PathLike | None, what: str = "artifact_path") -> str:
    """Check an artifact path and return it normalised, in POSIX form ('' for the run's root).

    ``dir/../file`` becomes ``file``, as in MLflow.

    Raises:
        ArtifactPathError: for an absolute path, a path that climbs out of the run with
            ``..``, or a NUL character.

    """
    if artifact_path is None:
        return ""
    text = os.fspath(artifact_path).replace("\\", "/")
    if "\x00" in text:
        raise ArtifactPathError(f"{what} {artifact_path!r} holds a NUL character.")
    path = PurePosixPath(text)
    if path.is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise ArtifactPathError(
            f"{what} {artifact_path!r} is absolute. Give a path relative to the run's artifact "
            "folder, such as 'plots' or 'model/weights.bin'."
        )
    normal = posixpath.normpath(text) if text else ""
    if normal == ".." or normal.startswith("../"):
        raise ArtifactPathError(
            f"{what} {artifact_path!r} climbs out with '..'. Artifacts stay inside the run's "
            "artifact folder: give a path below it, such as 'plots'."
        )
    return "/".join(p for p in PurePosixPath(normal).parts if p not in ("", "."))


def copy_with_hash(source: Path, target: Path) -> tuple[int, str]:
    """Copy a file and return ``(size, sha256)``, reading it once."""
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    shutil.copystat(source, target)
    return size, digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class RunArtifacts:
    """One run's artifact folder."""

    def __init__(self, artifact_root: Path, run_id: str) -> None:
        self.root = (artifact_root / run_id).resolve()

    def _inside(self, relative: str) -> Path:
        target = (self.root / relative).resolve() if relative else self.root
        if target != self.root and self.root not in target.parents:
            raise ArtifactPathError(
                f"{relative!r} resolves outside the run's artifact folder (through a link?)."
            )
        return target

    def log_file(self, local_path: str | os.PathLike, artifact_path: str | None) -> list[tuple]:
        """Copy one file (or a folder, as ``<artifact_path>/<its name>``) in.

        Returns ``[(relative_path, size, sha256)]``.
        """
        source = Path(local_path)
        if source.is_dir():  # as MLflow does
            folder = safe_relative_path(artifact_path)
            return self.log_folder(source, f"{folder}/{source.name}" if folder else source.name)
        if not source.is_file():
            raise NotFoundError(
                f"No file at {str(local_path)!r} to log as an artifact. Check the path, or use "
                "log_artifacts() for a folder."
            )
        folder = safe_relative_path(artifact_path)
        relative = f"{folder}/{source.name}" if folder else source.name
        size, sha = copy_with_hash(source, self._inside(relative))
        return [(relative, size, sha)]

    def log_folder(self, local_dir: str | os.PathLike, artifact_path: str | None) -> list[tuple]:
        """Copy a folder's files in, keeping its layout; return their index rows."""
        source = Path(local_dir)
        if not source.is_dir():
            raise NotFoundError(
                f"No folder at {str(local_dir)!r} to log. Check the path, or use log_artifact() "
                "for a single file."
            )
        folder = safe_relative_path(artifact_path)
        rows = []
        for path in sorted(source.rglob("*")):
            if path.is_file():
                inner = path.relative_to(source).as_posix()
                relative = f"{folder}/{inner}" if folder else inner
                size, sha = copy_with_hash(path, self._inside(relative))
                rows.append((relative, size, sha))
        return rows

    def write_bytes(self, data: bytes, artifact_file: str) -> tuple[str, int, str]:
        """Write bytes as an artifact file; return its index row."""
        relative = safe_relative_path(artifact_file, "artifact_file")
        if not relative:
            raise ArtifactPathError("artifact_file needs a file name, such as 'notes.txt'.")
        target = self._inside(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return relative, len(data), hashlib.sha256(data).hexdigest()

    def list(self, path: str | None, index: dict[str, tuple[int, str]]) -> list[FileInfo]:
        """The entries directly under ``path``, folders first, with sizes and hashes."""
        relative = safe_relative_path(path, "path")
        folder = self._inside(relative)
        if not folder.is_dir():
            return []
        infos = []
        for entry in sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name)):
            rel = entry.relative_to(self.root).as_posix()
            if entry.is_dir():
                infos.append(FileInfo(rel, True, None))
            else:
                size, sha = index.get(rel, (entry.stat().st_size, None))
                infos.append(FileInfo(rel, False, size, sha))
        return infos

    def download(self, path: str | None, dst_path: str | os.PathLike | None) -> str:
        """Copy a file or folder out to ``dst_path`` (a new temporary folder by default)."""
        import tempfile

        relative = safe_relative_path(path, "path")
        source = self._inside(relative)
        if not source.exists():
            raise NotFoundError(
                f"The run has no artifact {relative!r}. See what it has with "
                "Client().list_artifacts(run_id)."
            )
        destination = Path(dst_path) if dst_path else Path(tempfile.mkdtemp(prefix="nbtrack-"))
        destination.mkdir(parents=True, exist_ok=True)
        target = destination / (source.name if relative else self.root.name)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return str(target)
