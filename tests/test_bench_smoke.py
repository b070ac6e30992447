"""The benchmark script runs and reports (nbtrack side, small sizes): it must not rot."""

import subprocess
import sys
from pathlib import Path

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
