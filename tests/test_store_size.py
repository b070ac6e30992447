"""A small store stays small on disk: new store files use 16 KB blocks, not DuckDB's 256 KB."""

import os
import subprocess
import sys

import duckdb

from nbtrack.store.connection import BLOCK_SIZE

LOG_ELEVEN_RUNS = """
import nbtrack
nbtrack.set_experiment("size")
for i in range(11):
    with nbtrack.start_run(run_name=f"r{i}"):
        nbtrack.log_params({"alpha": i / 10, "model": "ridge"})
        nbtrack.set_tag("team", "pricing")
        for step in range(200):
            nbtrack.log_metric("loss", 1 / (step + 1), step=step)
        nbtrack.log_metric("rmse", 3.0 + i)
"""


def _size(folder):
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(folder) for name in names)


def test_eleven_runs_take_under_two_megabytes(tmp_path):
    env = {**os.environ, "NBTRACK_TRACKING_URI": str(tmp_path / "store")}
    subprocess.run([sys.executable, "-c", LOG_ELEVEN_RUNS], env=env, check=True, timeout=120)
    # readers after the writer (each may merge and checkpoint) keep it small too
    for _ in range(2):
        subprocess.run([sys.executable, "-m", "nbtrack.cli", "runs"], env=env, check=True,
                       capture_output=True, timeout=120)
    assert _size(tmp_path / "store") < 2 * 1024 * 1024
    with duckdb.connect(str(tmp_path / "store" / "store.duckdb"), read_only=True) as conn:
        assert conn.execute("PRAGMA database_size").fetchone()[2] == BLOCK_SIZE
