"""Damaged stores: told apart from busy ones at once, checked and salvaged by ``nbtrack doctor``.

Every damage here is real: bytes flipped in a real DuckDB file, at places found from DuckDB's
own storage tables, and each test first checks that plain DuckDB fails on the damaged file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import duckdb
import pytest

import nbtrack
from nbtrack import cli
from nbtrack.exceptions import (
    InvalidValueError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
)
from nbtrack.store import doctor, registry
from nbtrack.store.connection import damage_error, is_lock_conflict, open_error
from nbtrack.tracking import fluent

HEADER = 3 * 4096  # DuckDB's file header and its two database headers
N_RUNS = 6


def _flip(path, offset: int, n: int = 64) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        data = handle.read(n)
        handle.seek(offset)
        handle.write(bytes(b ^ 0xFF for b in data))


def _block(conn, block_id: int) -> int:
    block_size = conn.execute("PRAGMA database_size").fetchone()[2]
    return HEADER + block_id * block_size + 8  # past the block's checksum


def _data_offset(db, table: str) -> int:
    """Where in the file the first stored column segment of ``table`` starts."""
    with duckdb.connect(str(db), read_only=True) as conn:
        block_id, offset = conn.execute(
            f"SELECT block_id, block_offset FROM pragma_storage_info('{table}') "
            "WHERE block_id >= 0 ORDER BY row_group_id, block_offset LIMIT 1").fetchone()
        return _block(conn, block_id) + offset


def _metadata_offset(db) -> int:
    """Where the catalog's first metadata block holds data."""
    with duckdb.connect(str(db), read_only=True) as conn:
        block_id = conn.execute("PRAGMA metadata_info").fetchone()[0]
        return _block(conn, block_id) + 100


def _read_fails(db, table: str | None = None) -> str:
    """Plain DuckDB's error on the damaged file (opening it, or reading ``table``)."""
    with pytest.raises(duckdb.Error) as info:
        conn = duckdb.connect(str(db), read_only=True)
        try:
            conn.execute(f"SELECT * FROM {table}").fetchall()
        finally:
            conn.close()
    return str(info.value)


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def built(store_dir):
    """A closed store of ``N_RUNS`` runs with params, a metric history and an artifact each."""
    nbtrack.set_experiment("exp")
    for i in range(N_RUNS):
        with nbtrack.start_run(run_name=f"r{i}"):
            nbtrack.log_params({"i": str(i), "lr": "0.1"})
            for step in range(50):
                nbtrack.log_metric("loss", 1.0 / (step + 1), step=step)
            nbtrack.log_text(f"hello {i}", "notes.txt")
    registry.forget_stores()  # closes the file: all of it is checkpointed
    fluent._client_cache = None
    return store_dir


def _doctor(*args) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["doctor", *map(str, args), "--no-progress"])
    return code, out.getvalue()


# opening: damaged means damaged, at once ----------------------------------------------------
def test_a_damaged_catalog_is_reported_as_corrupt_at_once(built, monkeypatch):
    db = built / "store.duckdb"
    _flip(db, _metadata_offset(db))
    assert "Corrupt database file" in _read_fails(db)
    monkeypatch.setenv("NBTRACK_LOCK_TIMEOUT", "100")  # the old code waited this long
    with pytest.raises(StoreCorruptError) as info:
        nbtrack.Client()
    message = str(info.value)
    assert str(db) in message and "is damaged" in message
    assert "Corrupt database file" in message and "block at location" in message
    assert f"nbtrack doctor {db}" in message and "backup" in message


def test_damage_found_by_the_first_read_is_corrupt_too(built, monkeypatch):
    db = built / "store.duckdb"
    _flip(db, _data_offset(db, "nbtrack_meta") + 4, 32)
    duckdb.connect(str(db), read_only=True).close()  # the file opens ...
    assert "Corrupt database file" in _read_fails(db, "nbtrack_meta")  # ... its meta does not
    monkeypatch.setenv("NBTRACK_LOCK_TIMEOUT", "100")
    with pytest.raises(StoreCorruptError, match=r"is damaged .*Corrupt database file"):
        nbtrack.Client()


