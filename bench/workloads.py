"""The measured workloads, one function per (scenario, library). Each runs in a fresh process.

Every function gets a scratch folder and returns a dict of measurements in seconds (``per``
fields are per call or per run). Seeding large stores is not measured: MLflow's SQLite store is
filled with bulk SQL in its own schema, nbtrack's through its public API.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

FILTER = "metrics.rmse < 0.5 AND params.model = 'lasso'"
ORDER = ["metrics.rmse ASC"]
MODELS = ("lasso", "ridge", "linear", "tree")


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _rows(n_runs: int, seed: int = 0):
    """Deterministic run values shared by both libraries: 10 params, 5 metrics, 3 tags."""
    rng = random.Random(seed)
    for i in range(n_runs):
        params = {f"p{k}": str(rng.randint(0, 9)) for k in range(9)}
        params["model"] = MODELS[i % 4]
        metrics = {"rmse": rng.random(), "mae": rng.random(), "r2": rng.random(),
                   "m3": rng.random(), "m4": rng.random()}
        tags = {"team": f"t{i % 3}", "stage": "dev", "batch": str(i // 1000)}
        yield uuid.uuid4().hex, params, metrics, tags


# ---- MLflow ---------------------------------------------------------------------------------
def _mlflow(folder: Path):
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    return mlflow


def _mlflow_seed(folder: Path, n_runs: int, history_points: int = 0) -> str:
    import sqlite3

    mlflow = _mlflow(folder)
    experiment_id = mlflow.create_experiment("bench")
    db = sqlite3.connect(folder / "mlflow.db")
    now = int(time.time() * 1000)
    runs, params, metrics, tags = [], [], [], []
    for i, (run_id, p, m, t) in enumerate(_rows(n_runs)):
        runs.append((run_id, f"r{i}", "LOCAL", "", "", "bench", "FINISHED", now + i, now + i + 5,
                     "", "active", f"{folder}/mlruns/{run_id}", int(experiment_id), None))
        params += [(k, v, run_id) for k, v in p.items()]
        metrics += [(k, v, now, run_id, 0, False) for k, v in m.items()]
        tags += [(k, v, run_id) for k, v in t.items()]
    if history_points:
        run_id = runs[0][0]
        metrics += [("loss", 1.0 / (s + 1), now + s, run_id, s, False)
                    for s in range(history_points)]
    db.executemany("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", runs)
    db.executemany("INSERT INTO params VALUES (?,?,?)", params)
    db.executemany("INSERT INTO tags VALUES (?,?,?)", tags)
    db.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?)", metrics)
    db.execute("INSERT INTO latest_metrics SELECT key, value, timestamp, step, is_nan, run_uuid "
               "FROM metrics WHERE key <> 'loss'")
    db.commit()
    db.close()
    return experiment_id


def mlflow_import(folder: Path) -> dict:
    return {"seconds": _import_time("mlflow")}


def mlflow_log_metric(folder: Path, n: int = 300, n_async: int = 3000) -> dict:
    mlflow = _mlflow(folder)
    with mlflow.start_run():
        start = time.perf_counter()
        for i in range(n):
            mlflow.log_metric("loss", 0.5, step=i)
        sync = (time.perf_counter() - start) / n
    with mlflow.start_run():
        start = time.perf_counter()
        for i in range(n_async):
            mlflow.log_metric("loss", 0.5, step=i, synchronous=False)
        mlflow.flush_async_logging()
        asynchronous = (time.perf_counter() - start) / n_async
    return {"per": sync, "per_async": asynchronous}


def _one_call_each(tracker, n: int) -> float:
    """Log ``n`` runs of 10 params, 5 metrics and 3 tags, one call each: the same code drives
    both libraries, since nbtrack keeps MLflow's fluent API."""
    tracker.set_experiment("bench")
    start = time.perf_counter()
    for _ in range(n):
        with tracker.start_run():
            for k in range(10):
                tracker.log_param(f"p{k}", k)
            for k in range(5):
                tracker.log_metric(f"m{k}", k * 0.1)
            for k in range(3):
                tracker.set_tag(f"t{k}", "v")
    return time.perf_counter() - start


def mlflow_run(folder: Path, n: int = 30) -> dict:
    return {"per": _one_call_each(_mlflow(folder), n) / n}


def mlflow_search(folder: Path, n_runs: int = 10_000, repeats: int = 5) -> dict:
    experiment_id = _mlflow_seed(folder, n_runs)
    from mlflow import MlflowClient

    client = MlflowClient()
    found = []

    def search():
        found[:] = client.search_runs([experiment_id], FILTER, order_by=ORDER, max_results=100)

    return {"seconds": _median_time(search, repeats), "rows": len(found)}


def mlflow_frame(folder: Path, n_runs: int = 10_000, repeats: int = 2) -> dict:
    experiment_id = _mlflow_seed(folder, n_runs)
    import mlflow

    shape = []

    def frame():
        df = mlflow.search_runs([experiment_id], max_results=n_runs)
        shape[:] = df.shape

    return {"seconds": _median_time(frame, repeats), "shape": list(shape)}


