"""Every test gets its own real DuckDB store in a temporary folder and a clean fluent state."""

from __future__ import annotations

import json
import sys

import pytest

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


def pytest_collection_modifyitems(items):
    """Mark as slow the notebooks (nbval runs each in a kernel) and the slow modules' tests."""
    for item in items:
        module = getattr(item, "module", None)
        name = module.__name__.rsplit(".", 1)[-1] if module is not None else ""
        if name in SLOW_MODULES or ".ipynb" in item.nodeid:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def store_dir(tmp_path, monkeypatch):
    """Point nbtrack at ``tmp_path/.nbtrack`` and reset module state around the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBTRACK_TRACKING_URI", raising=False)
    monkeypatch.delenv("NBTRACK_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("NBTRACK_EXPERIMENT_ID", raising=False)
    location = tmp_path / ".nbtrack"
    nbtrack.set_tracking_uri(str(location))
    yield location
    state.reset()
    uri.set_tracking_uri(None)
    registry.forget_stores()


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
