"""Which params matter for a metric: correlation, and a random forest's importances.

For a numeric param the correlation is Pearson's r (signed); for a text param it is the
correlation ratio η (0 to 1). The model-based importance fits a random forest on all params
(numbers as they are, text one-hot) and sums each param's share, as W&B's panel does; it
needs scikit-learn.
"""

from __future__ import annotations

MIN_RUNS = 3


def _eta(categories, target) -> float:
    import numpy as np

    total = ((target - target.mean()) ** 2).sum()
    if total == 0:
        return float("nan")
    between = sum(len(g) * (g.mean() - target.mean()) ** 2
                  for _, g in target.groupby(categories))
    return float(np.sqrt(between / total))


def parameter_importance(frame, metric: str) -> dict:
    """Rank the ``params.*`` columns of ``frame`` by how much they matter for ``metric``.

    Returns ``{metric, runs, rows: [{param, correlation, kind, importance}], note}``.
    """
    import pandas as pd

    data = frame[frame[metric].notna()]
    params = [c for c in data.columns if c.startswith("params.") and data[c].notna().any()]
    result = {"metric": metric, "runs": len(data), "rows": [], "note": ""}
    if len(data) < MIN_RUNS or not params:
        result["note"] = (f"Needs at least {MIN_RUNS} runs with {metric} and some params; "
                          f"found {len(data)} runs and {len(params)} params.")
        return result
    target = data[metric].astype(float)
    features, owner, rows = [], [], {}
    for column in params:
        numeric = pd.to_numeric(data[column], errors="coerce")
        if numeric.notna().sum() == data[column].notna().sum():
            corr = numeric.corr(target) if numeric.nunique() > 1 else float("nan")
            rows[column] = {"param": column, "correlation": corr, "kind": "r"}
            features.append(numeric.fillna(numeric.median()).rename(column))
            owner.append(column)
        else:
            text = data[column].fillna("(none)").astype(str)
            rows[column] = {"param": column, "correlation": _eta(text, target), "kind": "η"}
            dummies = pd.get_dummies(text, prefix=column, dtype=float)
            features.extend(dummies[c] for c in dummies.columns)
            owner.extend([column] * len(dummies.columns))
    try:
        from sklearn.ensemble import RandomForestRegressor
    except ImportError:
        result["note"] = "Install scikit-learn for the model-based importance."
    else:
        X = pd.concat(features, axis=1).to_numpy()
        forest = RandomForestRegressor(n_estimators=100, random_state=0).fit(X, target)
        for name, share in zip(owner, forest.feature_importances_, strict=True):
            rows[name]["importance"] = rows[name].get("importance", 0.0) + float(share)
    ordered = sorted(rows.values(), key=lambda r: -(r.get("importance") or 0.0))
    for row in ordered:
        corr = row["correlation"]
        row["correlation"] = None if corr != corr else round(float(corr), 4)
        if "importance" in row:
            row["importance"] = round(row["importance"], 4)
    result["rows"] = ordered
    return result
