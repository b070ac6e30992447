"""``%%track``: make a notebook cell a run. ``%track_config``: kernel-wide defaults."""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass, replace

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from nbtrack.capture.cell_params import literal_assignments, referenced_names
from nbtrack.capture.entry_point import EntryPoint
from nbtrack.capture.notebook import notebook_path
from nbtrack.clock import now_ms
from nbtrack.entities import Run, RunData, RunInfo, RunStatus
from nbtrack.exceptions import NbtrackError
from nbtrack.magics.args import MagicError, parse
from nbtrack.magics.cell_runner import run_cell_body
from nbtrack.magics.summary import summary_bundle
from nbtrack.tracking import autolog, fluent
from nbtrack.tracking.uri import get_tracking_uri, set_tracking_uri

MAX_FINGERPRINT_CELLS = 2_000_000  # rows x columns hashed per DataFrame, to bound the cost


@dataclass
class TrackConfig:
    """Defaults for every ``%%track`` cell in this kernel."""

    experiment: str | None = None
    capture: bool = True
    auto_params: bool = True
    summary: bool = True
    live: bool | None = None  # None: on in a notebook kernel, off elsewhere


def _names(text: str | None, option: str) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    for name in names:
        if not name.isidentifier():
            raise UsageError(f"{option} takes variable names separated by commas; "
                             f"{name!r} is not a variable name.")
    return names


def _tags(text: str | None) -> dict[str, str]:
    tags = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--tags takes key=value pairs separated by commas, e.g. "
                             f"--tags team=ml,stage=dev; {item!r} has no '='.")
        tags[key.strip()] = value.strip()
    return tags


def _warn(message: str) -> None:
    print(f"nbtrack: {message}", file=sys.stderr)


