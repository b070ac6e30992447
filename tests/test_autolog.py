"""scikit-learn autolog: params, training metrics, the model, importances, searches, off again."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Lasso, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import nbtrack
import nbtrack.sklearn

pytestmark = pytest.mark.usefixtures("autolog_off_afterwards")


@pytest.fixture
def taxi():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"distance": rng.uniform(0.5, 20, 120), "hour": rng.integers(0, 24, 120)})
    y = 3 * X["distance"] + 0.2 * X["hour"] + rng.normal(0, 0.5, 120)
    return X, y


def artifacts(run_id):
    return [f.path for f in nbtrack.Client().list_artifacts(run_id)]


def test_a_plain_estimator_in_an_active_run(taxi):
    X, y = taxi
    assert "sklearn" in nbtrack.autolog()
    with nbtrack.start_run() as run:
        model = Ridge(alpha=0.3).fit(X, y)
    logged = nbtrack.get_run(run.run_id)
    assert logged.data.params["alpha"] == "0.3" and logged.data.params["solver"] == "auto"
    rmse = float(np.sqrt(np.mean((model.predict(X) - y) ** 2)))
    assert logged.data.metrics["training_root_mean_squared_error"] == pytest.approx(rmse)
    assert logged.data.metrics["training_r2_score"] == pytest.approx(model.score(X, y))
    assert artifacts(run.run_id) == ["model", "feature_importances.csv"]
    importances = pd.read_csv(nbtrack.Client().artifact_path(run.run_id)
                              / "feature_importances.csv")
    assert list(importances["feature"]) == ["distance", "hour"]  # by |coefficient|
    assert importances["coefficient"][0] == pytest.approx(model.coef_[0])
    loaded = nbtrack.sklearn.load_model(f"runs:/{run.run_id}/model")
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))


def test_a_fit_without_a_run_gets_its_own(taxi):
    X, y = taxi
    nbtrack.sklearn.autolog()
    Lasso(alpha=0.05).fit(X, y)
    assert nbtrack.active_run() is None
    (run,) = nbtrack.search_runs(output_format="list", search_all_experiments=True)
    assert run.info.status == "FINISHED" and run.data.params["alpha"] == "0.05"


def test_a_failing_fit_ends_its_own_run_failed_and_keeps_the_params(taxi):
    X, _ = taxi
    nbtrack.sklearn.autolog()
    with pytest.raises(ValueError):
        Ridge().fit(X, ["not a number"] * len(X))
    (run,) = nbtrack.search_runs(output_format="list", search_all_experiments=True)
    assert run.info.status == "FAILED" and run.data.params["alpha"] == "1.0"


def test_a_pipeline_logs_its_steps_params_once(taxi):
    X, y = taxi
    nbtrack.sklearn.autolog()
    with nbtrack.start_run() as run:
        make_pipeline(StandardScaler(), Ridge(alpha=2.0)).fit(X, y)
    params = nbtrack.get_run(run.run_id).data.params
    assert params["ridge__alpha"] == "2.0" and params["standardscaler__with_mean"] == "True"
    assert "alpha" not in params  # the inner Ridge.fit logged nothing of its own
    runs = nbtrack.search_runs(output_format="list", search_all_experiments=True)
    assert len(runs) == 1


def test_grid_search_gets_a_child_run_per_candidate(taxi):
    X, y = taxi
    nbtrack.sklearn.autolog()
    with nbtrack.start_run() as parent:
        search = GridSearchCV(Lasso(), {"alpha": [0.01, 0.1, 1.0]}, cv=3).fit(X, y)
    logged = nbtrack.get_run(parent.run_id)
    assert logged.data.params["best_alpha"] == str(search.best_params_["alpha"])
    assert logged.data.metrics["best_cv_score"] == pytest.approx(search.best_score_)
    children = nbtrack.search_runs(
        output_format="list", search_all_experiments=True,
        filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'")
    assert sorted(c.data.params["alpha"] for c in children) == ["0.01", "0.1", "1.0"]
    best = min(children, key=lambda c: c.data.metrics["rank_test_score"])
    assert best.data.params["alpha"] == str(search.best_params_["alpha"])
    assert best.data.metrics["mean_test_score"] == pytest.approx(search.best_score_)
    assert all(c.info.status == "FINISHED" for c in children)


def test_max_tuning_runs_limits_the_children(taxi):
    X, y = taxi
    nbtrack.sklearn.autolog(max_tuning_runs=2)
    with nbtrack.start_run() as parent:
        GridSearchCV(Lasso(), {"alpha": [0.01, 0.1, 1.0, 10.0]}, cv=3).fit(X, y)
    children = nbtrack.search_runs(
        output_format="list", search_all_experiments=True,
        filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'")
    assert sorted(c.data.metrics["rank_test_score"] for c in children) == [1.0, 2.0]


def test_classifier_metrics_and_feature_importances(taxi):
    X, y = taxi
    label = (y > y.median()).astype(int)
    nbtrack.sklearn.autolog(log_models=False)
    with nbtrack.start_run() as run:
        RandomForestClassifier(n_estimators=10, random_state=0).fit(X, label)
    metrics = nbtrack.get_run(run.run_id).data.metrics
    assert {"training_accuracy_score", "training_f1_score", "training_precision_score",
            "training_recall_score", "training_log_loss", "training_roc_auc",
            "training_score"} <= set(metrics)
    assert artifacts(run.run_id) == ["feature_importances.csv"]  # log_models=False


def test_manual_logging_alongside_autolog_logs_nothing_twice(taxi):
    X, y = taxi
    nbtrack.sklearn.autolog()
    with nbtrack.start_run() as run:
        nbtrack.log_param("alpha", 0.3)  # the same value autolog finds: no conflict
        model = Ridge(alpha=0.3).fit(X, y)
        info = nbtrack.sklearn.log_model(model, "model")
    assert info.model_uri == f"runs:/{run.run_id}/model"
    assert artifacts(run.run_id).count("model") == 1


def test_a_conflicting_param_is_kept_and_reported(taxi):
    X, y = taxi
    nbtrack.sklearn.autolog(log_models=False)
    with nbtrack.start_run() as run:
        nbtrack.log_param("alpha", "chosen by hand")
        with pytest.warns(UserWarning, match="param 'alpha' is already 'chosen by hand'"):
            Ridge(alpha=0.3).fit(X, y)
    assert nbtrack.get_run(run.run_id).data.params["alpha"] == "chosen by hand"


def test_disable_restores_plain_fit(taxi):
    X, y = taxi
    nbtrack.autolog()
    assert getattr(Ridge.fit, "__nbtrack_original__", None) is not None
    nbtrack.autolog(disable=True)
    assert not hasattr(Ridge.fit, "__nbtrack_original__")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Ridge().fit(X, y)
    assert nbtrack.search_runs(output_format="list", search_all_experiments=True) == []


def test_a_logging_failure_never_breaks_the_fit(taxi, monkeypatch):
    from nbtrack.sklearn import metrics as sklearn_metrics

    X, y = taxi

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sklearn_metrics, "training_metrics", broken)
    nbtrack.sklearn.autolog(log_models=False)
    with nbtrack.start_run(), pytest.warns(UserWarning, match="log results failed: disk full"):
        model = Ridge().fit(X, y)
    assert hasattr(model, "coef_")
