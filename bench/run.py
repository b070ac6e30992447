"""Measure nbtrack and MLflow (SQLite backend) on the same work in one run; print ratios.

    pip install -e ".[bench]"
    python bench/run.py                 # everything (several minutes: seeds 100k runs)
    python bench/run.py --quick         # small sizes, a smoke run
    python bench/run.py --only search   # one scenario
    python bench/run.py --no-mlflow     # nbtrack alone, targets only

Each measurement runs in a fresh child process with its own scratch folder. This machine is
noisy, so the ratio in one run says more than any absolute time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (label, nbtrack workload and kwargs, MLflow workload and kwargs, metric, target)
SCENARIOS = {
    "log_metric": ("log_metric in a loop, per call",
                   ("nbtrack_log_metric", {"n": 1_000_000}),
                   ("mlflow_log_metric", {"n": 300, "n_async": 3000}),
                   "per", 2e-6),
    "log_metric_live": ("log_metric in a loop with a live chart on, per call",
                        ("nbtrack_log_metric_live", {"n": 1_000_000}),
                        ("mlflow_log_metric", {"n": 300, "n_async": 3000}), "per", 2e-6),
    "run": ("a run: 10 params, 5 metrics, 3 tags, one call each",
            ("nbtrack_run", {"n": 1000}), ("mlflow_run", {"n": 30}), "per", 2.5e-3),
    "search": ("filtered, ordered search_runs at 10k runs",
               ("nbtrack_search", {"n_runs": 10_000}), ("mlflow_search", {"n_runs": 10_000}),
               "seconds", 10e-3),
    "search_100k": ("filtered, ordered search_runs at 100k runs",
                    ("nbtrack_search", {"n_runs": 100_000, "repeats": 10}),
                    ("mlflow_search", {"n_runs": 100_000, "repeats": 1}),
                    "seconds", 100e-3),
    "frame": ("search_runs to a DataFrame at 10k runs",
              ("nbtrack_frame", {"n_runs": 10_000}), ("mlflow_frame", {"n_runs": 10_000}),
              "seconds", 150e-3),
    "history": ("metric history of 100k points",
                ("nbtrack_history", {"points": 100_000}), ("mlflow_history", {"points": 100_000}),
                "seconds", 50e-3),
    "magic": ("a tracked cell: %%track overhead, median",
              ("nbtrack_magic", {"n": 100}), ("mlflow_magic", {"n": 30}), "per", 20e-3),
    "magic_kernel": ("a tracked cell in a kernel, live chart on, median",
                     ("nbtrack_magic_kernel", {"n": 60}), ("mlflow_magic_kernel", {"n": 30}),
                     "per", 20e-3),
    "import": ("import (heavy imports lazy)", ("nbtrack_import", {}), ("mlflow_import", {}),
               "seconds", 0.3),
    "create_store": ("4 processes creating one new store (x5): failures",
                     ("create_store", {"library": "nbtrack"}),
                     ("create_store", {"library": "mlflow"}), "failures", 0),
}
QUICK = {
    "log_metric": ({"n": 100_000}, {"n": 50, "n_async": 500}),
    "log_metric_live": ({"n": 100_000}, {"n": 50, "n_async": 500}),
    "run": ({"n": 100}, {"n": 5}),
    "search": ({"n_runs": 1000}, {"n_runs": 1000}),
    "search_100k": ({"n_runs": 2000, "repeats": 3}, {"n_runs": 2000, "repeats": 1}),
    "frame": ({"n_runs": 1000}, {"n_runs": 1000}),
    "history": ({"points": 10_000}, {"points": 10_000}),
    "create_store": ({"library": "nbtrack", "rounds": 1}, {"library": "mlflow", "rounds": 1}),
    "magic": ({"n": 10}, {"n": 5}),
    "magic_kernel": ({"n": 5}, {"n": 3}),
}


def run_child(workload: str, kwargs: dict) -> dict:
    """Run one workload in a fresh interpreter and return what it measured."""
    with tempfile.TemporaryDirectory(prefix="nbtrack-bench-") as scratch:
        done = subprocess.run(
            [sys.executable, str(HERE / "run.py"), "--child", workload, json.dumps(kwargs),
             scratch],
            capture_output=True, text=True, cwd=scratch,
        )
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child(workload: str, kwargs: str, scratch: str) -> None:
    sys.path.insert(0, str(HERE))
    import workloads

    result = getattr(workloads, workload)(Path(scratch), **json.loads(kwargs))
    print(json.dumps(result))


def _fmt(value, metric: str) -> str:
    if value is None:
        return "-"
    if metric == "failures":
        return str(value)
    if value < 1e-3:
        return f"{value * 1e6:.2f} µs"
    if value < 1:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios and print a table; return 1 if a target was missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--no-mlflow", action="store_true", help="measure nbtrack only")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    with_mlflow = not args.no_mlflow and importlib.util.find_spec("mlflow") is not None
    if not args.no_mlflow and not with_mlflow:
        print("MLflow is not installed (pip install -e '.[bench]'): measuring nbtrack alone.\n")
    results, missed = {}, []
    print(f"{'scenario':<52} {'nbtrack':>12} {'MLflow':>12} {'MLflow/nbtrack':>15} "
          f"{'target':>10}  met")
    for name in args.only or SCENARIOS:
        label, (nb_workload, nb_kwargs), (ml_workload, ml_kwargs), metric, target = (
            SCENARIOS[name])
        if args.quick and name in QUICK:
            nb_kwargs, ml_kwargs = QUICK[name]
        ours = run_child(nb_workload, nb_kwargs)
        theirs = run_child(ml_workload, ml_kwargs) if with_mlflow else {}
        results[name] = {"nbtrack": ours, "mlflow": theirs}
        mine, other = ours.get(metric), theirs.get(metric)
        ratio = "-"
        if metric == "failures":
            ratio = f"{other}/{theirs.get('attempts')} vs {mine}" if other is not None else "-"
        elif mine and other:
            ratio = f"{other / mine:,.1f}x"
        met = mine is not None and mine <= target
        if not met:
            missed.append(name)
        if "error" in ours:
            print(f"  nbtrack {name} failed: {ours['error']}")
        print(f"{label:<52} {_fmt(mine, metric):>12} {_fmt(other, metric):>12} {ratio:>15} "
              f"{_fmt(target, metric):>10}  {'yes' if met else 'NO'}")
        extras = {k: v for side in (ours, theirs) for k, v in side.items()
                  if k.startswith("per_")}
        if extras:
            notes = ", ".join(f"{k}={_fmt(v, 'per')}" for k, v in sorted(extras.items()))
            print(f"{'':<52}   ({notes})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.quick:
        print("\n(--quick: small sizes; targets are for the full sizes)")
        return 0
    return 1 if missed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:5])
    else:
        sys.exit(main())
