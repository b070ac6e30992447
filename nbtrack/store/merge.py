"""Merge spool segments into the store: by segment and offset, so that merging twice is a no-op.

Whoever holds the store lock may merge every segment, its own and other processes' alike:
values reach the store even while their writer is busy, stopped or dead. One merge is one
transaction that writes the values *and* moves each segment's ``spool_offsets`` row past them;
a crash in the middle rolls both back, and two processes merging in turn read the offsets
under the lock. Hence no value is lost or written twice.

A write that the store refuses (a bug, a value that slipped past the checks) must not hold up
the others: the merge then tries frames alone, and halves of a bad frame, in transactions that
are rolled back, until each bad write is alone. The good writes are stored, the bad ones go to
``spool_rejects`` with their error, all in one final transaction. Failures of the machine rather
than of a value (a full disk, the store's file damaged, the lock not to be had, a team store's
commit refused because another machine's conflicting one came first) leave everything in the
spool and are raised to the caller, without isolating frames: that would only repeat the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nbtrack.clock import now_ms
from nbtrack.exceptions import StoreBusyError
from nbtrack.store import frames, spool
from nbtrack.store.batch_writer import write_batch
from nbtrack.store.pending import Batch

#: payload bytes merged per transaction; more waits for the next round of the same merge
MERGE_CHUNK = 64 << 20
OFFSETS_CACHE = "spool_offsets"


def is_machine_failure(exc: BaseException) -> bool:
    """Whether an error comes from the machine (disk, memory, file) rather than from a value."""
    import duckdb

    return isinstance(exc, (OSError, MemoryError, duckdb.IOException,
                            duckdb.OutOfMemoryException, duckdb.FatalException,
                            duckdb.InternalException))


@dataclass
class Frame:
    """One frame read from a segment, decoded (or with the reason it could not be)."""

    segment: str
    start: int
    end: int
    payload: bytes
    batch: Batch | None = None
    error: str | None = None


@dataclass
class MergeReport:
    """What one merge did."""

    frames: int = 0
    values: int = 0
    rejected: list[tuple[str, int, str]] = field(default_factory=list)
    dead_segments: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def merged_offsets(conn, cache: dict) -> dict[str, int]:
    """``{segment: merged_to}``, cached while the file stays open (only holders write it)."""
    offsets = cache.get(OFFSETS_CACHE)
    if offsets is None:
        offsets = dict(conn.execute("SELECT segment, merged_to FROM spool_offsets").fetchall())
        cache[OFFSETS_CACHE] = offsets
    return offsets


def unmerged(folder: Path, offsets: dict[str, int]) -> list[tuple[str, int, int]]:
    """``(segment, merged_to, size)`` of the segments with bytes not yet merged."""
    return [(name, offsets.get(name, 0), size) for name, size in spool.list_segments(folder)
            if size > offsets.get(name, 0)]


def merge(conn, folder: Path, cache: dict, own: Callable[[str], bool],
          tidy: bool = False) -> MergeReport:
    """Merge every segment in ``folder`` into the store open on ``conn`` (lock held).

    ``own`` tells whether a segment is this process's (never removed here while open). With
    ``tidy``, segments left by dead processes are looked for, and removed once merged. Which
    owners are dead is decided *before* reading: a writer that dies during the merge may have
    appended frames after they were read, and those must wait for the next merge.
    """
    report = MergeReport()
    dead = _dead_segments(folder, own) if tidy else []
    while True:
        offsets = merged_offsets(conn, cache)
        todo = unmerged(folder, offsets)
        found = _read(folder, todo)
        if not found:
            break
        _apply(conn, found, offsets, report)
        cache.clear()
        cache[OFFSETS_CACHE] = offsets
        if sum(len(f.payload) for f in found) < MERGE_CHUNK:
            break
    if tidy:
        _remove_merged_dead(conn, folder, cache, own, dead, report)
    return report


def _dead_segments(folder: Path, own) -> list[str]:
    """The segments whose process is gone (their files will not grow any more)."""
    return [name for name, _ in spool.list_segments(folder)
            if not own(name) and not spool.owner_alive(folder / name)]


def _read(folder: Path, todo: list[tuple[str, int, int]]) -> list[Frame]:
    found: list[Frame] = []
    budget = MERGE_CHUNK
    for name, start, _size in todo:
        for begin, end, payload in spool.read_frames(folder / name, start, budget):
            frame = Frame(name, begin, end, payload)
            try:
                frame.batch = frames.decode(payload)
            except frames.FrameFormatError as exc:
                frame.error = str(exc)
            found.append(frame)
            budget -= len(payload)
        if budget <= 0:
            break
    return found


def _apply(conn, found: list[Frame], offsets: dict[str, int], report: MergeReport) -> None:
    good = [(f, f.batch) for f in found if f.batch is not None]
    combined = _combine(batch for _, batch in good)
    try:
        warnings = _commit(conn, combined, found, [], offsets)
    except Exception as exc:
        if is_machine_failure(exc) or isinstance(exc, StoreBusyError):
            raise  # not a value's fault: trying frames alone would only repeat the refusal
        kept, bad = _isolate(conn, good)
        rejects = [(f.segment, f.start, error, frames.encode(part)) for f, part, error in bad]
        rejects += [(f.segment, f.start, f.error or "the frame could not be decoded", f.payload)
                    for f in found if f.batch is None]
        warnings = _commit(conn, _combine(kept), found, rejects, offsets)
        report.rejected += [(segment, start, error) for segment, start, error, _ in rejects]
    for f in found:
        offsets[f.segment] = max(offsets.get(f.segment, 0), f.end)
    report.frames += len(found)
    report.values += sum(len(batch) for _, batch in good)
    report.warnings += warnings


def _combine(batches) -> Batch:
    combined = Batch()
    for batch in batches:
        combined.absorb(batch)
    return combined


def _commit(conn, batch: Batch, found: list[Frame], rejects: list, offsets: dict) -> list[str]:
    """Write ``batch``, the rejects and the new offsets in one transaction."""
    ends: dict[str, int] = {}
    for f in found:
        ends[f.segment] = max(ends.get(f.segment, offsets.get(f.segment, 0)), f.end)
    conn.execute("BEGIN TRANSACTION")
    try:
        warnings = write_batch(conn, batch) if len(batch) else []
        stamp = now_ms()
        for segment, start, error, payload in rejects:
            conn.execute("INSERT INTO spool_rejects VALUES (?, ?, ?, ?, ?)",
                         [segment, start, error, payload, stamp])
        for segment, end in ends.items():
            conn.execute("INSERT OR REPLACE INTO spool_offsets VALUES (?, ?)", [segment, end])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return warnings


def _fails(conn, batch: Batch) -> str | None:
    """Try ``batch`` in a transaction that is always rolled back; return its error, if any."""
    conn.execute("BEGIN TRANSACTION")
    try:
        write_batch(conn, batch)
    except Exception as exc:
        if is_machine_failure(exc):
            conn.execute("ROLLBACK")
            raise
        conn.execute("ROLLBACK")
        return f"{type(exc).__name__}: {exc}"
    conn.execute("ROLLBACK")
    return None


def _isolate(conn, good: list[tuple[Frame, Batch]]
             ) -> tuple[list[Batch], list[tuple[Frame, Batch, str]]]:
    """Split the frames' writes into those the store takes and the single writes it refuses."""
    kept: list[Batch] = []
    bad: list[tuple[Frame, Batch, str]] = []
    for frame, frame_batch in good:
        error = _fails(conn, frame_batch)
        if error is None:
            kept.append(frame_batch)
            continue
        stack = [(frame_batch, error)]
        while stack:
            batch, error = stack.pop()
            if len(batch) <= 1:
                bad.append((frame, batch, error))
                continue
            middle = len(batch) // 2
            for part in (batch.part(0, middle), batch.part(middle, len(batch))):
                part_error = _fails(conn, part)
                if part_error is None:
                    kept.append(part)
                else:
                    stack.append((part, part_error))
    return kept, bad


