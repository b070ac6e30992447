"""Every test gets its own real store and a clean fluent state.

The store is a DuckDB store in the test's temporary folder. The store-level modules in
``BOTH_STORES`` run each test twice: ``[duckdb]``, and ``[ducklake]`` (slow) on a team store of
its own (``team_stores.py``). A test there that concerns only the DuckDB file says so with
``@pytest.mark.embedded_only("why")``.
"""

from __future__ import annotations

import json
import sys

import pytest
from pg_server import postgres_server  # noqa: F401  (a pytest fixture, one server per session)
from team_stores import STORES, lake_template, open_team_store  # noqa: F401  (fixtures)

import nbtrack
from nbtrack.store import registry
from nbtrack.tracking import uri
from nbtrack.tracking.state import state

#: modules whose every test starts kernels, browsers, servers or child processes, or drives
#: MLflow itself (its import and its stores take seconds)
SLOW_MODULES = {
    "test_browser", "test_magics_kernel", "test_durability", "test_concurrency",
    "test_bench_smoke", "test_fresh_process_bench", "test_notebook_runner", "test_mlflow_import",
    "test_mlflow_format",
}


#: modules whose every test that uses the store runs on the embedded store and the team store
BOTH_STORES = {
    "test_store", "test_fluent", "test_artifacts", "test_models", "test_registry",
    "test_values", "test_keys", "test_run_index", "test_mlflow_api", "test_search",
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "embedded_only(reason): a test of the DuckDB file itself, not run on the "
        "team store in BOTH_STORES modules")


def pytest_generate_tests(metafunc):
    """Run the tests of ``BOTH_STORES`` modules on both stores (``store_dir``'s parameter)."""
    name = metafunc.module.__name__.rsplit(".", 1)[-1]
    if (name in BOTH_STORES and "store_dir" in metafunc.fixturenames
            and metafunc.definition.get_closest_marker("embedded_only") is None):
        metafunc.parametrize("store_dir", STORES, indirect=True)


def pytest_collection_modifyitems(items):
    """Mark as slow the notebooks (nbval runs each in a kernel) and the slow modules' tests."""
    for item in items:
        module = getattr(item, "module", None)
        name = module.__name__.rsplit(".", 1)[-1] if module is not None else ""
        if name in SLOW_MODULES or ".ipynb" in item.nodeid:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def store_dir(request, tmp_path, monkeypatch):
    """Point nbtrack at ``tmp_path/.nbtrack`` and reset module state around the test.

    On the team store (``[ducklake]``), nbtrack points at a new lake instead, and this is the
    folder that holds its spool (its data folder is ``tmp_path/lake-data``).
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBTRACK_TRACKING_URI", raising=False)
    monkeypatch.delenv("NBTRACK_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("NBTRACK_EXPERIMENT_ID", raising=False)
    lake = None
    if getattr(request, "param", "duckdb") == "ducklake":
        lake = open_team_store(request, tmp_path, monkeypatch)
        location = lake.spool
        nbtrack.set_tracking_uri(lake.uri)
    else:
        location = tmp_path / ".nbtrack"
        nbtrack.set_tracking_uri(str(location))
    yield location
    state.reset()
    uri.set_tracking_uri(None)
    registry.forget_stores()
    if lake is not None:
        lake.drop()


@pytest.fixture
def client(store_dir):
    """A Client on the test's store."""
    return nbtrack.Client()


@pytest.fixture
def experiment_id(client):
    """A fresh experiment named 'exp'."""
    return client.create_experiment("exp")


@pytest.fixture
def kernel_name(tmp_path_factory, monkeypatch):
    """A kernelspec for this very interpreter, so the kernel imports the nbtrack under test."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "nbtrack-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "nbtrack test", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    return "nbtrack-test"


@pytest.fixture
def autolog_off_afterwards():
    """Turn every autolog off after the test, whatever it turned on."""
    yield
    nbtrack.autolog(disable=True)
