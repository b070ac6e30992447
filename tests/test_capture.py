import subprocess
import sys

import pytest

from nbtrack.capture import entry_point, environment, git


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "train.py").write_text("print(1)\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "first")
    return tmp_path


def test_git_state_clean_and_dirty(repo, monkeypatch):
    clean = git.read_git_state(repo)
    assert len(clean.commit) == 40 and clean.branch == "main" and clean.dirty is False
    assert clean.diff is None
    (repo / "train.py").write_text("print(2)\n")
    dirty = git.read_git_state(repo)
    assert dirty.dirty is True and "print(2)" in dirty.diff
    monkeypatch.setattr(git, "MAX_DIFF_BYTES", 20)
    capped = git.read_git_state(repo)
    assert "diff cut at 20" in capped.diff and len(capped.diff) < 80


def test_git_outside_a_repo_and_without_git(tmp_path, monkeypatch):
    assert git.read_git_state(tmp_path) == git.GitState()
    monkeypatch.setenv("PATH", "")
    assert git.read_git_state(tmp_path) == git.GitState()


def test_git_state_is_cached_briefly(repo):
    first = git.git_state(repo)
    (repo / "train.py").write_text("changed\n")
    assert git.git_state(repo) is first
    assert git.git_state(repo, max_age=0).dirty is True


def test_environment_hash_is_stable_and_sensitive():
    h1, rec = environment.current_environment()
    h2, _ = environment.current_environment()
    assert h1 == h2
    packages = {p["name"]: p["version"] for p in rec["packages"]}
    assert "duckdb" in packages and "pandas" in packages
    assert environment.environment_hash("3.11", "x", {"a": "1"}) != \
        environment.environment_hash("3.11", "x", {"a": "2"})


def test_entry_point_script_and_provider(tmp_path, monkeypatch):
    script = tmp_path / "train.py"
    script.write_text("")
    monkeypatch.setattr(sys.modules["__main__"], "__file__", str(script), raising=False)
    found = entry_point.current_entry_point()
    assert (found.type, found.name) == ("SCRIPT", str(script))
    note = entry_point.EntryPoint("NOTEBOOK", "/nb/a.ipynb", "x = 1", "/nb")
    entry_point.set_notebook_provider(lambda: note)
    try:
        assert entry_point.current_entry_point() == note
    finally:
        entry_point.set_notebook_provider(None)


def test_runs_record_git_state(repo, monkeypatch):
    import nbtrack

    script = repo / "train.py"
    monkeypatch.setattr(sys.modules["__main__"], "__file__", str(script), raising=False)
    with nbtrack.start_run() as run:
        pass
    source = nbtrack.get_run(run.info.run_id).source
    assert source.type == "SCRIPT" and source.name == str(script)
    assert len(source.git_commit) == 40 and source.git_branch == "main"
