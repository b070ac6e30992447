"""What the fluent API remembers in a process, held in one object with a ``reset``.

Active runs are per thread, as in MLflow: a run started in one thread is not the active run of
another. The chosen experiment, the last ended run, the client (one per tracking URI) and the
models already logged to each run are per process.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from nbtrack.tracking.uri import get_tracking_uri

if TYPE_CHECKING:
    from nbtrack.models.model import ModelInfo
    from nbtrack.tracking.client import Client


class TrackingState:
    """The fluent API's state: per-thread active-run stacks, experiment, last run, client."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything (tests call this between cases); ends no run."""
        self._local = threading.local()
        self._stacks: list[RunStack] = []  # every thread's, kept past the thread's end
        self.experiment_id: str | None = None
        self.last_run_id: str | None = None
        self._client: tuple[str, Client] | None = None
        #: (run_id, sha256 of the serialized model) -> ModelInfo: a model is logged once per run
        self.logged_models: dict[tuple[str, str], ModelInfo] = {}

    @property
    def active_runs(self) -> RunStack:
        """The active runs of the calling thread, innermost last."""
        try:
            return self._local.runs
        except AttributeError:
            stack = self._local.runs = RunStack()
            # a thread that ended with runs still active keeps them for the exit path
            self._stacks = [s for s in self._stacks if s or s.thread_alive()] + [stack]
            return stack

    def every_active_run(self) -> list:
        """The active runs of every thread (the exit path ends them all)."""
        return [run for stack in list(self._stacks) for run in stack]

    def client(self) -> Client:
        """The client of the current tracking URI, created once per URI."""
        uri = get_tracking_uri()
        cached = self._client
        if cached is None or cached[0] != uri:
            from nbtrack.tracking.client import Client

            cached = self._client = (uri, Client(uri))
        return cached[1]


class RunStack(list):
    """One thread's active runs, innermost last."""

    def __init__(self) -> None:
        super().__init__()
        self._thread = weakref.ref(threading.current_thread())

    def thread_alive(self) -> bool:
        """Whether the thread that started these runs still runs."""
        thread = self._thread()
        return thread is not None and thread.is_alive()


#: the one state object of this process
state = TrackingState()
