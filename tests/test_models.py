"""Model flavors: the saved folder, loading by URI, signatures, requirements, integrity."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LinearRegression, LogisticRegression

import nbtrack
import nbtrack.pyfunc
import nbtrack.sklearn
from nbtrack.exceptions import (
    ModelIntegrityError,
    NbtrackError,
    NotFoundError,
    SchemaMismatchError,
)
from nbtrack.models import infer_signature


@pytest.fixture
def taxi():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"distance": rng.uniform(0.5, 20, 200),
                      "hour": rng.integers(0, 24, 200),
                      "zone": rng.choice(["north", "south"], 200)})
    y = 3 * X["distance"] + 0.1 * X["hour"] + rng.normal(0, 0.5, 200)
    return X, y


def fitted(taxi):
    X, y = taxi
    return LinearRegression().fit(X[["distance", "hour"]], y), X[["distance", "hour"]]


def test_sklearn_log_model_writes_a_complete_folder(taxi):
    model, X = fitted(taxi)
    with nbtrack.start_run() as run:
        info = nbtrack.sklearn.log_model(model, "model", input_example=X)
    assert info.model_uri == f"runs:/{run.run_id}/model"
    folder = nbtrack.Client().artifact_path(run.run_id) / "model"
    assert sorted(p.name for p in folder.iterdir()) == [
        "MLmodel", "conda.yaml", "input_example.json", "model.pkl", "nbtrack-manifest.json",
        "python_env.yaml", "requirements.txt"]
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    assert set(meta["flavors"]) == {"sklearn", "python_function"}
    assert meta["run_id"] == run.run_id and meta["nbtrack_version"] == nbtrack.__version__
    assert meta["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}." \
                                     f"{sys.version_info.micro}"
    assert meta["utc_time_created"]
    assert json.loads(meta["signature"]["inputs"]) == [
        {"type": "double", "name": "distance", "required": True},
        {"type": "long", "name": "hour", "required": True}]
    assert json.loads(meta["signature"]["outputs"])[0]["tensor-spec"]["dtype"] == "float64"
    assert meta["flavors"]["python_function"]["loader_module"] == "nbtrack.sklearn"
    manifest = json.loads((folder / "nbtrack-manifest.json").read_text())["files"]
    assert set(manifest) == {"MLmodel", "conda.yaml", "input_example.json", "model.pkl",
                             "python_env.yaml", "requirements.txt"}
    # requirements: exactly the packages the pickle refers to, pinned
    requirements = (folder / "requirements.txt").read_text().split()
    import sklearn
    assert requirements == [f"numpy=={np.__version__}", f"scikit-learn=={sklearn.__version__}",
                            f"nbtrack=={nbtrack.__version__}"]
    example = json.loads((folder / "input_example.json").read_text())
    assert example["columns"] == ["distance", "hour"] and len(example["data"]) == 5
    history = json.loads(nbtrack.get_run(run.run_id).data.tags["nbtrack.log-model.history"])
    assert [h["artifact_path"] for h in history] == ["model"]


def test_load_by_every_uri_form(taxi, tmp_path):
    model, X = fitted(taxi)
    with nbtrack.start_run() as run:
        nbtrack.sklearn.log_model(model, "m", input_example=X)
    folder = nbtrack.Client().artifact_path(run.run_id) / "m"
    expected = model.predict(X.head(3))
    for uri in (f"runs:/{run.run_id}/m", f"file://{folder}", str(folder)):
        native = nbtrack.sklearn.load_model(uri)
        assert isinstance(native, LinearRegression)
        np.testing.assert_allclose(native.predict(X.head(3)), expected)
        np.testing.assert_allclose(nbtrack.pyfunc.load_model(uri).predict(X.head(3)), expected)
    saved = tmp_path / "saved"
    nbtrack.sklearn.save_model(model, saved, input_example=X)
    np.testing.assert_allclose(nbtrack.pyfunc.load_model(saved).predict(X.head(3)), expected)


def test_bad_uris_say_what_to_give(taxi):
    with pytest.raises(NbtrackError, match="runs:/<run_id>/<path>"):
        nbtrack.pyfunc.load_model("runs:/only-an-id")
    with pytest.raises(NotFoundError, match=r"No run|not found"):
        nbtrack.pyfunc.load_model("runs:/nope/model")
    with nbtrack.start_run() as run:
        nbtrack.log_param("a", 1)
    with pytest.raises(NotFoundError, match="has no model at 'model'"):
        nbtrack.pyfunc.load_model(f"runs:/{run.run_id}/model")
    with pytest.raises(NbtrackError, match="Cannot load a model from 's3://"):
        nbtrack.pyfunc.load_model("s3://bucket/model")
    with pytest.raises(NotFoundError, match="no MLmodel file"):
        nbtrack.pyfunc.load_model("/nonexistent/folder")
    with pytest.raises(NbtrackError, match="climbs out"):
        nbtrack.pyfunc.load_model(f"runs:/{run.run_id}/../other/model")


def test_predict_checks_the_signature(taxi):
    model, X = fitted(taxi)
    with nbtrack.start_run():
        info = nbtrack.sklearn.log_model(model, "model", input_example=X)
    loaded = nbtrack.pyfunc.load_model(info.model_uri)
    with pytest.raises(SchemaMismatchError, match="missing column 'hour'"):
        loaded.predict(X[["distance"]])
    bad = X.head(3).assign(hour=["a", "b", "c"])
    with pytest.raises(SchemaMismatchError, match="Column 'hour' has type string"):
        loaded.predict(bad)
    # extra columns are dropped and the order fixed; whole floats pass for integers
    shuffled = X.head(3)[["hour", "distance"]].assign(extra=1, hour=lambda d: d.hour * 1.0)
    np.testing.assert_allclose(loaded.predict(shuffled), model.predict(X.head(3)))


def test_a_changed_file_is_refused_at_load(taxi):
    model, X = fitted(taxi)
    with nbtrack.start_run() as run:
        info = nbtrack.sklearn.log_model(model, "model", input_example=X)
    pickled = nbtrack.Client().artifact_path(run.run_id) / "model" / "model.pkl"
    pickled.write_bytes(pickled.read_bytes() + b"tampered")
    with pytest.raises(ModelIntegrityError, match="changed after it was logged"):
        nbtrack.sklearn.load_model(info.model_uri)
    with pytest.raises(ModelIntegrityError, match="changed after the model was saved"):
        nbtrack.sklearn.load_model(str(pickled.parent))


def test_skops_format_loads_without_pickle(taxi):
    X, y = taxi
    model = LogisticRegression().fit(X[["distance", "hour"]], y > y.median())
    with nbtrack.start_run():
        info = nbtrack.sklearn.log_model(model, "model", serialization_format="skops",
                                         input_example=X[["distance", "hour"]])
    folder = nbtrack.Client().artifact_path(info.run_id) / "model"
    assert (folder / "model.skops").is_file() and not (folder / "model.pkl").exists()
    assert any(r.startswith("skops==") for r in (folder / "requirements.txt").read_text().split())
    loaded = nbtrack.sklearn.load_model(info.model_uri)
    np.testing.assert_array_equal(loaded.predict(X[["distance", "hour"]]),
                                  model.predict(X[["distance", "hour"]]))
    with pytest.raises(NbtrackError, match="serialization_format must be one of"):
        nbtrack.sklearn.log_model(model, "x", serialization_format="joblib")


def test_same_model_logged_twice_to_a_run_is_stored_once(taxi):
    model, _ = fitted(taxi)
    with nbtrack.start_run() as run:
        first = nbtrack.sklearn.log_model(model, "model")
        again = nbtrack.sklearn.log_model(model, "model-again")
    assert again == first
    names = [f.path for f in nbtrack.Client().list_artifacts(run.run_id)]
    assert names == ["model"]


class Doubler(nbtrack.pyfunc.PythonModel):
    def load_context(self, context):
        with open(context.artifacts["factor"]) as fh:
            self.factor = float(fh.read())

    def predict(self, context, model_input):
        return model_input["x"] * self.factor


def test_custom_python_model_with_artifacts(tmp_path):
    factor = tmp_path / "factor.txt"
    factor.write_text("2.5")
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with nbtrack.start_run():
        info = nbtrack.pyfunc.log_model("doubler", python_model=Doubler(),
                                        artifacts={"factor": str(factor)}, input_example=frame)
    loaded = nbtrack.pyfunc.load_model(info.model_uri)
    assert list(loaded.predict(frame)) == [2.5, 5.0]
    assert isinstance(loaded.unwrap_python_model(), Doubler)
    assert str(info.signature.inputs) == "x: double"
    with pytest.raises(NbtrackError, match="PythonModel subclass"):
        nbtrack.pyfunc.log_model("bad", python_model=object())
    with pytest.raises(NbtrackError, match="needs python_model="):
        nbtrack.pyfunc.log_model("bad")

    class NoPredict(nbtrack.pyfunc.PythonModel):
        pass

    with pytest.raises(TypeError, match="predict"):
        NoPredict()


@pytest.mark.slow
def test_a_model_class_from_the_notebook_loads_in_another_process():
    """Classes defined in __main__ (a notebook) travel by value, so a new process loads them."""
    store = nbtrack.get_tracking_uri()  # the test's store, embedded or team
    script = (
        "import nbtrack, nbtrack.pyfunc, pandas as pd, sys\n"
        "nbtrack.set_tracking_uri(sys.argv[1])\n"
        "class Plus(nbtrack.pyfunc.PythonModel):\n"
        "    def predict(self, context, model_input):\n"
        "        return model_input['x'] + 1\n"
        "with nbtrack.start_run():\n"
        "    info = nbtrack.pyfunc.log_model('plus', python_model=Plus(),\n"
        "                                    input_example=pd.DataFrame({'x': [1.0]}))\n"
        "print(info.model_uri)\n"
    )
    made = subprocess.run([sys.executable, "-c", script, store], capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    loaded = nbtrack.pyfunc.load_model(made.stdout.strip())
    assert list(loaded.predict(pd.DataFrame({"x": [1.0, 5.0]}))) == [2.0, 6.0]
    requirements = (loaded.path / "requirements.txt").read_text()
    assert "cloudpickle==" in requirements


def test_infer_signature_of_arrays_and_frames():
    signature = infer_signature(np.zeros((4, 3), dtype="float32"), np.zeros(4))
    assert str(signature.inputs) == "tensor float32[-1, 3]"
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [True, False],
                          "d": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    assert str(infer_signature(frame).inputs) == "a: long, b: string, c: boolean, d: datetime"
    assert infer_signature(frame).outputs is None


def test_a_series_named_zero_gives_a_column_named_zero():
    outputs = infer_signature(pd.DataFrame({"a": [1]}), pd.Series([1.0], name=0)).outputs
    assert outputs.to_dict() == {"columns": [{"type": "double", "name": "0"}]}
