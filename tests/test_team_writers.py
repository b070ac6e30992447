"""Many writers on many machines on one team store: 8 processes, each its own spool folder.

Each writer ("machine") logs runs through the public API with ``ducklake:`` as its tracking URI;
a reader searches meanwhile. Afterwards every value is in the lake exactly once, and no call
failed. Then the same under a catalog outage (the test's own PostgreSQL server is stopped while
writers log) and a storage outage (the shared data folder replaced by a file for a while).
Timings (lag, throughput) are measured in bench/team_writers.py, not asserted here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from pg_server import running_server
from team_stores import lake_uri, open_team_store

from nbtrack.store.ducklake_store import DuckLakeStore

pytestmark = pytest.mark.slow

WRITERS = 8

#: a machine: logs RUNS runs of STEPS steps each, then says how long its slowest call took
WRITER = """
    import json, sys, time
    from pathlib import Path
    import nbtrack
    uri, name, experiment, runs, steps, pause = sys.argv[1:7]
    started = Path(sys.argv[7]) if len(sys.argv) > 7 else None
    nbtrack.set_tracking_uri(uri)
    slowest, errors = 0.0, []
    def timed(call, *args, **kwargs):
        global slowest
        begin = time.perf_counter()
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            slowest = max(slowest, time.perf_counter() - begin)
    for r in range(int(runs)):
        run = nbtrack.start_run(experiment_id=experiment, run_name=f"{name}-{r}")
        if started is not None:
            started.touch()
        begin = time.perf_counter()  # logging only: start_run and end_run are timed apart
        slowest = 0.0
        timed(nbtrack.log_params, {"machine": name, "run": str(r)})
        timed(nbtrack.set_tags, {"machine": name})
        for step in range(int(steps)):
            timed(nbtrack.log_metric, "loss", float(step), step=step)
            timed(nbtrack.log_metrics, {"acc": step / 1000, "lr": 0.1}, step=step)
            time.sleep(float(pause))
        logged = slowest
        nbtrack.end_run()
    print(json.dumps({"slowest_log_call": logged, "errors": errors}))
"""

#: searches the experiment until told to stop; prints how many searches ran and what failed
READER = """
    import json, sys, time
    from pathlib import Path
    import nbtrack
    uri, experiment, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    nbtrack.set_tracking_uri(uri)
    client = nbtrack.Client()
    searches, errors, seen = 0, [], 0
    while not stop.exists():
        try:
            runs = client.search_runs([experiment], "params.machine != ''", max_results=1000)
            seen = max(seen, len(runs))
            searches += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.2)
    print(json.dumps({"searches": searches, "errors": errors, "seen": seen}))
"""


def start(script: str, *arguments: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *arguments],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(child: subprocess.Popen, timeout: float = 300) -> dict:
    out, err = child.communicate(timeout=timeout)
    assert child.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def machine(uri: str, root: Path, name: str) -> str:
    """The lake's URI as a machine of its own sees it: its own spool folder."""
    head, _, _ = uri.partition("&spool=")
    return f"{head}&spool={root / name}"


def assert_each_value_once(uri: str, experiment: str, runs: int, steps: int) -> None:
    store = DuckLakeStore(uri)
    try:
        found, _ = store.search_runs([experiment], "", 1, 10_000, None, None)
        names = sorted(run.info.run_name for run in found)
        assert names == sorted(f"m{w}-{r}" for w in range(WRITERS) for r in range(runs))
        for run in found:
            machine_name, _, r = run.info.run_name.partition("-")
            assert run.data.params == {"machine": machine_name, "run": r}
            assert run.data.tags["machine"] == machine_name
            assert run.info.status == "FINISHED"
            assert run.data.metrics == {"loss": steps - 1.0, "acc": (steps - 1) / 1000,
                                        "lr": 0.1}
            for key in ("loss", "acc", "lr"):
                history = store.get_metric_history(run.info.run_id, key)
                assert sorted(m.step for m in history) == list(range(steps)), (run, key)
        assert store.sql_rejects_count() == 0
    finally:
        store.close()