def test_damage_found_by_a_later_read_is_corrupt_and_the_store_goes_on(built):
    db = built / "store.duckdb"
    _flip(db, _data_offset(db, "metrics") + 8)
    assert "Corrupt database file" in _read_fails(db, "metrics")
    client = nbtrack.Client()
    run = client.search_runs(["1"], order_by=["attributes.run_name"])[0]
    with pytest.raises(StoreCorruptError, match="nbtrack doctor"):
        client.get_metric_history(run.info.run_id, "loss")
    assert client.get_run(run.info.run_id).data.params["i"] == "0"  # reopened, still usable


def test_a_corrupt_error_hidden_behind_another_error_is_found():
    corrupt = duckdb.IOException(
        "IO Error: Corrupt database file: computed checksum 1 does not match stored checksum 2 "
        "in block at location 4096")
    try:
        try:
            raise corrupt
        except duckdb.Error as exc:
            raise InvalidValueError(f"nbtrack.sql: {exc}") from None
    except InvalidValueError as wrapped:
        error = damage_error(wrapped, "/s/store.duckdb")
    assert isinstance(error, StoreCorruptError) and "location 4096" in str(error)
    wrapped = duckdb.InvalidInputException(
        "Invalid Input Error: Attempting to execute an unsuccessful or closed pending query "
        "result\nError: IO Error: Corrupt database file: computed checksum 1 does not match "
        "stored checksum 2 in block at location 8")
    assert damage_error(wrapped, "/s").detail.startswith("IO Error: Corrupt database file")
    assert damage_error(duckdb.CatalogException("Table x does not exist"), "/s") is None


def test_open_failures_that_are_not_damage_are_told_apart():
    version = duckdb.IOException(
        "IO Error: Trying to read a database file with version number 99, but we can only read "
        "versions between 64 and 67.")
    assert isinstance(open_error(version, "/s/store.duckdb"), StoreVersionError)
    full = duckdb.IOException('IO Error: Could not write file "/s/store.duckdb": No space left '
                              "on device")
    error = open_error(full, "/s/store.duckdb")
    assert type(error) is StoreError and "not known to be damaged" in str(error)
    garbage = duckdb.IOException(
        'IO Error: The file "/s/store.duckdb" exists, but it is not a valid DuckDB database file!')
    assert "not a DuckDB database file" in str(open_error(garbage, "/s/store.duckdb"))
    assert open_error(duckdb.ConstraintException("Duplicate key"), "/s", first_read=True) is None


# opening: busy means busy -------------------------------------------------------------------
@pytest.mark.slow
def test_a_real_lock_conflict_is_still_busy(built, monkeypatch):
    db = built / "store.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); sys.stdin.readline()", str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(duckdb.Error) as info:
            duckdb.connect(str(db))
        assert is_lock_conflict(info.value)
        monkeypatch.setenv("NBTRACK_LOCK_TIMEOUT", "0.5")
        with pytest.raises(StoreBusyError, match=rf"outside nbtrack \(.*PID {holder.pid}\)"):
            nbtrack.Client().search_runs(["1"])
    finally:
        holder.communicate("done\n", timeout=30)
    assert nbtrack.Client().search_runs(["1"])  # free again


def test_a_connection_of_this_process_with_other_settings_is_busy(built):
    other = duckdb.connect(str(built / "store.duckdb"), read_only=True)
    try:
        with pytest.raises(StoreBusyError, match="already open in this process"):
            nbtrack.Client().search_runs(["1"])
    finally:
        other.close()


