"""The installed packages and their versions, recorded once per distinct environment."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from importlib import metadata

from nbtrack.capture import system

_lock = threading.Lock()
_cached: tuple[str, dict] | None = None


def installed_packages() -> dict[str, str]:
    """``{name: version}`` of every installed distribution, names normalised to lower case."""
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            packages[name.lower().replace("_", "-")] = dist.version
    return dict(sorted(packages.items()))


def environment_hash(python_version: str, platform: str, packages: dict[str, str]) -> str:
    """A stable hash of an environment: equal environments share one stored record."""
    text = json.dumps([python_version, platform, packages], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current_environment(refresh: bool = False) -> tuple[str, dict]:
    """``(hash, record)`` for this process, computed once and cached.

    The record holds ``python_version``, ``platform``, ``packages`` as a list of name/version
    pairs, and ``time``.
    """
    global _cached
    with _lock:
        if _cached is None or refresh:
            packages = installed_packages()
            py, plat = system.python_version(), system.platform_name()
            record = {
                "python_version": py,
                "platform": plat,
                "packages": [{"name": n, "version": v} for n, v in packages.items()],
                "time": time.time_ns() // 1_000_000,
            }
            _cached = (environment_hash(py, plat, packages), record)
        return _cached
