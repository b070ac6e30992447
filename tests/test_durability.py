"""Nothing logged is lost: real kernels shut down, SIGKILL, a busy store, a stopped holder.

Every test drives nbtrack only through what a user has: its API, real processes and real
kernels. The contract they check:

- default mode: a ``log_*`` value is on disk within 100 ms of the call returning, whatever other
  processes do, and survives a SIGKILL after that;
- ``synchronous=True``: durable when the call returns;
- ``start_run`` / ``Client.create_run``: the run exists durably when the call returns, and the
  next process to open the store marks the run of a dead process KILLED;
- the end of a ``%%track`` cell and ``end_run``: the run and all its values are durable;
- ``nbtrack.flush()``: everything logged so far is durable and visible to other processes;
- readers in other processes see every durable value.

Child processes write what they did (each step, once its call returned, and a monotonic time)
to a side file or stdout, so the parent knows after a kill exactly which values must be there.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from durability_workers import metric_value

import nbtrack
from nbtrack.exceptions import NotFoundError

WORKERS = str(Path(__file__).with_name("durability_workers.py"))
# a default-mode value must be on disk this long after its call returned
DURABLE_WITHIN = 0.100


class Child:
    """A worker process: stdout is a pipe to read lines from, stderr goes to a file."""

    def __init__(self, tmp_path: Path, function: str, env: dict | None = None,
                 stdin: bool = False, **kwargs) -> None:
        self.function = function
        self.stderr_path = tmp_path / f"{function}-{time.monotonic_ns()}.stderr"
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, WORKERS, function, json.dumps(kwargs, default=str)],
                stdout=subprocess.PIPE, stderr=err, text=True,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def line(self, timeout: float = 60) -> str:
        """The next stdout line, failing (with the child's stderr) if none comes in time."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.kill()
                raise AssertionError(f"{self.function} said nothing for {timeout} s:\n"
                                     f"{self.stderr()}")
        text = self.proc.stdout.readline()
        assert text, f"{self.function} exited early:\n{self.stderr()}"
        return text.strip()

    def send(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 120) -> str:
        """Wait for a clean exit and return the rest of stdout."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.function} did not exit within {timeout} s:\n"
                                 f"{self.stderr()}") from None
        err = self.stderr()
        assert self.proc.returncode == 0, f"{self.function} exited {self.proc.returncode}:\n{err}"
        assert "Traceback" not in err, err
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=30)


def _steps(path: Path) -> list[tuple[int, float]]:
    """``(step, monotonic time after its call returned)`` from a child's side file."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            try:
                out.append((int(parts[0]), float(parts[1])))
            except ValueError:
                continue  # a line cut short by the kill
    return out


def _create_store(tmp_path: Path, store: Path) -> None:
    """Create the store in a short-lived process (so this test process opens it only to read)."""
    code = ("import nbtrack, sys; nbtrack.set_tracking_uri(sys.argv[1]); "
            "nbtrack.search_runs(search_all_experiments=True)")
    subprocess.run([sys.executable, "-c", code, str(store)], check=True, timeout=120)


def _history_problems(client, run_id: str, key: str, expected_steps) -> list[str]:
    """What is wrong with a run's history of ``key``: missing, doubled or wrong values."""
    history = client.get_metric_history(run_id, key)
    steps = [m.step for m in history]
    problems = []
    doubled = len(steps) - len(set(steps))
    if doubled:
        problems.append(f"{doubled} values stored twice")
    missing = sorted(set(expected_steps) - set(steps))
    if missing:
        problems.append(f"{len(missing)} of {len(set(expected_steps))} steps missing "
                        f"(first {missing[:5]})")
    wrong = [m.step for m in history if m.value != metric_value(m.step)]
    if wrong:
        problems.append(f"wrong values at steps {wrong[:5]}")
    return problems


# kernels that end right after their last tracked cell ---------------------------------------------
KERNELS, CELLS, STEPS, PARAMS = 6, 25, 40, 10


def _tracked_cell(kernel: int, cell: int) -> str:
    params = f"{{f'p{{j}}': f'{kernel}-{cell}-{{j}}' for j in range({PARAMS})}}"
    return (f"%%track -e closing -n k{kernel}-c{cell}\n"
            f"nbtrack.log_params({params})\n"
            f"for step in range({STEPS}):\n"
            f"    nbtrack.log_metric('loss', step * 0.5 + 0.25, step=step)\n")


@pytest.mark.slow
def test_kernels_shut_down_right_after_their_last_cell_keep_every_run(tmp_path, kernel_name):
    """Six notebooks run at once into one store; nbclient shuts each kernel down normally.

    The kernels wait for each other before their tracked cells, so that they end (and are
    shut down) at about the same time, as when several notebooks are closed together.
    """
    import nbformat

    store, arrived = tmp_path / "store", tmp_path / "arrived"
    arrived.mkdir()
    notebooks = []
    for kernel in range(KERNELS):
        together = (f"import os, time\nopen(os.path.join({str(arrived)!r}, '{kernel}'), 'w')"
                    f".close()\ndeadline = time.monotonic() + 120\n"
                    f"while len(os.listdir({str(arrived)!r})) < {KERNELS}:\n"
                    f"    assert time.monotonic() < deadline, 'the other kernels never came'\n"
                    f"    time.sleep(0.01)")
        cells = [f"%load_ext nbtrack\n%track_config --tracking-uri {store}\nimport nbtrack",
                 together]
        cells += [_tracked_cell(kernel, cell) for cell in range(CELLS)]
        path = tmp_path / f"nb{kernel}.ipynb"
        nbformat.write(nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)
        notebooks.append(path)
    children = [Child(tmp_path, "run_notebook", path=path, kernel_name=kernel_name, timeout=120)
                for path in notebooks]
    try:
        for child in children:
            child.finish(timeout=300)
    finally:
        for child in children:
            child.kill()

    # every cell ran and showed its summary: from then on its run must be durable
    for kernel, path in enumerate(notebooks):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells[2:]:
            texts = [o.get("data", {}).get("text/plain", "") for o in cell.outputs
                     if o["output_type"] == "display_data"]
            errors = [o for o in cell.outputs if o["output_type"] == "error"]
            assert not errors, f"kernel {kernel}: {errors[0]['ename']}: {errors[0]['evalue']}"
            assert any("FINISHED" in t for t in texts), f"kernel {kernel}: no summary: {texts}"

    problems = _tracked_run_problems(store, range(KERNELS))
    assert not problems, "\n".join(problems[:20])


def _execute(client, code: str) -> str:
    """Run ``code`` in a kernel; return the text of its displays, failing on an error."""
    texts = []

    def collect(msg):
        texts.append(msg["content"].get("data", {}).get("text/plain", ""))

    reply = client.execute_interactive(code, timeout=120, output_hook=collect)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(texts)


@pytest.mark.slow
def test_a_kernel_killed_right_after_its_last_summary_keeps_every_run(tmp_path, kernel_name):
    """Once a %%track cell's summary shows, its run is durable: SIGKILL the kernel right then."""
    from jupyter_client.manager import start_new_kernel

    store = tmp_path / "store"
    manager, client = start_new_kernel(kernel_name=kernel_name, cwd=str(tmp_path))
    try:
        _execute(client, f"%load_ext nbtrack\n%track_config --tracking-uri {store}\n"
                         "import nbtrack")
        for cell in range(CELLS):
            assert "FINISHED" in _execute(client, _tracked_cell(0, cell))
        manager.signal_kernel(signal.SIGKILL)  # no exit handler runs
        deadline = time.monotonic() + 30
        while manager.is_alive():
            assert time.monotonic() < deadline, "the kernel survived SIGKILL"
            time.sleep(0.01)
    finally:
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)
    problems = _tracked_run_problems(store, [0])
    assert not problems, "\n".join(problems[:20])


