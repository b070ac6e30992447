"""The spool: durable segments, idempotent merges, dead writers, refused and failed writes."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import nbtrack
from nbtrack.store import frames, registry, spool
from nbtrack.store.duckdb_store import DuckDBStore
from nbtrack.store.locking import StoreLock
from nbtrack.store.pending import Batch
from nbtrack.store.write_path import WriteError
from nbtrack.tracking.state import state


def _run_child(code: str, store, env_extra=None, expect_rc=0) -> str:
    env = {**os.environ, "NBTRACK_FLUSH_INTERVAL": "3600", **(env_extra or {})}
    program = "import nbtrack, os, signal, sys\nnbtrack.set_tracking_uri(sys.argv[1])\n"
    done = subprocess.run([sys.executable, "-c", program + textwrap.dedent(code), str(store)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == expect_rc, done.stderr
    return done.stdout.strip()


def _counts(store) -> tuple[int, int, int]:
    nbtrack.set_tracking_uri(store)
    frame = nbtrack.sql("SELECT (SELECT count(*) FROM metrics) AS m, "
                        "(SELECT count(*) FROM params) AS p, (SELECT count(*) FROM runs) AS r")
    return tuple(int(frame[c][0]) for c in ("m", "p", "r"))


def _segments(store) -> list[str]:
    return [name for name, _ in spool.list_segments(store / "spool")]


# a process that dies with its values only in the spool
KILLED_AFTER_SYNC = """
    run = nbtrack.start_run(run_name="doomed")
    nbtrack.log_param("a", "1")
    for step in range(500):
        nbtrack.log_metric("m", float(step), step=step)
    nbtrack.Client().sync()
    print(run.info.run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_a_killed_process_leaves_its_values_and_a_killed_run(tmp_path):
    store = tmp_path / "s"
    run_id = _run_child(KILLED_AFTER_SYNC, store, expect_rc=-signal.SIGKILL)
    assert len(_segments(store)) == 1  # never merged: the values are only in the spool
    nbtrack.set_tracking_uri(store)
    run = nbtrack.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.params == {"a": "1"}
    history = nbtrack.Client().get_metric_history(run_id, "m")
    assert [m.step for m in history] == list(range(500))
    assert _segments(store) == []  # merged and removed by the process that found it


def test_merging_twice_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_FLUSH_INTERVAL", "3600")
    nbtrack.set_tracking_uri(tmp_path / "s")
    client = nbtrack.Client()
    run_id = client.create_run("0").info.run_id
    for step in range(500):
        client.log_metric(run_id, "m", float(step), step=step)
    client.flush()
    client.store._connection.close()  # the offsets are read afresh from the file
    client.flush()
    other = DuckDBStore(tmp_path / "s")  # as a second process would: same spool, same file
    other.flush()
    other.close()
    assert len(client.get_metric_history(run_id, "m")) == 500
    assert _counts(tmp_path / "s") == (500, 0, 1)


@pytest.mark.slow
def test_a_crash_in_the_middle_of_a_merge_loses_and_duplicates_nothing(tmp_path):
    store = tmp_path / "s"
    run_id = _run_child(KILLED_AFTER_SYNC, store, expect_rc=-signal.SIGKILL)
    crash_in_merge = """
        from nbtrack.store import merge
        real = merge.write_batch
        def write_then_die(conn, batch):
            real(conn, batch)
            os._exit(9)  # inside the transaction, before COMMIT
        merge.write_batch = write_then_die
        nbtrack.search_runs()
    """
    _run_child(crash_in_merge, store, expect_rc=9)
    assert len(_segments(store)) == 1  # the crashed merge left the spool as it was
    assert _counts(store) == (500, 1, 1)
    assert nbtrack.get_run(run_id).info.status == "KILLED"


@pytest.mark.slow
def test_two_processes_merging_at_once_write_each_value_once(tmp_path):
    store = tmp_path / "s"
    DuckDBStore(store).close()
    lock = StoreLock(store)
    lock.acquire(5)  # so that no child merges what the others left
    try:
        for _ in range(3):
            _run_child(KILLED_AFTER_SYNC.replace("start_run(", "start_run(experiment_id='0', "),
                       store, expect_rc=-signal.SIGKILL)
    finally:
        lock.release()
    assert len(_segments(store)) == 3
    code = textwrap.dedent("""
        import nbtrack, sys
        nbtrack.set_tracking_uri(sys.argv[1])
        nbtrack.flush()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(store)], stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert _counts(store) == (1500, 3, 3)


@pytest.mark.slow
def test_a_torn_tail_is_ignored_and_damage_is_kept_aside(tmp_path):
    store = tmp_path / "s"
    _run_child(KILLED_AFTER_SYNC, store, expect_rc=-signal.SIGKILL)
    folder = store / "spool"
    (name, _), = spool.list_segments(folder)
    payload = frames.encode(Batch(params=[("x", "k", "v")]))
    frame = spool.FRAME_HEADER.pack(spool.MAGIC, len(payload), 0) + payload
    with open(folder / name, "ab") as handle:
        handle.write(frame[: len(frame) // 2])  # what a process dying mid-write leaves
    assert _counts(store) == (500, 1, 1)
    assert _segments(store) == []

    registry.forget_stores()  # no store of this process may look at the spool meanwhile
    state.reset()  # nor the fluent API's client, which holds the store it had
    _run_child(KILLED_AFTER_SYNC, store, expect_rc=-signal.SIGKILL)
    (name, _), = spool.list_segments(folder)
    with open(folder / name, "ab") as handle:
        handle.write(frame)  # a whole frame whose checksum is wrong: damage, not a torn tail
        handle.write(frame)
    with pytest.warns(UserWarning, match="damaged"):  # found by the next store to open
        assert _counts(store) == (1000, 2, 2)
    assert (folder / (name + ".damaged")).exists()


def test_a_write_the_store_refuses_is_set_aside_and_raised_once(tmp_path):
    nbtrack.set_tracking_uri(tmp_path / "s")
    client = nbtrack.Client()
    store = client.store
    good = client.create_run("0").info.run_id
    # a run row the store cannot take (no status), queued beside good values
    store._writes.pending.add_run({"run_id": "bad", "experiment_id": "0", "status": None,
                                   "start_time": 1, "lifecycle_stage": "active"})
    for step in range(10):
        client.log_metric(good, "m", float(step), step=step)
    client.log_param(good, "p", "v")
    store.sync()
    with pytest.raises(WriteError, match="refused 1 value"):
        client.get_run(good)
    run = client.get_run(good)  # raised once only
    assert run.data.params == {"p": "v"} and run.data.metrics == {"m": 9.0}
    rejects = nbtrack.sql("SELECT error FROM spool_rejects")
    assert len(rejects) == 1 and "NOT NULL" in rejects["error"][0]
    client.log_metric(good, "m", 10.0, step=10)  # logging goes on
    assert client.get_run(good).data.metrics == {"m": 10.0}


def test_a_failing_spool_keeps_values_in_memory_and_says_so_once(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_SPOOL_DELAY", "0.01")
    nbtrack.set_tracking_uri(tmp_path / "s")
    client = nbtrack.Client()
    store = client.store
    run_id = client.create_run("0").info.run_id
    segment = store._writes.segment
    real = segment.append

    def full_disk(payload, sync=True):
        raise spool.SpoolWriteError("No space left on device")

    segment.append = full_disk
    client.log_metric(run_id, "m", 1.0)
    deadline = __import__("time").monotonic() + 10
    while store._writes.error is None and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.01)
    with pytest.raises(WriteError, match="No space left"):
        client.log_metric(run_id, "m", 2.0, step=1)
    assert store.has_unwritten()  # the first value waits in memory
    segment.append = real
    client.log_metric(run_id, "m", 3.0, step=2)
    history = client.get_metric_history(run_id, "m")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (2, 3.0)]


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_keeps_values_until_there_is_room(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(disk)], check=True)
    try:
        store = disk / "s"
        nbtrack.set_tracking_uri(store)
        client = nbtrack.Client()
        run_id = client.create_run("0").info.run_id
        client.flush()
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"\0" * 4096)
            except OSError:
                pass
        values = [float(i) for i in range(2000)]
        logged = 0
        with pytest.raises(WriteError, match=r"spool|durable"):
            for step, value in enumerate(values):
                client.log_metric(run_id, "m", value, step=step)
                logged += 1
            client.sync()
        # the spool thread keeps retrying while the disk is full (its back-off is at most 1 s);
        # its failures must not leave an error behind once a write succeeds again
        time.sleep(2.5)
        filler.unlink()
        client.flush()
        history = client.get_metric_history(run_id, "m")
        assert [m.value for m in history] == values[:logged]
    finally:
        nbtrack.Client().store.close()
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_values_wait_in_the_spool_while_another_program_holds_the_file(tmp_path):
    store = tmp_path / "s"
    DuckDBStore(store).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
         " sys.stdin.readline(); c.close()", str(store / "store.duckdb")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = """
            run = nbtrack.start_run()
            for step in range(100):
                nbtrack.log_metric("m", float(step), step=step)
            nbtrack.end_run()
            print(run.info.run_id)
        """
        env = {"NBTRACK_LOCK_TIMEOUT": "1", "NBTRACK_EXIT_MERGE_TIMEOUT": "0.2"}
        run_id = _run_child(code.replace("run = nbtrack.start_run()",
                                         "run = nbtrack.start_run(experiment_id='0')"),
                            store, env_extra=env)
    finally:
        holder.communicate("done\n", timeout=30)
    nbtrack.set_tracking_uri(store)
    assert len(nbtrack.Client().get_metric_history(run_id, "m")) == 100
    assert nbtrack.get_run(run_id).info.status == "FINISHED"


@pytest.mark.parametrize("rows", [3, 5000])
def test_frames_round_trip_every_value_bit_for_bit(rows):
    import math
    import struct

    values = [-0.0, math.nan, math.inf, -math.inf, 1e-310] * rows
    batch = Batch(metrics=[("r", f"k{i % 7}", v, i, 1000 + i) for i, v in enumerate(values)],
                  params=[("r", "p", "ünïcode")], tags={("r", "t"): None})
    back = frames.decode(frames.encode(batch))
    got = back.metrics + [row for t in back.metric_tables
                          for row in zip(*(t.column(i).to_pylist() for i in range(5)),
                                         strict=True)]
    assert len(got) == len(batch.metrics)
    for sent, came in zip(batch.metrics, got, strict=True):
        assert sent[:2] + sent[3:] == tuple(came[:2]) + tuple(came[3:])
        assert struct.pack("<d", sent[2]) == struct.pack("<d", came[2])
    assert back.params == [("r", "p", "ünïcode")] and back.tags == {("r", "t"): None}
    # the Python and the Arrow way agree (repr: NaN equals NaN there)
    assert repr(frames.latest_of_rows(batch.metrics)) == repr(frames.latest_by_key(
        frames.metrics_table(batch.metrics)))


def test_a_writer_that_dies_during_a_merge_keeps_its_later_frames(tmp_path, monkeypatch):
    from nbtrack.store import merge

    nbtrack.set_tracking_uri(tmp_path / "s")
    client = nbtrack.Client()
    run_id = client.create_run("0").info.run_id
    client.flush()
    writer = spool.Segment(tmp_path / "s" / "spool")  # another process's segment
    writer.append(frames.encode(Batch(metrics=[(run_id, "m", 1.0, 1, 1)])))
    apply = merge._apply

    def writer_appends_then_dies(conn, found, offsets, report):
        apply(conn, found, offsets, report)
        writer.append(frames.encode(Batch(metrics=[(run_id, "m", 2.0, 2, 2)])))
        writer.close()  # its lock goes: the owner is dead from now on

    monkeypatch.setattr(merge, "_apply", writer_appends_then_dies)
    with client.store._connection.use() as conn:
        client.store._writes.merge(conn, tidy=True)
    monkeypatch.setattr(merge, "_apply", apply)
    assert not list((tmp_path / "s" / "spool").glob("*.damaged"))
    history = client.get_metric_history(run_id, "m")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 2.0)]


def test_a_value_that_cannot_be_spooled_is_set_aside_and_the_rest_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_SPOOL_DELAY", "3600")  # one frame, written by sync() below
    nbtrack.set_tracking_uri(tmp_path / "s")
    client = nbtrack.Client()
    store = client.store
    run_id = client.create_run("0").info.run_id
    for step in range(2000):  # enough rows to travel as Arrow, which has no room for 2**70
        client.log_metric(run_id, "m", float(step), step=step)
    # past the checks at the call, as a bug might let it: a step no int64 holds
    store._writes.pending.add_metric(run_id, "m", -1.0, 2**70, 5)
    store.sync()
    with pytest.raises(WriteError, match="set them aside"):
        client.log_param(run_id, "p", "v")
    client.log_param(run_id, "p", "v")  # raised once
    history = client.get_metric_history(run_id, "m")
    assert [m.step for m in history] == list(range(2000))
    aside = (tmp_path / "s" / "spool" / "refused.txt").read_text()
    assert "1180591620717411303424" in aside and "metric 'm'" in aside


def test_a_value_the_store_refuses_at_merge_is_set_aside_and_raised_by_the_read(tmp_path):
    nbtrack.set_tracking_uri(tmp_path / "s")
    client = nbtrack.Client()
    store = client.store
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "m", 1.0, step=1)
    store._writes.pending.add_metric(run_id, "m", 2.0, 2**70, 5)  # JSON carries it; DuckDB not
    client.log_metric(run_id, "m", 3.0, step=3)
    with pytest.raises(WriteError, match="refused 1 value"):
        client.get_metric_history(run_id, "m")
    history = client.get_metric_history(run_id, "m")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (3, 3.0)]
    assert len(nbtrack.sql("SELECT * FROM spool_rejects")) == 1
