"""``nbtrack.compare()``: one widget to compare runs: a table, charts, a diff, importances.

The table's sorting and filtering run in DuckDB in the kernel: the front end only asks (by
setting ``order_by`` or ``filter``) and receives the matching rows as Arrow IPC bytes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import traitlets

from nbtrack.analysis.brush import brush_filter
from nbtrack.analysis.diff import run_diff
from nbtrack.analysis.importance import parameter_importance
from nbtrack.entities import ViewType
from nbtrack.exceptions import FilterSyntaxError, InvalidValueError, NbtrackError
from nbtrack.widgets.frontend import FetchedFrontEnd
from nbtrack.widgets.payload import from_ipc, run_ids_filter, to_ipc

STATIC = Path(__file__).resolve().parent.parent / "static"
MAX_ROWS = 50_000
MAX_CURVES = 20  # selected runs drawn as curves
MAX_DIFF = 6  # selected runs compared in the diff
SNAPSHOT_ROWS = 10  # rows in the text fallback
DEFAULT_COLUMNS = 20


class CompareWidget(FetchedFrontEnd):
    """Compare runs in a notebook. ``selected_run_ids`` holds the rows picked in the table."""

    frontend_module = "compare.js"  # fetched from the kernel once per page, never saved
    extra_modules = ("charts.js",)  # plotly's charts, fetched when the Curves tab needs them
    _css = STATIC / "compare.css"

    experiment_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    filter = traitlets.Unicode("").tag(sync=True)
    filter_error = traitlets.Unicode("").tag(sync=True)
    order_by = traitlets.List(traitlets.Unicode()).tag(sync=True)
    columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    available_columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    table = traitlets.Bytes(b"").tag(sync=True)
    table_reason = traitlets.Unicode("rows").tag(sync=True)  # "order": same rows, re-sorted
    row_count = traitlets.Int(0).tag(sync=True)
    total_count = traitlets.Int(0).tag(sync=True)
    selected_run_ids = traitlets.List(traitlets.Unicode()).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    # {column: {"ranges": ...} or {"values": ...}}; Any, so that a malformed message reaches
    # brush_filter and is shown in brush_error instead of failing trait validation
    brush = traitlets.Any({}).tag(sync=True)
    brush_error = traitlets.Unicode("").tag(sync=True)  # a malformed brush, shown inline
    curve_metric = traitlets.Unicode("").tag(sync=True)
    history = traitlets.Bytes(b"").tag(sync=True)
    diff = traitlets.Dict().tag(sync=True)
    importance_metric = traitlets.Unicode("").tag(sync=True)
    importance = traitlets.Dict().tag(sync=True)
    auto_refresh = traitlets.Bool(False).tag(sync=True)
    refresh_interval = traitlets.Float(2.0).tag(sync=True)

    def __init__(self, client, experiment_ids: list[str], experiment_names: list[str],
                 filter: str = "", runs: list[str] | None = None,
                 order_by: list[str] | None = None, columns: list[str] | None = None,
                 max_rows: int = MAX_ROWS, auto_refresh: bool = False) -> None:
        super().__init__(experiment_names=experiment_names, filter=filter or "",
                         order_by=order_by or ["start_time DESC"])
        self._client = client
        self._experiment_ids = experiment_ids
        self._base_filter = run_ids_filter(runs) if runs else ""
        self.max_rows = max_rows
        self.available_columns = list(self._key_counts())
        self.columns = columns if columns is not None else self._default_columns()
        metrics = [c for c in self.available_columns if c.startswith("metrics.")]
        self.curve_metric = metrics[0] if metrics else ""
        self.refresh()
        self.observe(self._on_query, names=["filter", "columns"])
        self.observe(lambda _: self.refresh(reason="order"), names=["order_by"])
        self.observe(lambda _: self.refresh(), names=["brush"])
        self.observe(lambda _: self._update_selection_views(),
                     names=["selected_run_ids", "curve_metric"])
        self.observe(lambda _: self.update_importance(), names=["importance_metric"])
        self.on_msg(self._on_message)
        self._watcher: threading.Thread | None = None
        self.observe(self._on_auto_refresh, names=["auto_refresh"])
        self.auto_refresh = auto_refresh

    # data --------------------------------------------------------------------------------
    def _key_counts(self) -> dict[str, int]:
        return self._client.key_counts(self._experiment_ids, ViewType.ACTIVE_ONLY)

    def _default_columns(self) -> list[str]:
        """Every metric, then params and tags, most common first, up to 20 columns."""
        keys = self.available_columns
        ordered = ([k for k in keys if k.startswith("metrics.")]
                   + [k for k in keys if k.startswith("params.")]
                   + [k for k in keys if k.startswith("tags.") and not k.startswith(
                       ("tags.mlflow.", "tags.nbtrack."))])
        return ordered[:DEFAULT_COLUMNS]

    def _combined_filter(self, brush: str = "") -> str:
        parts = [f"({p})" for p in (self._base_filter, self.filter.strip(), brush) if p]
        return " AND ".join(parts)

    def _brush_clause(self) -> str:
        """The brush as a filter; a malformed one (it comes as a message) is shown, not raised.

        The rows then follow the filter alone, and ``brush_error`` says why.
        """
        try:
            clause = brush_filter(self.brush)
        except InvalidValueError as exc:
            self.brush_error = f"The plot's brush was ignored: {exc}"
            return ""
        self.brush_error = ""
        return clause

    def _on_query(self, _change) -> None:
        """A new filter or new columns: the old axis brushes no longer apply."""
        with self.hold_trait_notifications():
            self.brush = {}
        self.refresh()

    def refresh(self, reason: str = "rows") -> None:
        """Query the store again with the current filter, order and columns.

        ``reason`` tells the front end whether the rows may differ (``"rows"``) or are the same
        rows in a new order (``"order"``), which needs no redraw of the charts.
        """
        from nbtrack.search.parser import parse_filter

        brush = self._brush_clause()
        try:
            parse_filter(self.filter)  # errors point into the user's own text
            table, total = self._client.search_runs_table(
                self._experiment_ids, self._combined_filter(brush), ViewType.ACTIVE_ONLY,
                self.max_rows, list(self.order_by), list(self.columns))
        except (FilterSyntaxError, NbtrackError) as exc:
            self.filter_error = str(exc)
            return
        shown = set(table.column("run_id").to_pylist())
        kept = [r for r in self.selected_run_ids if r in shown]
        with self.hold_sync():  # one message to the front end
            self.filter_error = ""
            if reason != "order":
                self.available_columns = list(self._key_counts())
            self.table_reason = reason
            self.table = to_ipc(table)
            self.row_count, self.total_count = len(table), total
            self.status = (f"{total:,} runs" if total <= len(table)
                           else f"showing {len(table):,} of {total:,} runs: narrow the filter")
            if kept != self.selected_run_ids:
                self.selected_run_ids = kept
            elif reason != "order":
                self._update_selection_views()

    def _update_selection_views(self) -> None:
        """Curves and diff follow the selected runs."""
        selected = list(self.selected_run_ids)
        if selected and self.curve_metric:
            key = self.curve_metric.removeprefix("metrics.")
            self.history = to_ipc(self._client.metric_histories(selected[:MAX_CURVES], key))
        else:
            self.history = b""
        self.diff = run_diff(self._client, selected[:MAX_DIFF]) if len(selected) > 1 else {}

    def update_importance(self) -> None:
        """Rank the params for ``importance_metric`` over the runs the filter matches."""
        metric = self.importance_metric
        if not metric:
            self.importance = {}
            return
        keys = [c for c in self.available_columns if c.startswith("params.")]
        table, _ = self._client.search_runs_table(
            self._experiment_ids, self._combined_filter(),
            ViewType.ACTIVE_ONLY, self.max_rows, None, [*keys, metric])
        self.importance = parameter_importance(table.to_pandas(), metric)

    def _on_auto_refresh(self, change) -> None:
        if change["new"] and (self._watcher is None or not self._watcher.is_alive()):
            self._watcher = threading.Thread(target=self._watch, name="nbtrack-compare-refresh",
                                             daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        """While ``auto_refresh`` is on, refresh when the store changes (checked by a stat)."""
        token = self._client.change_token()
        while self.auto_refresh and self.comm is not None:
            time.sleep(self.refresh_interval)
            now = self._client.change_token()
            if now != token:
                try:
                    self.refresh()
                except Exception as exc:  # keep watching; say what went wrong
                    self.status = f"auto refresh failed: {exc}"
                token = self._client.change_token()

    def _on_message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("type") == "refresh":
            self.refresh()

    def __repr__(self) -> str:
        where = ", ".join(self.experiment_names) or "all experiments"
        text = f"<nbtrack compare: {self.status or 'no runs'} in {where}"
        return text + (f", filter {self.filter!r}>" if self.filter else ">")

    def _repr_mimebundle_(self, **kwargs):
        """The widget, with a text table of the first rows for front ends without it.

        JupyterLab shows the text when the widget's kernel is gone (a reopened notebook).
        """
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            data["text/plain"] = self.snapshot_text()
        return bundle

    def snapshot_text(self, rows: int = SNAPSHOT_ROWS) -> str:
        """``repr`` plus the first rows as a text table (the last data, kept in the output)."""
        if not self.table:
            return repr(self)
        table = from_ipc(self.table).slice(0, rows)
        shown = ["run_name", "status", *self.columns[:5]]
        table = table.select([c for c in shown if c in table.column_names])
        more = f"\n... {self.total_count - len(table):,} more" if self.total_count > len(
            table) else ""
        return f"{self!r}\n{_text_table(table)}{more}"


def _text_table(table) -> str:
    """An Arrow table as text, its columns right-aligned under their names.

    Plain Python rather than pandas: the first dashboard of a kernel would otherwise wait for
    pandas to import (half a second on a busy machine) before the page could show it.
    """
    cells = {name: ["" if value is None else f"{value:.6g}" if isinstance(value, float)
                    else str(value) for value in table.column(name).to_pylist()]
             for name in table.column_names}
    widths = {name: max([len(name), *map(len, values)]) for name, values in cells.items()}
    lines = [" ".join(name.rjust(widths[name]) for name in cells)]
    lines += [" ".join(cells[name][row].rjust(widths[name]) for name in cells)
              for row in range(table.num_rows)]
    return "\n".join(lines)


def compare(experiment: str | list[str] | None = None, filter: str = "",
            runs: list[str] | None = None, order_by: list[str] | None = None,
            columns: list[str] | None = None, auto_refresh: bool = False) -> CompareWidget:
    """A widget comparing runs of ``experiment`` (a name or names; default: the active one).

    ``filter`` takes the search grammar; ``runs`` limits it to those run ids;
    ``auto_refresh`` re-reads the store whenever it changes (checked every 2 s).
    """
    from nbtrack.tracking import fluent

    client = fluent.current_client()
    names = [experiment] if isinstance(experiment, str) else list(experiment or [])
    if names:
        found = [client.get_experiment_by_name(n) for n in names]
        missing = [n for n, e in zip(names, found, strict=True) if e is None]
        if missing:
            raise NbtrackError(f"No experiment named {', '.join(map(repr, missing))}. See them "
                               "with nbtrack.search_experiments().")
        ids = [e.experiment_id for e in found if e is not None]  # none is, as checked
    else:
        ids = [fluent.default_experiment_id(client)]
        names = [client.get_experiment(ids[0]).name]
    return CompareWidget(client, ids, names, filter=filter, runs=runs, order_by=order_by,
                         columns=columns, auto_refresh=auto_refresh)
