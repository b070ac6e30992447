import os

import pytest

import nbtrack
from nbtrack.artifact_files import safe_relative_path
from nbtrack.exceptions import ArtifactPathError, NotFoundError


@pytest.mark.parametrize("path, expected", [
    (None, ""), ("", ""), (".", ""), ("plots", "plots"), ("a/b/./c", "a/b/c"),
    ("a\\b", "a/b"), ("dir/", "dir"), ("dir/../file", "file"), ("a/b/../c", "a/c"),
    ("a/..", ""),  # normalised as MLflow does, never climbing out of the run
])
def test_safe_paths(path, expected):
    assert safe_relative_path(path) == expected


@pytest.mark.parametrize("path", [
    "/etc", "../x", "a/../../b", "C:\\temp", "\\\\server\\share", "x\x00y", "..",
])
def test_escaping_paths_are_rejected(path):
    with pytest.raises(ArtifactPathError):
        safe_relative_path(path)


def test_log_artifact_refuses_escapes_and_writes_nothing_outside(tmp_path, store_dir):
    source = tmp_path / "f.txt"
    source.write_text("x")
    with nbtrack.start_run() as run:
        for bad in ("/tmp", "../../outside", "a/../../.."):
            with pytest.raises(ArtifactPathError, match=r"artifact folder|absolute"):
                nbtrack.log_artifact(source, artifact_path=bad)
        with pytest.raises(ArtifactPathError):
            nbtrack.log_text("x", "../escape.txt")
        with pytest.raises(ArtifactPathError):
            nbtrack.log_dict({}, "/abs.json")
        with pytest.raises(NotFoundError, match="No file"):
            nbtrack.log_artifact(tmp_path / "missing.txt")
        with pytest.raises(NotFoundError, match="No folder"):
            nbtrack.log_artifacts(tmp_path / "missing")
    assert not (tmp_path / "escape.txt").exists()
    assert nbtrack.Client().list_artifacts(run.info.run_id) == []


def test_symlink_escape_is_refused(tmp_path, store_dir):
    with nbtrack.start_run() as run:
        nbtrack.log_text("x", "inside.txt")
    root = nbtrack.Client().artifact_path(run.info.run_id)
    os.symlink(tmp_path, root / "link")
    with pytest.raises(ArtifactPathError, match="outside"):
        nbtrack.Client().log_text(run.info.run_id, "pwned", "link/pwned.txt")
    assert not (tmp_path / "pwned.txt").exists()
    with pytest.raises(NotFoundError, match="no artifact"):
        nbtrack.Client().download_artifacts(run.info.run_id, "nothing-here")
