"""Many machines on one team store: throughput and the lag from logging to visible elsewhere.

On a throwaway PostgreSQL server and a local data folder, ``--writers`` processes (each a
"machine" with its own spool folder) log ``loss`` = step at a steady pace through the public
API for ``--seconds``, while a reader process (a machine of its own) searches the experiment in
a loop. The lag of a value is the time from its ``log_metric`` returning in its writer to the
reader first seeing that run's latest ``loss`` at that step or later. Also reported: values
logged, values stored (each must be stored exactly once), the time until the last value
arrived after the writers ended, the lake's snapshots, and errors in writers and reader.

    python bench/team_writers.py [--writers 8] [--seconds 10] [--pace 0.01] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg_server import running_server

WRITER = """
    import json, sys, time
    import nbtrack
    uri, name, experiment, seconds, pace, samples = sys.argv[1:7]
    nbtrack.set_tracking_uri(uri)
    nbtrack.start_run(experiment_id=experiment, run_name=name)
    errors, step, out = 0, 0, []
    end = time.time() + float(seconds)
    while time.time() < end:
        try:
            nbtrack.log_metric("loss", float(step), step=step)
        except Exception:
            errors += 1
        out.append((step, time.time()))
        step += 1
        time.sleep(float(pace))
    nbtrack.end_run()
    with open(samples, "w") as f:
        json.dump(out, f)
    print(json.dumps({"values": step, "errors": errors}))
"""

READER = """
    import json, sys, time
    from pathlib import Path
    import nbtrack
    uri, experiment, stop, out_file = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    nbtrack.set_tracking_uri(uri)
    client = nbtrack.Client()
    seen, errors, polls = [], [], 0
    while not stop.exists():
        try:
            runs = client.search_runs([experiment], "", max_results=1000)
            at = time.time()
            polls += 1
            for run in runs:
                if "loss" in run.data.metrics:
                    seen.append((run.info.run_name, int(run.data.metrics["loss"]), at))
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.05)
    Path(out_file).write_text(json.dumps({"seen": seen, "errors": errors, "polls": polls}))
"""


def spawn(script: str, *arguments: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *arguments],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(child: subprocess.Popen) -> str:
    out, err = child.communicate(timeout=900)
    if child.returncode:
        raise RuntimeError(err)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def measure(writers: int, seconds: float, pace: float) -> dict:
    from nbtrack.store.ducklake_store import DuckLakeStore

    server_run = running_server()
    server = next(server_run)
    folder = Path(tempfile.mkdtemp(prefix="nbtrack-team-writers-"))
    try:
        os.environ["PGPASSWORD"] = server.password
        database = server.create_database("bench")
        (folder / "data").mkdir()
        base = (f"ducklake:postgresql://{server.user}@{server.host}:{server.port}/{database}"
                f"?data={folder / 'data'}&spool=")
        store = DuckLakeStore(base + str(folder / "init"), create=True)
        experiment = store.create_experiment("bench")
        store.close()
        stop, seen_file = folder / "stop", folder / "seen.json"
        reader = spawn(READER, base + str(folder / "reader"), experiment, str(stop),
                       str(seen_file))
        children = [spawn(WRITER, base + str(folder / f"m{w}"), f"m{w}", experiment,
                          str(seconds), str(pace), str(folder / f"samples-{w}.json"))
                    for w in range(writers)]
        began = time.time()
        results = [json.loads(finish(child).strip().splitlines()[-1]) for child in children]
        ended = time.time()
        samples = {f"m{w}": json.loads((folder / f"samples-{w}.json").read_text())
                   for w in range(writers)}
        logged = sum(r["values"] for r in results)
        store = DuckLakeStore(base + str(folder / "check"))
        with store._connection.use() as conn:  # bench only: counts straight from the lake
            while True:  # until every value arrived (the writers' exits merge what is left)
                stored, distinct = conn.execute(
                    "SELECT count(*), count(DISTINCT (run_id, step)) FROM metrics").fetchone()
                if stored >= logged or time.time() - ended > 120:
                    break
                time.sleep(0.2)
            drained = time.time() - ended
            (snapshots,) = conn.execute("SELECT count(*) FROM lake.snapshots()").fetchone()
        store.close()
        time.sleep(1.0)  # the reader's last polls see the last values
        stop.touch()
        finish(reader)
        seen = json.loads(seen_file.read_text())
    finally:
        next(server_run, None)  # stops the server
        shutil.rmtree(folder, ignore_errors=True)
    by_run: dict[str, list] = {}
    for name, step, at in seen["seen"]:
        by_run.setdefault(name, []).append((step, at))
    lags, unseen = [], 0
    for name, steps in samples.items():
        observed = by_run.get(name, [])
        for step, returned in steps:
            at = next((a for s, a in observed if s >= step), None)
            if at is None:
                unseen += 1
            else:
                lags.append(max(at - returned, 0.0))
    return {"writers": writers, "logged": logged, "stored": stored, "distinct": distinct,
            "throughput_per_s": round(logged / (ended - began), 1),
            "lag_median_s": round(statistics.median(lags), 3) if lags else None,
            "lag_p99_s": round(percentile(lags, 0.99), 3) if lags else None,
            "lag_max_s": round(max(lags), 3) if lags else None,
            "unseen": unseen, "all_stored_after_s": round(drained, 2), "snapshots": snapshots,
            "reader_polls": seen["polls"],
            "writer_errors": sum(r["errors"] for r in results),
            "reader_errors": seen["errors"][:5], "reader_error_count": len(seen["errors"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pace", type=float, default=0.01)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = measure(args.writers, args.seconds, args.pace)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    ok = result["stored"] == result["distinct"] == result["logged"] and not (
        result["writer_errors"] or result["reader_error_count"] or result["unseen"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
