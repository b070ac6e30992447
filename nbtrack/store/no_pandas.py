"""Bind values in DuckDB and build Arrow columns without importing pandas.

Importing pandas costs about 0.25 s of CPU (``pyarrow.dataset`` about 0.1 s more), most of a short
script's time, and nbtrack needs it only to hand out DataFrames. Two libraries import it on their
own:

- duckdb's Python binding (1.5) checks each bound value against ``pandas.NaT`` and
  ``pandas.NA``, importing pandas to do so, and loads ``pyarrow.dataset`` (which loads pandas) to
  scan a registered Arrow table. It imports with ``PyImport_Import``, which calls the
  ``__import__`` found in the builtins of the Python frame that called into duckdb.
  ``Connection`` calls duckdb from a function whose builtins refuse to import pandas while it
  is not loaded (and ``pyarrow.dataset`` while only small Arrow tables are registered). duckdb
  takes a failed import as "not installed": it skips the pandas check, which is exact, since no
  value can be a pandas object before pandas is loaded, and scans Arrow tables without pushdown,
  which gives the same rows. Nothing global changes: ``sys.modules``, ``sys.meta_path`` and other
  threads' imports are untouched, and once anything loads the modules, duckdb finds them.
- pyarrow's ``pa.array`` and ``pa.table`` ask pandas whether a list is a Series, and remember the
  answer for the life of the process, so refusing the import there would change pyarrow for the
  user's own code. ``arrow_array`` and ``arrow_table`` build small columns of plain Python values
  (str, int, float, bool, None) from buffers instead while pandas is not loaded, and hand
  anything else (other types, values pyarrow would refuse, large lists) to pyarrow unchanged.
"""

from __future__ import annotations

import builtins
import sys
import types
from array import array
from itertools import accumulate

#: Longer lists go to pyarrow's converter, several times faster per value: for them the import
#: of pandas is a small share (and a log_metric loop's batches must not hold the interpreter).
MAX_BUILT = 1_000
_INT_CODES = {"int64": "q", "int32": "i"}
_INT_RANGES = {"int64": (-(2**63), 2**63 - 1), "int32": (-(2**31), 2**31 - 1)}


def _refusing(*refused: str):
    """A function ``call(method, *args)`` whose callees cannot import ``refused`` modules.

    The refusal holds only while a module is not loaded, and only for imports made through the
    frame of ``call`` itself: C code called from it, such as duckdb's.
    """

    def _import(name, globals=None, locals=None, fromlist=(), level=0):
        if name in refused and level == 0 and name not in sys.modules:
            raise ImportError(f"nbtrack does not load {name} for DuckDB", name=name)
        return builtins.__import__(name, globals, locals, fromlist, level)

    def call(method, *args, **kwargs):
        return method(*args, **kwargs)

    scope = {"__builtins__": {**vars(builtins), "__import__": _import}}
    return types.FunctionType(call.__code__, scope, "call")


_without_pandas = _refusing("pandas")
#: While small Arrow tables are registered: no pushdown, so no ``pyarrow.dataset`` either.
_without_dataset = _refusing("pandas", "pyarrow.dataset")


