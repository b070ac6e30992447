"""Time reads and writes in stores with very many distinct keys (nbtrack alone).

    python bench/wide_store.py                  # 1,900 and 10,000 keys
    python bench/wide_store.py --keys 50 --keys 30000 --repeats 15

A store of N distinct keys is N / 100 runs of 100 keys each (a third metrics, a third params,
a third tags), logged through the public API. Each size runs in a fresh process with its own
scratch folder. Timed, as medians:

- ``get_run`` of a run with one param, and of a run with 100 keys;
- a 2,000-value write: ``log_batch`` of 20 metrics x 100 steps into a run the store has, then
  ``flush`` (the issue's case); the same into a new run (created in the same flush); and 2,000
  values of 2,000 keys the store has never seen, in a new run;
- a filtered, ordered ``search_runs`` on one of the keys.

Targets (at any size): get_run under 20 ms and a 2,000-value flush under 100 ms, as medians
(each cell shows the median, then the best time). The script exits 1 when one is missed. This
machine is noisy: rerun before believing a miss.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"get_run": 20e-3, "flush": 100e-3}


def _median(fn, repeats: int) -> list[float]:
    """``[median, best]`` of ``repeats`` timed calls of ``fn(i)``."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return [statistics.median(times), min(times)]


def measure(folder: Path, n_keys: int, repeats: int) -> dict:
    """Seed a store of ``n_keys`` distinct keys in ``folder`` and time the operations."""
    import nbtrack
    from nbtrack.entities import Metric, Param, RunTag

    nbtrack.set_tracking_uri(folder / "store")
    client = nbtrack.Client()
    experiment_id = client.create_experiment("wide")
    per_run, third = 100, 33
    first = None
    for start in range(0, n_keys, per_run):
        run_id = client.create_run(experiment_id).info.run_id
        first = first or run_id
        keys = range(start, min(start + per_run, n_keys))
        client.log_batch(
            run_id,
            [Metric(f"m{k}", 1.0, 0, 0) for k in keys if k - start < third],
            [Param(f"p{k}", "v") for k in keys if third <= k - start < 2 * third],
            [RunTag(f"t{k}", "v") for k in keys if k - start >= 2 * third],
        )
        client.store.flush()
    lone = client.create_run(experiment_id).info.run_id
    client.log_param(lone, "alpha", "1")
    client.store.flush()
    client.get_run(lone)  # opens the file

    def values(run_id: str, i: int, keys=20, steps=100, prefix="w"):
        return [Metric(f"{prefix}{k}", 0.5, 0, (i + 1) * steps + s)
                for k in range(keys) for s in range(steps)]

    def write_existing(i):
        client.log_batch(first, values(first, i))
        client.store.flush()

    def write_new_run(i):
        run_id = client.create_run(experiment_id).info.run_id
        client.log_batch(run_id, values(run_id, i))
        client.store.flush()

    def write_new_keys(i):
        run_id = client.create_run(experiment_id).info.run_id
        client.log_batch(run_id, values(run_id, i, keys=2000, steps=1, prefix=f"n{i}_"))
        client.store.flush()

    def search(_):
        client.search_runs([experiment_id], "metrics.m5 < 2 OR params.p40 = 'v'",
                           order_by=["metrics.m5 DESC"])

    result = {
        "keys": n_keys,
        "get_run": _median(lambda _: client.get_run(lone), repeats * 3),
        "get_run_100_keys": _median(lambda _: client.get_run(first), repeats * 3),
        "flush": _median(write_existing, repeats),
        "flush_new_run": _median(write_new_run, repeats),
        "flush_new_keys": _median(write_new_keys, repeats),
        "search": _median(search, repeats * 3),
    }
    assert client.get_run(lone).data.params == {"alpha": "1"}
    return result


def run_child(n_keys: int, repeats: int) -> dict:
    """Measure one size in a fresh interpreter."""
    with tempfile.TemporaryDirectory(prefix="nbtrack-wide-") as scratch:
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(n_keys), str(repeats), scratch],
            capture_output=True, text=True, cwd=scratch,
        )
    if done.returncode != 0:
        return {"keys": n_keys, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Measure each size; print a table; return 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, action="append",
                        help="distinct keys in the store (repeatable; default 1,900 and 10,000)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        n_keys, repeats, scratch = args.child
        print(json.dumps(measure(Path(scratch), int(n_keys), int(repeats))))
        return 0
    columns = ("get_run", "get_run_100_keys", "flush", "flush_new_run", "flush_new_keys",
               "search")
    print(f"{'keys':>8} " + " ".join(f"{c:>18}" for c in columns))
    results, missed = [], []
    for n_keys in args.keys or [1900, 10_000]:
        result = run_child(n_keys, args.repeats)
        results.append(result)
        if "error" in result:
            print(f"{n_keys:>8} failed: {result['error']}")
            missed.append(n_keys)
            continue
        cells = []
        for c in columns:
            target = TARGETS.get(c.split("_")[0] if c.startswith("flush") else c)
            median, best = result[c]
            met = target is None or median <= target
            if not met:
                missed.append(n_keys)
            cells.append(f"{median * 1e3:>7.1f} ({best * 1e3:5.1f}) ms" + (" " if met else "!"))
        print(f"{n_keys:>8,} " + " ".join(cells))
    print(f"\ntargets: get_run < {TARGETS['get_run'] * 1e3:.0f} ms, every flush < "
          f"{TARGETS['flush'] * 1e3:.0f} ms ('!' marks a miss)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
