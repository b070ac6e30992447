"""Binding values and building Arrow columns without importing pandas: same results as pyarrow."""

import math
import os
import struct
import subprocess
import sys

import pyarrow as pa
import pytest

from nbtrack.store import no_pandas


@pytest.fixture
def no_pandas_path(monkeypatch):
    """Take the pandas-free path even though pandas is loaded in this test process."""
    monkeypatch.setattr(no_pandas, "pandas_loaded", lambda: False)


def _key(value):
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))  # -0.0 and NaN bit for bit
    return value


def _same(ours, theirs):
    ours.validate(full=True)
    assert ours.type == theirs.type and len(ours) == len(theirs)
    assert ours.null_count == theirs.null_count
    assert [_key(v) for v in ours.to_pylist()] == [_key(v) for v in theirs.to_pylist()]


def _outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # the same error type is the point
        return type(exc)


CASES = [
    (["a", None, "", "é ✓ 𝄞", "x" * 300], pa.string()),
    ([None, None], pa.string()),
    ([], pa.string()),
    ([0, None, -(2**63), 2**63 - 1], pa.int64()),
    ([2**63], pa.int64()),
    ([1, -(2**31), 2**31 - 1, None], pa.int32()),
    ([2**31], pa.int32()),
    ([1.5, None, -0.0, math.nan, math.inf, -math.inf, 3, 2**53], pa.float64()),
    ([2**60 + 1], pa.float64()),
    ([True, None, False, True] * 5, pa.bool_()),
    ([True, 1], pa.int64()),
    (["a", 1], pa.string()),
    (["\ud800"], pa.string()),
    ([1.0], pa.int64()),
    (["a", None, 1, 2.5, True, [1]], None),
    (["a", None], None), ([1, None, 2], None), ([1.5, 2], None), ([True, None], None),
    ([None, None], None), ([], None), ([2**63], None), ([b"x"], None), (["a", 1], None),
]


@pytest.mark.parametrize(("values", "type_"), CASES)
def test_arrow_array_matches_pyarrow(no_pandas_path, values, type_):
    ours = _outcome(no_pandas.arrow_array, values, type_)
    theirs = _outcome(pa.array, values, type_)
    if isinstance(theirs, type):
        assert ours is theirs
    else:
        _same(ours, theirs)


def test_arrow_array_tuples_arrays_and_long_lists(no_pandas_path):
    _same(no_pandas.arrow_array(("a", "b"), pa.string()), pa.array(["a", "b"]))
    existing = pa.array([1, 2])
    assert no_pandas.arrow_array(existing) is existing
    long = list(range(no_pandas.MAX_BUILT + 1))
    _same(no_pandas.arrow_array(long, pa.int64()), pa.array(long, pa.int64()))


def test_arrow_table_and_rows_match_pyarrow(no_pandas_path):
    columns = {"run_id": ["a", "b"], "n": [1, None], "dirty": [True, None], "gone": [None, None],
               "x": [0.5, 2]}
    ours, theirs = no_pandas.arrow_table(columns), pa.table(columns)
    assert ours.equals(theirs) and ours.schema == theirs.schema
    schema = pa.schema([("n", pa.int32()), ("run_id", pa.string())])
    assert no_pandas.arrow_table(columns, schema).equals(pa.table(columns, schema))
    metric = pa.schema([("run_id", pa.string()), ("key", pa.string()), ("value", pa.float64()),
                        ("step", pa.int64()), ("timestamp", pa.int64())])
    struct_type = pa.struct(list(metric))
    for rows in ([("r", "loss", -0.0, 0, 1), ("r", "acc", math.nan, 2**62, -5)], []):
        ours = no_pandas.arrow_rows(rows, metric)
        theirs = pa.Table.from_struct_array(pa.array(rows, type=struct_type))
        assert ours.schema == theirs.schema
        for name in metric.names:
            _same(ours.column(name).combine_chunks(), theirs.column(name).combine_chunks())
    with pytest.raises((pa.ArrowException, ValueError, TypeError)):
        no_pandas.arrow_rows([("r", "loss", 1.0)], metric)