@magics_class
class TrackMagics(Magics):
    """The ``%%track`` cell magic and ``%track_config``."""

    def __init__(self, shell) -> None:
        super().__init__(shell)
        self.config_ = TrackConfig()
        self._cell: tuple[str, int] | None = None  # the tracked cell now running
        self._experiment_set: str | None = None

    @property
    def _shell(self) -> InteractiveShell:
        assert self.shell is not None, "magics run only once loaded into a shell"
        return self.shell

    # where a run comes from ----------------------------------------------------------------
    def entry_point(self) -> EntryPoint | None:
        """Describe the notebook cell that starts a run now (installed as the provider).

        Inside ``%%track`` the source is the tracked cell; for a plain ``start_run`` in a
        notebook it is the cell being run.
        """
        path = notebook_path(self._shell.user_ns)
        kind = "NOTEBOOK" if path else "INTERACTIVE"
        if not self.config_.capture:
            return EntryPoint(kind, path, capture=False)
        if self._cell is not None:
            source = self._cell[0]
        else:
            history = self._shell.user_ns.get("In") or [None]
            source = history[-1]
        return EntryPoint(kind, path, source, os.path.dirname(path) if path else os.getcwd())

    def _cell_number(self) -> int:
        """The number the front end shows for the running cell (``In[n]``).

        ``In`` is appended before a cell runs in every IPython version, whereas when
        ``execution_count`` moves differs between versions.
        """
        history = self._shell.user_ns.get("In")
        return len(history) - 1 if history else self._shell.execution_count

    # %%track ------------------------------------------------------------------------------
    @magic_arguments()
    @argument("--experiment", "-e", help="experiment name; kept for later cells")
    @argument("--name", "-n", help="the run's name (default: generated)")
    @argument("--description", "-d", help="a note stored with the run")
    @argument("--params", help="variables logged as params after the cell, e.g. alpha,l1")
    @argument("--metrics", help="variables logged as metrics after the cell, e.g. rmse,mae")
    @argument("--artifacts", nargs="+", metavar="PATH",
              help="files or folders logged as artifacts after the cell")
    @argument("--tags", help="tags as key=value pairs, e.g. team=ml,stage=dev")
    @argument("--nested", action="store_true", help="start the run inside the active run")
    @argument("--autolog", action="store_true",
              help="autolog scikit-learn and XGBoost fits in this cell: params, metrics, model")
    @argument("--no-capture", action="store_true",
              help="do not record the cell's code, git state or environment")
    @argument("--no-auto-params", action="store_true",
              help="do not log the cell's literal assignments (alpha = 0.1) as params")
    @argument("--no-summary", action="store_true", help="do not show the run summary")
    @argument("--no-live", action="store_true",
              help="no live chart of the metrics the cell logs while it runs")
    @cell_magic
    def track(self, line: str, cell: str):
        """Run the cell as an nbtrack run: everything it logs goes to that run.

        The run ends FINISHED, FAILED when the cell raises (the traceback is kept), or KILLED
        on interrupt; values logged before a failure are kept. Literal assignments at the top
        of the cell (``alpha = 0.1``) are logged as params unless --no-auto-params.
        """
        __tracebackhide__ = True
        args = parse(self.track, line)
        params, metrics = _names(args.params, "--params"), _names(args.metrics, "--metrics")
        tags = _tags(args.tags)
        experiment = args.experiment or self.config_.experiment
        if args.experiment:
            self.config_.experiment = args.experiment
        capture = self.config_.capture and not args.no_capture
        if experiment and experiment != self._experiment_set:
            try:
                fluent.set_experiment(experiment)
            except NbtrackError as exc:
                raise MagicError(f"%%track: {exc}") from None
            self._experiment_set = experiment
        count = self._cell_number()
        self._cell = (cell.rstrip("\n"), count) if capture else None
        saved_capture = self.config_.capture
        self.config_.capture = capture
        try:
            tags["nbtrack.execution_count"] = str(count)
            run = fluent.start_run(run_name=args.name, nested=args.nested, tags=tags,
                                    description=args.description)
        except NbtrackError as exc:
            raise UsageError(
                f"{exc} In a notebook: end the active run with fluent.end_run(), or use "
                "%%track --nested."
            ) from None
        finally:
            self._cell = None
            self.config_.capture = saved_capture
        client, run_id = run.client, run.run_id
        status = RunStatus.FINISHED
        chart = self._live_chart(client, run) if not args.no_live else None
        autolog_here = args.autolog and not autolog.enabled()
        try:
            if autolog_here:
                autolog.autolog(silent=False)
            run_cell_body(self.shell, cell, count)
        except KeyboardInterrupt:
            status = RunStatus.KILLED
            raise
        except BaseException as exc:
            status = RunStatus.FAILED
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            client.log_text(run_id, text, "traceback.txt")
            client.set_tag(run_id, "nbtrack.error", f"{type(exc).__name__}: {exc}"[:500])
            raise
        finally:
            if autolog_here:
                autolog.autolog(disable=True)
            notes = self._after_cell(client, run_id, cell, params, metrics, args, capture)
            active = fluent.active_run()
            if active is not None and active.run_id == run_id:
                fluent.end_run(status)
            try:  # the durability point: once the summary shows, the run survives a SIGKILL
                client.sync()
            except NbtrackError as exc:
                _warn(str(exc))
            latest = client.peek_latest_metrics(run_id)
            if chart is not None:
                chart.finish(latest)
                if not latest:
                    chart.close()  # the cell logged no metric: no empty chart left behind
            if self.config_.summary and not args.no_summary:
                self._show_summary(client, run.info, status, experiment, latest, notes)

    def _after_cell(self, client, run_id, cell, params, metrics, args, capture) -> list[str]:
        """Log what the options name; a bad value is reported, never fatal.

        A param the cell logged itself (``nbtrack.log_param``) keeps that value even when an
        assignment or ``--params`` says otherwise; the notes returned say so for the summary.
        """
        notes: list[str] = []
        namespace = self._shell.user_ns
        logged = client.logged_params(run_id)
        transformed = self._shell.transform_cell(cell)  # once, for auto params and fingerprints
        wanted: dict[str, object] = {}
        if self.config_.auto_params and not args.no_auto_params:
            found = literal_assignments(transformed)
            wanted.update((k, v) for k, v in found.items() if k not in metrics)
        for name in params:
            if name in namespace:
                wanted[name] = namespace[name]
            else:
                _warn(f"--params names {name!r}, which the cell did not define; not logged.")
        for key, value in wanted.items():
            if key in logged and logged[key] != str(value):
                notes.append(f"param {key} = {logged[key]} as the cell logged it (its "
                             f"variable was {str(value)[:40]})")
                continue  # the cell logged this key itself: its value stands
            client.log_param(run_id, key, value)
        for name in metrics:
            if name not in namespace:
                _warn(f"--metrics names {name!r}, which the cell did not define; not logged.")
                continue
            try:
                client.log_metric(run_id, name, namespace[name])
            except NbtrackError as exc:
                _warn(f"--metrics {name}: {exc}")
        if capture:
            self._fingerprint_frames(client, run_id, transformed)
        for path in args.artifacts or []:
            try:
                if os.path.isdir(path):
                    client.log_artifacts(run_id, path, os.path.basename(os.path.normpath(path)))
                else:
                    client.log_artifact(run_id, path)
            except NbtrackError as exc:
                _warn(f"--artifacts {path}: {exc}")
        return notes

    def _fingerprint_frames(self, client, run_id: str, source: str) -> None:
        """Record the DataFrames the cell names as inputs, with content digests."""
        namespace = self._shell.user_ns
        for name in referenced_names(source):
            value = namespace.get(name)
            if not (type(value).__module__.startswith("pandas") and hasattr(value, "columns")):
                continue
            cells = value.shape[0] * value.shape[1]
            if cells > MAX_FINGERPRINT_CELLS:
                _warn(f"DataFrame {name!r} ({cells:,} cells) is too large to fingerprint after "
                      f"every cell; record it with nbtrack.log_input({name}).")
                continue
            client.log_input(run_id, value, context="cell", name=name)

    def _live_chart(self, client, run):
        """Show a live chart under the cell when that is on (by default in notebooks)."""
        live = self.config_.live
        if live is None:  # on in notebook kernels, unless NBTRACK_LIVE=0 (nbtrack run sets it)
            live = type(self.shell).__name__ == "ZMQInteractiveShell" and os.environ.get(
                "NBTRACK_LIVE", "1").lower() not in ("0", "false", "no", "off")
        if not live:
            return None
        from nbtrack.widgets.live import LiveChart

        chart = LiveChart(client, run.run_id, run.info.run_name)
        chart.show()
        return chart

    def _show_summary(self, client, info: RunInfo, status: str, experiment: str | None,
                      metrics: dict[str, float], notes: list[str] | None = None) -> None:
        """Show the run as it ended, from what this kernel knows: no wait for the write."""
        from IPython.display import display

        info = replace(info, status=status, end_time=now_ms())
        if experiment is None:
            experiment = client.get_experiment(info.experiment_id).name
        display(summary_bundle(Run(info, RunData(metrics=metrics)), experiment, notes),
                raw=True)

    # %track_config ------------------------------------------------------------------------
    @magic_arguments()
    @argument("--experiment", "-e", help="experiment for %%track cells")
    @argument("--tracking-uri", help="the store to use (a folder path)")
    @argument("--capture", action="store_true", help="record code, git state, environment")
    @argument("--no-capture", action="store_true", help="do not record them")
    @argument("--auto-params", action="store_true", help="log literal assignments as params")
    @argument("--no-auto-params", action="store_true", help="do not")
    @argument("--summary", action="store_true", help="show a summary under tracked cells")
    @argument("--no-summary", action="store_true", help="do not")
    @argument("--live", action="store_true", help="live metric charts under tracked cells")
    @argument("--no-live", action="store_true", help="no live charts")
    @line_magic
    def track_config(self, line: str):
        """Set kernel-wide defaults for %%track, then print them all."""
        args = parse(self.track_config, line)
        for flag in ("capture", "auto_params", "summary", "live"):
            on, off = getattr(args, flag), getattr(args, "no_" + flag)
            if on and off:
                raise UsageError(f"Give --{flag.replace('_', '-')} or its --no- form, not both.")
            if on or off:
                setattr(self.config_, flag, bool(on))
        if args.experiment:
            self.config_.experiment = args.experiment
        if args.tracking_uri:
            try:
                set_tracking_uri(args.tracking_uri)
            except NbtrackError as exc:
                raise MagicError(f"%track_config: {exc}") from None
            self._experiment_set = None
        live = {None: "in notebooks", True: "on", False: "off"}[self.config_.live]
        print(f"tracking uri: {get_tracking_uri()}\n"
              f"experiment:   {self.config_.experiment or '(default)'}\n"
              f"capture:      {'on' if self.config_.capture else 'off'}\n"
              f"auto params:  {'on' if self.config_.auto_params else 'off'}\n"
              f"summary:      {'on' if self.config_.summary else 'off'}\n"
              f"live charts:  {live}")