def mlflow_history(folder: Path, points: int = 100_000, repeats: int = 3) -> dict:
    _mlflow_seed(folder, 1, history_points=points)
    from mlflow import MlflowClient

    client = MlflowClient()
    run_id = client.search_runs(["1"])[0].info.run_id
    got = []
    seconds = _median_time(lambda: got.append(len(client.get_metric_history(run_id, "loss"))),
                           repeats)
    return {"seconds": seconds, "points": got[-1]}


# ---- nbtrack --------------------------------------------------------------------------------
def _nbtrack(folder: Path):
    import nbtrack

    nbtrack.set_tracking_uri(folder / "nbtrack")
    return nbtrack


def _nbtrack_seed(folder: Path, n_runs: int, history_points: int = 0) -> str:
    nbtrack = _nbtrack(folder)
    from nbtrack.entities import Metric, Param, RunTag

    client = nbtrack.Client()
    experiment_id = client.create_experiment("bench")
    first = None
    for i, (_, p, m, t) in enumerate(_rows(n_runs)):
        run_id = client.create_run(experiment_id, run_name=f"r{i}").info.run_id
        first = first or run_id
        client.log_batch(run_id, [Metric(k, v, 0, 0) for k, v in m.items()],
                         [Param(k, v) for k, v in p.items()],
                         [RunTag(k, v) for k, v in t.items()])
        client.set_terminated(run_id)
    if history_points:
        for s in range(history_points):
            client.log_metric(first, "loss", 1.0 / (s + 1), step=s)
    client.store.flush()
    return experiment_id


def nbtrack_import(folder: Path) -> dict:
    return {"seconds": _import_time("nbtrack")}


def nbtrack_log_metric(folder: Path, n: int = 1_000_000) -> dict:
    nbtrack = _nbtrack(folder)
    with nbtrack.start_run():
        start = time.perf_counter()
        for i in range(n):
            nbtrack.log_metric("loss", 0.5, step=i)
        logged = time.perf_counter() - start
        nbtrack.flush()
        written = time.perf_counter() - start
    return {"per": written / n, "per_before_flush": logged / n}


def nbtrack_log_metric_live(folder: Path, n: int = 1_000_000) -> dict:
    """log_metric in a loop while a live chart follows the run (as under a %%track cell)."""
    from nbtrack.widgets.live import LiveChart

    nbtrack = _nbtrack(folder)
    with nbtrack.start_run() as run:
        chart = LiveChart(run.client, run.run_id, run.info.run_name)
        start = time.perf_counter()
        for i in range(n):
            nbtrack.log_metric("loss", 0.5, step=i)
        logged = time.perf_counter() - start
        chart.finish()
        nbtrack.flush()
        written = time.perf_counter() - start
    points = len(chart.series.get("loss", {}).get("step", []))
    return {"per": written / n, "per_before_flush": logged / n, "chart_points": points}


def nbtrack_run(folder: Path, n: int = 1000) -> dict:
    nbtrack = _nbtrack(folder)
    returned = _one_call_each(nbtrack, n)
    start = time.perf_counter()
    nbtrack.flush()
    return {"per": (returned + time.perf_counter() - start) / n, "per_before_flush": returned / n}


def nbtrack_search(folder: Path, n_runs: int = 10_000, repeats: int = 60) -> dict:
    experiment_id = _nbtrack_seed(folder, n_runs)
    nbtrack = _nbtrack(folder)
    client = nbtrack.Client()
    found = []

    def search():
        found[:] = client.search_runs([experiment_id], FILTER, order_by=ORDER, max_results=100)

    search()  # first call opens the file
    return {"seconds": _median_time(search, repeats), "rows": len(found)}


def nbtrack_frame(folder: Path, n_runs: int = 10_000, repeats: int = 5) -> dict:
    experiment_id = _nbtrack_seed(folder, n_runs)
    nbtrack = _nbtrack(folder)
    shape = []

    def frame():
        df = nbtrack.search_runs([experiment_id], max_results=n_runs)
        shape[:] = df.shape

    frame()
    return {"seconds": _median_time(frame, repeats), "shape": list(shape)}


def nbtrack_history(folder: Path, points: int = 100_000, repeats: int = 5) -> dict:
    _nbtrack_seed(folder, 1, history_points=points)
    nbtrack = _nbtrack(folder)
    client = nbtrack.Client()
    run_id = nbtrack.search_runs(experiment_names=["bench"])["run_id"][0]
    got = []
    client.get_metric_history(run_id, "loss")
    seconds = _median_time(lambda: got.append(len(client.get_metric_history(run_id, "loss"))),
                           repeats)
    return {"seconds": seconds, "points": got[-1]}


# ---- shared ---------------------------------------------------------------------------------
def _import_time(module: str, repeats: int = 5) -> float:
    """Median wall time of ``import module`` in a fresh interpreter, minus bare startup."""
    def run(code):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})
        return time.perf_counter() - start

    base = statistics.median(run("pass") for _ in range(repeats))
    full = statistics.median(run(f"import {module}") for _ in range(repeats))
    return max(full - base, 0.0)


