"""The team store against MLflow's tracking server, both on one PostgreSQL server, in one run.

    pip install -e ".[bench,team]"      # MLflow 3.x and psycopg2; DuckLake's extensions
    apt-get install postgresql          # initdb, pg_ctl, psql (run as an unprivileged user)
    python bench/team.py                # full sizes
    python bench/team.py --quick        # small sizes, a smoke run
    python bench/team.py --no-mlflow    # the team store alone
    python bench/team.py --json out.json

A private PostgreSQL server is started on a free loopback port (``tests/pg_server.py``). nbtrack
gets a new database per measurement holding a DuckLake (``ducklake:postgresql://…``, its Parquet
files in a scratch folder); MLflow gets one database for ``mlflow server
--backend-store-uri postgresql://…`` with a local ``--artifacts-destination`` folder (no S3), and
a new experiment per measurement. Every measurement runs in fresh child processes:

- ``run``: a run with 10 params, 5 metrics and 3 tags, one call each, from start to end; nbtrack
  also ``flush``es, so the run is durable and visible to other machines;
- ``throughput``: 8 processes log one metric at once (``bench/durability.py``'s writers),
  values per second until the last one is durable;
- ``lag``: 8 paced writers and a reader process searching in a loop; time from ``log_metric``
  returning to the reader seeing the value (median, p99);
- ``search``, ``frame``: filtered, ordered ``search_runs`` and the full DataFrame at 10k runs;
- ``history``: ``get_metric_history`` of 100k points;
- ``compare``: ``nbtrack.compare`` at 10k runs, until its first Arrow payload is built.

Seeding is not timed. nbtrack's lakes are seeded through its public API (``Client.create_run``,
``log_batch``, ``set_terminated``, ``log_metric``, then ``flush``); MLflow's with bulk SQL into
its own schema, as ``bench/run.py`` does on SQLite. The goals (issue 13) are ratios: at least 20x
MLflow's server on throughput and search. The script exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[1] / "tests"))

import durability  # noqa: E402
import workloads  # noqa: E402

FULL = {"run": (30, 20), "writers": 8, "seconds": 3.0, "cap": 200_000, "lag_seconds": 5.0,
        "lag_pace": 0.005, "runs": 10_000, "points": 100_000}
QUICK = {"run": (5, 3), "writers": 2, "seconds": 1.0, "cap": 20_000, "lag_seconds": 1.5,
         "lag_pace": 0.005, "runs": 300, "points": 2_000}
GOAL = 20.0  # times MLflow's server, on throughput and search


# ---- the children: each runs in a fresh interpreter -------------------------------------------
def _tracker(uri: str):
    return durability._tracker("mlflow" if uri.startswith("http") else "nbtrack", uri)


def child_experiment(uri: str, name: str) -> dict:
    """Create an experiment; return its id."""
    return {"experiment_id": str(_tracker(uri).create_experiment(name))}


def child_run(uri: str, n: int) -> dict:
    """``n`` runs of 10 params, 5 metrics and 3 tags; nbtrack's include the final flush."""
    tracker = _tracker(uri)
    seconds = workloads._one_call_each(tracker, n)
    if not uri.startswith("http"):
        start = time.perf_counter()
        tracker.flush()
        seconds += time.perf_counter() - start
    return {"per": seconds / n}


def child_seed(uri: str, n_runs: int, points: int) -> dict:
    """Fill a lake through nbtrack's public API: ``n_runs`` runs, or one run of ``points``."""
    tracker = _tracker(uri)
    from nbtrack.entities import Metric, Param, RunTag

    client = tracker.Client()
    experiment_id = client.create_experiment("bench")
    for i, (_, p, m, t) in enumerate(workloads._rows(n_runs)):
        run_id = client.create_run(experiment_id, run_name=f"r{i}").info.run_id
        client.log_batch(run_id, [Metric(k, v, 0, 0) for k, v in m.items()],
                         [Param(k, v) for k, v in p.items()],
                         [RunTag(k, v) for k, v in t.items()])
        if points and i == 0:
            for s in range(points):
                client.log_metric(run_id, "loss", 1.0 / (s + 1), step=s)
        client.set_terminated(run_id)
    tracker.flush()
    return {"experiment_id": experiment_id}


