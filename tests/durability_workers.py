"""Programs the durability tests run in child processes, each importing nbtrack afresh.

Run as ``python durability_workers.py <function> '<json of keyword arguments>'``. A child tells
its parent what it did through stdout lines (flushed at once) or a side file written with
``os.write``, so that whatever reached the file before a SIGKILL can be read afterwards.
"""

from __future__ import annotations

import json
import os
import sys
import time


def metric_value(step: int) -> float:
    """The value logged at ``step``, so a reader can tell a right value from a wrong one."""
    return step * 0.5 + 0.25


def _say(*parts) -> None:
    print(*parts, flush=True)


def _nbtrack(store: str):
    import nbtrack

    nbtrack.set_tracking_uri(store)
    return nbtrack


def log_until_killed(store: str, steps_file: str, synchronous: bool, pace: float) -> None:
    """Start a run, then log one value per step forever, noting each step once its call returns.

    Prints ``run <run_id>`` once ``start_run`` has returned; each line of ``steps_file`` is
    ``<step> <monotonic time after the call returned>``.
    """
    nbtrack = _nbtrack(store)
    run = nbtrack.start_run(run_name="to-be-killed")
    _say("run", run.info.run_id)
    fd = os.open(steps_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    step = 0
    while True:
        nbtrack.log_metric("m", metric_value(step), step=step, synchronous=synchronous)
        os.write(fd, f"{step} {time.monotonic():.6f}\n".encode())
        step += 1
        time.sleep(pace)


def start_and_wait(store: str, how: str) -> None:
    """Create a run (fluent ``start_run`` or ``Client.create_run``), say so, then sleep."""
    nbtrack = _nbtrack(store)
    if how == "start_run":
        run_id = nbtrack.start_run(run_name="killed-at-once").info.run_id
    else:
        run_id = nbtrack.Client().create_run("0", run_name="killed-at-once").info.run_id
    _say("run", run_id)
    time.sleep(600)


def log_after_go(store: str, n_metrics: int, n_params: int) -> None:
    """Start a run; after a ``go`` line on stdin, log values timing each call, end and exit.

    Prints ``ready <run_id>`` once the run is started, and at the end one JSON line with the
    longest call, the whole logging loop and ``end_run``, in seconds.
    """
    nbtrack = _nbtrack(store)
    run_id = nbtrack.start_run(run_name="after-go").info.run_id
    _say("ready", run_id)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected 'go'")
    slowest = 0.0
    loop_start = time.monotonic()
    for k in range(n_params):
        start = time.monotonic()
        nbtrack.log_param(f"p{k}", f"v{k}")
        slowest = max(slowest, time.monotonic() - start)
    for step in range(n_metrics):
        start = time.monotonic()
        nbtrack.log_metric("m", metric_value(step), step=step)
        slowest = max(slowest, time.monotonic() - start)
    loop = time.monotonic() - loop_start
    start = time.monotonic()
    nbtrack.end_run()
    end = time.monotonic() - start
    _say(json.dumps({"run_id": run_id, "max_call": slowest, "loop": loop, "end_run": end}))


def log_flush_and_wait(store: str, n_metrics: int) -> None:
    """Log, call ``nbtrack.flush()``, print ``flushed <run_id>``, then sleep with the run open."""
    nbtrack = _nbtrack(store)
    run_id = nbtrack.start_run(run_name="flushed").info.run_id
    nbtrack.log_params({f"p{k}": f"v{k}" for k in range(10)})
    for step in range(n_metrics):
        nbtrack.log_metric("m", metric_value(step), step=step)
    nbtrack.flush()
    _say("flushed", run_id)
    time.sleep(600)


def hold_by_searching(store: str, stop_file: str) -> None:
    """Log a little, then search in a loop (keeping the store open) until ``stop_file`` exists."""
    nbtrack = _nbtrack(store)
    with nbtrack.start_run(run_name="holder"):
        for step in range(50):
            nbtrack.log_metric("m", metric_value(step), step=step)
        nbtrack.flush()
        _say("holding")
        while not os.path.exists(stop_file):
            nbtrack.search_runs(search_all_experiments=True)


def read_once(store: str) -> None:
    """Search every run once; print a JSON line: the outcome, the error and the time taken."""
    import nbtrack
    from nbtrack.exceptions import StoreBusyError

    start = time.monotonic()
    try:
        nbtrack.set_tracking_uri(store)
        frame = nbtrack.search_runs(search_all_experiments=True)
    except StoreBusyError as exc:
        outcome = {"outcome": "busy", "message": str(exc)}
    else:
        outcome = {"outcome": "data", "runs": len(frame)}
    outcome["seconds"] = time.monotonic() - start
    _say(json.dumps(outcome))


def log_continuously(store: str, worker: int, seconds: float, pace: float,
                     samples_file: str, every: int) -> None:
    """Log one value per step for ``seconds``; note every ``every``-th step and when it returned.

    ``samples_file`` starts with ``run <run_id>``; then ``<step> <monotonic time>`` lines.
    Prints ``<run_id> <steps logged>`` at the end.
    """
    nbtrack = _nbtrack(store)
    nbtrack.set_experiment("many")
    fd = os.open(samples_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    with nbtrack.start_run(run_name=f"writer-{worker}") as run:
        os.write(fd, f"run {run.info.run_id}\n".encode())
        nbtrack.log_param("worker", worker)
        deadline = time.monotonic() + seconds
        step = 0
        while time.monotonic() < deadline:
            nbtrack.log_metric("m", metric_value(step), step=step)
            if step % every == 0:
                os.write(fd, f"{step} {time.monotonic():.6f}\n".encode())
            step += 1
            time.sleep(pace)
        os.write(fd, f"{step - 1} {time.monotonic():.6f}\n".encode())
    _say(run.info.run_id, step)


def poll_latest(store: str, stop_file: str, out_file: str) -> None:
    """Search the runs of experiment ``many`` over and over, noting when each latest step shows.

    Stops after one more search once ``stop_file`` exists. Writes a JSON file: ``seen`` is a
    list of ``[run_id, latest step, monotonic time]`` (a row whenever a run's latest step grew),
    ``errors`` the text of every exception, and ``final`` the latest steps of the last search.
    """
    nbtrack = _nbtrack(store)
    latest: dict[str, int] = {}
    seen, errors, polls = [], [], 0
    last = False
    while True:
        last = os.path.exists(stop_file)
        try:
            runs = nbtrack.search_runs(search_all_experiments=True, output_format="list")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            runs = None
        now = time.monotonic()
        polls += 1
        for run in runs or []:
            value = run.data.metrics.get("m")
            if value is None:
                continue
            step = round((value - 0.25) / 0.5)
            if step > latest.get(run.info.run_id, -1):
                latest[run.info.run_id] = step
                seen.append([run.info.run_id, step, now])
        if last:
            break
        time.sleep(0.02)
    with open(out_file, "w") as out:
        json.dump({"seen": seen, "errors": errors, "final": latest, "polls": polls}, out)


def run_notebook(path: str, kernel_name: str, timeout: float) -> None:
    """Execute a notebook with nbclient, which shuts its kernel down normally at the end.

    The executed notebook (with its outputs) is written back to ``path``.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, allow_errors=True,
                   resources={"metadata": {"path": os.path.dirname(path)}}).execute()
    nbformat.write(nb, path)


if __name__ == "__main__":
    name, arguments = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    globals()[name](**arguments)