# nbtrack doctor -----------------------------------------------------------------------------
def test_doctor_says_a_healthy_store_is_healthy(built):
    code, out = _doctor(built)
    assert code == 0, out
    assert "The store is healthy" in out and f"ok         runs: {N_RUNS} rows" in out
    assert "Schema version: 2" in out and f"Artifacts: {N_RUNS} referenced, 0 missing" in out


@pytest.mark.slow
def test_doctor_names_the_damage(built):
    db = built / "store.duckdb"
    _flip(db, _data_offset(db, "metrics") + 8)
    assert "Corrupt database file" in _read_fails(db, "metrics")
    (built / "artifacts").joinpath(os.listdir(built / "artifacts")[0], "notes.txt").unlink()
    before = _sha256(db)
    code, out = _doctor(built)
    assert code == 1, out
    assert "DAMAGED    metrics: " in out and "Corrupt database file" in out
    assert "block at location" in out and "rows 0-" in out
    assert f"ok         runs: {N_RUNS} rows" in out and f"ok         params: {2 * N_RUNS}" in out
    assert "1 missing" in out and "notes.txt" in out
    assert "--repair" in out
    assert _sha256(db) == before


@pytest.mark.slow
def test_doctor_repair_salvages_the_readable_runs(built, tmp_path):
    db = built / "store.duckdb"
    _flip(db, _data_offset(db, "metrics") + 8)
    assert "Corrupt database file" in _read_fails(db, "metrics")
    before = _sha256(db)
    out_dir = tmp_path / "repaired"
    code, out = _doctor(built, "--repair", out_dir)
    assert code == 0, out
    assert "Lost:\n  metrics: " in out and f"({N_RUNS} runs)" in out
    assert _sha256(db) == before  # the damaged file is untouched
    registry.forget_stores()
    client = nbtrack.Client(str(out_dir))
    runs = client.search_runs(["1"], order_by=["attributes.run_name"])
    assert [r.info.run_name for r in runs] == [f"r{i}" for i in range(N_RUNS)]
    assert [r.data.params["i"] for r in runs] == [str(i) for i in range(N_RUNS)]
    assert all(r.data.metrics["loss"] == 1 / 50 for r in runs)  # latest values survive
    assert client.download_artifacts(runs[0].info.run_id, "notes.txt")
    assert _doctor(out_dir)[0] == 0


@pytest.mark.slow
def test_doctor_repair_refills_lost_runs_from_the_run_index(built, tmp_path):
    db = built / "store.duckdb"
    _flip(db, _data_offset(db, "runs") + 8)
    assert "Corrupt database file" in _read_fails(db, "runs")
    code, out = _doctor(built)
    assert code == 1 and "DAMAGED    runs: 0 of 6 rows readable" in out
    code, out = _doctor(built, "--repair", tmp_path / "r")
    assert code == 0, out
    assert f"runs: {N_RUNS} rows ({N_RUNS} rows refilled from run_index)" in out
    registry.forget_stores()
    runs = nbtrack.Client(str(tmp_path / "r")).search_runs(["1"])
    assert sorted(r.info.run_name for r in runs) == [f"r{i}" for i in range(N_RUNS)]


@pytest.mark.slow
def test_doctor_reads_through_the_older_header_when_the_newest_is_damaged(built, tmp_path):
    db = built / "store.duckdb"
    client = nbtrack.Client()
    late = client.create_run(client.get_experiment_by_name("exp").experiment_id,
                             run_name="late")
    client.set_terminated(late.info.run_id)
    registry.forget_stores()  # one more checkpoint: the newest header is rewritten
    for offset in (4096, 8192):  # which header is the newest: the one whose damage matters
        shutil.copyfile(db, tmp_path / "probe.duckdb")
        _flip(tmp_path / "probe.duckdb", offset + 100)
        try:
            duckdb.connect(str(tmp_path / "probe.duckdb"), read_only=True).close()
        except duckdb.Error:
            break
    _flip(db, offset + 100)
    assert f"location {offset}" in _read_fails(db)
    code, out = _doctor(built)
    assert code == 1 and f"newest header (byte {offset}) is unreadable" in out
    runs = re.search(r"ok         runs: (\d+) rows", out)  # as of the checkpoint before
    assert runs and int(runs.group(1)) >= N_RUNS, out
    code, out = _doctor(built, "--repair", tmp_path / "r")
    assert code == 0, out
    registry.forget_stores()
    runs = nbtrack.Client(str(tmp_path / "r")).search_runs(["1"])
    # "late" comes back only if the spool still held it
    assert {f"r{i}" for i in range(N_RUNS)} <= {r.info.run_name for r in runs}


