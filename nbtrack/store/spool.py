"""The spool: per-process, append-only segment files where logged values become durable.

Why a spool? DuckDB lets one process at a time write the store file, so a value that waits for
the store lock can wait for seconds under contention, and a process that dies meanwhile loses it.
A spool segment belongs to one process: appending to it takes no lock shared with anyone, so a
value is on disk within a short, fixed time whatever other processes do. Merging the segments
into the store is a separate step (``nbtrack.store.merge``) that any process may run.

Layout: ``<store>/spool/<host>-<pid>-<ns>-<random>.seg``. A segment is a sequence of frames::

    b"NBS1" | payload length (u32, little-endian) | crc32 of payload (u32) | payload

A frame is written with one ``write`` call. Readers stop at the first frame that is incomplete or
fails its checksum: only the tail that a process was writing when it died can be torn, and that
value never reached its durability point. The owner holds an exclusive ``flock`` on its segment
for as long as it lives, so others can tell a live segment from one its process left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SPOOL_DIR = "spool"
SUFFIX = ".seg"
MAGIC = b"NBS1"
FRAME_HEADER = struct.Struct("<4sII")
#: A frame larger than this is refused at write time (a guard against a runaway batch).
MAX_FRAME = 1 << 30


class SpoolWriteError(OSError):
    """A frame could not be appended (a full disk, say); the segment was left consistent."""


def segment_name() -> str:
    """A name no other segment of any process will ever have."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{time.time_ns()}-{secrets.token_hex(4)}{SUFFIX}"


