"""What autolog computes after a fit: training metrics and feature importances."""

from __future__ import annotations


def training_metrics(estimator, X, y) -> dict[str, float]:
    """MLflow's training metrics for a regressor or classifier, on the fit's own data."""
    from sklearn import metrics
    from sklearn.base import is_classifier, is_regressor

    if not hasattr(estimator, "predict"):
        return {}
    predicted = estimator.predict(X)
    found: dict[str, float] = {}
    if is_regressor(estimator):
        mse = metrics.mean_squared_error(y, predicted)
        found.update(training_mean_squared_error=mse, training_root_mean_squared_error=mse ** 0.5,
                     training_mean_absolute_error=metrics.mean_absolute_error(y, predicted),
                     training_r2_score=metrics.r2_score(y, predicted))
    elif is_classifier(estimator):
        found.update(
            training_accuracy_score=metrics.accuracy_score(y, predicted),
            training_precision_score=metrics.precision_score(
                y, predicted, average="weighted", zero_division=0),
            training_recall_score=metrics.recall_score(
                y, predicted, average="weighted", zero_division=0),
            training_f1_score=metrics.f1_score(y, predicted, average="weighted", zero_division=0),
        )
        if hasattr(estimator, "predict_proba"):
            try:
                proba = estimator.predict_proba(X)
                found["training_log_loss"] = metrics.log_loss(y, proba,
                                                              labels=estimator.classes_)
                found["training_roc_auc"] = (
                    metrics.roc_auc_score(y, proba[:, 1]) if proba.shape[1] == 2
                    else metrics.roc_auc_score(y, proba, multi_class="ovr",
                                               labels=estimator.classes_))
            except (ValueError, AttributeError):
                pass  # e.g. a class missing from y: these two are then left out
    else:
        return {}
    if hasattr(estimator, "score"):
        found["training_score"] = estimator.score(X, y)
    return {key: float(value) for key, value in found.items()}


def _final_estimator(estimator):
    estimator = getattr(estimator, "best_estimator_", estimator)
    while hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    return estimator


def feature_importances(estimator, X):
    """A DataFrame ``feature, importance`` from the final estimator, or None if it has none."""
    import numpy as np
    import pandas as pd

    final = _final_estimator(estimator)
    values = getattr(final, "feature_importances_", None)
    kind = "feature_importance"
    if values is None:
        coef = getattr(final, "coef_", None)
        if coef is None or np.ndim(coef) > 2 or (np.ndim(coef) == 2 and np.shape(coef)[0] != 1):
            return None
        values, kind = np.ravel(coef), "coefficient"
    values = np.asarray(values, dtype=float)
    names = getattr(final, "feature_names_in_", None)
    if names is None and hasattr(X, "columns") and len(X.columns) == len(values):
        names = X.columns
    if names is None or len(names) != len(values):
        names = [f"x{i}" for i in range(len(values))]
    table = pd.DataFrame({"feature": [str(n) for n in names], kind: values})
    return table.reindex(table[kind].abs().sort_values(ascending=False).index)
