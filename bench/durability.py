"""Logging from many processes, and what survives a SIGKILL: nbtrack against MLflow, one run.

    python bench/durability.py              # full sizes (about 4 minutes on 2 cores)
    python bench/durability.py --quick      # small sizes: a smoke run
    python bench/durability.py --no-mlflow  # nbtrack alone, against the targets
    python bench/durability.py --json out.json

MLflow runs on SQLite in WAL mode (``sqlite:///.../mlflow.db``, ``PRAGMA journal_mode=WAL`` set
on the file before any logging process starts). Both libraries run the same code through their
shared fluent API (``start_run``, ``log_metric``, ``end_run``), each in its default mode, in
fresh processes with their own scratch folder:

- throughput: 1, 2, 4 and 8 processes log one metric into one store at once, each for a few
  seconds (or up to a cap of values), then end the run and (nbtrack) ``flush``; values per
  second from the common start until the last process has made its values durable and visible;
- lag: 8 processes log at a steady pace while another process searches the runs in a loop; for
  every value, the time from its ``log_metric`` returning to the reader seeing it (median, p99);
- SIGKILL: a process logs step by step and is killed at a random moment; the values whose call
  returned at least 100 ms before the kill and that a fresh process cannot read are lost. Runs
  left RUNNING (never marked KILLED) are counted too.

The machine is noisy: compare the two libraries within one run rather than across runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import selectors
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
DURABLE_WITHIN = 0.100  # nbtrack's promise for a default-mode value; the lost-value threshold

FULL = {"processes": [1, 2, 4, 8], "seconds": 3.0, "cap": 200_000,
        "lag_writers": 8, "lag_seconds": 5.0, "lag_pace": 0.005,
        "kills": 10, "kill_pace": 0.002, "kill_after": (0.3, 1.5)}
QUICK = {"processes": [2], "seconds": 1.0, "cap": 20_000,
         "lag_writers": 2, "lag_seconds": 1.5, "lag_pace": 0.005,
         "kills": 2, "kill_pace": 0.002, "kill_after": (0.3, 0.8)}
TARGETS = {"lag_p99": 1.0, "lost": 0, "left_running": 0}


def _value(step: int) -> float:
    return step * 0.5 + 0.25


# ---- the children: each runs in a fresh interpreter -------------------------------------------
def _tracker(library: str, uri: str):
    if library == "mlflow":
        import logging

        logging.getLogger("mlflow").setLevel(logging.ERROR)
        import mlflow as tracker
    else:
        import nbtrack as tracker
    tracker.set_tracking_uri(uri)
    return tracker


def _client(library: str, uri: str):
    tracker = _tracker(library, uri)
    return tracker.MlflowClient() if library == "mlflow" else tracker.Client()


def child_setup(library: str, uri: str) -> dict:
    """Create the store and its experiment."""
    tracker = _tracker(library, uri)
    return {"experiment_id": tracker.create_experiment("bench")}


def _durable(tracker, library: str) -> None:
    tracker.end_run()
    if library == "nbtrack":
        tracker.flush()  # durable and visible to other processes


def child_writer(library: str, uri: str, experiment_id: str, seconds: float, cap: int,
                 pace: float, samples: str | None) -> dict:
    """Start a run, say ``ready``, wait for ``go <start>``; log until time or cap; end the run.

    With ``samples``, note each step and the moment its call returned in that file.
    """
    tracker = _tracker(library, uri)
    run_id = tracker.start_run(experiment_id=experiment_id).info.run_id
    fd = os.open(samples, os.O_WRONLY | os.O_CREAT | os.O_APPEND) if samples else None
    if fd is not None:
        os.write(fd, f"run {run_id}\n".encode())
    print("ready", flush=True)
    start = float(sys.stdin.readline().split()[1])
    time.sleep(max(start - time.monotonic(), 0.0))
    deadline = start + seconds
    count, errors, first_error = 0, 0, None
    step = 0
    while step < cap and time.monotonic() < deadline:
        try:
            tracker.log_metric("m", _value(step), step=step)
            count += 1
        except Exception as exc:
            errors += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"
        if fd is not None:
            os.write(fd, f"{step} {time.monotonic():.6f}\n".encode())
        step += 1
        if pace:
            time.sleep(pace)
    logged = time.monotonic()
    _durable(tracker, library)
    return {"count": count, "errors": errors, "first_error": first_error,
            "logged": logged, "end": time.monotonic()}


def child_reader(library: str, uri: str, experiment_id: str, stop_file: str,
                 out_file: str) -> dict:
    """Search the experiment's runs in a loop; note when each run's latest step grows."""
    client = _client(library, uri)
    latest: dict[str, int] = {}
    seen, errors, polls = [], [], 0
    while True:
        last = os.path.exists(stop_file)
        try:
            runs = client.search_runs([experiment_id], max_results=1000)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            runs = []
        now = time.monotonic()
        polls += 1
        for run in runs:
            value = run.data.metrics.get("m")
            if value is not None:
                step = round((value - 0.25) / 0.5)
                if step > latest.get(run.info.run_id, -1):
                    latest[run.info.run_id] = step
                    seen.append([run.info.run_id, step, now])
        if last:
            break
        time.sleep(0.01)
    Path(out_file).write_text(json.dumps({"seen": seen, "errors": errors}))
    return {"polls": polls, "errors": len(errors)}


def child_killee(library: str, uri: str, experiment_id: str, steps_file: str,
                 pace: float) -> None:
    """Start a run, say ``run <id>``, then log a step at a time until killed."""
    tracker = _tracker(library, uri)
    run_id = tracker.start_run(experiment_id=experiment_id).info.run_id
    print("run", run_id, flush=True)
    fd = os.open(steps_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    step = 0
    while True:
        tracker.log_metric("m", _value(step), step=step)
        os.write(fd, f"{step} {time.monotonic():.6f}\n".encode())
        step += 1
        time.sleep(pace)


def child_check(library: str, uri: str, run_ids: list[str]) -> dict:
    """Open the store afresh; each run's status and logged steps (or None if it is missing)."""
    client = _client(library, uri)
    out = {}
    for run_id in run_ids:
        try:
            status = client.get_run(run_id).info.status
        except Exception:
            out[run_id] = None
            continue
        steps = [m.step for m in client.get_metric_history(run_id, "m")]
        out[run_id] = {"status": status, "steps": steps}
    return out


