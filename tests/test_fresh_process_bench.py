"""The fresh-process benchmark runs and reports (nbtrack side, one process): it must not rot."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "fresh_process.py"


def test_fresh_process_benchmark_runs(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, str(BENCH), "-n", "1", "--no-mlflow", "--git",
                           "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: target missed
    assert "CPU" in done.stdout and "wall" in done.stdout
    result = json.loads(out.read_text())["nbtrack"]
    assert 0 < result["cpu"] < 60 and 0 < result["wall"] < 60