class Connection:
    """A DuckDB connection whose statements bind values without importing pandas.

    ``execute``, ``executemany``, ``sql``, ``register`` and ``unregister`` take the same
    arguments as DuckDB's and return what it returns; every other attribute is the wrapped
    connection's.

    DuckDB scans a registered Arrow table in whichever of its threads gets there first, and a
    worker thread has no Python frame, so its import of ``pyarrow.dataset`` is not refused. So
    while only small Arrow tables (up to ``MAX_BUILT`` rows) are registered in a process without
    pandas and ``pyarrow.dataset``, DuckDB runs on the calling thread alone (``SET threads = 1``);
    it gets its threads back at the first statement after they are unregistered, or as soon as a
    larger table is registered: for those the imports are a small share.
    """

    __slots__ = ("_large", "_small", "_threads_limited", "raw")

    def __init__(self, raw) -> None:
        self.raw = raw
        self._small: set[str] = set()
        self._large: set[str] = set()
        self._threads_limited = False

    def execute(self, *args, **kwargs):
        """``DuckDBPyConnection.execute``, binding values without importing pandas."""
        if self._threads_limited and not self._small:
            self._limit_threads(False)
        call = _without_dataset if self._threads_limited else _without_pandas
        return call(self.raw.execute, *args, **kwargs)

    def executemany(self, *args, **kwargs):
        """``DuckDBPyConnection.executemany``, binding values without importing pandas."""
        return _without_pandas(self.raw.executemany, *args, **kwargs)

    def sql(self, *args, **kwargs):
        """``DuckDBPyConnection.sql``, binding values without importing pandas."""
        return _without_pandas(self.raw.sql, *args, **kwargs)

    def register(self, view_name: str, python_object):
        """``DuckDBPyConnection.register``; small Arrow tables are scanned without pushdown.

        Pushdown needs ``pyarrow.dataset``; without it DuckDB reads the table whole and filters
        after the scan: the same rows, and no cost for the small tables nbtrack registers.
        """
        rows = _arrow_rows_without_pandas(python_object)
        small = rows is not None and rows <= MAX_BUILT and not self._large
        result = (_without_dataset if small else _without_pandas)(
            self.raw.register, view_name, python_object)
        if rows is not None:
            (self._small if rows <= MAX_BUILT else self._large).add(view_name)
            self._limit_threads(bool(self._small) and not self._large)
        return result

    def unregister(self, view_name: str):
        """``DuckDBPyConnection.unregister``."""
        self._small.discard(view_name)
        self._large.discard(view_name)
        return self.raw.unregister(view_name)

    def _limit_threads(self, limit: bool) -> None:
        import duckdb

        if limit == self._threads_limited:
            return
        try:
            self.raw.execute("SET threads = 1" if limit else "RESET threads")
            self._threads_limited = limit
        except duckdb.Error:
            pass  # an aborted transaction refuses statements: retried after its ROLLBACK

    def __getattr__(self, name: str):
        return getattr(self.raw, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.raw.close()


def _arrow_rows_without_pandas(obj) -> int | None:
    """The rows of ``obj`` if it is an Arrow table that DuckDB would load pandas to scan."""
    pa = sys.modules.get("pyarrow")
    if (pa is None or not isinstance(obj, pa.Table) or pandas_loaded()
            or "pyarrow.dataset" in sys.modules):
        return None
    return obj.num_rows


def pandas_loaded() -> bool:
    """Whether pandas is imported (then pyarrow's converter costs nothing extra)."""
    return "pandas" in sys.modules


def _validity(values: list) -> bytes | None:
    """Arrow's validity bitmap for ``values`` (None marks a null), or None without nulls."""
    if None not in values:
        return None
    bits = bytearray((len(values) + 7) // 8)
    for i, value in enumerate(values):
        if value is not None:
            bits[i >> 3] |= 1 << (i & 7)
    return bytes(bits)


def _build(values: list, type_name: str) -> list | None:
    """The data buffers of an Arrow ``type_name`` array of ``values``; None if not plain values."""
    kinds = {type(v) for v in values} - {type(None)}
    if type_name == "string" and kinds <= {str}:
        try:
            encoded = [b"" if v is None else v.encode("utf-8") for v in values]
        except UnicodeEncodeError:
            return None
        offsets = array("i", accumulate(map(len, encoded), initial=0))
        if offsets[-1] >= 2**31 - 1:
            return None
        return [offsets, b"".join(encoded)]
    if type_name in _INT_CODES and kinds <= {int}:
        low, high = _INT_RANGES[type_name]
        if any(v is not None and not low <= v <= high for v in values):
            return None  # pyarrow raises its own error
        return [array(_INT_CODES[type_name], [0 if v is None else v for v in values])]
    if type_name == "double" and kinds <= {float, int}:
        if int in kinds and any(type(v) is int and abs(v) > 2**53 for v in values):
            return None  # not exact as a double: pyarrow refuses it
        return [array("d", [0.0 if v is None else v for v in values])]
    if type_name == "bool" and kinds <= {bool}:
        bits = bytearray((len(values) + 7) // 8)
        for i, value in enumerate(values):
            if value:
                bits[i >> 3] |= 1 << (i & 7)
        return [bits]
    return None


def _infer(values: list):
    """The type pyarrow infers for a list of plain values, or None to let pyarrow decide."""
    import pyarrow as pa

    kinds = {type(v) for v in values} - {type(None)}
    if not kinds:
        return pa.null()
    if len(kinds) == 1:
        return {str: pa.string(), int: pa.int64(), float: pa.float64(),
                bool: pa.bool_()}.get(kinds.pop())
    return pa.float64() if kinds == {int, float} else None


def arrow_array(values, type=None):
    """``pa.array(values, type)``, built without importing pandas where that is exact."""
    import pyarrow as pa

    if pandas_loaded() or not isinstance(values, (list, tuple)) or len(values) > MAX_BUILT:
        return pa.array(values, type)
    values = list(values)
    built = _infer(values) if type is None else type
    if built is not None and pa.types.is_null(built):
        return pa.nulls(len(values))
    buffers = None if built is None else _build(values, str(built))
    if buffers is None:
        return pa.array(values, type)  # pyarrow's own conversion, inference and errors
    validity = _validity(values)
    return pa.Array.from_buffers(
        built, len(values),
        [None if validity is None else pa.py_buffer(validity), *map(pa.py_buffer, buffers)])


def arrow_table(columns: dict, schema=None):
    """``pa.table(columns, schema)`` for a dict of lists or arrays, built like ``arrow_array``."""
    import pyarrow as pa

    if schema is None:
        arrays = [arrow_array(values) for values in columns.values()]
        return pa.Table.from_arrays(arrays, names=list(columns))
    arrays = [arrow_array(columns[f.name], f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def arrow_rows(rows: list[tuple], schema):
    """A table of ``schema`` from row tuples: ``pa.array(rows, struct)``, built without pandas."""
    import pyarrow as pa

    width = len(schema)
    if pandas_loaded() or len(rows) > MAX_BUILT or any(len(r) != width for r in rows):
        return pa.Table.from_struct_array(pa.array(rows, type=pa.struct(list(schema))))
    columns = list(zip(*rows, strict=True)) or [()] * width
    arrays = [arrow_array(values, f.type) for values, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)