# ---- the parent ---------------------------------------------------------------------------------
class Child:
    """A child process of this script, given a role and keyword arguments."""

    def __init__(self, role: str, cwd: Path, **kwargs) -> None:
        self.role = role
        self.err_path = cwd / f"{role}-{time.monotonic_ns()}.stderr"
        with open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE), "--child", role, json.dumps(kwargs)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                cwd=cwd)

    def line(self, timeout: float = 120) -> str:
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout)
        text = self.proc.stdout.readline() if ready else ""
        if not text:
            self.kill()
            raise RuntimeError(f"{self.role}: no answer; {self._error()}")
        return text.strip()

    def send(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 600) -> dict:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"{self.role}: no result within {timeout} s") from None
        if self.proc.returncode != 0:
            raise RuntimeError(f"{self.role} failed: {self._error()}")
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _error(self) -> str:
        lines = self.err_path.read_text().strip().splitlines()
        return lines[-1] if lines else f"exit code {self.proc.poll()}"


_MLFLOW_TEMPLATE: dict[str, object] = {}


def _store(library: str, folder: Path) -> tuple[str, str]:
    """A new store in ``folder``: its URI and the id of its experiment ``bench``.

    MLflow's schema takes seconds to create, so it is created once and its file copied.
    """
    if library == "nbtrack":
        uri = str(folder / "nbtrack")
        return uri, str(Child("setup", folder, library=library, uri=uri).result()[
            "experiment_id"])
    if not _MLFLOW_TEMPLATE:
        scratch = tempfile.TemporaryDirectory(prefix="nbtrack-durability-")
        template = Path(scratch.name) / "mlflow.db"
        experiment_id = Child("setup", template.parent, library=library,
                              uri=f"sqlite:///{template}").result()["experiment_id"]
        _MLFLOW_TEMPLATE.update(scratch=scratch, db=template, experiment_id=str(experiment_id))
    db = folder / "mlflow.db"
    shutil.copyfile(_MLFLOW_TEMPLATE["db"], db)
    with sqlite3.connect(db) as conn:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise RuntimeError(f"SQLite refused WAL mode: {mode}")
    return f"sqlite:///{db}", _MLFLOW_TEMPLATE["experiment_id"]


def _start_together(writers: list[Child]) -> float:
    for writer in writers:
        if writer.line() != "ready":
            raise RuntimeError("a writer did not start")
    start = time.monotonic() + 0.2
    for writer in writers:
        writer.send(f"go {start}")
    return start


def throughput(library: str, processes: int, sizes: dict,
               store: tuple[str, str] | None = None) -> dict:
    """Aggregate log_metric values per second, until durable, with ``processes`` writers.

    ``store`` is a ``(uri, experiment_id)`` to log into; by default a new local store.
    """
    with tempfile.TemporaryDirectory(prefix="nbtrack-durability-") as scratch:
        folder = Path(scratch)
        uri, experiment_id = store or _store(library, folder)
        writers = [Child("writer", folder, library=library, uri=uri,
                         experiment_id=experiment_id, seconds=sizes["seconds"],
                         cap=sizes["cap"], pace=0, samples=None) for _ in range(processes)]
        try:
            start = _start_together(writers)
            results = [w.result() for w in writers]
        finally:
            for writer in writers:
                writer.kill()
    values = sum(r["count"] for r in results)
    wall = max(r["end"] for r in results) - start
    return {"per_second": values / wall, "values": values, "seconds": wall,
            "errors": sum(r["errors"] for r in results),
            "first_error": next((r["first_error"] for r in results if r["first_error"]), None)}


