"""The benchmark script runs and reports (nbtrack side, small sizes): it must not rot."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run.py"


def test_benchmark_script_runs(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--no-mlflow", "--only", "run", "--only",
         "history", "--only", "search", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a run: 10 params" in done.stdout and "metric history" in done.stdout
    assert "failed" not in done.stdout
    import json

    results = json.loads(out.read_text())
    assert results["history"]["nbtrack"]["points"] == 10_000
    assert results["search"]["nbtrack"]["rows"] > 0


DURABILITY = BENCH.with_name("durability.py")


@pytest.mark.slow
def test_durability_benchmark_runs(tmp_path):
    """bench/durability.py --quick: both libraries measured, every row printed, no failures."""
    import json

    out = tmp_path / "durability.json"
    done = subprocess.run([sys.executable, str(DURABILITY), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for label in ("log_metric throughput, 2 processes", "lag from log_metric to visible",
                  "values lost after SIGKILL", "runs left RUNNING after SIGKILL"):
        assert label in done.stdout, done.stdout
    assert "failed" not in done.stdout, done.stdout
    results = json.loads(out.read_text())
    libraries = results["lag"].keys()
    assert "nbtrack" in libraries
    for library in libraries:
        pair = results["throughput"]["2"][library]
        assert "error" not in pair and pair["values"] > 0, pair
        seen = results["lag"][library]
        assert "error" not in seen and seen["samples"] > 0 and seen["unseen"] == 0, seen
        killed = results["kill"][library]
        assert "error" not in killed and killed["trials"] == 2, killed
