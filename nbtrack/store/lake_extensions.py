"""Load DuckDB's ``ducklake``, ``postgres`` and ``httpfs`` extensions from their PyPI packages.

The team store needs three DuckDB extensions. They come from the packages of the ``team`` extra
(``pip install "nbtrack[team]"``: ``duckdb-extension-ducklake``, ``-postgres`` and ``-httpfs``,
each pinned to the DuckDB version), never from DuckDB's download site: nothing is fetched at run
time, and a machine without internet access works the same.

Each package ships its extension file under ``extensions/v<duckdb version>/``. DuckDB finds an
extension's entry point by the file's name, and the postgres extension's entry point is named
``postgres_scanner``, not ``postgres`` as its file; so each file is linked (or, where links are
not allowed, copied) under its DuckDB name into a private folder and loaded from there by path.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from pathlib import Path

from nbtrack.exceptions import NbtrackError

#: DuckDB's name of each extension -> the PyPI package that ships it
PACKAGES = {
    "ducklake": "duckdb-extension-ducklake",
    "postgres_scanner": "duckdb-extension-postgres",
    "httpfs": "duckdb-extension-httpfs",
}


class ExtensionMissingError(NbtrackError):
    """An extension's PyPI package is not installed, or is for another DuckDB version."""


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nbtrack" / "duckdb-extensions"


def package_file(name: str) -> Path:
    """The extension file that ``PACKAGES[name]`` ships for this DuckDB version."""
    import duckdb

    package = PACKAGES[name]
    hint = (f"The team store needs DuckDB's {name} extension from PyPI: "
            f'pip install "nbtrack[team]" (or pip install "{package}=={duckdb.__version__}").')
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError:
        raise ExtensionMissingError(f"{package} is not installed. {hint}") from None
    folder = Path(module.__file__ or "").parent / "extensions" / f"v{duckdb.__version__}"
    found = sorted(folder.glob("*.duckdb_extension"))
    if not found:
        raise ExtensionMissingError(
            f"{package} has no extension for duckdb {duckdb.__version__} (looked in {folder}); "
            f"it must be the same version as duckdb. {hint}")
    return found[0]


def extension_path(name: str) -> Path:
    """The file to ``LOAD`` for extension ``name``: the package's, under DuckDB's name."""
    import duckdb

    source = package_file(name)
    wanted = f"{name}.duckdb_extension"
    if source.name == wanted:
        return source
    for root in (_cache_root(), Path(tempfile.gettempdir()) / f"nbtrack-ext-{os.getuid()}"):
        target = root / f"v{duckdb.__version__}" / wanted
        try:
            if target.exists() and target.resolve() == source.resolve():
                return target
            if target.exists() and target.stat().st_size == source.stat().st_size \
                    and not target.is_symlink():
                return target  # a copy made where links are not allowed
            target.parent.mkdir(parents=True, exist_ok=True)
            draft = target.with_name(f".{wanted}.{os.getpid()}")
            try:
                draft.symlink_to(source)
            except OSError:
                shutil.copyfile(source, draft)
            os.replace(draft, target)  # atomic: other processes see the old or the new link
            return target
        except OSError:
            continue
    raise ExtensionMissingError(
        f"nbtrack could not place DuckDB's {name} extension under its name in {_cache_root()} "
        "or the temporary folder (no write access?).")


def load(conn, names=tuple(PACKAGES)) -> None:
    """Load the named extensions (all three by default) into the DuckDB connection ``conn``."""
    loaded = {row[0] for row in conn.execute(
        "SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    for name in names:
        if name not in loaded:
            path = str(extension_path(name)).replace("'", "''")
            conn.execute(f"LOAD '{path}'")