def _read_steps(path: Path) -> tuple[str | None, list[tuple[int, float]]]:
    run_id, steps = None, []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        if parts[0] == "run":
            run_id = parts[1]
            continue
        try:
            steps.append((int(parts[0]), float(parts[1])))
        except ValueError:
            continue  # cut short by a kill
    return run_id, steps


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def lag(library: str, sizes: dict, store: tuple[str, str] | None = None) -> dict:
    """From log_metric returning to visible in a reader process, with several paced writers.

    ``store`` is a ``(uri, experiment_id)`` to log into; by default a new local store.
    """
    with tempfile.TemporaryDirectory(prefix="nbtrack-durability-") as scratch:
        folder = Path(scratch)
        uri, experiment_id = store or _store(library, folder)
        stop_file, seen_file = folder / "stop", folder / "seen.json"
        writers = [Child("writer", folder, library=library, uri=uri,
                         experiment_id=experiment_id, seconds=sizes["lag_seconds"],
                         cap=10**9, pace=sizes["lag_pace"],
                         samples=str(folder / f"samples-{w}.txt"))
                   for w in range(sizes["lag_writers"])]
        reader = Child("reader", folder, library=library, uri=uri, experiment_id=experiment_id,
                       stop_file=str(stop_file), out_file=str(seen_file))
        try:
            _start_together(writers)
            results = [w.result() for w in writers]
            stop_file.touch()
            polls = reader.result()
        finally:
            for child in (reader, *writers):
                child.kill()
        seen = json.loads(seen_file.read_text())
        samples = [_read_steps(folder / f"samples-{w}.txt") for w in range(len(writers))]
    by_run: dict[str, list] = {}
    for run_id, step, at in seen["seen"]:
        by_run.setdefault(run_id, []).append((step, at))
    lags, unseen = [], 0
    for run_id, steps in samples:
        observed = by_run.get(run_id, [])
        for step, returned in steps:
            at = next((a for s, a in observed if s >= step), None)
            if at is None:
                unseen += 1
            else:
                lags.append(max(at - returned, 0.0))
    return {"median": statistics.median(lags) if lags else None,
            "p99": _percentile(lags, 0.99) if lags else None,
            "samples": len(lags), "unseen": unseen, "polls": polls["polls"],
            "reader_errors": len(seen["errors"]),
            "writer_errors": sum(r["errors"] for r in results),
            "values": sum(r["count"] for r in results)}


