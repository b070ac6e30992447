"""XGBoost: the flavor (Booster and scikit-learn API) and autolog."""

import numpy as np
import pandas as pd
import pytest

import nbtrack
import nbtrack.pyfunc
import nbtrack.xgboost

xgb = pytest.importorskip("xgboost")


pytestmark = pytest.mark.usefixtures("autolog_off_afterwards")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"distance": rng.uniform(0, 20, 300), "hour": rng.integers(0, 24, 300)})
    y = 3 * X["distance"] + 0.2 * X["hour"] + rng.normal(0, 0.3, 300)
    return X, y


def test_booster_and_sklearn_api_round_trip(data):
    X, y = data
    booster = xgb.train({"max_depth": 3}, xgb.DMatrix(X, label=y), 10)
    regressor = xgb.XGBRegressor(n_estimators=10, max_depth=2).fit(X, y)
    with nbtrack.start_run():
        booster_info = nbtrack.xgboost.log_model(booster, "booster", input_example=X)
        regressor_info = nbtrack.xgboost.log_model(regressor, "regressor", input_example=X)
    loaded = nbtrack.xgboost.load_model(model_uri=booster_info.model_uri)
    assert isinstance(loaded, xgb.Booster)
    np.testing.assert_allclose(loaded.predict(xgb.DMatrix(X)), booster.predict(xgb.DMatrix(X)))
    native = nbtrack.xgboost.load_model(regressor_info.model_uri)
    assert isinstance(native, xgb.XGBRegressor)
    np.testing.assert_allclose(nbtrack.pyfunc.load_model(regressor_info.model_uri).predict(X),
                               regressor.predict(X), rtol=1e-6)
    folder = nbtrack.Client().artifact_path(booster_info.run_id) / "booster"
    assert (folder / "model.json").is_file()  # XGBoost's JSON: loads without running code
    requirements = (folder / "requirements.txt").read_text()
    assert "xgboost" in requirements and "==" in requirements
    assert str(booster_info.signature.inputs) == "distance: double, hour: long"
    with pytest.raises(nbtrack.exceptions.NbtrackError, match="not list"):
        nbtrack.xgboost.log_model([1, 2], "bad")


def test_autolog_train_logs_eval_history_and_early_stopping(data):
    X, y = data
    train, valid = xgb.DMatrix(X[:200], label=y[:200]), xgb.DMatrix(X[200:], label=y[200:])
    nbtrack.xgboost.autolog()
    with nbtrack.start_run() as run:
        booster = xgb.train({"max_depth": 3, "eta": 0.3}, train, num_boost_round=200,
                            evals=[(train, "train"), (valid, "eval")],
                            early_stopping_rounds=5, verbose_eval=False)
    logged = nbtrack.get_run(run.run_id)
    assert logged.data.params == {"max_depth": "3", "eta": "0.3", "num_boost_round": "200"}
    history = nbtrack.Client().get_metric_history(run.run_id, "eval-rmse")
    assert [m.step for m in history] == list(range(booster.num_boosted_rounds()))
    assert logged.data.metrics["best_iteration"] == booster.best_iteration
    artifacts = [f.path for f in nbtrack.Client().list_artifacts(run.run_id)]
    assert artifacts == ["model", "feature_importances.csv"]
    importances = pd.read_csv(nbtrack.Client().artifact_path(run.run_id)
                              / "feature_importances.csv")
    assert importances["feature"][0] == "distance"


def test_autolog_sklearn_api_inside_a_pipeline_logs_once(data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data
    assert nbtrack.autolog() == ["sklearn", "xgboost"]
    with nbtrack.start_run() as run:
        make_pipeline(StandardScaler(), xgb.XGBRegressor(n_estimators=5)).fit(X, y)
    params = nbtrack.get_run(run.run_id).data.params
    assert params["xgbregressor__n_estimators"] == "5"  # the Pipeline's autolog logged it
    assert "n_estimators" not in params  # the nested XGBRegressor.fit logged nothing
    runs = nbtrack.search_runs(output_format="list", search_all_experiments=True)
    assert len(runs) == 1
    with nbtrack.start_run() as alone:
        xgb.XGBRegressor(n_estimators=7).fit(X, y, eval_set=[(X, y)], verbose=False)
    logged = nbtrack.get_run(alone.run_id)
    assert logged.data.params["n_estimators"] == "7"
    assert len(nbtrack.Client().get_metric_history(alone.run_id, "validation_0-rmse")) == 7


def test_autolog_off_restores_xgboost(data):
    X, y = data
    nbtrack.xgboost.autolog()
    assert hasattr(xgb.train, "__nbtrack_original__")
    nbtrack.xgboost.autolog(disable=True)
    assert not hasattr(xgb.train, "__nbtrack_original__")
    assert not hasattr(xgb.XGBModel.fit, "__nbtrack_original__")
    xgb.train({}, xgb.DMatrix(X, label=y), 2)
    assert nbtrack.search_runs(output_format="list", search_all_experiments=True) == []
