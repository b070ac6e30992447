"""The write path: memory, the spool, the merge; linger and hand-over between processes."""

import subprocess
import sys
import time

import pytest

import nbtrack
from nbtrack.exceptions import StoreBusyError
from nbtrack.store.duckdb_store import DuckDBStore


def _count_points_elsewhere(store_path) -> int:
    code = ("import nbtrack, sys; nbtrack.set_tracking_uri(sys.argv[1]); "
            "print(nbtrack.sql('SELECT count(*) AS n FROM metrics')['n'][0])")
    done = subprocess.run([sys.executable, "-c", code, str(store_path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def _wait_until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_a_value_is_durable_within_the_delay_and_merged_without_a_read(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_FLUSH_INTERVAL", "0.1")
    nbtrack.set_tracking_uri(tmp_path / "s")
    client = nbtrack.Client()
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "m", 1.0)
    assert _wait_until(lambda: not client.store.has_unwritten(), seconds=1)
    assert _wait_until(lambda: not client.store._connection.is_open)  # merged, linger over
    assert _count_points_elsewhere(tmp_path / "s") == 1


def test_the_first_value_starts_the_clock_and_a_full_buffer_spools_at_once(tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("NBTRACK_SPOOL_DELAY", "3600")
    nbtrack.set_tracking_uri(tmp_path / "s")
    client = nbtrack.Client()
    store = client.store
    store._writes.pending.size_threshold = 100
    run_id = client.create_run("0").info.run_id
    for step in range(99):
        client.log_metric(run_id, "m", 1.0, step=step)
    time.sleep(0.3)
    assert store.has_unwritten()  # below the threshold, within the delay: still in memory
    client.log_metric(run_id, "m", 1.0, step=99)
    assert _wait_until(lambda: not store.has_unwritten())


def test_end_of_run_is_durable_when_it_returns(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_SPOOL_DELAY", "3600")
    monkeypatch.setenv("NBTRACK_FLUSH_INTERVAL", "3600")
    nbtrack.set_tracking_uri(tmp_path / "s")
    store = nbtrack.Client().store
    with nbtrack.start_run():
        nbtrack.log_metric("m", 1.0)
        assert store.has_unwritten()
    assert not store.has_unwritten()


def test_linger_keeps_the_file_open_briefly(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_LINGER", "0.2")
    monkeypatch.setenv("NBTRACK_FLUSH_INTERVAL", "0.05")
    store = DuckDBStore(tmp_path / "s")
    assert store._connection.linger == 0.2
    store.create_experiment("x")  # opens the file
    assert store._connection.is_open
    assert _wait_until(lambda: not store._connection.is_open, seconds=5)
    opens = store._connection.opens
    store.get_experiment_by_name("x")
    store.get_experiment_by_name("x")
    assert store._connection.opens == opens + 1  # a burst shares one open


@pytest.mark.slow
def test_waiting_process_makes_the_holder_let_go(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_LINGER", "3600")  # only the waiter's signal can release it
    store = DuckDBStore(tmp_path / "s")
    store.create_experiment("x")
    assert store._connection.is_open
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import nbtrack, sys; nbtrack.set_tracking_uri(sys.argv[1]); "
         "print(nbtrack.get_experiment_by_name('x').name)", str(tmp_path / "s")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and time.monotonic() - started < 60:
        store.get_experiment_by_name("x")  # each operation checks for waiters
        time.sleep(0.01)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip() == "x"


@pytest.mark.slow
def test_lock_timeout_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_LOCK_TIMEOUT", "0.3")
    store = DuckDBStore(tmp_path / "s")
    store.close()
    code = ("import sys, time; from pathlib import Path; from nbtrack.store.locking import "
            "StoreLock; lock = StoreLock(Path(sys.argv[1])); lock.acquire(5); print('held', "
            "flush=True); sys.stdin.readline()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "s")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert store._connection.timeout == 0.3
        with pytest.raises(StoreBusyError, match="NBTRACK_LOCK_TIMEOUT"):
            store.get_experiment("0")
    finally:
        proc.communicate("go\n", timeout=30)
    assert store.get_experiment("0").name == "Default"  # free again once the holder exits


def test_two_store_objects_on_one_path_in_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_LINGER", "3600")
    first = DuckDBStore(tmp_path / "s")
    second = DuckDBStore(tmp_path / "s")
    first.create_experiment("a")
    assert first._connection.is_open
    second.create_experiment("b")  # waits for `first` to let go, in-process
    assert not first._connection.is_open
    assert first.get_experiment_by_name("b") is not None
    assert second.get_experiment_by_name("a") is not None


@pytest.mark.slow
def test_a_process_that_only_reads_lets_go_when_idle(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_LINGER", "0.1")
    DuckDBStore(tmp_path / "s").close()
    reader = DuckDBStore(tmp_path / "s")
    reader.search_experiments(1, None)  # a read, and no write ever
    assert _wait_until(lambda: not reader._connection.is_open, seconds=5)
    assert _count_points_elsewhere(tmp_path / "s") == 0


def test_a_read_waits_for_a_batch_the_spooler_is_still_writing(tmp_path):
    import threading

    nbtrack.set_tracking_uri(tmp_path / "s")
    client = nbtrack.Client()
    store = client.store
    run_id = client.create_run("0").info.run_id
    taken = threading.Event()
    append = store._writes.segment.append

    def slow_append(payload, sync=True):
        if threading.current_thread().name == "nbtrack-spool":
            taken.set()
            time.sleep(0.5)  # taken, not yet durable: the window a read must not slip into
        return append(payload, sync)

    store._writes.segment.append = slow_append
    client.log_metric(run_id, "m", 1.0)
    assert taken.wait(10)
    assert len(store._writes.pending) == 0
    assert client.get_run(run_id).data.metrics == {"m": 1.0}  # waits for it, then sees it


def test_peek_sees_pending_values_without_writing(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_FLUSH_INTERVAL", "3600")
    monkeypatch.setenv("NBTRACK_SPOOL_DELAY", "3600")
    nbtrack.set_tracking_uri(tmp_path / "s")
    client = nbtrack.Client()
    store = client.store
    run_id = client.create_run("0").info.run_id
    for step, value in enumerate([3.0, 2.0, 1.5]):
        client.log_metric(run_id, "loss", value, step=step)
    client.log_metric(run_id, "acc", 0.9)
    assert store.peek_latest_metrics(run_id) == {"loss": 1.5, "acc": 0.9}
    assert store.has_unwritten()  # nothing was written to answer
    assert store.peek_latest_metrics(run_id) == client.get_run(run_id).data.metrics


def test_peek_merges_written_and_pending_by_step(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_FLUSH_INTERVAL", "3600")
    monkeypatch.setenv("NBTRACK_SPOOL_DELAY", "3600")
    nbtrack.set_tracking_uri(tmp_path / "s")
    client = nbtrack.Client()
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "m", 1.0, step=5)
    client.log_metric(run_id, "n", 4.0, step=1)
    client.store.flush()
    client.log_metric(run_id, "m", 2.0, step=3)  # older step: the written value stays latest
    client.log_metric(run_id, "n", 5.0, step=2)  # newer step: the pending value wins
    expected = {"m": 1.0, "n": 5.0}
    assert client.store.peek_latest_metrics(run_id) == expected
    assert client.get_run(run_id).data.metrics == expected


def test_peek_sees_a_batch_while_it_is_being_spooled(tmp_path, monkeypatch):
    import threading

    monkeypatch.setenv("NBTRACK_SPOOL_DELAY", "3600")
    nbtrack.set_tracking_uri(tmp_path / "s")
    client = nbtrack.Client()
    store = client.store
    started, release = threading.Event(), threading.Event()
    run_id = client.create_run("0").info.run_id
    append = store._writes.segment.append

    def held_append(payload, sync=True):
        started.set()
        assert release.wait(10)
        return append(payload, sync)

    client.log_metric(run_id, "m", 0.5, step=7)
    store._writes.segment.append = held_append
    writer = threading.Thread(target=store.sync)
    writer.start()
    try:
        assert started.wait(10)
        assert len(store._writes.pending) == 0  # the value is only in the batch being spooled
        assert store.peek_latest_metrics(run_id) == {"m": 0.5}
    finally:
        release.set()
        writer.join(10)
    assert store.peek_latest_metrics(run_id) == {"m": 0.5}


@pytest.mark.slow
def test_peek_reads_the_file_for_runs_of_other_processes(tmp_path):
    code = ("import nbtrack, sys; nbtrack.set_tracking_uri(sys.argv[1]); c = nbtrack.Client(); "
            "r = c.create_run('0').info.run_id; c.log_metric(r, 'm', 9.0); print(r)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    nbtrack.set_tracking_uri(tmp_path / "s")
    assert nbtrack.Client().store.peek_latest_metrics(done.stdout.strip()) == {"m": 9.0}
