"""A ``Batch`` as the payload of one spool frame, and back.

Payload: ``u32 header length | header (JSON) | metrics (Arrow IPC stream, optional)``. Metric
rows, by far the most numerous, travel as Arrow columns: encoding 200k rows takes milliseconds,
and -0.0, NaN and the infinities come back bit for bit. A few rows, and everything else, go as
JSON (which keeps -0.0, NaN and the infinities too): the first frames of a new process then
never wait for pyarrow to load. The header carries a format number, so a newer frame is refused
rather than misread.
"""

from __future__ import annotations

import functools
import json
import struct

from nbtrack.store.pending import Batch

FORMAT = 1
#: Up to this many metric rows travel as JSON and their latest value per key is found in Python.
SMALL_LATEST = 1_000
_LENGTH = struct.Struct("<I")


class FrameFormatError(ValueError):
    """A frame whose payload this nbtrack cannot read."""


@functools.cache
def metric_schema():
    """The Arrow schema of metric rows: ``run_id, key, value, step, timestamp``."""
    import pyarrow as pa

    return pa.schema([
        ("run_id", pa.string()), ("key", pa.string()), ("value", pa.float64()),
        ("step", pa.int64()), ("timestamp", pa.int64()),
    ])


def metrics_table(rows: list[tuple]):
    """Metric row tuples ``(run_id, key, value, step, timestamp)`` as an Arrow table."""
    from nbtrack.store.no_pandas import arrow_rows

    return arrow_rows(rows, metric_schema())


def latest_by_key(table) -> list[tuple[str, str, int, int, float]]:
    """``(run_id, key, step, timestamp, value)`` of the latest row per run and key.

    Latest is MLflow's order: highest step, then timestamp, then value. Computed by Arrow
    (sort, then the last row of each group), which frees the interpreter while it works. A few
    rows are done in Python, the same way: Arrow's ``group_by`` loads ``pyarrow.acero``, and with
    it pandas, about 0.2 s of CPU in a new process.
    """
    if table.num_rows <= SMALL_LATEST:
        names = ("run_id", "key", "value", "step", "timestamp")
        return latest_of_rows(zip(*(table.column(n).to_pylist() for n in names), strict=True))
    ordered = table.sort_by([("run_id", "ascending"), ("key", "ascending"),
                             ("step", "ascending"), ("timestamp", "ascending"),
                             ("value", "ascending")])
    last = ordered.group_by(["run_id", "key"], use_threads=False).aggregate(
        [("step", "last"), ("timestamp", "last"), ("value", "last")])
    return list(zip(*(last.column(name).to_pylist() for name in (
        "run_id", "key", "step_last", "timestamp_last", "value_last")), strict=True))


def latest_of_rows(rows) -> list[tuple[str, str, int, int, float]]:
    """``latest_by_key`` for metric row tuples, in Python, with the same answer as Arrow's.

    NaN is the highest value, a tie goes to the later row, results are ordered by run and key.
    """
    best: dict[tuple[str, str], tuple] = {}
    for run_id, key, value, step, stamp in rows:
        rank = (step, stamp, (1, 0.0) if value != value else (0, value))
        held = best.get((run_id, key))
        if held is None or rank >= held[0]:
            best[(run_id, key)] = (rank, (run_id, key, step, stamp, value))
    return [row for _, row in sorted(best.values(), key=lambda item: item[1][:2])]


def encode(batch: Batch, metrics=None) -> bytes:
    """The payload of one frame holding ``batch``.

    ``metrics``: ``batch.metrics`` already made into an Arrow table, if the caller has it.
    """
    header: dict = {"format": FORMAT}
    for name in ("environments", "runs", "run_updates"):
        value = getattr(batch, name)
        if value:
            header[name] = value
    if batch.params:
        header["params"] = batch.params
    if batch.tags:
        header["tags"] = [[run_id, key, value] for (run_id, key), value in batch.tags.items()]
    if batch.artifacts:
        header["artifacts"] = batch.artifacts
    if batch.datasets:
        header["datasets"] = list(batch.datasets.values())
    if batch.inputs:
        header["inputs"] = batch.inputs
    tables = list(batch.metric_tables)
    if metrics is not None:
        tables.append(metrics)
    elif len(batch.metrics) > SMALL_LATEST or (batch.metrics and tables):
        tables.append(metrics_table(batch.metrics))
    elif batch.metrics:
        header["metrics"] = batch.metrics
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    parts = [_LENGTH.pack(len(text)), text]
    if tables:
        import pyarrow as pa

        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, metric_schema()) as writer:
            for table in tables:
                writer.write_table(table)
        parts.append(sink.getvalue().to_pybytes())
    return b"".join(parts)


def decode(payload: bytes) -> Batch:
    """The ``Batch`` a frame holds.

    Raises:
        FrameFormatError: the payload is not a frame this nbtrack can read.

    """
    try:
        (length,) = _LENGTH.unpack_from(payload)
        header = json.loads(payload[_LENGTH.size:_LENGTH.size + length])
    except (struct.error, ValueError) as exc:
        raise FrameFormatError(f"unreadable frame header: {exc}") from exc
    if header.get("format") != FORMAT:
        raise FrameFormatError(
            f"frame format {header.get('format')!r} is not {FORMAT}: written by another "
            "version of nbtrack; merge it with that version"
        )
    batch = Batch(
        environments=header.get("environments", {}),
        runs=header.get("runs", {}),
        run_updates=header.get("run_updates", {}),
        params=[tuple(p) for p in header.get("params", [])],
        tags={(r, k): v for r, k, v in header.get("tags", [])},
        artifacts=[tuple(a) for a in header.get("artifacts", [])],
        datasets={(d["name"], d["digest"]): d for d in header.get("datasets", [])},
        inputs=[tuple(i) for i in header.get("inputs", [])],
        metrics=[tuple(m) for m in header.get("metrics", [])],
    )
    rest = payload[_LENGTH.size + length:]
    if rest:
        import pyarrow as pa

        try:
            table = pa.ipc.open_stream(rest).read_all()
        except pa.ArrowInvalid as exc:
            raise FrameFormatError(f"unreadable metric rows: {exc}") from exc
        if table.num_rows:
            batch.metric_tables.append(table)
    return batch