def _tracked_run_problems(store: Path, kernels) -> list[str]:
    """What a fresh reader finds wrong with the runs of the tracked cells of ``kernels``."""
    nbtrack.set_tracking_uri(store)
    client = nbtrack.Client()
    try:
        found = nbtrack.search_runs(experiment_names=["closing"], output_format="list")
    except NotFoundError:
        return ["the experiment 'closing' is missing: not one run was kept"]
    runs = {r.info.run_name: r for r in found}
    expected = {f"k{k}-c{c}" for k in kernels for c in range(CELLS)}
    problems = [f"{len(expected - set(runs))} of {len(expected)} runs missing: "
                f"{sorted(expected - set(runs))[:8]}"] if expected - set(runs) else []
    for name, run in sorted(runs.items()):
        kernel, cell = (int(part[1:]) for part in name.split("-"))
        if run.info.status != "FINISHED":
            problems.append(f"{name}: status {run.info.status}")
        params = {f"p{j}": f"{kernel}-{cell}-{j}" for j in range(PARAMS)}
        if {k: run.data.params.get(k) for k in params} != params:
            problems.append(f"{name}: params {sorted(run.data.params)}")
        problems += [f"{name}: {p}" for p in
                     _history_problems(client, run.info.run_id, "loss", range(STEPS))]
    return problems