def child_read(uri: str, what: str, experiment_id: str, repeats: int) -> dict:
    """Time one read ``repeats`` times after a first, unmeasured one; return the median."""
    tracker = _tracker(uri)
    client = tracker.MlflowClient() if uri.startswith("http") else tracker.Client()
    size: list = []
    if what == "search":
        def read():
            size[:] = [len(client.search_runs([experiment_id], workloads.FILTER,
                                              order_by=workloads.ORDER, max_results=100))]
    elif what == "frame":
        def read():
            size[:] = list(tracker.search_runs([experiment_id], max_results=100_000).shape)
    elif what == "history":
        run_id = client.search_runs([experiment_id], "attributes.run_name = 'r0'")[0].info.run_id

        def read():
            size[:] = [len(client.get_metric_history(run_id, "loss"))]
    else:  # compare: the widget's first payload, built in its constructor
        def read():
            widget = tracker.compare("bench")
            size[:] = [len(widget.table)]
            widget.close()
    read()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        read()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "size": size}


def _child(role: str, kwargs: str) -> None:
    print(json.dumps(globals()[f"child_{role}"](**json.loads(kwargs))), flush=True)


def child(role: str, **kwargs) -> dict:
    """Run ``role`` in a fresh interpreter and return what it printed last."""
    with tempfile.TemporaryDirectory(prefix="nbtrack-team-") as scratch:
        done = subprocess.run([sys.executable, str(HERE), "--child", role, json.dumps(kwargs)],
                              capture_output=True, text=True, cwd=scratch)
    if done.returncode:
        raise RuntimeError(f"{role} failed: "
                           + ((done.stderr.strip().splitlines() or ["?"])[-1]))
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- the servers ------------------------------------------------------------------------------
class Servers:
    """One PostgreSQL server; a lake per measurement; one MLflow tracking server."""

    def __init__(self, root: Path, with_mlflow: bool) -> None:
        import pwd

        from pg_server import PostgresServer, postgres_bin_dir

        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise SystemExit("PostgreSQL is not installed (initdb, pg_ctl and psql are needed; "
                             "on Debian: apt-get install postgresql)")
        self.root = root
        run_as = []
        if os.geteuid() == 0:  # initdb refuses root
            pwd.getpwnam("postgres")
            run_as = ["runuser", "-u", "postgres", "--"]
        # its own top folder: the server's user must be able to enter it
        self.pg = PostgresServer(bin_dir, Path(tempfile.mkdtemp(prefix="nbtrack-team-pg-")),
                                 run_as)
        self.pg.give_to_server(self.pg.root)
        self.pg.start()
        os.environ["PGPASSWORD"] = self.pg.password  # the children's too
        self.template = self._lake_template()
        self.mlflow_uri = self._mlflow() if with_mlflow else None

    def _lake_template(self) -> str:
        from nbtrack.store.ducklake_store import DuckLakeStore

        name = self.pg.create_database("lake_template")
        data = self.root / "template"
        DuckLakeStore(self._lake_uri(name, data), create=True).close()
        return name

    def _lake_uri(self, database: str, data: Path) -> str:
        pg = self.pg
        return (f"ducklake:postgresql://{pg.user}@{pg.host}:{pg.port}/{database}"
                f"?data={data / 'data'}&spool={data / 'spool'}")

    def lake(self) -> str:
        """A new, empty team store (a copy of the template database): its URI."""
        database = f"lake_{secrets.token_hex(4)}"
        self.pg.psql(f'CREATE DATABASE "{database}" TEMPLATE "{self.template}"')
        data = self.root / database
        (data / "data" / "artifacts").mkdir(parents=True)
        self.pg.psql(f"UPDATE ducklake_metadata SET value = '{data / 'data'}/' "
                     "WHERE key = 'data_path'", database=database)
        return self._lake_uri(database, data)

    def _mlflow(self) -> str:
        self.mlflow_db = self.pg.create_database("mlflow")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        mlflow = Path(sys.executable).with_name("mlflow")
        self.mlflow_log = open(self.root / "mlflow.log", "w")  # noqa: SIM115
        self.mlflow_proc = subprocess.Popen(
            [str(mlflow), "server", "--backend-store-uri",
             self.pg.url(self.mlflow_db).replace("postgresql:", "postgresql+psycopg2:", 1),
             "--artifacts-destination", str(self.root / "mlflow-artifacts"),
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=self.mlflow_log, stderr=subprocess.STDOUT, cwd=self.root)
        uri = f"http://127.0.0.1:{port}"
        import urllib.request

        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(uri + "/health", timeout=2).read()
                return uri
            except OSError:
                if self.mlflow_proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mlflow server did not start: "
                                       + (self.root / "mlflow.log").read_text()[-2000:]) from None
                time.sleep(0.5)

    def experiment(self, name: str) -> str:
        """A new MLflow experiment on the server."""
        return child("experiment", uri=self.mlflow_uri, name=name)["experiment_id"]

    def mlflow_seed(self, experiment_id: str, n_runs: int, points: int) -> None:
        """Bulk SQL into MLflow's own tables, as bench/run.py does on SQLite."""
        import psycopg2
        from psycopg2.extras import execute_values

        now = int(time.time() * 1000)
        runs, params, metrics, tags = [], [], [], []
        for i, (run_id, p, m, t) in enumerate(workloads._rows(n_runs)):
            runs.append((run_id, f"r{i}", "LOCAL", "", "", "bench", "FINISHED", now + i,
                         now + i + 5, "", "active", f"mlflow-artifacts:/{run_id}",
                         int(experiment_id)))
            params += [(k, v, run_id) for k, v in p.items()]
            metrics += [(k, v, now, run_id, 0, False) for k, v in m.items()]
            tags += [(k, v, run_id) for k, v in t.items()]
            tags.append(("mlflow.runName", f"r{i}", run_id))
        latest = list(metrics)
        if points:
            first = runs[0][0]
            metrics += [("loss", 1.0 / (s + 1), now + s, first, s, False) for s in range(points)]
            latest.append(("loss", 1.0 / points, now + points - 1, first, points - 1, False))
        with psycopg2.connect(self.pg.libpq(self.mlflow_db)) as conn, conn.cursor() as cur:
            execute_values(cur, "INSERT INTO runs (run_uuid, name, source_type, source_name, "
                           "entry_point_name, user_id, status, start_time, end_time, "
                           "source_version, lifecycle_stage, artifact_uri, experiment_id) "
                           "VALUES %s", runs, page_size=5000)
            execute_values(cur, "INSERT INTO params (key, value, run_uuid) VALUES %s", params,
                           page_size=5000)
            execute_values(cur, "INSERT INTO tags (key, value, run_uuid) VALUES %s", tags,
                           page_size=5000)
            execute_values(cur, "INSERT INTO metrics (key, value, timestamp, run_uuid, step, "
                           "is_nan) VALUES %s", metrics, page_size=5000)
            execute_values(cur, "INSERT INTO latest_metrics (key, value, timestamp, run_uuid, "
                           "step, is_nan) VALUES %s", latest, page_size=5000)

    def stop(self) -> None:
        if self.mlflow_uri:
            self.mlflow_proc.terminate()
            try:
                self.mlflow_proc.wait(30)
            except subprocess.TimeoutExpired:
                self.mlflow_proc.kill()
            self.mlflow_log.close()
        self.pg.stop()
        shutil.rmtree(self.pg.root, ignore_errors=True)


