"""What a process has logged but not yet written: appended in microseconds, written in batches."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

#: One metric value as it is buffered, spooled and stored: ``(run_id, key, value, step,
#: timestamp)``, in the order of the ``metrics`` table's columns.
MetricRow = tuple[str, str, float, int, int]


@dataclass
class Batch:
    """A set of writes that goes to the store in one transaction, in this order."""

    environments: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    run_updates: dict[str, dict] = field(default_factory=dict)
    params: list[tuple[str, str, str]] = field(default_factory=list)
    tags: dict[tuple[str, str], str | None] = field(default_factory=dict)
    metrics: list[MetricRow] = field(default_factory=list)
    #: metric rows already in Arrow form (as read back from the spool), after ``metrics``
    metric_tables: list = field(default_factory=list)
    artifacts: list[tuple[str, str, int, str, int]] = field(default_factory=list)
    datasets: dict[tuple[str, str], dict] = field(default_factory=dict)
    inputs: list[tuple[str, str, str, str | None]] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.environments) + len(self.runs) + len(self.run_updates) + len(self.params)
            + len(self.tags) + len(self.metrics) + len(self.artifacts) + len(self.inputs)
            + sum(table.num_rows for table in self.metric_tables)
        )

    def absorb(self, newer: Batch) -> None:
        """Fold a later batch into this one, keeping the order of effects."""
        self.environments.update(newer.environments)
        for run_id, row in newer.runs.items():
            self.runs[run_id] = row
        for run_id, changes in newer.run_updates.items():
            self._update_run(run_id, changes)
        self.params.extend(newer.params)
        self.tags.update(newer.tags)
        self.metrics.extend(newer.metrics)
        self.metric_tables.extend(newer.metric_tables)
        self.artifacts.extend(newer.artifacts)
        self.datasets.update(newer.datasets)
        self.inputs.extend(newer.inputs)

    def part(self, start: int, stop: int) -> Batch:
        """The writes numbered ``start`` to ``stop - 1`` in the order of ``len``'s count.

        Used to find the one write of a batch that cannot be stored: halves are tried until
        the culprit is alone, and everything else is kept.
        """
        out = Batch()
        position = 0

        def take(count: int) -> range:
            nonlocal position
            lo, hi = max(start - position, 0), min(stop - position, count)
            position += count
            return range(lo, max(lo, hi))

        for name in ("environments", "runs", "run_updates", "tags"):
            items = list(getattr(self, name).items())
            setattr(out, name, dict(items[i] for i in take(len(items))))
        for name in ("params", "metrics", "artifacts", "inputs"):
            rows = getattr(self, name)
            setattr(out, name, [rows[i] for i in take(len(rows))])
        for table in self.metric_tables:
            picked = take(table.num_rows)
            if picked:
                out.metric_tables.append(table.slice(picked.start, len(picked)))
        for _run_id, name, digest, _context in out.inputs:
            out.datasets[(name, digest)] = self.datasets[(name, digest)]
        return out

    def _update_run(self, run_id: str, changes: dict) -> None:
        row = self.runs.get(run_id)
        if row is not None:
            row.update(changes)
        else:
            self.run_updates.setdefault(run_id, {}).update(changes)


class PendingWrites:
    """A thread-safe buffer of writes. ``take()`` hands the whole buffer to a flush."""

    def __init__(self, on_first: Callable[[], None], on_size: Callable[[], None],
                 size_threshold: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._batch = Batch()
        self._metric_queue: deque = deque()  # appends are atomic: no lock on the hot path
        self._on_first = on_first
        self._on_size = on_size
        self.size_threshold = size_threshold

    def __len__(self) -> int:
        return len(self._batch) + len(self._metric_queue)

    def take(self) -> Batch:
        """Remove and return everything pending.

        Metrics are drained before the batch is swapped: a metric is appended after its run's
        row in program order, so it never lands in an earlier batch than its run.
        """
        queue = self._metric_queue
        metrics = [queue.popleft() for _ in range(len(queue))]
        with self._lock:
            batch, self._batch = self._batch, Batch()
        batch.metrics[:0] = metrics
        return batch

    def metric_rows(self) -> list[MetricRow]:
        """A snapshot of the pending metric rows ``(run_id, key, value, step, timestamp)``."""
        with self._lock:
            rows = list(self._batch.metrics)
        return rows + list(self._metric_queue)  # copied in C, under the GIL: atomic

    def put_back(self, batch: Batch) -> None:
        """Return a batch that could not be written, ahead of anything logged since."""
        with self._lock:
            batch.absorb(self._batch)
            self._batch = batch

    def add_metric(self, run_id: str, key: str, value: float, step: int, timestamp: int) -> None:
        """Append one metric value: the hot path of ``log_metric``."""
        queue = self._metric_queue
        queue.append((run_id, key, value, step, timestamp))
        size = len(queue)
        if size == 1:  # the first value since the queue was emptied starts the spool's clock
            self._on_first()
        elif size == self.size_threshold:  # once per crossing
            self._on_size()

    def add_metrics(self, rows: list[MetricRow]) -> None:
        """Append metric rows ``(run_id, key, value, step, timestamp)``."""
        queue = self._metric_queue
        queue.extend(rows)
        if len(queue) >= self.size_threshold:
            self._on_size()
        else:
            self._on_first()

    def add_run(self, row: dict) -> None:
        """Queue a new run row."""
        with self._lock:
            self._batch.runs[row["run_id"]] = row

    def update_run(self, run_id: str, changes: dict) -> None:
        """Queue changes to a run's columns (status, end time, name, ...)."""
        with self._lock:
            self._batch._update_run(run_id, changes)

    def add_params(self, run_id: str, items: list[tuple[str, str]]) -> None:
        """Queue params that were already checked against the run's existing values."""
        with self._lock:
            self._batch.params.extend((run_id, k, v) for k, v in items)

    def set_tags(self, run_id: str, items: list[tuple[str, str | None]]) -> None:
        """Queue tag values; a value of None deletes the tag."""
        with self._lock:
            for key, value in items:
                self._batch.tags[(run_id, key)] = value

    def add_environment(self, env_hash: str, env: dict) -> None:
        """Queue an environment record, written once per distinct hash."""
        with self._lock:
            self._batch.environments[env_hash] = env

    def add_artifact(self, run_id: str, path: str, size: int, sha256: str, when: int) -> None:
        """Queue an artifact index row."""
        with self._lock:
            self._batch.artifacts.append((run_id, path, size, sha256, when))

    def add_input(self, run_id: str, dataset: dict, context: str | None) -> None:
        """Queue a dataset and the run's use of it."""
        with self._lock:
            self._batch.datasets[(dataset["name"], dataset["digest"])] = dataset
            self._batch.inputs.append((run_id, dataset["name"], dataset["digest"], context))
