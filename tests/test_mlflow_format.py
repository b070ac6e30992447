"""nbtrack model folders are MLflow models, and MLflow's models load in nbtrack.

Both directions are tried with MLflow itself: ``mlflow.pyfunc.load_model`` on folders nbtrack
wrote, and nbtrack's loaders on folders ``mlflow.<flavor>.save_model`` wrote.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LinearRegression, LogisticRegression

import nbtrack
import nbtrack.pyfunc
import nbtrack.sklearn
import nbtrack.xgboost
from nbtrack.exceptions import ModelIntegrityError

pytest.importorskip("mlflow")
import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import mlflow.xgboost

X = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 7})
Y = X["a"] * 2 + X["b"]
#: given, so that MLflow does not start a process to infer them
PINS = ["scikit-learn"]


class Doubler(nbtrack.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input["a"] * 2


class MlflowTripler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input["a"] * 3


def logged_folder(info):
    run_id, _, path = info.model_uri.removeprefix("runs:/").partition("/")
    return nbtrack.Client().artifact_path(run_id) / path


def test_an_nbtrack_model_folder_is_an_mlflow_model():
    with nbtrack.start_run():
        info = nbtrack.sklearn.log_model(LinearRegression().fit(X, Y), name="model",
                                         input_example=X)
    folder = logged_folder(info)
    for name in ("MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt",
                 "nbtrack-manifest.json"):
        assert (folder / name).is_file(), name
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    pyfunc = meta["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "nbtrack.sklearn"
    assert pyfunc["env"] == {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    conda = yaml.safe_load((folder / "conda.yaml").read_text())
    pins = conda["dependencies"][-1]["pip"]
    assert pins == (folder / "requirements.txt").read_text().split()
    assert f"nbtrack=={nbtrack.__version__}" in pins
    assert yaml.safe_load((folder / "python_env.yaml").read_text())["dependencies"] == [
        "-r requirements.txt"]
    # MLflow reads the file with its own parser, signature included
    parsed = mlflow.models.Model.load(str(folder / "MLmodel"))
    assert parsed.signature.inputs.input_names() == ["a", "b"]
    assert parsed.run_id == info.run_id


@pytest.mark.parametrize("kind", ["sklearn", "sklearn-skops", "xgboost", "pyfunc"])
def test_mlflow_loads_nbtrack_models(kind):
    import xgboost

    with nbtrack.start_run():
        if kind == "sklearn":
            model = LinearRegression().fit(X, Y)
            info = nbtrack.sklearn.log_model(model, name="m", input_example=X)
            expected = model.predict(X)
        elif kind == "sklearn-skops":
            model = LinearRegression().fit(X, Y)
            info = nbtrack.sklearn.log_model(model, name="m", input_example=X,
                                             serialization_format="skops")
            expected = model.predict(X)
        elif kind == "xgboost":
            model = xgboost.XGBRegressor(n_estimators=5).fit(X, Y)
            info = nbtrack.xgboost.log_model(model, name="m", input_example=X)
            expected = model.predict(X)
        else:
            info = nbtrack.pyfunc.log_model("m", python_model=Doubler(), input_example=X)
            expected = X["a"] * 2
    loaded = mlflow.pyfunc.load_model(str(logged_folder(info)))
    np.testing.assert_allclose(np.asarray(loaded.predict(X)), np.asarray(expected), rtol=1e-6)
    # MLflow checks the input against the signature nbtrack wrote
    with pytest.raises(mlflow.exceptions.MlflowException, match="b"):
        loaded.predict(X[["a"]])


def test_mlflow_loading_still_checks_the_manifest():
    with nbtrack.start_run():
        info = nbtrack.sklearn.log_model(LinearRegression().fit(X, Y), name="m")
    folder = logged_folder(info)
    (folder / "model.pkl").chmod(0o644)
    with open(folder / "model.pkl", "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ModelIntegrityError, match="changed after the model was saved"):
        mlflow.pyfunc.load_model(str(folder))
    (folder / "nbtrack-manifest.json").unlink()
    with pytest.raises(ModelIntegrityError, match=r"lacks its nbtrack-manifest\.json"):
        mlflow.pyfunc.load_model(str(folder))


def test_models_of_older_nbtrack_versions_still_load(tmp_path):
    """Before the MLflow format, MLmodel was JSON holding the sha256 of every file."""
    folder = tmp_path / "old"
    nbtrack.sklearn.save_model(LinearRegression().fit(X, Y), folder, input_example=X)
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    meta["files"] = json.loads((folder / "nbtrack-manifest.json").read_text())["files"]
    del meta["files"]["MLmodel"]
    meta["signature"] = {"inputs": {"columns": [{"type": "double", "name": "a"},
                                                {"type": "double", "name": "b"}]},
                         "outputs": None}
    (folder / "nbtrack-manifest.json").unlink()
    (folder / "MLmodel").write_text(json.dumps(meta))
    loaded = nbtrack.pyfunc.load_model(folder)
    assert str(loaded.signature.inputs) == "a: double, b: double"
    assert len(loaded.predict(X)) == len(X)


@pytest.mark.parametrize("serialization_format", ["skops", "cloudpickle"])
def test_nbtrack_loads_mlflow_sklearn_models(tmp_path, serialization_format):
    model = LogisticRegression().fit(X, Y.median() < Y)
    folder = tmp_path / "mlflow-sklearn"
    mlflow.sklearn.save_model(model, str(folder), input_example=X.head(3),
                              serialization_format=serialization_format, pip_requirements=PINS)
    native = nbtrack.sklearn.load_model(folder)
    assert isinstance(native, LogisticRegression)
    loaded = nbtrack.pyfunc.load_model(folder)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.signature is not None and str(loaded.signature.inputs) == "a: double, b: double"


def test_nbtrack_honours_mlflow_predict_fn(tmp_path):
    model = LogisticRegression().fit(X, Y.median() < Y)
    folder = tmp_path / "proba"
    mlflow.sklearn.save_model(model, str(folder), pyfunc_predict_fn="predict_proba",
                              pip_requirements=PINS)
    np.testing.assert_allclose(nbtrack.pyfunc.load_model(folder).predict(X),
                               model.predict_proba(X))


@pytest.mark.parametrize("api", ["sklearn", "booster"])
def test_nbtrack_loads_mlflow_xgboost_models(tmp_path, api):
    import xgboost

    if api == "sklearn":
        model = xgboost.XGBRegressor(n_estimators=5).fit(X, Y)
        expected = model.predict(X)
    else:
        model = xgboost.train({"max_depth": 2}, xgboost.DMatrix(X, label=Y), num_boost_round=3)
        expected = model.predict(xgboost.DMatrix(X))
    folder = tmp_path / "mlflow-xgb"
    mlflow.xgboost.save_model(model, str(folder), pip_requirements=["xgboost"])
    assert type(nbtrack.xgboost.load_model(folder)) is type(model)
    np.testing.assert_allclose(nbtrack.pyfunc.load_model(folder).predict(X), expected,
                               rtol=1e-6)


def test_nbtrack_loads_mlflow_custom_pyfunc_models(tmp_path):
    folder = tmp_path / "mlflow-pyfunc"
    mlflow.pyfunc.save_model(str(folder), python_model=MlflowTripler(), input_example=X.head(2),
                             pip_requirements=["mlflow"])
    loaded = nbtrack.pyfunc.load_model(folder)
    np.testing.assert_allclose(np.asarray(loaded.predict(X)), X["a"] * 3)
    assert isinstance(loaded.unwrap_python_model(), MlflowTripler)


@pytest.mark.slow
def test_mlflow_model_server_serves_an_nbtrack_model(tmp_path):
    """``mlflow models serve`` (MLflow's scoring server) answers with the nbtrack model."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    model = LinearRegression().fit(X, Y)
    nbtrack.sklearn.save_model(model, tmp_path / "m", input_example=X)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bin_dir = os.path.dirname(sys.executable)  # the server runs uvicorn from this environment
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(tmp_path / "m"),
         "--env-manager", "local", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    body = json.dumps({"dataframe_split": {"columns": ["a", "b"],
                                           "data": X.head(3).values.tolist()}}).encode()
    try:
        deadline = time.monotonic() + 120
        while True:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body,
                                             {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    answer = json.loads(response.read())
                break
            except OSError:
                assert server.poll() is None, "mlflow models serve exited"
                assert time.monotonic() < deadline, "the server did not answer in 120 s"
                time.sleep(1)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    np.testing.assert_allclose(answer["predictions"], model.predict(X.head(3)))


def test_mlflow_flavor_loaders_read_nbtrack_flavors(tmp_path):
    """The sklearn and xgboost flavor entries use MLflow's keys, so MLflow's own loaders work.

    (These loaders are MLflow's code: the manifest is checked by the pyfunc path only.)
    """
    import xgboost

    linear = LinearRegression().fit(X, Y)
    nbtrack.sklearn.save_model(linear, tmp_path / "pickle")
    nbtrack.sklearn.save_model(linear, tmp_path / "skops", serialization_format="skops")
    boosted = xgboost.XGBRegressor(n_estimators=3).fit(X, Y)
    nbtrack.xgboost.save_model(boosted, tmp_path / "xgb")
    for name in ("pickle", "skops"):
        loaded = mlflow.sklearn.load_model(str(tmp_path / name))
        np.testing.assert_allclose(loaded.predict(X), linear.predict(X))
    np.testing.assert_allclose(mlflow.xgboost.load_model(str(tmp_path / "xgb")).predict(X),
                               boosted.predict(X))
