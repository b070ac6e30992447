"""Data for the front end: Arrow IPC bytes, sent as binary buffers (never JSON rows)."""

from __future__ import annotations


def to_ipc(table) -> bytes:
    """Serialize a pyarrow Table as an Arrow IPC stream."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes):
    """Read an Arrow IPC stream back into a pyarrow Table."""
    import pyarrow as pa

    return pa.ipc.open_stream(data).read_all()


def run_ids_filter(run_ids: list[str]) -> str:
    """A search clause for exactly these runs (ids are checked to be plain hex/word text)."""
    for run_id in run_ids:
        if not str(run_id).replace("-", "").isalnum():
            raise ValueError(f"{run_id!r} is not a run id.")
    quoted = ", ".join(f"'{r}'" for r in run_ids)
    return f"attributes.run_id IN ({quoted})"
