"""scikit-learn autolog: wrap ``fit`` so each outermost fit logs what a user would by hand.

Logged to the active run (or a run started for the fit and ended after it):

- params: ``get_params(deep=True)``, so a Pipeline's steps show as ``ridge__alpha``;
- training metrics, computed on the data given to ``fit``;
- the fitted model as the ``model`` model (with an input example and signature);
- feature importances (``feature_importances_`` or ``coef_``) as ``feature_importances.csv``;
- for ``GridSearchCV``/``RandomizedSearchCV``: ``best_*`` params, ``best_cv_score``, and one
  child run per candidate.

Fits inside an autologged fit (a Pipeline's steps, a search's candidates) log nothing of their
own. A param the run already has with another value is kept and reported, never overwritten.
Logging problems are reported as warnings: they never break the user's ``fit``.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

from nbtrack.tracking.autolog import log_new_params, patched, register


@dataclass
class AutologConfig:
    """What ``nbtrack.sklearn.autolog`` was last asked for."""

    enabled: bool = False
    log_models: bool = True
    log_input_examples: bool = True
    max_tuning_runs: int | None = 50
    silent: bool = False


config = register(AutologConfig())
#: estimator classes (untyped: scikit-learn has no type hints) -> the fit they had
_originals: dict[type[Any], object] = {}


@functools.cache
def _estimator_classes() -> list[type[Any]]:
    from sklearn.utils import all_estimators

    owners = set()  # the classes that define the fit each estimator uses (e.g. BaseSearchCV)
    for _, cls in all_estimators():
        owner = next((c for c in cls.__mro__ if "fit" in c.__dict__), None)
        if owner is not None:
            owners.add(owner)
    return sorted(owners, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def configure(disable: bool, log_models: bool, log_input_examples: bool,
              max_tuning_runs: int | None, silent: bool) -> None:
    """Turn autolog on (patching ``fit`` once) or off (restoring every original)."""
    if disable:
        for cls, original in _originals.items():
            cls.fit = original
        _originals.clear()
        config.enabled = False
        return
    config.log_models, config.log_input_examples = log_models, log_input_examples
    config.max_tuning_runs, config.silent = max_tuning_runs, silent
    if not _originals:
        for cls in _estimator_classes():
            _originals[cls] = cls.__dict__["fit"]
            cls.fit = patched(cls.__dict__["fit"], _logged_fit, lambda: config.enabled)
    config.enabled = True


def _warn(message: str) -> None:
    if not config.silent:
        warnings.warn(f"nbtrack autolog: {message}", stacklevel=4)


def _logged_fit(client, run_id: str, original, args, kwargs):
    estimator = args[0]
    X = args[1] if len(args) > 1 else kwargs.get("X")
    y = args[2] if len(args) > 2 else kwargs.get("y")
    _safely(_log_params, client, run_id, estimator)
    result = original(*args, **kwargs)
    _safely(_log_results, client, run_id, estimator, X, y)
    return result


def _safely(step, *args) -> None:
    try:
        step(*args)
    except Exception as exc:  # autolog must never break the user's fit
        _warn(f"{step.__name__.strip('_').replace('_', ' ')} failed: {exc}")


def _log_params(client, run_id: str, estimator) -> None:
    log_new_params(client, run_id, estimator.get_params(deep=True), _warn)


def _log_results(client, run_id: str, estimator, X, y) -> None:
    from nbtrack.sklearn import metrics as sklearn_metrics

    if y is not None:
        metrics = sklearn_metrics.training_metrics(estimator, X, y)
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
    if hasattr(estimator, "cv_results_"):
        _log_search(client, run_id, estimator)
    table = sklearn_metrics.feature_importances(estimator, X)
    if table is not None:
        client.log_text(run_id, table.to_csv(index=False), "feature_importances.csv")
    if config.log_models:
        from nbtrack.sklearn.flavor import log_model

        example = _head(X) if config.log_input_examples and X is not None else None
        log_model(estimator, "model", input_example=example, run_id=run_id)


def _head(X):
    return X.head(5) if hasattr(X, "head") else X[:5]


def _log_search(client, run_id: str, search) -> None:
    import numpy as np

    if hasattr(search, "best_params_"):
        log_new_params(client, run_id, {f"best_{k}": v for k, v in search.best_params_.items()},
                       _warn)
    if getattr(search, "best_score_", None) is not None:
        client.log_metric(run_id, "best_cv_score", float(search.best_score_))
    results = search.cv_results_
    order = np.argsort(results.get("rank_test_score", np.arange(len(results["params"]))),
                       kind="stable")
    if config.max_tuning_runs is not None:
        order = order[:config.max_tuning_runs]
    parent = client.get_run(run_id)
    metric_keys = [k for k in results if k.startswith(("mean_", "std_", "rank_"))]
    for position, index in enumerate(order):
        child = client.create_run(parent.info.experiment_id, parent_run_id=run_id,
                                  run_name=f"{parent.info.run_name}-{position + 1}")
        child_id = child.info.run_id
        log_new_params(client, child_id, results["params"][index], _warn)
        for key in metric_keys:
            value = results[key][index]
            if value is not None and not (isinstance(value, float) and np.isnan(value)):
                client.log_metric(child_id, key, float(value))
        client.set_terminated(child_id)