class Segment:
    """The segment this process appends to; created lazily, locked for the owner's life."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self.name: str | None = None
        self.size = 0
        self._synced = 0  # bytes of this segment known to be on the disk itself
        #: names of every segment this process created (for rejections and clean-up)
        self.history: list[str] = []

    def append(self, payload: bytes, sync: bool = True) -> None:
        """Append one frame, then ``fdatasync`` it when ``sync``.

        On failure the segment is truncated back to its last whole frame, so later frames stay
        readable, and the next append starts a new segment.

        Raises:
            SpoolWriteError: the frame could not be written; nothing of it stays in the spool.

        """
        if len(payload) > MAX_FRAME:
            raise SpoolWriteError(f"a spool frame of {len(payload)} bytes is too large")
        frame = FRAME_HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload
        with self._mutex:
            fd = self._fd if self._fd is not None else self._open()
            start, path = self.size, self._path()
            try:
                view = memoryview(frame)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if sync:
                    os.fdatasync(fd)
            except OSError as exc:
                self._abandon(fd, start)
                raise SpoolWriteError(
                    f"could not append to the spool segment {path}: {exc}"
                ) from exc
            self.size = start + len(frame)
            if sync:
                self._synced = self.size

    def sync_to_disk(self) -> None:
        """``fdatasync`` what was appended without it, without holding up new appends.

        A frame written without a sync already survives the death of its process (it is in the
        kernel's page cache); this makes it survive a power cut too.
        """
        with self._mutex:
            fd, size = self._fd, self.size
            if fd is None or size <= self._synced:
                return
        try:
            os.fdatasync(fd)
        except OSError:
            return  # the segment was closed meanwhile (closing does not lose written bytes)
        with self._mutex:
            if self._fd == fd:
                self._synced = max(self._synced, size)

    def _open(self) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = segment_name()
        # locked under a temporary name first: a segment is never seen unlocked while alive
        draft = self.folder / (name + ".new")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(draft, self.folder / name)
        self._fd, self.name, self.size, self._synced = fd, name, 0, 0
        self.history.append(name)
        return fd

    def _path(self) -> Path:
        """The open segment's file (``name`` is set whenever ``_fd`` is)."""
        assert self.name is not None, "no segment is open"
        return self.folder / self.name

    def _abandon(self, fd: int, good_size: int) -> None:
        """Cut a torn frame off and stop using this segment (it is merged like any other)."""
        with contextlib.suppress(OSError):  # else readers stop at the torn frame anyway
            os.ftruncate(fd, good_size)
        self._close_fd()

    def rotate_if(self, merged_offset: int, min_size: int) -> bool:
        """Start a new segment if this one is fully merged and at least ``min_size`` bytes.

        The old file is removed; its frames are all in the store. Returns whether it rotated.
        """
        with self._mutex:
            if self._fd is None or self.size < min_size or merged_offset < self.size:
                return False
            path = self._path()
            self._close_fd()
            path.unlink(missing_ok=True)
            return True

    def close(self, remove_if_merged_to: int | None = None) -> None:
        """Release the segment; remove its file if everything in it was merged."""
        with self._mutex:
            if self._fd is None:
                return
            path, size = self._path(), self.size
            self._close_fd()
            if remove_if_merged_to is not None and remove_if_merged_to >= size:
                path.unlink(missing_ok=True)

    def forget(self) -> None:
        """In a forked child: the file and its lock are the parent's; start afresh."""
        self._mutex = threading.Lock()
        self._fd, self.name, self.size = None, None, 0
        self.history = []

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        self.size = 0
        self.name = None
        if fd is not None:
            os.close(fd)  # closing drops the flock: the segment now reads as left behind


def list_segments(folder: Path) -> list[tuple[str, int]]:
    """``(name, size)`` of every segment, oldest first (names sort by creation time per host)."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        if entry.name.endswith(SUFFIX):
            try:
                found.append((entry.name, entry.stat().st_size))
            except FileNotFoundError:
                continue  # removed after a merge meanwhile
    found.sort(key=lambda item: _creation_order(item[0]))
    return found


def write_times(folder: Path) -> list[int]:
    """When each segment was last appended to (``st_mtime_ns``), in no particular order."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    times = []
    for entry in entries:
        if entry.name.endswith(SUFFIX):
            try:
                times.append(entry.stat().st_mtime_ns)
            except FileNotFoundError:
                continue
    return times


def _creation_order(name: str) -> tuple:
    parts = name[: -len(SUFFIX)].rsplit("-", 3)
    try:
        return (int(parts[2]), name)
    except (IndexError, ValueError):
        return (0, name)


def read_frames(path: Path, offset: int, limit: int) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(start, end, payload)`` for whole frames from ``offset``, up to ``limit`` bytes.

    Stops at the end of the file, at a torn or damaged frame, or once ``limit`` payload bytes
    were read (at least one frame is always read when there is one).
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; a generator holds it
    except FileNotFoundError:
        return
    with handle:
        handle.seek(offset)
        total = 0
        while total < limit:
            header = handle.read(FRAME_HEADER.size)
            if len(header) < FRAME_HEADER.size:
                return
            magic, length, crc = FRAME_HEADER.unpack(header)
            if magic != MAGIC or length > MAX_FRAME:
                return
            payload = handle.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return
            end = offset + FRAME_HEADER.size + length
            yield offset, end, payload
            offset = end
            total += length


def only_torn_tail(path: Path, offset: int) -> bool:
    """Whether the bytes after ``offset`` are one incomplete frame that runs to the end.

    That is what a process leaves when it dies in the middle of a write: a value that never
    reached its durability point. Anything else after the last whole frame is damage.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            handle.seek(offset)
            header = handle.read(FRAME_HEADER.size)
    except FileNotFoundError:
        return True
    if len(header) < FRAME_HEADER.size:
        return header[:4] == MAGIC[: len(header)]
    magic, length, _ = FRAME_HEADER.unpack(header)
    return magic == MAGIC and offset + FRAME_HEADER.size + length > size


def owner_alive(path: Path) -> bool:
    """Whether the process that owns a segment still holds it (one non-blocking ``flock``)."""
    if fcntl is None:  # pragma: no cover - Windows
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock if we took it
    return False
