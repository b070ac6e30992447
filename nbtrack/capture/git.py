"""The git state of a folder: commit, branch, dirty flag and a size-capped diff.

Each call runs ``git`` with a time limit; a folder outside git, a missing ``git`` binary or a
slow repository gives an empty state rather than an error. One ``git status`` gives the commit,
the branch and the dirty flag (a second call, ``git diff``, only for a dirty tree), and it takes
no optional locks, so it never competes with the user's own git commands. Results are cached for
a few seconds per folder so that a loop of short runs does not spawn git for each.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MAX_DIFF_BYTES = 100_000
TIMEOUT_SECONDS = 2.0
CACHE_SECONDS = 5.0
_cache: dict[str, tuple[float, GitState]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class GitState:
    """What git says about a folder; every field is None outside a repository."""

    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    diff: str | None = None


def _git(folder: str, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, timeout=TIMEOUT_SECONDS,
            check=False, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")


def read_git_state(folder: str | Path) -> GitState:
    """Ask git about ``folder`` now (no cache)."""
    folder = str(folder)
    status = _git(folder, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        return GitState()
    commit = branch = None
    dirty = False
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            commit = line[len("# branch.oid "):].strip()
        elif line.startswith("# branch.head "):
            branch = line[len("# branch.head "):].strip()
        elif line and not line.startswith("#"):
            dirty = True
    if not commit or commit == "(initial)":  # a repository without commits
        return GitState()
    if branch == "(detached)":
        branch = "HEAD"  # what ``git rev-parse --abbrev-ref HEAD`` says
    diff = None
    if dirty:
        diff = _git(folder, "diff", "HEAD") or ""
        if len(diff) > MAX_DIFF_BYTES:
            diff = diff[:MAX_DIFF_BYTES] + f"\n... diff cut at {MAX_DIFF_BYTES} characters ...\n"
    return GitState(commit, branch, dirty, diff)


def git_state(folder: str | Path, max_age: float = CACHE_SECONDS) -> GitState:
    """The git state of ``folder``, reusing an answer younger than ``max_age`` seconds."""
    key = str(Path(folder).resolve())
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit and now - hit[0] < max_age:
            return hit[1]
    state = read_git_state(key)
    with _lock:
        _cache[key] = (now, state)
    return state