CREATE_STORE = {
    "nbtrack": ("import nbtrack, sys; nbtrack.set_tracking_uri(sys.argv[1]); "
                "nbtrack.start_run(); nbtrack.log_param('a', 1); nbtrack.end_run()"),
    "mlflow": ("import logging, sys; logging.disable(logging.CRITICAL); import mlflow; "
               "mlflow.set_tracking_uri('sqlite:///' + sys.argv[1] + '.db'); "
               "mlflow.start_run(); mlflow.log_param('a', 1); mlflow.end_run()"),
}


def create_store(folder: Path, library: str, rounds: int = 5, processes: int = 4) -> dict:
    """Start ``processes`` processes on one brand-new store at once, ``rounds`` times."""
    failures = 0
    for r in range(rounds):
        target = str(folder / f"{library}-{r}")
        procs = [subprocess.Popen([sys.executable, "-c", CREATE_STORE[library], target],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _ in range(processes)]
        for proc in procs:
            proc.communicate(timeout=300)
            failures += proc.returncode != 0
    return {"failures": failures, "attempts": rounds * processes}


# ---- a tracked notebook cell ------------------------------------------------------------------
def _cell_overhead(setup: list[str], tracked: str, plain: str, n: int,
                   flush: str = "pass") -> dict:
    """Median time of a tracked cell minus the same cell untracked, in an IPython shell.

    ``per_including_writes`` also charges the background writes: the wall time of all the
    tracked cells plus ``flush`` (which waits for the last write), per cell, minus a plain cell.
    """
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    for line in setup:
        shell.run_cell(line)

    def median(code: str) -> float:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            result = shell.run_cell(code, store_history=True)
            times.append(time.perf_counter() - start)
            result.raise_error()
        return statistics.median(times)

    median(tracked)  # warm up: first-run capture (environment, git) is a one-off
    base = median(plain)
    shell.run_cell(flush).raise_error()
    start = time.perf_counter()
    per = median(tracked)
    shell.run_cell(flush).raise_error()
    total = (time.perf_counter() - start) / n
    return {"per": max(per - base, 0.0), "plain": base,
            "per_including_writes": max(total - base, 0.0)}


CELL = "x = 1\nalpha = 0.1\nrmse = alpha * 2"


def nbtrack_magic(folder: Path, n: int = 100) -> dict:
    setup = [f"import nbtrack; nbtrack.set_tracking_uri({str(folder / 'nbtrack')!r})",
             "%load_ext nbtrack", "%track_config --experiment bench"]
    return _cell_overhead(setup, "%%track --metrics rmse\n" + CELL, CELL, n, "nbtrack.flush()")


def mlflow_magic(folder: Path, n: int = 30) -> dict:
    setup = ["import logging; logging.getLogger('mlflow').setLevel(logging.ERROR)",
             f"import mlflow; mlflow.set_tracking_uri('sqlite:///{folder}/mlflow.db')",
             "mlflow.set_experiment('bench')"]
    tracked = ("with mlflow.start_run():\n" + "".join(f"    {ln}\n" for ln in CELL.splitlines())
               + "    mlflow.log_param('alpha', alpha)\n    mlflow.log_metric('rmse', rmse)")
    return _cell_overhead(setup, tracked, CELL, n)


# ---- a tracked cell in a real kernel (what a notebook user waits for) ------------------------
def _kernel_cell_overhead(setup: str, tracked: str, plain: str, n: int) -> dict:
    """Median wall time of a tracked cell minus the same cell untracked, in a real kernel.

    Timed from the execute request to the kernel's reply, outputs and widget messages included.
    """
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")
    try:
        def run(code: str) -> float:
            start = time.perf_counter()
            reply = client.execute_interactive(code, timeout=120, output_hook=lambda _: None)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(reply["content"].get("evalue"))
            return time.perf_counter() - start

        run(setup)
        run(tracked)  # warm up: first-run capture is a one-off
        base = statistics.median(run(plain) for _ in range(n))
        per = statistics.median(run(tracked) for _ in range(n))
        return {"per": max(per - base, 0.0), "plain": base}
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def nbtrack_magic_kernel(folder: Path, n: int = 60) -> dict:
    setup = (f"import nbtrack; nbtrack.set_tracking_uri({str(folder / 'nbtrack')!r})\n"
             "%load_ext nbtrack\n%track_config --experiment bench")
    return _kernel_cell_overhead(setup, "%%track --metrics rmse\n" + CELL, CELL, n)


def mlflow_magic_kernel(folder: Path, n: int = 30) -> dict:
    setup = ("import logging; logging.getLogger('mlflow').setLevel(logging.ERROR)\n"
             f"import mlflow; mlflow.set_tracking_uri('sqlite:///{folder}/mlflow.db')\n"
             "mlflow.set_experiment('bench')")
    tracked = ("with mlflow.start_run():\n" + "".join(f"    {ln}\n" for ln in CELL.splitlines())
               + "    mlflow.log_param('alpha', alpha)\n    mlflow.log_metric('rmse', rmse)")
    return _kernel_cell_overhead(setup, tracked, CELL, n)
