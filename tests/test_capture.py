import json
import os
import subprocess
import sys
import textwrap

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


def test_git_state_detached_and_without_commits(repo, tmp_path_factory):
    commit = git.read_git_state(repo).commit
    _git(repo, "checkout", "-q", "--detach")
    detached = git.read_git_state(repo)
    assert (detached.commit, detached.branch, detached.dirty) == (commit, "HEAD", False)
    empty = tmp_path_factory.mktemp("empty")
    _git(empty, "init", "-q")
    assert git.read_git_state(empty) == git.GitState()


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site folder first on ``sys.path`` and a private cache folder."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return folder


def _install(site, name, version):
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return info


def _reads(monkeypatch):
    """Count reads of the installed packages' metadata."""
    calls = []
    real = environment.read_installed_packages
    monkeypatch.setattr(environment, "read_installed_packages",
                        lambda: calls.append(1) or real())
    return calls


def test_package_list_is_cached_across_processes(site, monkeypatch):
    _install(site, "fake_pkg", "1.0")
    reads = _reads(monkeypatch)
    first = environment.installed_packages()
    assert first["fake-pkg"] == "1.0" and first == environment.read_installed_packages()
    assert len(reads) == 2
    assert environment.installed_packages() == first and len(reads) == 2  # from the file
    files = list(environment.cache_folder().glob("packages-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["packages"] == first
    assert not list(environment.cache_folder().glob("*.tmp"))
    code = "from nbtrack.capture import environment as e; print(e.installed_packages()['fake-pkg'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site)}, check=True)
    assert done.stdout.strip() == "1.0"


def test_installing_upgrading_or_removing_a_package_invalidates_the_cache(site, monkeypatch):
    info = _install(site, "fake_pkg", "1.0")
    assert environment.installed_packages()["fake-pkg"] == "1.0"
    info.rename(site / "fake_pkg-2.0.dist-info")  # upgraded
    (site / "fake_pkg-2.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake_pkg\nVersion: 2.0\n")
    assert environment.installed_packages()["fake-pkg"] == "2.0"
    _install(site, "other", "0.1")  # installed
    assert environment.installed_packages()["other"] == "0.1"
    for item in (site / "other-0.1.dist-info").iterdir():  # removed
        item.unlink()
    (site / "other-0.1.dist-info").rmdir()
    assert "other" not in environment.installed_packages()


def test_folders_without_packages_share_the_cache(tmp_path):
    base = [str(tmp_path / "missing")]
    for name in ("script_a", "script_b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.py").write_text("")
    fingerprint = environment.path_fingerprint(base)
    assert environment.path_fingerprint([str(tmp_path / "script_a"), *base]) == fingerprint
    assert environment.path_fingerprint([str(tmp_path / "script_b"), *base]) == fingerprint
    _install(tmp_path / "script_b", "local", "1")
    assert environment.path_fingerprint([str(tmp_path / "script_b"), *base]) != fingerprint


def test_metadata_rewritten_in_place_invalidates_the_cache(site):
    egg = site / "legacy.egg-info"
    egg.mkdir()
    pkg_info = egg / "PKG-INFO"
    pkg_info.write_text("Metadata-Version: 1.0\nName: legacy\nVersion: 1\n")
    assert environment.installed_packages()["legacy"] == "1"
    pkg_info.write_text("Metadata-Version: 1.0\nName: legacy\nVersion: 2\n")
    stat = pkg_info.stat()
    os.utime(pkg_info, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert environment.installed_packages()["legacy"] == "2"


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b'{"format": 1}',
                                     b'{"format": 1, "fingerprint": "x", "packages": []}',
                                     b"\xff\xfe"])
def test_a_corrupt_cache_file_is_ignored_and_rewritten(site, monkeypatch, content):
    _install(site, "fake_pkg", "1.0")
    good = environment.installed_packages()
    path = environment.cache_folder() / f"packages-{environment.path_fingerprint()}.json"
    path.write_bytes(content)
    assert environment.installed_packages() == good
    assert json.loads(path.read_text())["packages"] == good


def test_a_wrong_fingerprint_or_bad_value_in_the_file_is_ignored(site):
    _install(site, "fake_pkg", "1.0")
    good = environment.installed_packages()
    path = environment.cache_folder() / f"packages-{environment.path_fingerprint()}.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "fingerprint": "other", "packages": {"x": "1"}}))
    assert environment.installed_packages() == good
    path.write_text(json.dumps({**data, "packages": {"x": 1}}))
    assert environment.installed_packages() == good


def test_an_unwritable_cache_folder_is_ignored(site, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    _install(site, "fake_pkg", "1.0")
    assert environment.installed_packages()["fake-pkg"] == "1.0"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the spec says
    assert environment.cache_folder() == environment.Path.home() / ".cache" / "nbtrack"


def test_old_package_lists_are_pruned(site, monkeypatch):
    monkeypatch.setattr(environment, "MAX_CACHE_FILES", 3)
    for version in range(6):
        if version:
            (site / f"fake-{version - 1}.dist-info" / "METADATA").unlink()
            (site / f"fake-{version - 1}.dist-info").rmdir()
        _install(site, "fake", str(version))
        assert environment.installed_packages()["fake"] == str(version)
    assert len(list(environment.cache_folder().glob("packages-*.json"))) == 3


@pytest.mark.slow  # child processes
def test_processes_writing_the_cache_at_once_all_succeed(site, tmp_path):
    _install(site, "fake_pkg", "1.0")
    script = tmp_path / "read.py"
    script.write_text(textwrap.dedent("""
        import sys
        from nbtrack.capture import environment as e
        for _ in range(5):
            for path in e.cache_folder().glob("packages-*.json"):
                path.unlink(missing_ok=True)
            assert e.installed_packages()["fake-pkg"] == "1.0"
    """))
    env = {**os.environ, "PYTHONPATH": str(site)}
    procs = [subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE)
             for _ in range(4)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert not list(environment.cache_folder().glob("*.tmp"))
    assert environment.installed_packages()["fake-pkg"] == "1.0"


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
