"""The team store's parts (DuckLake on a PostgreSQL catalog), on a real server and real files."""

from __future__ import annotations

import duckdb
import pytest
from pg_server import postgres_server  # noqa: F401  (a pytest fixture)

from nbtrack.store import lake_extensions


def plain_connection():
    """A DuckDB connection that may neither download nor autoload extensions."""
    return duckdb.connect(config={"autoinstall_known_extensions": False,
                                  "autoload_known_extensions": False})


def test_the_extensions_load_from_their_pypi_packages():
    conn = plain_connection()
    lake_extensions.load(conn)
    loaded = {name for (name,) in conn.execute(
        "SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    assert {"ducklake", "postgres_scanner", "httpfs"} <= loaded
    lake_extensions.load(conn)  # loading twice is harmless


def test_a_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(lake_extensions.PACKAGES, "ducklake", "duckdb-extension-nowhere")
    with pytest.raises(lake_extensions.ExtensionMissingError, match="pip install"):
        lake_extensions.extension_path("ducklake")


@pytest.mark.slow
def test_ducklake_attaches_on_a_postgresql_catalog(postgres_server, tmp_path):  # noqa: F811
    database = postgres_server.create_database()
    conn = plain_connection()
    lake_extensions.load(conn)
    conn.execute(f"ATTACH 'ducklake:postgres:{postgres_server.libpq(database)}' AS lake "
                 f"(DATA_PATH '{tmp_path}/data/')")
    conn.execute("CREATE TABLE lake.t (a INTEGER, b VARCHAR)")
    conn.execute("INSERT INTO lake.t VALUES (1, 'x')")
    assert conn.execute("SELECT * FROM lake.t").fetchall() == [(1, "x")]
    # the catalog lives in PostgreSQL: another role sees the lake's metadata tables there
    tables = postgres_server.psql("SELECT count(*) FROM information_schema.tables "
                                  "WHERE table_name LIKE 'ducklake_%'", database=database)
    assert int(tables) > 10
