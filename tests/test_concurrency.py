"""Several processes on one store, and values that must survive exits and locked files."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

import nbtrack

WORKERS = str(Path(__file__).with_name("workers.py"))


def _spawn(*args):
    return subprocess.Popen([sys.executable, WORKERS, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(procs, timeout=600):
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err
        outputs.append(out)
    return outputs


@pytest.mark.slow
def test_four_writers_and_a_reader_lose_nothing(tmp_path):
    store = tmp_path / "shared"
    writers = [_spawn("log_runs", store, w, 200, 10, 50) for w in range(4)]
    time.sleep(1.0)
    reader = _spawn("read_while_others_write", store, "5.0")
    _wait(writers)
    (read_out,) = _wait([reader])
    searches, slowest = read_out.split()
    assert int(searches) > 0 and float(slowest) > 0
    nbtrack.set_tracking_uri(store)
    counts = nbtrack.sql(
        "SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM params) AS params, "
        "(SELECT count(*) FROM metrics) AS points, "
        "(SELECT count(*) FROM latest_metrics) AS latest, "
        "(SELECT count(*) FROM runs WHERE status = 'FINISHED') AS finished"
    ).iloc[0].to_dict()
    assert counts == {"runs": 800, "params": 8000, "points": 40000, "latest": 800,
                      "finished": 800}
    # every value is the one its writer logged
    wrong = nbtrack.sql(
        "SELECT count(*) AS n FROM params p JOIN runs r USING (run_id) "
        "WHERE p.value <> regexp_extract(r.run_name, 'w(\\d+)', 1) || '-' || "
        "regexp_extract(r.run_name, 'r(\\d+)', 1) || '-' || substr(p.key, 2)"
    )["n"][0]
    assert wrong == 0
    latest = nbtrack.sql("SELECT min(value) AS lo, max(value) AS hi FROM latest_metrics")
    assert latest["lo"][0] == pytest.approx(49.0) and latest["hi"][0] == pytest.approx(52.199)


@pytest.mark.slow
def test_four_processes_create_the_same_new_store(tmp_path):
    store = tmp_path / "fresh"
    procs = [_spawn("create_store", store) for _ in range(4)]
    _wait(procs)
    nbtrack.set_tracking_uri(store)
    assert len(nbtrack.search_runs(experiment_names=["shared"])) == 4
    assert [e.name for e in nbtrack.search_experiments()] == ["shared", "Default"]  # newest first


def test_values_are_written_at_exit_without_end_run(tmp_path):
    store = tmp_path / "s"
    _wait([_spawn("exit_without_ending", store)])
    nbtrack.set_tracking_uri(store)
    frame = nbtrack.search_runs(experiment_names=["exit"])
    assert list(frame["status"]) == ["FINISHED"]
    assert frame["params.a"][0] == "1"
    run_id = frame["run_id"][0]
    assert len(nbtrack.Client().get_metric_history(run_id, "m")) == 1000


def test_uncaught_exception_keeps_values_and_marks_failed(tmp_path):
    store = tmp_path / "s"
    proc = _spawn("raise_inside_run", store)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "RuntimeError: boom" in err
    nbtrack.set_tracking_uri(store)
    frame = nbtrack.search_runs(experiment_names=["raise"])
    assert list(frame["status"]) == ["FAILED"]
    assert frame["metrics.m"][0] == 1.0


def test_a_program_holding_the_file_delays_but_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_LOCK_TIMEOUT", "60")
    store_path = tmp_path / "s"
    nbtrack.set_tracking_uri(store_path)
    client = nbtrack.Client()
    run_id = client.create_run("0").info.run_id
    client.store.flush()
    client.store._connection.close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
         " time.sleep(1.5); c.close()", str(store_path / "store.duckdb")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    for step in range(100):
        client.log_metric(run_id, "m", float(step), step=step)
    started = time.monotonic()
    client.store.flush()  # waits for the foreign program, then writes
    assert time.monotonic() - started > 0.3
    holder.wait(timeout=30)
    assert len(client.get_metric_history(run_id, "m")) == 100


def test_failed_flush_keeps_values_pending(tmp_path):
    store_path = tmp_path / "s"
    nbtrack.set_tracking_uri(store_path)
    client = nbtrack.Client()
    store = client.store
    run_id = client.create_run("0").info.run_id
    store.flush()
    store._connection.close()
    store._connection.timeout = 0.2
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
         " sys.stdin.readline(); c.close()", str(store_path / "store.duckdb")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        client.log_metric(run_id, "m", 1.0)
        client.log_param(run_id, "p", "v")
        with pytest.raises(nbtrack.exceptions.StoreBusyError, match="outside nbtrack"):
            store.flush()
        assert not store.has_unwritten()  # durable in the spool
        assert store._writes.has_unmerged()  # but not in the file yet
    finally:
        holder.communicate("done\n", timeout=30)
    store._connection.timeout = 30
    store.flush()
    assert client.get_run(run_id).data.metrics == {"m": 1.0}
    assert client.get_run(run_id).data.params == {"p": "v"}


def test_run_of_a_dead_process_is_marked_killed(tmp_path):
    store = tmp_path / "s"
    proc = _spawn("die_while_running", store)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    run_id = out.strip()
    nbtrack.set_tracking_uri(store)
    run = nbtrack.get_run(run_id)
    assert run.info.status == "KILLED" and run.info.end_time is not None
    assert run.data.metrics == {"m": 1.0}


def test_resumed_run_is_not_taken_for_dead(tmp_path):
    store = tmp_path / "s"
    proc = _spawn("die_while_running", store)
    run_id = proc.communicate(timeout=120)[0].strip()
    nbtrack.set_tracking_uri(store)
    assert nbtrack.get_run(run_id).info.status == "KILLED"
    with nbtrack.start_run(run_id=run_id):  # resumed here: this live process claims it
        nbtrack.flush()
        assert nbtrack.Client().store.mark_dead_runs() == []
        assert nbtrack.get_run(run_id).info.status == "RUNNING"
    assert nbtrack.get_run(run_id).info.status == "FINISHED"
