"""Magics for looking at the store: ``%track_runs``, ``%track_compare`` and ``%track_sql``."""

from __future__ import annotations

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from nbtrack.tracking import fluent


@magics_class
class LookingMagics(Magics):
    """Runs as a DataFrame, and SQL over the store."""

    @magic_arguments()
    @argument("--experiment", "-e", action="append",
              help="experiment name (repeatable; default: the active or default experiment)")
    @argument("--all", action="store_true", help="search every experiment")
    @argument("--filter", "-f", nargs="+", default=[], help="e.g. metrics.rmse < 5")
    @argument("--order-by", "-o", action="append", help="e.g. 'metrics.rmse ASC'")
    @argument("--max", type=int, default=100, help="most runs to return (default 100)")
    @line_magic
    def track_runs(self, line: str):
        """Return the runs as a DataFrame (rich HTML in a notebook, a text table elsewhere)."""
        args = parse_argstring(self.track_runs, line)
        order = [o.strip("'\"") for o in args.order_by or []] or None
        return fluent.search_runs(
            experiment_names=args.experiment,
            search_all_experiments=args.all,
            filter_string=" ".join(args.filter),
            order_by=order,
            max_results=args.max,
        )

    @magic_arguments()
    @argument("--experiment", "-e", action="append",
              help="experiment name (repeatable; default: the active or default experiment)")
    @argument("--filter", "-f", nargs="+", default=[], help="e.g. metrics.rmse < 5")
    @argument("--order-by", "-o", action="append", help="e.g. 'metrics.rmse ASC'")
    @line_magic
    def track_compare(self, line: str):
        """Show the compare dashboard: run table, parallel coordinates, curves, diff."""
        args = parse_argstring(self.track_compare, line)
        order = [o.strip("'\"") for o in args.order_by or []] or None
        from nbtrack.widgets.compare import compare

        return compare(args.experiment, filter=" ".join(args.filter), order_by=order)

    @magic_arguments()
    @argument("name", nargs="?", default=None, help="the registered model to open")
    @argument("--require", "-r", nargs="+", default=[],
              help="guard for promotions, e.g. metrics.rmse <= current")
    @line_magic
    def track_registry(self, line: str):
        """Show the model registry: versions, stages, aliases, history, and controls."""
        args = parse_argstring(self.track_registry, line)
        from nbtrack.widgets.registry import registry

        return registry(args.name, require=" ".join(args.require))

    @line_cell_magic
    def track_sql(self, line: str, cell: str | None = None):
        """Run one read-only SELECT over the store's views and return a DataFrame.

        Views: runs, runs_wide, metrics, latest_metrics, params, tags, experiments, artifacts,
        inputs, environments, registered_models, model_versions, registry_events.
        """
        query = cell if cell is not None else line
        return fluent.sql(query)