# SIGKILL at random moments ------------------------------------------------------------------------
TRIALS = 20


def _kill_trials(tmp_path: Path, synchronous: bool, seed: int) -> list[dict]:
    """Start a logging child, SIGKILL it at a random moment; repeat. One store for all trials."""
    store = tmp_path / "store"
    rng = random.Random(seed)
    trials = []
    for trial in range(TRIALS):
        steps_file = tmp_path / f"steps-{trial}.txt"
        child = Child(tmp_path, "log_until_killed", store=store, steps_file=steps_file,
                      synchronous=synchronous, pace=0.002)
        try:
            kind, run_id = child.line().split()
            assert kind == "run"
            time.sleep(rng.uniform(0.0, 0.8))
            killed_at = time.monotonic()  # before the signal is sent: the values' deadline
            os.kill(child.pid, signal.SIGKILL)
            child.proc.wait(timeout=30)
        finally:
            child.kill()
        trials.append({"run_id": run_id, "killed_at": killed_at,
                       "steps": _steps(steps_file)})
    return trials


def _check_killed_runs(store: Path, trials: list[dict], required) -> list[str]:
    nbtrack.set_tracking_uri(store)
    client = nbtrack.Client()
    problems = []
    for n, trial in enumerate(trials):
        steps = trial["steps"]
        must = [s for s, t in steps if required(t, trial["killed_at"])]
        last = max((s for s, _ in steps), default=-1)
        try:
            run = client.get_run(trial["run_id"])
        except NotFoundError:
            problems.append(f"trial {n}: the run is missing ({len(must)} values required)")
            continue
        if run.info.status != "KILLED":
            problems.append(f"trial {n}: status {run.info.status}, not KILLED")
        found = client.get_metric_history(trial["run_id"], "m")
        beyond = [m.step for m in found if m.step > last + 1]
        if beyond:
            problems.append(f"trial {n}: steps never logged are stored: {beyond[:5]}")
        problems += [f"trial {n} ({len(steps)} steps returned, {len(must)} required): {p}"
                     for p in _history_problems(client, trial["run_id"], "m", must)]
    return problems


@pytest.mark.slow
def test_sigkill_keeps_every_value_logged_100ms_before_it(tmp_path):
    """Default mode: a value whose call returned 100 ms before the SIGKILL is on disk."""
    trials = _kill_trials(tmp_path, synchronous=False, seed=20240601)
    problems = _check_killed_runs(
        tmp_path / "store", trials, lambda returned, killed: returned <= killed - DURABLE_WITHIN)
    assert sum(len(t["steps"]) for t in trials) > 0
    assert not problems, f"{len(problems)} problems in {TRIALS} trials:\n" + "\n".join(problems)


@pytest.mark.slow
def test_sigkill_keeps_every_synchronous_value(tmp_path):
    """``synchronous=True``: every value whose call returned before the SIGKILL is on disk."""
    trials = _kill_trials(tmp_path, synchronous=True, seed=20240602)
    problems = _check_killed_runs(
        tmp_path / "store", trials, lambda returned, killed: returned <= killed)
    assert sum(len(t["steps"]) for t in trials) > 0
    assert not problems, f"{len(problems)} problems in {TRIALS} trials:\n" + "\n".join(problems)


# a run killed right after it started; flush -------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("how", ["start_run", "create_run"])
def test_a_run_killed_right_after_it_started_is_kept_as_killed(tmp_path, how):
    store = tmp_path / "store"
    run_ids = []
    for _ in range(3):
        child = Child(tmp_path, "start_and_wait", store=store, how=how)
        try:
            kind, run_id = child.line().split()
            os.kill(child.pid, signal.SIGKILL)  # at once: well inside the run's first second
            child.proc.wait(timeout=30)
        finally:
            child.kill()
        assert kind == "run"
        run_ids.append(run_id)
    nbtrack.set_tracking_uri(store)
    found = {}
    for run_id in run_ids:
        try:
            found[run_id] = nbtrack.get_run(run_id).info.status
        except NotFoundError:
            found[run_id] = "missing"
    assert set(found.values()) == {"KILLED"}, found


@pytest.mark.slow
def test_flush_makes_every_value_visible_to_other_processes(tmp_path):
    store = tmp_path / "store"
    child = Child(tmp_path, "log_flush_and_wait", store=store, n_metrics=500)
    try:
        kind, run_id = child.line().split()
        assert kind == "flushed"
        # read while the writer is alive, its run open and its process idle
        nbtrack.set_tracking_uri(store)
        client = nbtrack.Client()
        run = client.get_run(run_id)
        assert run.info.status == "RUNNING"
        assert run.data.params == {f"p{k}": f"v{k}" for k in range(10)}
        assert run.data.metrics == {"m": metric_value(499)}
        assert not _history_problems(client, run_id, "m", range(500))
    finally:
        child.kill()