_KILLED_WRITER = """
import os, signal, sys
import nbtrack
nbtrack.set_tracking_uri(sys.argv[1])
nbtrack.set_experiment("exp")
nbtrack.start_run(run_name="killed")
for step in range(20):
    nbtrack.log_metric("m", float(step), step=step)
nbtrack.Client().sync()  # durable in the spool; merging waits for NBTRACK_FLUSH_INTERVAL
os.kill(os.getpid(), signal.SIGKILL)
"""
_KILLED_DUCKDB = """
import os, signal, sys
import duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("CREATE TABLE scratch AS SELECT range AS x FROM range(5000)")
os.kill(os.getpid(), signal.SIGKILL)  # before any checkpoint: the change is in the WAL only
"""


@pytest.mark.slow
def test_a_damaged_wal_loses_nothing_the_spool_still_holds(built, tmp_path):
    db, wal = built / "store.duckdb", built / "store.duckdb.wal"
    env = {**os.environ, "NBTRACK_FLUSH_INTERVAL": "1000"}
    for program, target in ((_KILLED_WRITER, built), (_KILLED_DUCKDB, db)):
        proc = subprocess.run([sys.executable, "-c", program, str(target)], env=env,
                              timeout=120)
        assert proc.returncode == -signal.SIGKILL
    assert wal.exists() and list((built / "spool").glob("*.seg"))
    _flip(wal, wal.stat().st_size // 2)
    assert "Corrupt WAL file" in _read_fails(db)
    with pytest.raises(StoreCorruptError, match="Corrupt WAL file"):
        nbtrack.Client().search_runs(["1"])
    registry.forget_stores()
    code, out = _doctor(built)
    assert code == 1 and "store.duckdb.wal, its log of the changes" in out
    assert "bytes not merged yet" in out
    code, out = _doctor(built, "--repair", tmp_path / "r")
    assert code == 0, out
    registry.forget_stores()
    client = nbtrack.Client(str(tmp_path / "r"))
    runs = {r.info.run_name: r for r in client.search_runs(["1"])}
    assert set(runs) == {"killed", *(f"r{i}" for i in range(N_RUNS))}
    assert len(client.get_metric_history(runs["killed"].info.run_id, "m")) == 20


def test_doctor_refuses_a_folder_that_is_not_new_and_an_absent_store(built, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert _doctor(built, "--repair", tmp_path / "full")[0] == 2
    assert (tmp_path / "full" / "x").exists()
    assert _doctor(tmp_path / "nowhere")[0] == 2


def test_doctor_takes_the_store_lock_to_copy(built, monkeypatch):
    from nbtrack.store.locking import StoreLock

    lock = StoreLock(built)
    code = "from nbtrack.store.locking import StoreLock; import sys, pathlib, time; " \
           "l = StoreLock(pathlib.Path(sys.argv[1])); l.acquire(5); print('held', flush=True);" \
           " sys.stdin.readline()"
    holder = subprocess.Popen([sys.executable, "-c", code, str(built)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(StoreBusyError, match="copies the store file under this lock"):
            doctor.check(built, progress=False, lock_timeout=0.3)
        assert time.monotonic() - started < 10
    finally:
        holder.communicate("\n", timeout=30)
    assert not lock.held
