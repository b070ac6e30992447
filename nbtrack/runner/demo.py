"""A small NYC-taxi-style demo: fit trip-duration models with numpy and track every run."""

from __future__ import annotations

import numpy as np

import nbtrack

EXPERIMENT = "nyc-taxi-demo"


def make_trips(n: int = 5_000, seed: int = 0):
    """Synthetic trips: distance (km), pickup hour, passengers -> duration (minutes)."""
    rng = np.random.default_rng(seed)
    distance = rng.gamma(2.0, 2.0, n)
    hour = rng.integers(0, 24, n)
    passengers = rng.integers(1, 5, n)
    rush = ((hour >= 7) & (hour <= 9)) | ((hour >= 16) & (hour <= 19))
    duration = 4 + 3.1 * distance + 6 * rush + 0.4 * passengers + rng.normal(0, 3, n)
    features = np.column_stack([distance, rush.astype(float), passengers, np.sin(hour / 24)])
    return features, duration


def fit_ridge(x, y, alpha: float, epochs: int, lr: float = 0.05):
    """Gradient-descent ridge regression; logs the training loss at every epoch."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    xs = np.column_stack([np.ones(len(x)), (x - mean) / std])
    w = np.zeros(xs.shape[1])
    for epoch in range(epochs):
        residual = xs @ w - y
        grad = xs.T @ residual / len(y) + alpha * np.r_[0, w[1:]]
        w -= lr * grad
        nbtrack.log_metric("train_mse", float(np.mean(residual**2)), step=epoch)
    return lambda new: np.column_stack([np.ones(len(new)), (new - mean) / std]) @ w


def run_demo(n_runs: int = 4, epochs: int = 60):
    """Log ``n_runs`` ridge runs with different alphas and return the runs DataFrame."""
    nbtrack.set_experiment(EXPERIMENT)
    x, y = make_trips()
    split = int(0.8 * len(y))
    alphas = [0.0, 0.01, 0.1, 1.0, 3.0, 10.0][: max(1, n_runs)]
    for alpha in alphas:
        name = "linear" if alpha == 0 else f"ridge-{alpha:g}"
        with nbtrack.start_run(run_name=name, tags={"source": "nbtrack demo"}):
            nbtrack.log_params({"model": "ridge" if alpha else "linear", "alpha": alpha,
                                "epochs": epochs})
            predict = fit_ridge(x[:split], y[:split], alpha, epochs)
            error = predict(x[split:]) - y[split:]
            nbtrack.log_metrics({
                "rmse": float(np.sqrt(np.mean(error**2))),
                "mae": float(np.mean(np.abs(error))),
            })
    return nbtrack.search_runs(
        experiment_names=[EXPERIMENT], order_by=["metrics.rmse ASC"]
    )