# a store held open by a program outside nbtrack ---------------------------------------------------
HOLD_FILE = """
import sys, time, duckdb
deadline = time.monotonic() + 60
while True:
    try:
        conn = duckdb.connect(sys.argv[1])
        break
    except duckdb.IOException:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.01)
print("held", flush=True)
sys.stdin.readline()
conn.close()
"""


@pytest.mark.slow
def test_a_store_held_by_another_program_at_exit_loses_nothing(tmp_path):
    lock_timeout = 2.0
    env = {"NBTRACK_LOCK_TIMEOUT": str(lock_timeout)}
    store = tmp_path / "store"
    _create_store(tmp_path, store)
    db_file = store / "store.duckdb"
    assert db_file.exists()

    def log_and_exit(hold: bool) -> tuple[str, float]:
        child = Child(tmp_path, "log_after_go", env=env, stdin=True, store=store,
                      n_metrics=2000, n_params=10)
        holder = None
        try:
            kind, run_id = child.line().split()
            assert kind == "ready"
            if hold:
                holder = subprocess.Popen([sys.executable, "-c", HOLD_FILE, str(db_file)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          text=True)
                assert holder.stdout.readline().strip() == "held"
            started = time.monotonic()
            child.send("go")
            child.finish(timeout=120)
            took = time.monotonic() - started
        finally:
            child.kill()
            if holder is not None:
                holder.communicate("release\n", timeout=60)  # lets go only now
        return run_id, took

    free_run, free_time = log_and_exit(hold=False)
    held_run, held_time = log_and_exit(hold=True)
    print(f"logging and exiting: {free_time:.2f} s with the file free, {held_time:.2f} s held")
    problems = []
    # waiting for the file is bounded: at most twice the lock timeout more than when it is free
    if held_time > free_time + 2 * lock_timeout + 2.0:
        problems.append(f"held: logging and exiting took {held_time:.1f} s "
                        f"(free: {free_time:.1f} s)")

    nbtrack.set_tracking_uri(store)
    client = nbtrack.Client()
    for run_id in (free_run, held_run):
        try:
            run = client.get_run(run_id)
        except NotFoundError:
            problems.append(f"{run_id}: the run is missing")
            continue
        if run.info.status != "FINISHED":
            problems.append(f"{run_id}: status {run.info.status}")
        if run.data.params != {f"p{k}": f"v{k}" for k in range(10)}:
            problems.append(f"{run_id}: params {run.data.params}")
        problems += [f"{run_id}: {p}" for p in _history_problems(client, run_id, "m",
                                                                  range(2000))]
    assert not problems, "\n".join(problems)


# a stopped process that holds the store -----------------------------------------------------------
def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


def _stop_while_holding(pid: int, db_file: Path) -> None:
    """SIGSTOP ``pid`` at a moment it has the store file open (probing with plain DuckDB)."""
    import duckdb

    for _ in range(50):
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while not _stopped(pid):
            assert time.monotonic() < deadline, "the process did not stop"
            time.sleep(0.005)
        try:
            duckdb.connect(str(db_file)).close()
        except duckdb.IOException:
            return  # it holds the file, and it is stopped
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the searching process never held the store file when stopped")


STOP_ROUNDS = 5


def _log_while_stopped(tmp_path: Path, store: Path, holder: Child, env: dict,
                       lock_timeout: float) -> str:
    """One round: a logger starts its run, the holder is stopped holding the store, the logger
    logs, ends its run and exits, a reader reads; then the holder goes on. Returns the run id.
    """
    logger = Child(tmp_path, "log_after_go", env=env, stdin=True, store=store,
                   n_metrics=1000, n_params=10)
    reader = None
    try:
        kind, run_id = logger.line().split()
        assert kind == "ready"
        _stop_while_holding(holder.pid, store / "store.duckdb")
        started = time.monotonic()
        logger.send("go")
        reader = Child(tmp_path, "read_once", env=env, store=store)
        timings = json.loads(logger.finish(timeout=60).strip().splitlines()[-1])
        logger_exit = time.monotonic() - started
        read = json.loads(reader.finish(timeout=60).strip().splitlines()[-1])
        assert _stopped(holder.pid)  # it held the store all along
        print(f"logger: {timings}, exited after {logger_exit:.2f} s; reader: {read}")
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        for child in (logger, reader):
            if child is not None:
                child.kill()
    # logging never waits for the store (a call that did would take the lock timeout)
    assert timings["max_call"] < lock_timeout / 2, timings
    assert timings["loop"] < lock_timeout, timings
    # ending the run and exiting wait for the store at most a bounded time
    assert timings["end_run"] < lock_timeout + 2.0, timings
    assert logger_exit < 2 * lock_timeout + 5.0, (logger_exit, timings)
    # a reader gets the data or says clearly that the store is busy, within the timeout
    assert read["outcome"] in ("data", "busy"), read
    assert read["seconds"] < lock_timeout + 3.0, read
    if read["outcome"] == "busy":
        assert str(store.name) in read["message"], read
    return run_id


@pytest.mark.slow
def test_a_stopped_process_holding_the_store_blocks_no_one(tmp_path):
    """A process searching in a loop is SIGSTOPped while it holds the store, several times."""
    lock_timeout = 2.0
    env = {"NBTRACK_LOCK_TIMEOUT": str(lock_timeout)}
    store = tmp_path / "store"
    _create_store(tmp_path, store)
    stop_file = tmp_path / "stop"
    holder = Child(tmp_path, "hold_by_searching", env=env, store=store, stop_file=stop_file)
    try:
        assert holder.line() == "holding"
        run_ids = [_log_while_stopped(tmp_path, store, holder, env, lock_timeout)
                   for _ in range(STOP_ROUNDS)]
        stop_file.touch()
        holder.finish(timeout=60)
    finally:
        holder.kill()

    nbtrack.set_tracking_uri(store)
    client = nbtrack.Client()
    problems = []
    for run_id in run_ids:
        try:
            run = client.get_run(run_id)
        except NotFoundError:
            problems.append(f"{run_id}: the run is missing")
            continue
        if run.info.status != "FINISHED":
            problems.append(f"{run_id}: status {run.info.status}")
        if run.data.params != {f"p{k}": f"v{k}" for k in range(10)}:
            problems.append(f"{run_id}: params {run.data.params}")
        problems += [f"{run_id}: {p}" for p in _history_problems(client, run_id, "m",
                                                                  range(1000))]
    assert not problems, "\n".join(problems)


# many writers and a polling reader ----------------------------------------------------------------
@pytest.mark.slow
def test_eight_writers_and_a_polling_reader_lose_nothing(tmp_path):
    store = tmp_path / "store"
    stop_file, seen_file = tmp_path / "stop", tmp_path / "seen.json"
    reader = Child(tmp_path, "poll_latest", store=store, stop_file=stop_file, out_file=seen_file)
    writers = [Child(tmp_path, "log_continuously", store=store, worker=w, seconds=6.0,
                     pace=0.001, samples_file=tmp_path / f"samples-{w}.txt", every=10)
               for w in range(8)]
    try:
        logged = {}
        for writer in writers:
            run_id, steps = writer.finish(timeout=180).split()
            logged[run_id] = int(steps)
        stop_file.touch()
        reader.finish(timeout=180)
    finally:
        for child in (reader, *writers):
            child.kill()
    seen = json.loads(seen_file.read_text())
    assert seen["errors"] == [], seen["errors"][:5]
    # the reader's last search, after every writer ended its run, saw each run's last value
    assert seen["final"] == {run_id: n - 1 for run_id, n in logged.items()}

    # lag from the call returning to the reader seeing it (the benchmark holds the target)
    first_seen: dict[str, list] = {}
    for run_id, step, at in seen["seen"]:
        first_seen.setdefault(run_id, []).append((step, at))
    lags = []
    for w in range(8):
        lines = (tmp_path / f"samples-{w}.txt").read_text().splitlines()
        run_id = lines[0].split()[1]
        for step, returned in _steps(tmp_path / f"samples-{w}.txt"):
            at = next(a for s, a in first_seen[run_id] if s >= step)
            lags.append(max(at - returned, 0.0))
    print(f"lag to visible in another process: median {statistics.median(lags):.3f} s, "
          f"max {max(lags):.3f} s, {len(lags)} samples, {seen['polls']} searches")

    nbtrack.set_tracking_uri(store)
    client = nbtrack.Client()
    problems = []
    for run_id, n in logged.items():
        status = client.get_run(run_id).info.status
        if status != "FINISHED":
            problems.append(f"{run_id}: status {status}")
        problems += [f"{run_id}: {p}" for p in _history_problems(client, run_id, "m", range(n))]
    assert not problems, "\n".join(problems)