def test_connection_binds_values_like_duckdb():
    import duckdb
    import pandas as pd

    conn = no_pandas.Connection(duckdb.connect())
    assert conn.execute("SELECT ?, ?, ?", [1, "x", None]).fetchall() == [(1, "x", None)]
    assert conn.execute("SELECT $a + 1", {"a": 2.5}).fetchone() == (3.5,)
    assert conn.execute("SELECT ?, ?", [pd.NaT, pd.NA]).fetchone() == (None, None)
    assert conn.sql("SELECT ?::INT * 2", params=[4]).fetchone() == (8,)
    conn.execute("CREATE TABLE t (a INT)")
    conn.executemany("INSERT INTO t VALUES (?)", [[1], [2]])
    assert conn.execute("SELECT sum(a) FROM t").fetchone() == (3,)
    conn.close()


_NO_PANDAS_SCRIPT = """
import sys, threading
import duckdb
from nbtrack.store import no_pandas
conn = no_pandas.Connection(duckdb.connect())
threads = conn.execute("SELECT current_setting('threads')").fetchone()[0]
assert conn.execute("SELECT ?, ?, ?", [1, "x", 2.5]).fetchall() == [(1, "x", 2.5)]
table = no_pandas.arrow_table({"a": list(range(1000)), "b": ["x", None] * 500})
conn.execute("BEGIN")
conn.register("_t", table)
assert conn.execute("SELECT current_setting('threads')").fetchone()[0] == 1
for _ in range(20):  # a scan on a worker thread would load pyarrow.dataset
    assert conn.execute("SELECT count(b), sum(a) FROM _t WHERE a > ?", [9]).fetchone() == (
        495, 499455)
conn.unregister("_t")
conn.execute("COMMIT")
assert conn.execute("SELECT current_setting('threads')").fetchone()[0] == threads
assert "pyarrow.dataset" not in sys.modules, "pyarrow.dataset was imported"
assert "pandas" not in sys.modules, "pandas was imported"
conn.register("_small", table)  # a large table gets the threads back (and pushdown)
conn.register("_large", __import__("pyarrow").concat_tables([table, table]))
assert conn.execute("SELECT current_setting('threads')").fetchone()[0] == threads
assert conn.execute("SELECT count(*) FROM _large WHERE a < 10").fetchone() == (20,)
conn.unregister("_large")
conn.unregister("_small")
done = []  # another thread can still import pandas
thread = threading.Thread(target=lambda: done.append(__import__("pandas")))
thread.start()
thread.join(120)
assert done and conn.execute("SELECT ?", [1]).fetchone() == (1,)
"""


def test_nothing_imports_pandas_and_other_code_still_can(tmp_path):
    done = subprocess.run([sys.executable, "-c", _NO_PANDAS_SCRIPT], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr


def _metric_rows(seed):
    import random

    rng = random.Random(seed)
    values = [0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 2.5]
    return [(rng.choice("ab"), rng.choice(["k", "é", "z"]), rng.choice(values),
             rng.randint(0, 3), rng.randint(0, 3)) for _ in range(rng.randint(1, 60))]


@pytest.mark.parametrize("seed", range(40))
def test_latest_by_key_in_python_matches_arrow(monkeypatch, seed):
    from nbtrack.store import frames

    table = frames.metrics_table(_metric_rows(seed))
    small = frames.latest_by_key(table)
    monkeypatch.setattr(frames, "SMALL_LATEST", 0)
    by_arrow = frames.latest_by_key(table)
    assert [tuple(map(_key, row)) for row in small] == [tuple(map(_key, row)) for row in by_arrow]


def test_a_fresh_process_logging_a_run_does_not_import_pandas(tmp_path):
    script = ("import sys, nbtrack\n"
              "with nbtrack.start_run():\n"
              "    nbtrack.log_metric('m', 1.0)\n"
              "    nbtrack.log_param('p', 'v')\n"
              "    nbtrack.set_tag('t', 'x')\n"
              "nbtrack.flush()\n"
              "run = nbtrack.search_runs(output_format='list')[0]\n"
              "assert run.data.metrics == {'m': 1.0}, run.data\n"
              "assert 'pandas' not in sys.modules, 'pandas was imported'\n")
    env = {**os.environ, "NBTRACK_TRACKING_URI": str(tmp_path / "store"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