def new_experiment(uri: str, name: str) -> str:
    store = DuckLakeStore(uri)
    try:
        return store.create_experiment(name)
    finally:
        store.close()


def test_eight_machines_and_a_reader_lose_nothing_and_fail_nothing(request, tmp_path,
                                                                   monkeypatch):
    lake = open_team_store(request, tmp_path, monkeypatch)
    try:
        experiment = new_experiment(lake.uri, "eight")
        runs, steps = 2, 150
        stop = tmp_path / "stop-reading"
        reader = start(READER, machine(lake.uri, tmp_path, "reader"), experiment, str(stop))
        writers = [start(WRITER, machine(lake.uri, tmp_path, f"m{w}"), f"m{w}", experiment,
                         str(runs), str(steps), "0.002") for w in range(WRITERS)]
        results = [finish(child) for child in writers]
        stop.touch()
        read = finish(reader)
        assert [r["errors"] for r in results] == [[]] * WRITERS
        assert read["errors"] == [] and read["searches"] > 0
        assert_each_value_once(lake.uri, experiment, runs, steps)
    finally:
        lake.drop()


@pytest.fixture
def own_server():
    """A PostgreSQL server of this test's own, which it may stop and start again."""
    yield from running_server()


def test_a_catalog_outage_delays_values_but_never_blocks_or_loses_them(own_server, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("PGPASSWORD", own_server.password)
    database = own_server.create_database("outage")
    (tmp_path / "data").mkdir()
    uri = lake_uri(own_server, database, tmp_path / "data", tmp_path / "init")
    DuckLakeStore(uri, create=True).close()
    experiment = new_experiment(uri, "outage")
    runs, steps = 1, 200
    started = [tmp_path / f"started-{w}" for w in range(WRITERS)]
    writers = [start(WRITER, machine(uri, tmp_path, f"m{w}"), f"m{w}", experiment, str(runs),
                     str(steps), "0.03", str(started[w])) for w in range(WRITERS)]
    deadline = time.monotonic() + 120
    while not all(path.exists() for path in started):
        assert time.monotonic() < deadline, "the writers did not start their runs"
        time.sleep(0.1)
    own_server.stop()  # the catalog is gone while every writer logs
    time.sleep(4)
    own_server.resume()
    results = [finish(child) for child in writers]
    assert [r["errors"] for r in results] == [[]] * WRITERS
    # each log_* call stays fast: it queues in memory, never waits for the catalog
    assert max(r["slowest_log_call"] for r in results) < 2.0
    assert_each_value_once(uri, experiment, runs, steps)


def test_a_storage_outage_delays_values_but_never_blocks_or_loses_them(request, tmp_path,
                                                                       monkeypatch):
    """The shared data folder is replaced by a file (root ignores chmod) while writers log."""
    lake = open_team_store(request, tmp_path, monkeypatch)
    try:
        experiment = new_experiment(lake.uri, "storage")
        data = tmp_path / "lake-data"
        runs, steps = 1, 150
        started = [tmp_path / f"started-{w}" for w in range(WRITERS)]
        writers = [start(WRITER, machine(lake.uri, tmp_path, f"m{w}"), f"m{w}", experiment,
                         str(runs), str(steps), "0.03", str(started[w]))
                   for w in range(WRITERS)]
        deadline = time.monotonic() + 120
        while not all(path.exists() for path in started):
            assert time.monotonic() < deadline, "the writers did not start their runs"
            time.sleep(0.1)
        aside = Path(tempfile.mkdtemp(dir=tmp_path)) / "lake-data"
        shutil.move(data, aside)
        data.write_text("the shared folder is unmounted")
        time.sleep(4)
        data.unlink()
        shutil.move(aside, data)
        results = [finish(child) for child in writers]
        assert [r["errors"] for r in results] == [[]] * WRITERS
        assert max(r["slowest_log_call"] for r in results) < 2.0
        assert_each_value_once(lake.uri, experiment, runs, steps)
    finally:
        lake.drop()
