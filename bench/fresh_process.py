"""A fresh process that creates a new store and logs one run with one metric: nbtrack vs MLflow.

    python bench/fresh_process.py                # 7 processes each, medians and ratios
    python bench/fresh_process.py -n 15 --git    # in a git repository (git state is captured)
    python bench/fresh_process.py --no-mlflow    # nbtrack alone, against the target

Each process runs a script in its own new folder (so each makes a new store): nbtrack's
``with nbtrack.start_run(): nbtrack.log_metric("m", 1.0)``, and the same with MLflow on SQLite.
CPU time is the child's user + system time, including any process it waits for (git). Bytecode
is cached in a scratch folder (``PYTHONPYCACHEPREFIX``) and one unmeasured process per library
warms it and nbtrack's package-list cache first, as after ``pip install``; ``--cold`` skips
that warm-up and writes no bytecode. This machine is noisy: compare the ratio in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_CPU = 0.4  # seconds of CPU for the nbtrack job

JOBS = {
    "nbtrack": (
        "import nbtrack\n"
        "with nbtrack.start_run():\n"
        "    nbtrack.log_metric('m', 1.0)\n"
    ),
    "mlflow": (
        "import logging\n"
        "logging.getLogger('mlflow').setLevel(logging.ERROR)\n"
        "import mlflow\n"
        "mlflow.set_tracking_uri('sqlite:///' + __import__('os').path.abspath('mlflow.db'))\n"
        "with mlflow.start_run():\n"
        "    mlflow.log_metric('m', 1.0)\n"
    ),
}


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)


def _folder(root: Path, library: str, i: int, git: bool) -> Path:
    """A new folder holding the job script (a one-commit git repository with ``git``)."""
    folder = root / f"{library}-{i}"
    folder.mkdir()
    (folder / "job.py").write_text(JOBS[library])
    if git:
        _git(folder, "init", "-q")
        _git(folder, "add", "job.py")
        _git(folder, "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qm", "j")
    return folder


def run_once(folder: Path, env: dict) -> tuple[float, float]:
    """Run ``job.py`` in ``folder`` in a new interpreter: ``(cpu seconds, wall seconds)``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "job.py"], cwd=folder, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"the job failed in {folder}:\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(library: str, n: int, root: Path, git: bool, cold: bool) -> dict:
    """Median CPU and wall time of ``n`` fresh processes running ``library``'s job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBTRACK_", "MLFLOW_"))}
    env["XDG_CACHE_HOME"] = str(root / "cache")
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        run_once(_folder(root, library, -1, git), env)  # warm-up, not measured
    times = [run_once(_folder(root, library, i, git), env) for i in range(n)]
    cpu = [c for c, _ in times]
    wall = [w for _, w in times]
    return {"cpu": statistics.median(cpu), "wall": statistics.median(wall),
            "cpu_all": cpu, "wall_all": wall}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    """Measure both libraries, print a table; return 1 if nbtrack misses its CPU target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=7, help="processes per library (default 7)")
    parser.add_argument("--git", action="store_true", help="run each job in a git repository")
    parser.add_argument("--cold", action="store_true",
                        help="no warm-up and no bytecode cache (a first run after install)")
    parser.add_argument("--no-mlflow", action="store_true", help="measure nbtrack only")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    libraries = ["nbtrack"] if args.no_mlflow else ["nbtrack", "mlflow"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="nbtrack-fresh-") as scratch:
        for library in libraries:
            root = Path(scratch) / library
            root.mkdir()
            results[library] = measure(library, args.n, root, args.git, args.cold)
    ours, theirs = results["nbtrack"], results.get("mlflow", {})
    print(f"fresh process: new store, one run, one metric (median of {args.n}"
          f"{', in a git repository' if args.git else ''}{', cold' if args.cold else ''})")
    print(f"{'':<12} {'nbtrack':>10} {'MLflow':>10} {'MLflow/nbtrack':>15} {'target':>10}  met")
    met = ours["cpu"] <= TARGET_CPU
    for key, label, target in (("cpu", "CPU", TARGET_CPU), ("wall", "wall", None)):
        mine, other = ours[key], theirs.get(key)
        ratio = f"{other / mine:.1f}x" if other else "-"
        ok = ("yes" if met else "NO") if target else ""
        print(f"{label:<12} {_ms(mine):>10} {_ms(other):>10} {ratio:>15} {_ms(target):>10}  {ok}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