def _remove_merged_dead(conn, folder: Path, cache: dict, own, dead: list[str],
                        report: MergeReport) -> None:
    """Delete the files of fully merged segments whose process is gone, then their offsets.

    In that order: an offset row without its file is harmless, a file without its row would be
    merged again from the start.
    """
    offsets = merged_offsets(conn, cache)
    listed = spool.list_segments(folder)
    names = {name for name, _ in listed}
    gone = set(dead)
    for name, size in listed:
        if name not in gone:
            continue
        report.dead_segments.append(name)
        merged_to = offsets.get(name, 0)
        if merged_to >= size or spool.only_torn_tail(folder / name, merged_to):
            (folder / name).unlink(missing_ok=True)
            names.discard(name)
        elif next(spool.read_frames(folder / name, merged_to, 1), None) is not None:
            continue  # whole frames past a merge's size limit: the next merge takes them
        else:  # a damaged frame: keep the file for `nbtrack doctor`, out of the merge's way
            (folder / name).rename(folder / (name + ".damaged"))
            names.discard(name)
            report.warnings.append(
                f"The spool segment {folder / name} is damaged after byte {merged_to}; what came "
                f"before was merged. It was renamed to {name}.damaged: run `nbtrack doctor` "
                "on the store to see what it holds."
            )
    # only the offsets of the dead segments removed here: on a team store the offsets table is
    # shared, and other machines' segments are never in this folder
    stale = [name for name in gone if name not in names and name in offsets]
    if stale:
        conn.execute("DELETE FROM spool_offsets WHERE segment IN (SELECT unnest(?))", [stale])
        for name in stale:
            offsets.pop(name, None)
