"""``nbtrack doctor``: say what in a store is damaged, and salvage what is readable.

The damaged file is never written: it is copied under the store lock (so that no nbtrack
process writes it meanwhile), and only the copy is read, attached read-only, in a child process
(``nbtrack.store.salvage``), since DuckDB can crash on damaged metadata. A child that crashes is
restarted past the table it was reading. ``check`` reads every table and reports rows read and
lost, the schema version, the spool segments and the artifacts that rows name but that are
missing. ``repair`` copies the readable rows into a new store instead (``nbtrack.store.repair``),
copies the artifacts and the spool, and opens the result with nbtrack.

When the newest of DuckDB's two database headers is damaged, the copy is read through the other
one, i.e. as of the checkpoint before: better an older store than none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from nbtrack.exceptions import NbtrackError, StoreBusyError
from nbtrack.store import frames, schema, spool
from nbtrack.store import repair as repairing
from nbtrack.store.experiments import ARTIFACTS_DIR
from nbtrack.store.locking import StoreLock
from nbtrack.store.registry import resolve_uri

DB_FILE = "store.duckdb"
#: tables read first (the rest follow in name order)
_FIRST = ("nbtrack_meta", "experiments", "runs", "run_index")
#: columns of readable rows sent back by the reader: spool offsets, artifact paths
_SEND = {"spool_offsets": ["segment", "merged_to"], "artifacts": ["run_id", "path"]}
#: DuckDB's two database headers (byte offsets), written in turn at each checkpoint
_HEADERS = (4096, 8192)


@dataclass
class TableReport:
    """What reading one table gave."""

    name: str
    expected: int | None = None  # rows the table holds, by its metadata
    rows: int = 0  # rows read (check) or copied (repair)
    error: str | None = None  # the table could not be read at all
    lost: list = field(default_factory=list)  # [first rowid, end, rows, columns, error]
    nulled: list = field(default_factory=list)  # [first rowid, end, columns, error]
    columns: int = 0

    @property
    def ok(self) -> bool:
        """Whether every row and column was read."""
        return self.error is None and not self.lost and not self.nulled

    def describe(self) -> list[str]:
        """One line, plus one per damaged range of rows."""
        if self.error is not None:
            return [f"  UNREADABLE {self.name}: {self.error}"]
        if self.ok:
            return [f"  ok         {self.name}: {self.rows:,} rows"]
        total = "?" if self.expected is None else f"{self.expected:,}"
        lines = [f"  DAMAGED    {self.name}: {self.rows:,} of {total} rows readable"]
        for first, end, count, columns, error in self.lost:
            lines.append(f"      rows {first:,}-{end - 1:,} lost ({count:,} rows"
                         f"{self._columns(columns)}): {error}")
        for first, end, columns, error in self.nulled:
            lines.append(f"      rows {first:,}-{end - 1:,} kept, but without "
                         f"{', '.join(columns)}: {error}")
        return lines

    def _columns(self, columns: list[str]) -> str:
        if not columns:
            return ""
        if len(columns) == self.columns:
            return "; no column readable"
        return f"; unreadable: {', '.join(columns)}"


@dataclass
class Segment:
    """One spool segment: how much of it is whole, and how much is merged."""

    name: str
    size: int
    frames: int
    values: int
    whole: int  # bytes up to the end of the last whole frame
    bad_frames: int
    live: bool
    merged_to: int | None

    def state(self) -> str:
        """In words."""
        parts = ["being written by a running process"] if self.live else []
        if self.merged_to is None:
            parts.append("merge state unknown (spool_offsets unreadable)")
        elif self.merged_to >= self.whole:
            parts.append("merged")
        else:
            parts.append(f"{self.whole - self.merged_to:,} bytes not merged yet")
        if self.bad_frames:
            parts.append(f"{self.bad_frames} frame(s) this nbtrack cannot decode")
        if self.size > self.whole:
            parts.append(f"{self.size - self.whole:,} torn bytes at the end (never durable)")
        return "; ".join(parts)


@dataclass
class Report:
    """What ``check`` or ``repair`` found, and did."""

    db_path: Path
    size: int = 0
    open_error: str | None = None
    old_header: int | None = None  # read through the other header: this one is damaged
    wal_error: str | None = None  # the write-ahead log is damaged: read without it
    catalog: dict[str, list[str]] = field(default_factory=dict)  # table -> its columns
    version: int | None = None
    version_error: str | None = None
    tables: dict[str, TableReport] = field(default_factory=dict)
    spool: list[Segment] | None = None  # None: no spool folder
    artifacts: int | None = None  # None: the artifacts table could not be read
    missing: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    repaired: Path | None = None
    recovered: dict[str, int] = field(default_factory=dict)  # rows refilled from run_index
    runs: int | None = None  # runs in the repaired store

    @property
    def damaged(self) -> bool:
        """Whether anything the store holds could not be read, or is missing."""
        return bool(self.open_error or self.old_header or self.wal_error or self.version_error
                    or self.missing or any(not t.ok for t in self.tables.values()))

    def render(self) -> str:
        """The report as text."""
        lines = [f"Store file: {self.db_path} ({self.size:,} bytes)"]
        if self.open_error:
            lines.append(f"  UNREADABLE: the file cannot be opened: {self.open_error}")
        if self.old_header:
            lines.append(f"  DAMAGED: its newest header (byte {self.old_header}) is unreadable; "
                         "read as of the checkpoint before (later changes are missing)")
        if self.wal_error:
            lines.append(f"  DAMAGED: {self.db_path.name}.wal, its log of the changes since the "
                         f"last checkpoint, cannot be read, so they are missing: {self.wal_error}")
        version = self.version if self.version is not None else (
            f"unknown ({self.version_error or 'the file cannot be opened'})")
        lines.append(f"Schema version: {version} (this nbtrack: {schema.SCHEMA_VERSION})")
        if self.tables:
            lines.append("Tables:")
            for table in self.tables.values():
                lines += table.describe()
        if self.spool is not None:
            lines.append(f"Spool: {len(self.spool)} segment(s)")
            lines += [f"  {s.name}: {s.size:,} bytes, {s.frames} frames, {s.values} values; "
                      f"{s.state()}" for s in self.spool]
        if self.artifacts is None:
            lines.append("Artifacts: not checked (the artifacts table cannot be read)")
        else:
            lines.append(f"Artifacts: {self.artifacts:,} referenced, {len(self.missing):,} "
                         "missing")
            lines += [f"  missing: {ARTIFACTS_DIR}/{run_id}/{path}"
                      for run_id, path in self.missing[:10]]
        return "\n".join(lines + self.notes)

    def lost_summary(self) -> list[str]:
        """What a repair could not carry over, one line per table."""
        if self.open_error:
            return [f"  everything in {self.db_path.name} (it cannot be opened)"]
        lines = ["  the changes of the last checkpoint (the newest header is damaged)"
                 ] if self.old_header else []
        if self.wal_error:
            lines.append(f"  the changes since the last checkpoint ({self.db_path.name}.wal is "
                         "damaged), except those the spool still held")
        for t in self.tables.values():
            lost = sum(item[2] for item in t.lost)
            back = self.recovered.get(t.name, 0)
            refill = f" ({back:,} rows refilled from run_index)" if back else ""
            if t.error is not None:
                lines.append(f"  {t.name}: all rows{refill}: {t.error}")
            elif lost:
                lines.append(f"  {t.name}: {lost:,} rows{refill}")
            lines += [f"  {t.name}: {', '.join(columns)} of rows {first:,}-{end - 1:,}"
                      for first, end, columns, _ in t.nulled]
        return lines


def locate(location) -> tuple[Path, Path]:
    """``(store folder, DuckDB file)`` of a store folder, a ``.duckdb`` path or a URI."""
    path = Path(resolve_uri(location))
    if path.suffix == ".duckdb" or path.is_file():
        return path.parent, path
    return path, path / DB_FILE


def check(location=None, progress: bool = True, lock_timeout: float = 30.0) -> Report:
    """Read every table of a store (from a copy of its file); report what is damaged.

    Raises:
        NbtrackError: there is no store file there.
        StoreBusyError: the store lock could not be had to copy the file.

    """
    root, db_path = locate(location)
    with tempfile.TemporaryDirectory(prefix="nbtrack-doctor-") as tmp:
        report, copy = _start(root, db_path, Path(tmp), lock_timeout, progress)
        tasks = [{"table": name, "columns": columns, "send": _SEND.get(name)}
                 for name, columns in report.catalog.items()]
        sent = _run_tasks({"source": str(copy), "target": None}, tasks, report, progress)
    _finish(root, report, sent)
    return report


def repair(location, out, progress: bool = True, lock_timeout: float = 30.0) -> Report:
    """Salvage what is readable of a store into a new store in the folder ``out``.

    Raises:
        NbtrackError: ``out`` is not a new or empty folder, there is no store file, or the
            store is newer than this nbtrack.
        StoreBusyError: the store lock could not be had to copy the file.

    """
    root, db_path = locate(location)
    out = Path(out).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NbtrackError(f"{out} already exists and is not an empty folder. Give --repair "
                           "a new folder for the repaired store.")
    if out == root or root in out.parents:
        raise NbtrackError(f"{out} is inside the damaged store {root}. Give --repair a "
                           "folder outside it.")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _repair(root, db_path, out, progress, lock_timeout)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _repair(root: Path, db_path: Path, out: Path, progress: bool, lock_timeout: float):
    with tempfile.TemporaryDirectory(prefix=".nbtrack-doctor-", dir=out.parent) as tmp:
        report, copy = _start(root, db_path, Path(tmp), lock_timeout, progress)
        version = report.version or schema.SCHEMA_VERSION
        if version > schema.SCHEMA_VERSION:
            raise NbtrackError(
                f"{db_path} has schema version {version}, newer than this nbtrack knows "
                f"({schema.SCHEMA_VERSION}). Upgrade nbtrack (pip install -U nbtrack), then "
                "repair it.")
        target = out / DB_FILE
        tasks = repairing.create(target, version, report.catalog, _SEND)
        known = {task["table"] for task in tasks}
        report.notes += [f"Note: table {name} is unknown to this nbtrack; it was not copied."
                         for name in report.catalog if name not in known]
        sent = _run_tasks({"source": str(copy), "target": str(target)}, tasks, report, progress)
    report.tables.pop("run_index", None)  # not copied as such: it refills, then is rebuilt
    _finish(root, report, sent)
    report.recovered, notes = repairing.complete(target, version, db_path)
    report.notes += notes
    repairing.copy_files(root / ARTIFACTS_DIR, out / ARTIFACTS_DIR,
                         _bar(progress, 0, "artifacts", "files"))
    offsets_known = all(s.merged_to is not None for s in report.spool or [])
    report.notes += repairing.copy_spool(root, out, report.spool, offsets_known)
    report.runs = repairing.open_with_nbtrack(out)
    report.repaired = out
    return report


def _start(root: Path, db_path: Path, tmp: Path, lock_timeout: float, progress: bool):
    """Copy the file under the store lock, then read its catalog in a child process."""
    if not db_path.is_file():
        raise NbtrackError(f"There is no store file at {db_path}. Give `nbtrack doctor` a "
                           "store folder (such as .nbtrack) or its store.duckdb file.")
    report = Report(db_path, db_path.stat().st_size)
    copy = _snapshot(root, db_path, tmp, lock_timeout, progress)
    _inspect(copy, report)
    wal = copy.with_name(copy.name + ".wal")
    if report.open_error and wal.exists():  # a damaged log of recent writes: read without it
        wal.unlink()
        error, report.open_error = report.open_error, None
        _inspect(copy, report)
        if report.open_error is None:
            report.wal_error = error
        else:
            report.open_error = error
    header = _damaged_header(report.open_error)
    if header is not None:
        _use_other_header(copy, header)
        header_error, report.open_error = report.open_error, None
        _inspect(copy, report)
        if report.open_error is None:
            report.old_header = header
        else:
            report.open_error = header_error
    return report, copy


def _snapshot(root: Path, db_path: Path, tmp: Path, lock_timeout: float, progress: bool) -> Path:
    lock = StoreLock(root)
    try:
        lock.acquire(lock_timeout)
    except StoreBusyError as exc:
        raise StoreBusyError(
            f"{exc} nbtrack doctor copies the store file under this lock.") from exc
    try:
        copy = tmp / db_path.name
        bar = _bar(progress, db_path.stat().st_size, "copy", "B")
        with open(db_path, "rb") as source, open(copy, "wb") as target:
            while chunk := source.read(8 << 20):
                target.write(chunk)
                bar.update(len(chunk))
        bar.close()
        wal = db_path.with_name(db_path.name + ".wal")
        if wal.exists():
            shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
    finally:
        lock.release()
    return copy


def _damaged_header(error: str | None) -> int | None:
    found = re.search(r"in block at location (\d+)\b", error or "")
    location = int(found.group(1)) if found else None
    return location if location in _HEADERS else None


def _use_other_header(copy: Path, damaged: int) -> None:
    """Overwrite a damaged database header of the copy with the other, older one."""
    other = _HEADERS[1] if damaged == _HEADERS[0] else _HEADERS[0]
    with open(copy, "r+b") as handle:
        handle.seek(other)
        header = handle.read(4096)
        handle.seek(damaged)
        handle.write(header)


def _inspect(copy: Path, report: Report) -> None:
    def on_event(event: dict) -> None:
        kind = event["event"]
        if kind in ("open_failed", "catalog_failed"):
            report.open_error = event["error"]
        elif kind == "catalog":
            catalog = event["tables"]
            report.catalog = {name: catalog[name] for name in _FIRST if name in catalog}
            report.catalog.update(sorted(catalog.items()))
        elif kind == "version":
            report.version, report.version_error = event["version"], event.get("error")
            if event["version"] is None and report.version_error is None:
                report.version_error = "nbtrack_meta holds no schema_version"

    code, reason = _child({"source": str(copy), "catalog": True}, on_event,
                          (copy, report.db_path))
    if code != 0 and report.open_error is None:
        if report.catalog:
            report.version_error = f"reading it {reason}"
        else:
            report.open_error = f"reading its catalog {reason}"


def _run_tasks(job: dict, tasks: list[dict], report: Report, progress: bool) -> dict:
    """Run the tasks in child processes, restarting past a table that crashes one."""
    sent: dict[str, list] = {}
    columns = {task["table"]: len(task["columns"]) for task in tasks}
    bar = _bar(progress, 0, "read" if job["target"] is None else "salvage", "rows")
    state: dict = {"table": None, "rows": 0, "done": False}

    def on_event(event: dict) -> None:
        kind, name = event["event"], event.get("table", "")  # "": an event of the whole file
        if kind == "start":
            report.tables[name] = TableReport(name, columns=columns[name])
            state.update(table=name, rows=0, done=False)
            bar.set_description(name)
        elif kind == "counted":
            report.tables[name].expected = event["expected"]
            bar.total = (bar.total or 0) + (event["expected"] or 0)
        elif kind == "progress":
            bar.update(event["rows"] - state["rows"])
            state["rows"] = event["rows"]
        elif kind == "done":
            table = report.tables[name]
            table.rows, table.error = event["rows"], event["error"]
            table.lost, table.nulled = event["lost"], event["nulled"]
            state["done"] = True
        elif kind == "rows":
            sent[name] = event["rows"]
        elif kind == "finished":
            state["table"] = None

    remaining = list(tasks)
    while remaining:
        state["table"] = None
        code, reason = _child({**job, "tasks": remaining}, on_event,
                              (Path(job["source"]), report.db_path))
        if code == 0 and state["table"] is None:
            break
        crashed = state["table"]
        if crashed is None:  # before any table: say so for every table left
            for task in remaining:
                report.tables[task["table"]] = TableReport(task["table"], error=reason)
            break
        table = report.tables[crashed]
        if state["done"]:
            report.notes.append(f"Note: after reading {crashed}, nbtrack doctor's reader {reason}.")
        else:
            table.rows = state["rows"]
            after = f" after {table.rows:,} rows" if table.rows else ""
            table.error = f"reading it {reason}{after}"
        remaining = [t for t in remaining if t["table"] not in report.tables]
    bar.close()
    return sent


def _child(job: dict, on_event, rename: tuple[Path, Path]) -> tuple[int, str]:
    """Run ``nbtrack.store.salvage`` on a job, passing its answers on; its exit and why.

    Errors name the copy read; ``rename`` is ``(copy, original)``, to name the original.
    """
    copy, original = (json.dumps(str(path))[1:-1] for path in rename)
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen([sys.executable, "-m", "nbtrack.store.salvage"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                env=env, text=True)
        assert proc.stdin is not None and proc.stdout is not None  # both are pipes
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        for line in proc.stdout:
            if line.startswith("{"):
                on_event(json.loads(line.replace(copy, original)))
        code = proc.wait()
        errors.seek(0)
        text = errors.read().decode(errors="replace").strip().splitlines()
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return code, f"crashed DuckDB ({name})"
    return code, f"failed ({text[-1] if text else f'exit code {code}'})"


def _finish(root: Path, report: Report, sent: dict) -> None:
    """Add the spool segments and the missing artifacts to the report."""
    offsets = None
    table = report.tables.get("spool_offsets")
    if table is not None and table.ok and "spool_offsets" in sent:
        offsets = {segment: merged for segment, merged in sent["spool_offsets"]}
    elif not report.open_error and "spool_offsets" not in report.catalog:
        offsets = {}  # a store from before the spool
    report.spool = _segments(root / spool.SPOOL_DIR, offsets)
    table = report.tables.get("artifacts")
    if table is None or table.error is not None or "artifacts" not in sent:
        report.artifacts = None
        return
    paths = sent["artifacts"]
    report.artifacts = len(paths)
    report.missing = [(run_id, path) for run_id, path in paths
                      if not (root / ARTIFACTS_DIR / run_id / path).exists()]


def _segments(folder: Path, offsets: dict | None) -> list[Segment] | None:
    if not folder.is_dir():
        return None
    found = []
    for name, size in spool.list_segments(folder):
        count = values = whole = bad = 0
        for _, end, payload in spool.read_frames(folder / name, 0, 1 << 62):
            count, whole = count + 1, end
            try:
                values += len(frames.decode(payload))
            except frames.FrameFormatError:
                bad += 1
        merged = None if offsets is None else offsets.get(name, 0)
        found.append(Segment(name, size, count, values, whole, bad,
                             spool.owner_alive(folder / name), merged))
    return found


class _NoBar:
    """Stands in for a progress bar when there is none to show."""

    total = 0
    update = set_description = close = staticmethod(lambda *args: None)


def _bar(enabled: bool, total: int, desc: str, unit: str):
    """A tqdm progress bar on stderr; nothing when disabled or tqdm is not installed."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total or None, desc=desc, unit=unit, unit_scale=unit == "B",
                leave=False, file=sys.stderr)
