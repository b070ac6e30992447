"""The store's DuckDB connection reaches no file but the store's own.

Every query nbtrack runs (``nbtrack.sql``, ``%track_sql``, ``nbtrack sql``, the dashboards'
searches, the store's own reads and writes) goes through the one connection that
``connection.ConnectionManager`` opens. It is opened with DuckDB's external access turned off, so
no query can read or write a file other than the store's database (and DuckDB's own WAL and
spill files beside it): ``read_text``, ``read_csv``, ``read_blob``, ``glob``, ``FROM 'file.csv'``,
``COPY … TO``, ``ATTACH``, ``INSTALL`` and ``LOAD`` all fail with a permission error. The setting
is global to the database and cannot be turned back on while it is open (DuckDB refuses ``SET
enable_external_access = true`` and any change of ``allowed_directories``), so a query cannot undo
it. Arrow tables that nbtrack registers itself are still scanned: they are in memory, not files.
"""

from __future__ import annotations

#: The DuckDB configuration of every connection to a store file.
CONFIG: dict[str, str | bool] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}

REFUSED = (
    "it reads only the store's views: DuckDB's access to files, extensions and other "
    "databases is turned off on the store's connection"
)


def connect(path: str):
    """A DuckDB connection to the store file at ``path`` that can reach no other file."""
    import duckdb

    return duckdb.connect(path, config=dict(CONFIG))


def is_refused(exc: BaseException) -> bool:
    """Whether a DuckDB error is the sandbox refusing a file, an extension or a database."""
    import duckdb

    return isinstance(exc, duckdb.PermissionException) or (
        "disabled by configuration" in str(exc) or "disabled through configuration" in str(exc))


def refusal(what: str, exc: BaseException) -> str:
    """The message for a query the sandbox refused: ``what`` (``nbtrack.sql``) and DuckDB's line."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{what} refused this query: {REFUSED} ({detail})."


def lock_down(conn, directories: list[str]) -> None:
    """Turn external access off on an open connection, but for ``directories``.

    For a backend that must load extensions and attach its catalog first (DuckLake): call it
    once those are done. DuckDB then refuses every other file, and refuses to change this.
    """
    listed = ", ".join("'" + d.rstrip("/").replace("'", "''") + "/'" for d in directories)
    conn.execute(f"SET allowed_directories = [{listed}]")
    conn.execute("SET enable_external_access = false")
