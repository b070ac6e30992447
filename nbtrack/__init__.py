"""nbtrack: experiment tracking that lives in your notebook, on an embedded DuckDB store.

Switching from MLflow means changing the import::

    import nbtrack as mlflow

    with mlflow.start_run(run_name="lasso"):
        mlflow.log_param("alpha", 0.1)
        mlflow.log_metric("rmse", 4.2)

Heavy libraries (duckdb, pandas, pyarrow) load on first use, not on import.
"""

from nbtrack._version import __version__
from nbtrack.entities import RunStatus, ViewType
from nbtrack.exceptions import MlflowException
from nbtrack.tracking.client import Client
from nbtrack.tracking.fluent import (
    ActiveRun,
    active_run,
    create_experiment,
    delete_experiment,
    delete_run,
    delete_tag,
    end_run,
    flush,
    get_artifact_uri,
    get_experiment,
    get_experiment_by_name,
    get_parent_run,
    get_run,
    last_active_run,
    log_artifact,
    log_artifacts,
    log_dict,
    log_figure,
    log_input,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_text,
    search_experiments,
    search_runs,
    set_experiment,
    set_experiment_tag,
    set_experiment_tags,
    set_tag,
    set_tags,
    sql,
    start_run,
)
from nbtrack.tracking.media import Image, load_table, log_image, log_table
from nbtrack.tracking.uri import get_tracking_uri, set_tracking_uri

MlflowClient = Client


def load_ipython_extension(ipython) -> None:
    """``%load_ext nbtrack``: register ``%%track`` and the other magics."""
    from nbtrack.magics import load_ipython_extension as load

    load(ipython)


def register_model(model_uri: str, name: str, tags: dict | None = None):
    """Register the model at ``model_uri`` (e.g. ``runs:/<run_id>/model``) as a new version."""
    return Client().register_model(model_uri, name, tags=tags)


def autolog(disable: bool = False, log_models: bool = True, log_input_examples: bool = True,
            silent: bool = False) -> list[str]:
    """Autolog every supported library that is installed (scikit-learn); see its docs."""
    from nbtrack.tracking.autolog import autolog as enable

    return enable(disable=disable, log_models=log_models,
                  log_input_examples=log_input_examples, silent=silent)


#: attribute -> module, imported on first use (``nbtrack.promotion.PromotionRefused`` works)
_LAZY_MODULES = {
    "artifacts": "nbtrack.artifacts",
    "data": "nbtrack.data",
    "entities": "nbtrack.entities",
    "exceptions": "nbtrack.exceptions",
    "models": "nbtrack.models",
    "promotion": "nbtrack.tracking.promotion",
    "pyfunc": "nbtrack.pyfunc",
    "sklearn": "nbtrack.sklearn",
    "xgboost": "nbtrack.xgboost",
}


def __getattr__(name: str):
    # widgets and flavor modules load on first use, keeping `import nbtrack` light
    if name == "compare":
        from nbtrack.widgets.compare import compare

        return compare
    if name == "registry":
        from nbtrack.widgets.registry import registry

        return registry
    if name == "promote":
        from nbtrack.tracking.promotion import promote

        return promote
    if name == "push":
        from nbtrack.interop.push import push

        return push
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(_LAZY_MODULES[name])
    raise AttributeError(f"module 'nbtrack' has no attribute {name!r}")


def unload_ipython_extension(ipython) -> None:
    """``%unload_ext nbtrack``."""
    from nbtrack.magics import unload_ipython_extension as unload

    unload(ipython)

__all__ = [
    "ActiveRun",
    "Client",
    "Image",
    "MlflowClient",
    "MlflowException",
    "RunStatus",
    "ViewType",
    "__version__",
    "active_run",
    "autolog",
    "compare",
    "create_experiment",
    "delete_experiment",
    "delete_run",
    "delete_tag",
    "end_run",
    "flush",
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "get_parent_run",
    "get_run",
    "get_tracking_uri",
    "last_active_run",
    "load_ipython_extension",
    "load_table",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_image",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "promote",
    "push",
    "register_model",
    "registry",
    "search_experiments",
    "search_runs",
    "set_experiment",
    "set_experiment_tag",
    "set_experiment_tags",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "sql",
    "start_run",
]