# ---- the measurements ---------------------------------------------------------------------------
def _safe(fn, *args) -> dict:
    try:
        return fn(*args)
    except Exception as exc:
        return {"error": str(exc)[-300:]}


def measure(servers: Servers, sizes: dict, with_mlflow: bool) -> dict:
    """Every measurement for both libraries: {name: {"nbtrack": {...}, "mlflow": {...}}}."""
    results: dict = {}
    ml = servers.mlflow_uri
    n_nb, n_ml = sizes["run"]
    results["run"] = {"nbtrack": _safe(lambda: child("run", uri=servers.lake(), n=n_nb))}
    if with_mlflow:
        results["run"]["mlflow"] = _safe(lambda: child("run", uri=ml, n=n_ml))

    def flow(kind: str, library: str) -> dict:
        if library == "nbtrack":
            uri = servers.lake()
            store = (uri, child("experiment", uri=uri, name="bench")["experiment_id"])
        else:
            store = (ml, servers.experiment(f"{kind}-{time.monotonic_ns()}"))
        if kind == "throughput":
            return durability.throughput(library, sizes["writers"], sizes, store)
        return durability.lag(library, {**sizes, "lag_writers": sizes["writers"]}, store)

    for kind in ("throughput", "lag"):
        results[kind] = {lib: _safe(flow, kind, lib)
                         for lib in ["nbtrack"] + (["mlflow"] if with_mlflow else [])}

    # one seeded lake (and MLflow experiment) of n runs serves the reads
    began = time.monotonic()
    lake = servers.lake()
    seeded = _safe(lambda: child("seed", uri=lake, n_runs=sizes["runs"],
                                 points=sizes["points"]))
    results["seeding"] = {"nbtrack": {**seeded, "seconds": time.monotonic() - began}}
    if with_mlflow:
        began = time.monotonic()
        ml_experiment = servers.experiment("seeded")
        ml_seeded = _safe(lambda: servers.mlflow_seed(ml_experiment, sizes["runs"],
                                                      sizes["points"]) or {})
        results["seeding"]["mlflow"] = {**ml_seeded, "seconds": time.monotonic() - began}
    for what, (rep_nb, rep_ml) in {"search": (20, 5), "frame": (3, 2), "history": (5, 3),
                                   "compare": (3, 0)}.items():
        results[what] = {}
        if "error" in seeded:
            results[what]["nbtrack"] = seeded
        else:
            results[what]["nbtrack"] = _safe(lambda w=what, r=rep_nb: child(
                "read", uri=lake, what=w, experiment_id=seeded["experiment_id"], repeats=r))
        if with_mlflow and rep_ml:
            results[what]["mlflow"] = _safe(lambda w=what, r=rep_ml: child(
                "read", uri=ml, what=w, experiment_id=ml_experiment, repeats=r))
    return results


