"""A run's artifacts kept in a bucket (a team store with ``?data=s3://…``), read through a cache.

The team store's artifacts live at ``s3://bucket/prefix/artifacts/<run id>/<path>``. The artifact
code works on local files, so each machine keeps a cache of them in its own folder (the
store's ``artifact_root``): a file is logged there, then uploaded; before a run's files are
listed, downloaded or loaded (``load_model``), what the bucket holds of the run and the cache
lacks (or holds in another size or older) is fetched. Every path goes through the same checks as
on a local store (``safe_relative_path``, ``_inside``), so no key outside the run's prefix is
written or read, and a key that would climb out of it is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from nbtrack.artifact_files import RunArtifacts, safe_relative_path
from nbtrack.exceptions import NbtrackError
from nbtrack.store import lake_s3


def _code(exc: BaseException | None) -> str:
    """The S3 error code of ``exc`` or of an error it was raised from (boto3 wraps some)."""
    first = type(exc).__name__
    while exc is not None:
        response = getattr(exc, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code"):
            return str(response["Error"]["Code"])
        if "(AccessDenied)" in str(exc):  # boto3's S3UploadFailedError keeps only the text
            return "AccessDenied"
        exc = exc.__cause__ or exc.__context__
    return first


def _refusal(exc: Exception, action: str, url: str) -> NbtrackError:
    code = _code(exc)
    if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId",
                "SignatureDoesNotMatch"):
        return lake_s3.access_error(action, url, code)
    return NbtrackError(f"Could not {action} {url}: {code}: {exc}")


class S3RunArtifacts(RunArtifacts):
    """One run's artifacts in a bucket, with this machine's cache as the local folder."""

    def __init__(self, artifact_root: Path, run_id: str, remote: str) -> None:
        super().__init__(artifact_root, run_id)
        self.bucket, self.prefix = lake_s3.split(f"{remote.rstrip('/')}/{self.root.name}")
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = lake_s3.client()
        return self._client

    def _url(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}/{relative}"

    def _upload(self, rows: list[tuple]) -> list[tuple]:
        for number, (relative, *_) in enumerate(rows):
            try:
                self.client.upload_file(str(self._inside(relative)), self.bucket,
                                        f"{self.prefix}/{relative}")
            except Exception as exc:
                for left, *_ in rows[number:]:  # the cache holds only what the bucket holds
                    self._inside(left).unlink(missing_ok=True)
                raise _refusal(exc, "write", self._url(relative)) from None
        return rows

    def log_file(self, local_path: str | os.PathLike, artifact_path: str | None) -> list[tuple]:
        """Copy one file (or a folder) into the cache, then into the bucket."""
        return self._upload(super().log_file(local_path, artifact_path))

    def log_folder(self, local_dir: str | os.PathLike, artifact_path: str | None) -> list[tuple]:
        """Copy a folder's files into the cache, then into the bucket."""
        return self._upload(super().log_folder(local_dir, artifact_path))

    def write_bytes(self, data: bytes, artifact_file: str) -> tuple[str, int, str]:
        """Write bytes as an artifact file in the cache and the bucket."""
        return self._upload([super().write_bytes(data, artifact_file)])[0]

    def fetch(self, path: str | None = None) -> Path:
        """Bring what the bucket holds under ``path`` into the cache; return the cached path."""
        relative = safe_relative_path(path, "path")
        start = f"{self.prefix}/{relative}" if relative else f"{self.prefix}/"
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start)
            for page in pages:
                for item in page.get("Contents", []):
                    inner = item["Key"][len(self.prefix) + 1:]
                    if relative and inner != relative and not inner.startswith(relative + "/"):
                        continue  # a sibling that shares the name's beginning
                    self._fetch_one(safe_relative_path(inner, "artifact key"), item)
        except NbtrackError:
            raise
        except Exception as exc:
            raise _refusal(exc, "read", self._url(relative)) from None
        return self._inside(relative)

    def _fetch_one(self, relative: str, item: dict) -> None:
        target = self._inside(relative)
        if target.is_file():
            stat = target.stat()
            if stat.st_size == item["Size"] and stat.st_mtime >= item["LastModified"].timestamp():
                return
        target.parent.mkdir(parents=True, exist_ok=True)
        draft = target.with_name(f".{target.name}.{os.getpid()}.part")
        self.client.download_file(self.bucket, item["Key"], str(draft))
        os.replace(draft, target)  # other processes see the old file or the whole new one

    def list(self, path, index):
        """The entries directly under ``path``, as the bucket holds them."""
        self.fetch(path)
        return super().list(path, index)

    def download(self, path, dst_path) -> str:
        """Copy a file or folder out of the bucket (through the cache) to ``dst_path``."""
        self.fetch(path)
        return super().download(path, dst_path)