def kills(library: str, sizes: dict, seed: int = 7) -> dict:
    """Kill a logging process at random moments; count the values lost and runs left RUNNING."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="nbtrack-durability-") as scratch:
        folder = Path(scratch)
        uri, experiment_id = _store(library, folder)
        trials = []
        for trial in range(sizes["kills"]):
            steps_file = folder / f"steps-{trial}.txt"
            child = Child("killee", folder, library=library, uri=uri,
                          experiment_id=experiment_id, steps_file=str(steps_file),
                          pace=sizes["kill_pace"])
            try:
                run_id = child.line().split()[1]
                time.sleep(rng.uniform(*sizes["kill_after"]))
                killed_at = time.monotonic()
                os.kill(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
            finally:
                child.kill()
            steps = _read_steps(steps_file)[1] if steps_file.exists() else []
            trials.append((run_id, killed_at, steps))
        found = Child("check", folder, library=library, uri=uri,
                      run_ids=[t[0] for t in trials]).result()
    required = lost = missing_runs = left_running = 0
    for run_id, killed_at, steps in trials:
        must = {s for s, t in steps if t <= killed_at - DURABLE_WITHIN}
        required += len(must)
        stored = found[run_id]
        if stored is None:
            missing_runs += 1
            lost += len(must)
            continue
        lost += len(must - set(stored["steps"]))
        left_running += stored["status"] == "RUNNING"
    return {"lost": lost, "required": required, "trials": len(trials),
            "missing_runs": missing_runs, "left_running": left_running}


# ---- the report -----------------------------------------------------------------------------
def _safe(fn, *args) -> dict:
    try:
        return fn(*args)
    except Exception as exc:
        return {"error": str(exc)}


def _seconds(value) -> str:
    if value is None:
        return "-"
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


def _row(label: str, ours: str, theirs: str, ratio: str = "", target: str = "",
         met: str = "") -> None:
    print(f"{label:<54} {ours:>14} {theirs:>14} {ratio:>10} {target:>9}  {met}")


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table; return 1 if nbtrack missed a target (full sizes only)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-mlflow", action="store_true", help="measure nbtrack only")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    libraries = ["nbtrack"]
    if not args.no_mlflow:
        if importlib.util.find_spec("mlflow") is None:
            print("MLflow is not installed (pip install -e '.[bench]'): nbtrack alone.\n")
        else:
            libraries.append("mlflow")
    results: dict = {"throughput": {}, "lag": {}, "kill": {}, "took": {}}
    missed = []
    _row("measure", "nbtrack", "MLflow", "ratio", "target", "met")

    began = time.monotonic()
    for n in sizes["processes"]:
        got = {lib: _safe(throughput, lib, n, sizes) for lib in libraries}
        results["throughput"][n] = got
        ours, theirs = got["nbtrack"], got.get("mlflow", {})
        rate = {lib: r.get("per_second") for lib, r in got.items()}
        ratio = (f"{rate['nbtrack'] / rate['mlflow']:,.1f}x"
                 if rate.get("nbtrack") and rate.get("mlflow") else "-")
        _row(f"log_metric throughput, {n} process{'es' if n > 1 else ''} (values/s)",
             f"{rate['nbtrack']:,.0f}" if rate["nbtrack"] else "failed",
             f"{rate['mlflow']:,.0f}" if rate.get("mlflow") else "-", ratio)
        for lib, r in got.items():
            if r.get("error") or r.get("errors"):
                print(f"    {lib}: {r.get('error') or r['first_error']} "
                      f"({r.get('errors', 0)} failed calls)")

    results["took"]["throughput"] = time.monotonic() - began

    began = time.monotonic()
    got = {lib: _safe(lag, lib, sizes) for lib in libraries}
    results["lag"] = got
    writers = sizes["lag_writers"]
    for q, label in (("median", "median"), ("p99", "p99")):
        ours, theirs = got["nbtrack"].get(q), got.get("mlflow", {}).get(q)
        target = TARGETS["lag_p99"] if q == "p99" else None
        met = ""
        if target is not None:
            met = "yes" if ours is not None and ours < target else "NO"
            if met == "NO":
                missed.append("lag_p99")
        _row(f"lag from log_metric to visible elsewhere, {label} ({writers} writers)",
             _seconds(ours), _seconds(theirs), "", f"< {_seconds(target)}" if target else "",
             met)
    _row("  values logged meanwhile (the writers' pace is a target)",
         str(got["nbtrack"].get("values", "-")), str(got.get("mlflow", {}).get("values", "-")))
    _row("  searches the reader completed", str(got["nbtrack"].get("polls", "-")),
         str(got.get("mlflow", {}).get("polls", "-")))
    for lib, r in got.items():
        problems = {k: r.get(k) for k in ("error", "unseen", "reader_errors", "writer_errors")
                    if r.get(k)}
        if problems:
            print(f"    {lib}: {problems}")

    results["took"]["lag"] = time.monotonic() - began

    began = time.monotonic()
    got = {lib: _safe(kills, lib, sizes) for lib in libraries}
    results["kill"] = got
    kill_count = sizes["kills"]
    cells = {}
    for lib, r in got.items():
        cells[lib] = ("failed" if "error" in r else f"{r['lost']} of {r['required']}",
                      "failed" if "error" in r else f"{r['left_running']} of {r['trials']}")
    ours = got["nbtrack"]
    lost_met = "error" not in ours and ours["lost"] <= TARGETS["lost"] and not ours[
        "missing_runs"]
    running_met = "error" not in ours and ours["left_running"] <= TARGETS["left_running"]
    missed += [] if lost_met else ["lost"]
    missed += [] if running_met else ["left_running"]
    _row(f"values lost after SIGKILL ({kill_count} kills, >= 100 ms old)", cells["nbtrack"][0],
         cells.get("mlflow", ("-", "-"))[0], "", "0", "yes" if lost_met else "NO")
    _row("runs left RUNNING after SIGKILL", cells["nbtrack"][1],
         cells.get("mlflow", ("-", "-"))[1], "", "0", "yes" if running_met else "NO")
    for lib, r in got.items():
        if r.get("error") or r.get("missing_runs"):
            print(f"    {lib}: {r.get('error') or str(r['missing_runs']) + ' runs missing'}")

    results["took"]["kill"] = time.monotonic() - began
    print("\n(took " + ", ".join(f"{name} {seconds:.0f} s"
                                 for name, seconds in results["took"].items()) + ")")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.quick:
        print("(--quick: small sizes; the targets are for the full sizes)")
        return 0
    return 1 if missed else 0


def _child(role: str, kwargs: str) -> None:
    result = globals()[f"child_{role}"](**json.loads(kwargs))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
