"""Magics for looking at the store: ``%track_runs``, ``%track_compare`` and ``%track_sql``.

Options are read as a shell reads them (``-f "metrics.rmse < 5"``); a bad option, filter or
experiment shows its message, not a traceback.
"""

from __future__ import annotations

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from nbtrack.exceptions import NbtrackError
from nbtrack.magics.args import MagicError, parse
from nbtrack.tracking import fluent


@magics_class
class LookingMagics(Magics):
    """Runs as a DataFrame, and SQL over the store."""

    @magic_arguments()
    @argument("--experiment", "-e", action="append",
              help="experiment name (repeatable; default: the active or default experiment)")
    @argument("--all", action="store_true", help="search every experiment")
    @argument("--filter", "-f", default="", help="e.g. \"metrics.rmse < 5\"")
    @argument("--order-by", "-o", action="append", help="e.g. \"metrics.rmse ASC\"")
    @argument("--max", type=int, default=100, help="most runs to return (default 100)")
    @line_magic
    def track_runs(self, line: str):
        """Return the runs as a DataFrame (rich HTML in a notebook, a text table elsewhere)."""
        args = parse(self.track_runs, line)
        try:
            return fluent.search_runs(
                experiment_names=args.experiment,
                search_all_experiments=args.all,
                filter_string=args.filter,
                order_by=args.order_by,
                max_results=args.max,
            )
        except NbtrackError as exc:
            raise MagicError(f"%track_runs: {exc}") from None

    @magic_arguments()
    @argument("--experiment", "-e", action="append",
              help="experiment name (repeatable; default: the active or default experiment)")
    @argument("--filter", "-f", default="", help="e.g. \"metrics.rmse < 5\"")
    @argument("--order-by", "-o", action="append", help="e.g. \"metrics.rmse ASC\"")
    @line_magic
    def track_compare(self, line: str):
        """Show the compare dashboard: run table, parallel coordinates, curves, diff."""
        args = parse(self.track_compare, line)
        try:  # the same search first: a bad filter or name is an error, not "no runs"
            fluent.search_runs(experiment_names=args.experiment, filter_string=args.filter,
                               order_by=args.order_by, max_results=1)
        except NbtrackError as exc:
            raise MagicError(f"%track_compare: {exc}") from None
        from nbtrack.widgets.compare import compare

        return compare(args.experiment, filter=args.filter, order_by=args.order_by)

    @magic_arguments()
    @argument("name", nargs="?", default=None, help="the registered model to open")
    @argument("--require", "-r", default="",
              help="guard for promotions, e.g. \"metrics.rmse <= current\"")
    @line_magic
    def track_registry(self, line: str):
        """Show the model registry: versions, stages, aliases, history, and controls."""
        args = parse(self.track_registry, line)
        from nbtrack.widgets.registry import registry

        try:
            return registry(args.name, require=args.require)
        except NbtrackError as exc:
            raise MagicError(f"%track_registry: {exc}") from None

    @line_cell_magic
    def track_sql(self, line: str, cell: str | None = None):
        """Run one read-only SELECT over the store's views and return a DataFrame.

        Views: runs, runs_wide, metrics, latest_metrics, params, tags, experiments, artifacts,
        inputs, environments, registered_models, model_versions, registry_events.
        """
        query = cell if cell is not None else line
        try:
            return fluent.sql(query)
        except NbtrackError as exc:
            raise MagicError(f"%track_sql: {exc}") from None
