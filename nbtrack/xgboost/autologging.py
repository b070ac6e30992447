"""XGBoost autolog: wrap ``xgboost.train`` and the scikit-learn API's ``fit``.

Logged to the active run (or one started for the fit): params (``num_boost_round`` too), every
eval metric per iteration as a history (``train-rmse`` at step 0, 1, ...), ``best_iteration``
with early stopping, the model, and feature importances (gain) as ``feature_importances.csv``.
Fits nested in another autologged fit log nothing of their own.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from nbtrack.tracking.autolog import log_new_params, patched, register


@dataclass
class XGBoostAutologConfig:
    """What ``nbtrack.xgboost.autolog`` was last asked for."""

    enabled: bool = False
    log_models: bool = True
    log_input_examples: bool = True
    silent: bool = False


config = register(XGBoostAutologConfig())
_originals: dict[tuple[object, str], object] = {}


def _enabled() -> bool:
    return config.enabled


def _warn(message: str) -> None:
    if not config.silent:
        warnings.warn(f"nbtrack autolog: {message}", stacklevel=4)


def _targets():
    import xgboost as xgb
    from xgboost import sklearn as xgb_sklearn
    from xgboost import training

    owners = {c for c in (xgb_sklearn.XGBModel, *xgb_sklearn.XGBModel.__subclasses__())
              if "fit" in c.__dict__}
    return [(xgb, "train"), (training, "train")] + [(c, "fit") for c in owners]


def configure(disable: bool, log_models: bool, log_input_examples: bool, silent: bool) -> None:
    """Turn XGBoost autolog on (patching once) or off (restoring the originals)."""
    if disable:
        for (owner, attribute), original in _originals.items():
            setattr(owner, attribute, original)
        _originals.clear()
        config.enabled = False
        return
    config.log_models, config.log_input_examples = log_models, log_input_examples
    config.silent = silent
    if not _originals:
        train = None
        for owner, attribute in _targets():
            original = getattr(owner, attribute)
            _originals[(owner, attribute)] = original
            if attribute == "train":
                train = train or patched(original, _logged_train, _enabled)
                setattr(owner, attribute, train)
            else:
                setattr(owner, attribute, patched(original, _logged_fit, _enabled))
    config.enabled = True


def _safely(step, *args) -> None:
    try:
        step(*args)
    except Exception as exc:  # autolog must never break the user's training
        _warn(f"{step.__name__.strip('_').replace('_', ' ')} failed: {exc}")


def _log_params(client, run_id: str, params: dict) -> None:

    log_new_params(client, run_id, {k: v for k, v in params.items() if v is not None}, _warn)


def _log_history(client, run_id: str, evals_result: dict) -> None:
    from nbtrack.clock import now_ms
    from nbtrack.entities import Metric

    stamp = now_ms()
    rows = [Metric(f"{data}-{metric}", float(v), stamp, step)
            for data, metrics in (evals_result or {}).items()
            for metric, values in metrics.items()
            for step, v in enumerate(values)]
    if rows:
        client.log_batch(run_id, metrics=rows)


def _log_importances(client, run_id: str, booster) -> None:
    import pandas as pd

    scores = booster.get_score(importance_type="gain")
    if scores:
        table = pd.DataFrame({"feature": list(scores), "gain": list(scores.values())})
        table = table.sort_values("gain", ascending=False)
        client.log_text(run_id, table.to_csv(index=False), "feature_importances.csv")


def _log_model(client, run_id: str, model, example) -> None:
    if config.log_models:
        from nbtrack.xgboost.flavor import log_model

        log_model(model, "model", run_id=run_id, input_example=example
                                  if config.log_input_examples else None)


def _logged_train(client, run_id, original, args, kwargs):
    import inspect

    bound = inspect.signature(original).bind(*args, **kwargs)
    bound.apply_defaults()
    params = dict(bound.arguments["params"] or {})
    params["num_boost_round"] = bound.arguments["num_boost_round"]
    _safely(_log_params, client, run_id, params)
    if bound.arguments["evals_result"] is None:
        bound.arguments["evals_result"] = {}
    booster = original(*bound.args, **bound.kwargs)
    _safely(_log_history, client, run_id, bound.arguments["evals_result"])
    if bound.arguments["early_stopping_rounds"]:
        _safely(client.log_metric, run_id, "best_iteration", float(booster.best_iteration))
    _safely(_log_importances, client, run_id, booster)
    _safely(_log_model, client, run_id, booster, None)
    return booster


def _logged_fit(client, run_id, original, args, kwargs):
    model = args[0]
    X = args[1] if len(args) > 1 else kwargs.get("X")
    _safely(_log_params, client, run_id, model.get_params())
    result = original(*args, **kwargs)
    try:
        history = model.evals_result()
    except Exception:  # no eval_set given
        history = {}
    _safely(_log_history, client, run_id, history)
    if getattr(model, "best_iteration", None) is not None and history:
        _safely(client.log_metric, run_id, "best_iteration", float(model.best_iteration))
    _safely(_log_importances, client, run_id, model.get_booster())
    example = X.head(5) if hasattr(X, "head") else (X[:5] if X is not None else None)
    _safely(_log_model, client, run_id, model, example)
    return result
