"""Live metric charts under a running ``%%track`` cell.

The chart follows its run through the store's write listener: every written batch hands over
its metric rows, and one thread per process asks for a write every ``INTERVAL`` seconds while
a cell runs. ``log_metric`` itself is untouched, so the training loop keeps its speed. Each metric
keeps at most ``MAX_POINTS`` points (every other point is dropped when it grows past that), and
the front end gets at most one update per interval.

When the cell ends, the chart's output is updated in place (``finish``) with a text line and a
small HTML table of each metric's last value, so that a saved notebook, or a viewer without the
widget's front end, shows the final values rather than the state at the cell's start.
"""

from __future__ import annotations

import html
import math
import threading
import time
from pathlib import Path

import anywidget
import traitlets

STATIC = Path(__file__).resolve().parent.parent / "static"
MAX_POINTS = 1000
INTERVAL = 0.5


class Series:
    """One metric's points, thinned evenly as they grow (keeps the first and the latest)."""

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        self.steps: list[int] = []
        self.values: list[float] = []
        self.stride = 1
        self._seen = 0
        self.max_points = max_points

    def add(self, step: int, value: float) -> None:
        if self._seen % self.stride == 0:
            self.steps.append(step)
            self.values.append(value)
        self._seen += 1
        if len(self.steps) > self.max_points:
            self.steps, self.values = self.steps[::2], self.values[::2]
            self.stride *= 2

    def latest(self) -> tuple[list[int], list[float]]:
        return self.steps, self.values


class _Poller:
    """One thread per process polls every live chart that is following a running cell."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._charts: set = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def follow(self, chart) -> None:
        with self._lock:
            self._charts.add(chart)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="nbtrack-live",
                                                daemon=True)
                self._thread.start()

    def drop(self, chart) -> None:
        with self._lock:
            self._charts.discard(chart)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                charts = list(self._charts)
            for chart in charts:
                try:
                    chart.poll()
                except Exception:  # a closed or broken chart: stop following it
                    self.drop(chart)


_POLLER = _Poller()


_layout = None


def _shared_layout():
    """One Layout for every live chart: a new one per chart would cost a widget each time."""
    global _layout
    if _layout is None or _layout.comm is None:  # none yet, or closed (Widget.close_all)
        import ipywidgets

        _layout = ipywidgets.Layout()
    return _layout


def sparkline(values: list[float], width: int = 120, height: int = 24,
              max_points: int = 60) -> str:
    """An inline SVG line of ``values`` (evenly thinned to ``max_points``); "" under two."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return ""
    stride = max(1, math.ceil(len(finite) / max_points))
    kept = finite[::stride]
    if kept[-1] is not finite[-1]:
        kept.append(finite[-1])
    low, high = min(kept), max(kept)
    span = (high - low) or 1.0
    last = len(kept) - 1
    points = " ".join(f"{i * width / last:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}"
                      for i, v in enumerate(kept))
    return (f"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}'>"
            f"<polyline fill='none' stroke='#0969da' stroke-width='1.5' points='{points}'/>"
            "</svg>")


