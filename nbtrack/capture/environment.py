"""The installed packages and their versions, recorded once per distinct environment.

Reading every package's metadata costs 100-250 ms, so the list is also kept in a small file
under the user's cache folder (``$XDG_CACHE_HOME/nbtrack`` or ``~/.cache/nbtrack``), named by a
fingerprint of what ``importlib.metadata`` would search: for each ``sys.path`` entry, the names
of its ``.dist-info``, ``.egg-info`` and ``.egg`` entries and the modification times of their
metadata files. Installing, upgrading or removing a package adds, renames, removes or rewrites
one of those, so the fingerprint (and the file) changes. Files are written atomically (a
temporary file, then a rename), so concurrent processes never see half a file; an unreadable,
corrupt or unwritable cache is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

from nbtrack.capture import system

CACHE_FORMAT = 1
MAX_CACHE_FILES = 64
_METADATA_SUFFIXES = (".dist-info", ".egg-info", ".egg")
_lock = threading.Lock()
_cached: tuple[str, dict] | None = None


def read_installed_packages() -> dict[str, str]:
    """``{name: version}`` of every installed distribution, read from their metadata now."""
    from importlib import metadata  # ~15 ms to import: only when the cache misses

    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        meta = dist.metadata  # parsed once: dist.version would parse it again
        # typeshed declares PackageMetadata.get only from Python 3.12, but the metadata has
        # always been an email.message.Message, which has it
        name = meta.get("Name")  # type: ignore[attr-defined]
        if name:
            version = meta.get("Version")  # type: ignore[attr-defined]
            packages[name.lower().replace("_", "-")] = version
    return dict(sorted(packages.items()))


def _metadata_mtime(entry: os.DirEntry) -> int | None:
    """When a package's metadata last changed: its METADATA or PKG-INFO file, else the entry."""
    name = entry.name.lower()
    inner = "METADATA" if name.endswith(".dist-info") else "PKG-INFO"
    try:
        if entry.is_dir() and not name.endswith(".egg"):
            return os.stat(os.path.join(entry.path, inner)).st_mtime_ns
        return entry.stat().st_mtime_ns
    except OSError:
        return None


def path_fingerprint(paths: list[str] | None = None) -> str:
    """A hash of the package metadata on ``paths`` (default ``sys.path``): names and mtimes."""
    parts: list = [sys.version, sys.prefix]
    for entry in sys.path if paths is None else paths:
        folder = os.path.abspath(entry or ".")
        try:
            with os.scandir(folder) as found:
                names = sorted((item.name, _metadata_mtime(item)) for item in found
                               if item.name.lower().endswith(_METADATA_SUFFIXES))
            if names:  # a folder without packages (a script's) does not change the list
                parts.append([folder, names])
        except NotADirectoryError:  # a zip file on the path
            try:
                stat = os.stat(folder)
                parts.append([folder, stat.st_mtime_ns, stat.st_size])
            except OSError:
                pass
        except OSError:
            pass  # a folder that does not exist holds no packages
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def cache_folder() -> Path:
    """Where package lists are cached: ``$XDG_CACHE_HOME/nbtrack`` or ``~/.cache/nbtrack``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, empty or relative: the spec says use the default
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nbtrack"


def _read_cache(path: Path, fingerprint: str) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_bytes())
        packages = data["packages"]
        if (data["format"] != CACHE_FORMAT or data["fingerprint"] != fingerprint
                or not isinstance(packages, dict)
                or not all(isinstance(k, str) and isinstance(v, (str, type(None)))
                           for k, v in packages.items())):
            return None
        return packages
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _write_cache(path: Path, fingerprint: str, packages: dict[str, str]) -> None:
    import tempfile

    text = json.dumps({"format": CACHE_FORMAT, "fingerprint": fingerprint, "packages": packages})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".packages-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temp, path)
        except BaseException:
            os.unlink(temp)
            raise
        _prune(path.parent)
    except OSError:
        pass  # a read-only home or a full disk: the next process reads the metadata again


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _prune(folder: Path) -> None:
    """Keep the newest ``MAX_CACHE_FILES`` package lists (old environments pile up)."""
    files = list(folder.glob("packages-*.json"))
    for stale in sorted(files, key=_mtime)[:-MAX_CACHE_FILES]:
        stale.unlink(missing_ok=True)


def installed_packages(use_cache: bool = True) -> dict[str, str]:
    """``{name: version}`` of every installed distribution, names normalised to lower case.

    With ``use_cache``, the list comes from the cache file of this exact set of installed
    packages when there is one, and is written there otherwise.
    """
    if not use_cache:
        return read_installed_packages()
    fingerprint = path_fingerprint()
    path = cache_folder() / f"packages-{fingerprint}.json"
    packages = _read_cache(path, fingerprint)
    if packages is None:
        packages = read_installed_packages()
        _write_cache(path, fingerprint, packages)
    return packages


def environment_hash(python_version: str, platform: str, packages: dict[str, str]) -> str:
    """A stable hash of an environment: equal environments share one stored record."""
    text = json.dumps([python_version, platform, packages], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current_environment(refresh: bool = False) -> tuple[str, dict]:
    """``(hash, record)`` for this process, computed once and cached.

    The record holds ``python_version``, ``platform``, ``packages`` as a list of name/version
    pairs, and ``time``. ``refresh`` reads the installed packages again, bypassing both caches.
    """
    global _cached
    with _lock:
        if _cached is None or refresh:
            packages = installed_packages(use_cache=not refresh)
            py, plat = system.python_version(), system.platform_name()
            record = {
                "python_version": py,
                "platform": plat,
                "packages": [{"name": n, "version": v} for n, v in packages.items()],
                "time": time.time_ns() // 1_000_000,
            }
            _cached = (environment_hash(py, plat, packages), record)
        return _cached
