"""Run a test module against both stores: the embedded DuckDB store and the team store.

A module opts in by taking ``either_store`` in its ``client`` fixture::

    from team_stores import either_store, postgres_server  # noqa: F401  (pytest fixtures)

    @pytest.fixture
    def client(either_store):  # noqa: F811
        return nbtrack.Client()

Each of its tests then runs twice: ``[duckdb]`` on the test's folder, as always, and
``[ducklake]`` (slow: it needs the session's PostgreSQL server) on a DuckLake of its own, with
its catalog in a new PostgreSQL database and its data in the test's folder. While the team
store is not opened by ``ducklake:`` URIs (see ``ducklake_store.NOT_READY``), every Client the
test makes is handed that store directly.
"""

from __future__ import annotations

import pytest
from pg_server import postgres_server  # noqa: F401  (a pytest fixture)

import nbtrack.tracking.client
from nbtrack.store.ducklake_store import DuckLakeStore


@pytest.fixture(params=["duckdb", pytest.param("ducklake", marks=pytest.mark.slow)])
def either_store(request, monkeypatch, tmp_path):
    """``"duckdb"`` or ``"ducklake"``: which store every Client of this test uses."""
    if request.param == "duckdb":
        yield "duckdb"
        return
    server = request.getfixturevalue("postgres_server")
    database = server.create_database("lake")
    monkeypatch.setenv("PGPASSWORD", server.password)
    store = DuckLakeStore(f"ducklake:postgresql://{server.user}@{server.host}:{server.port}/"
                          f"{database}?data={tmp_path}/lake-data&spool={tmp_path}/lake-local",
                          create=True)
    monkeypatch.setattr(nbtrack.tracking.client, "get_store", lambda uri=None: store)
    try:
        yield "ducklake"
    finally:
        store.close()