class LiveChart(anywidget.AnyWidget):
    """A small chart per metric of one run, updated while the run's cell executes."""

    _esm = STATIC / "live.js"
    _css = STATIC / "live.css"

    run_name = traitlets.Unicode("").tag(sync=True)
    series = traitlets.Dict().tag(sync=True)  # {key: {"step": [...], "value": [...]}}
    running = traitlets.Bool(True).tag(sync=True)

    def __init__(self, client, run_id: str, run_name: str) -> None:
        super().__init__(run_name=run_name, layout=_shared_layout())
        self._client, self._run_id = client, run_id
        self._lock = threading.Lock()  # guards the points
        self._push_lock = threading.Lock()  # one push at a time: the newest points go last
        self._points: dict[str, Series] = {}
        self._changed = False
        self._stop = threading.Event()
        self._handle = None  # the display it was shown in, updated when the cell ends
        self.final: dict[str, float] = {}  # each metric's last value, once the cell ended
        self._detach = client.follow_writes(self._on_rows)
        _POLLER.follow(self)

    def show(self) -> None:
        """Display the chart in an output that ``finish`` can update in place."""
        from IPython.display import display

        self._handle = display(self, display_id=True)

    def _on_rows(self, rows) -> None:
        run_id = self._run_id
        with self._lock:
            for row in rows:
                if row[0] == run_id:
                    self._points.setdefault(row[1], Series()).add(row[3], row[2])
                    self._changed = True
        if self._stop.is_set():  # the cell is over: this was its last write
            self._push()
            self._detach()

    def poll(self) -> None:
        """Ask for a write of what is pending, and send the points gathered so far."""
        self._client.sync_soon()
        self._push()

    def _push(self) -> None:
        """Send the points gathered so far, if any changed.

        The poller, the spooler (the run's last write) and the cell's end all push, from three
        threads. Gathering and sending happen under one lock, so a push that gathered older
        points can never send them after a newer one.
        """
        with self._push_lock:
            with self._lock:
                if not self._changed:
                    return
                self._changed = False
                series = {k: {"step": list(s.steps), "value": list(s.values)}
                          for k, s in sorted(self._points.items())}
            self.series = series

    def finish(self, latest: dict[str, float] | None = None) -> None:
        """The cell ended: stop polling; the run's last write brings the final points.

        ``latest`` (each metric's last value) goes into the chart's saved form: its output is
        updated to say them, or to say nothing when the cell logged no metric.
        """
        if latest is not None:
            self.final = dict(latest)
        if self._handle is not None:
            self._handle.update(self._final_bundle(), raw=True)
        self._stop.set()
        _POLLER.drop(self)
        self.running = False
        self._client.sync_soon()
        if not self._client.has_unsynced():  # nothing left to write: finish now
            self._push()
            self._detach()

    def _steps(self) -> dict[str, int]:
        with self._lock:
            return {k: s.steps[-1] for k, s in self._points.items() if s.steps}

    def final_text(self) -> str:
        """One line: each metric's last value (and step, when the chart saw it)."""
        steps = self._steps()
        values = ", ".join(
            f"{key}={value:.4g}" + (f" (step {steps[key]})" if key in steps else "")
            for key, value in sorted(self.final.items()))
        return f"nbtrack run {self.run_name!r}, final: {values}"

    def final_html(self) -> str:
        """A small table of each metric's last value, for viewers without the widget.

        Each metric with two points or more gets a sparkline of its curve as the chart had it
        when the cell ended (inline SVG, a few hundred bytes).
        """
        steps = self._steps()
        with self._lock:
            curves = {k: sparkline(s.values) for k, s in self._points.items()}
        rows = "".join(
            f"<tr><td style='text-align:left'>{html.escape(key)}</td><td>{value:.6g}</td>"
            f"<td>{steps.get(key, '')}</td><td>{curves.get(key, '')}</td></tr>"
            for key, value in sorted(self.final.items()))
        return (f"<div class='nbtrack-live-final' style='font-size:12px'>nbtrack run "
                f"<b>{html.escape(self.run_name)}</b>, final values<table><tr><th>metric</th>"
                f"<th>last value</th><th>step</th><th></th></tr>{rows}</table></div>")

    def _final_bundle(self) -> dict:
        if not self.final:  # nothing logged: the output says nothing
            return {"text/plain": ""}
        bundle = self._repr_mimebundle_()
        data = (bundle[0] if isinstance(bundle, tuple) else bundle) or {}
        return {**data, "text/html": self.final_html()}

    def __repr__(self) -> str:
        if self.final:
            return f"<{self.final_text()}>"
        keys = ", ".join(self.series) or "no metrics yet"
        return f"<nbtrack live chart of run {self.run_name!r}: {keys}>"

    @property
    def has_points(self) -> bool:
        """Whether any metric value of the run reached the chart."""
        with self._lock:
            return bool(self._points)
