"""A team store of its own for each test that runs on both stores (see conftest's BOTH_STORES).

Each ``[ducklake]`` test gets a new PostgreSQL database on the session's server, copied from a
template that already holds the lake and nbtrack's tables (``CREATE DATABASE … TEMPLATE``: tens
of milliseconds, where creating them costs seconds of DuckLake commits), with its data folder in
the test's temporary folder. The password comes from ``PGPASSWORD``, never the URI.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from nbtrack.store.ducklake_store import DuckLakeStore

#: ``store_dir``'s parameters: the embedded store, then the team store (slow: PostgreSQL)
STORES = ["duckdb", pytest.param("ducklake", marks=pytest.mark.slow)]


def lake_uri(server, database: str, data: Path, spool: Path) -> str:
    """The ``ducklake:`` URI of a database on ``server`` (no password in it)."""
    return (f"ducklake:postgresql://{server.user}@{server.host}:{server.port}/{database}"
            f"?data={data}&spool={spool}")


@pytest.fixture(scope="session")
def lake_template(postgres_server, tmp_path_factory, request):
    """The name of a database holding an empty nbtrack team store, to copy for each test."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    request.addfinalizer(monkeypatch.undo)
    root = tmp_path_factory.mktemp("lake-template")
    database = postgres_server.create_database("lake_template")
    DuckLakeStore(lake_uri(postgres_server, database, root / "data", root / "spool"),
                  create=True).close()
    return database


class TestLake:
    """A test's team store: its URI, the folder of its spool, and how to drop its database."""

    def __init__(self, server, database: str, data: Path, spool: Path) -> None:
        self.server, self.database, self.spool = server, database, spool
        self.uri = lake_uri(server, database, data, spool)

    def drop(self) -> None:
        """Drop the catalog's database (each takes ~8 MB; hundreds slow the server's end)."""
        self.server.psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


def open_team_store(request, tmp_path: Path, monkeypatch) -> TestLake:
    """A new team store for this test, copied from the session's template."""
    server = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("lake_template")
    monkeypatch.setenv("PGPASSWORD", server.password)
    database = f"lake_{secrets.token_hex(4)}"
    data, spool = tmp_path / "lake-data", tmp_path / "lake-local"
    (data / "artifacts").mkdir(parents=True)
    server.psql(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
    moved = server.psql(f"UPDATE ducklake_metadata SET value = '{data}/' WHERE key = "
                        "'data_path' RETURNING 1", database=database)
    assert moved == "1", "the template's data path was not replaced: DuckLake's catalog changed"
    return TestLake(server, database, data, spool)
