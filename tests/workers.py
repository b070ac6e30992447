"""Programs the multi-process tests run in child processes (each imports nbtrack afresh)."""

from __future__ import annotations

import sys
import time


def log_runs(store: str, worker: int, n_runs: int, n_params: int, n_steps: int) -> None:
    """Log ``n_runs`` runs, each with params and a stepped metric, into ``store``."""
    import nbtrack

    nbtrack.set_tracking_uri(store)
    nbtrack.set_experiment("concurrent")
    for i in range(n_runs):
        with nbtrack.start_run(run_name=f"w{worker}-r{i}"):
            nbtrack.log_params({f"p{k}": f"{worker}-{i}-{k}" for k in range(n_params)})
            for step in range(n_steps):
                nbtrack.log_metric("loss", worker + i / 1000 + step, step=step)


def read_while_others_write(store: str, seconds: float) -> None:
    """Search over and over for ``seconds``; print how many searches ran and the slowest."""
    import nbtrack

    nbtrack.set_tracking_uri(store)
    deadline = time.monotonic() + seconds
    count, slowest = 0, 0.0
    while time.monotonic() < deadline:
        start = time.monotonic()
        nbtrack.search_runs(search_all_experiments=True, filter_string="metrics.loss > 1",
                            max_results=50)
        slowest = max(slowest, time.monotonic() - start)
        count += 1
    print(f"{count} {slowest:.3f}")


def create_store(store: str) -> None:
    """Open a brand-new store and log one run: many of these start at once."""
    import nbtrack

    nbtrack.set_tracking_uri(store)
    nbtrack.set_experiment("shared")  # every process races to create it
    with nbtrack.start_run():
        nbtrack.log_param("pid", str(__import__("os").getpid()))


def exit_without_ending(store: str) -> None:
    """Log, never end the run, and exit: the values must still be written."""
    import nbtrack

    nbtrack.set_tracking_uri(store)
    nbtrack.set_experiment("exit")
    nbtrack.start_run(run_name="left-open")
    nbtrack.log_param("a", "1")
    for step in range(1000):
        nbtrack.log_metric("m", step, step=step)


def raise_inside_run(store: str) -> None:
    """Log, then raise out of the run's block, uncaught."""
    import nbtrack

    nbtrack.set_tracking_uri(store)
    nbtrack.set_experiment("raise")
    with nbtrack.start_run(run_name="boom"):
        nbtrack.log_metric("m", 1.0)
        raise RuntimeError("boom")



def die_while_running(store: str) -> None:
    """Start a run, make sure it is written, then die without any cleanup."""
    import os

    import nbtrack

    nbtrack.set_tracking_uri(store)
    run = nbtrack.start_run(run_name="doomed")
    nbtrack.log_metric("m", 1.0)
    nbtrack.flush()
    print(run.info.run_id, flush=True)
    os._exit(0)


def register_versions(store: str, name: str, count: int, source: str) -> None:
    """Register ``count`` versions of ``name``; print the numbers received, one per line."""
    import nbtrack

    nbtrack.set_tracking_uri(store)
    client = nbtrack.Client()
    for _ in range(count):
        print(client.create_model_version(name, source).version, flush=True)


if __name__ == "__main__":
    name, *args = sys.argv[1:]
    parsed = [float(a) if "." in a and a.replace(".", "").isdigit() else
              int(a) if a.isdigit() else a for a in args]
    globals()[name](*parsed)