# ---- the report -------------------------------------------------------------------------------
def _fmt(value, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "values/s":
        return f"{value:,.0f}/s"
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


def report(results: dict, sizes: dict) -> list[str]:
    """Print the table; return the names of the goals missed."""
    n, w = sizes["runs"], sizes["writers"]
    rows = [  # name, label, field, unit, higher is better, goal (x MLflow)
        ("run", "a run: 10 params, 5 metrics, 3 tags (to durable)", "per", "s", False, None),
        ("throughput", f"log_metric throughput, {w} writers", "per_second", "values/s", True,
         GOAL),
        ("lag", f"lag to visible in a reader, median ({w} writers)", "median", "s", False, None),
        ("lag", f"lag to visible in a reader, p99 ({w} writers)", "p99", "s", False, None),
        ("search", f"filtered, ordered search_runs at {n:,} runs", "seconds", "s", False, GOAL),
        ("frame", f"search_runs to a DataFrame at {n:,} runs", "seconds", "s", False, None),
        ("history", f"metric history of {sizes['points']:,} points", "seconds", "s", False,
         None),
        ("compare", f"compare widget, first payload at {n:,} runs", "seconds", "s", False,
         None),
    ]
    missed = []
    print(f"{'measure':<52} {'nbtrack':>13} {'MLflow':>13} {'ratio':>9} {'target':>8}  met")
    for name, label, field, unit, higher, goal in rows:
        ours = results[name].get("nbtrack", {})
        theirs = results[name].get("mlflow", {})
        a, b = ours.get(field), theirs.get(field)
        ratio = None
        if a and b:
            ratio = a / b if higher else b / a
        met = ""
        if goal is not None:
            met = "yes" if ratio is not None and ratio >= goal else "NO"
            if met == "NO":
                missed.append(name)
        print(f"{label:<52} {_fmt(a, unit):>13} {_fmt(b, unit):>13} "
              f"{f'{ratio:,.1f}x' if ratio else '-':>9} "
              f"{f'>= {goal:.0f}x' if goal else '-':>8}  {met}")
    for name, sides in results.items():
        for library, got in sides.items():
            problems = {k: got[k] for k in ("error", "first_error", "unseen", "reader_errors",
                                            "writer_errors") if got.get(k)}
            if problems:
                print(f"    {name}, {library}: {problems}")
    seeding = results["seeding"]
    print(f"\n(seeding, untimed above: nbtrack {seeding['nbtrack']['seconds']:.0f} s through "
          "its API" + (f", MLflow {seeding['mlflow']['seconds']:.0f} s of bulk SQL"
                       if "mlflow" in seeding else "") + ")")
    return missed


def main(argv: list[str] | None = None) -> int:
    """Start the servers, measure, print the table; return 1 if a goal was missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-mlflow", action="store_true", help="measure the team store only")
    parser.add_argument("--runs", type=int, help="runs seeded for search, frame and compare")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.runs:
        sizes["runs"] = args.runs
    with_mlflow = not args.no_mlflow and importlib.util.find_spec("mlflow") is not None
    if not args.no_mlflow and not with_mlflow:
        print("MLflow is not installed (pip install -e '.[bench]'): the team store alone.\n")
    root = Path(tempfile.mkdtemp(prefix="nbtrack-team-bench-"))
    servers = None
    try:
        servers = Servers(root, with_mlflow)
        results = measure(servers, sizes, with_mlflow)
    finally:
        if servers is not None:
            servers.stop()
        shutil.rmtree(root, ignore_errors=True)
    missed = report(results, sizes)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.quick:
        print("(--quick: small sizes; the goals are for the full sizes)")
        return 0
    return 1 if missed and with_mlflow else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
