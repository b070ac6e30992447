"""The names MLflow users reach for, with MLflow's signatures and behaviour."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import nbtrack as mlflow
import nbtrack.pyfunc
import nbtrack.sklearn
import nbtrack.xgboost
from nbtrack.exceptions import ArtifactPathError, MlflowException

X = np.arange(20, dtype=float).reshape(-1, 2)
Y = X.sum(axis=1)


class Doubler(nbtrack.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input * 2


def test_log_model_registers_for_every_flavor():
    import xgboost

    with mlflow.start_run():
        sk = nbtrack.sklearn.log_model(LinearRegression().fit(X, Y), name="sk",
                                       registered_model_name="taxi")
        xgb = nbtrack.xgboost.log_model(
            xgboost.XGBRegressor(n_estimators=2, max_depth=2).fit(X, Y), name="xgb",
            registered_model_name="taxi")
        py = nbtrack.pyfunc.log_model(name="py", python_model=Doubler(),
                                      registered_model_name="doubler")
    assert (sk.registered_model_version, xgb.registered_model_version) == (1, 2)
    assert py.registered_model_version == 1
    client = mlflow.MlflowClient()
    assert client.get_model_version("taxi", 2).source == xgb.model_uri
    assert nbtrack.pyfunc.load_model("models:/doubler/1").predict(np.array([2.0]))[0] == 4.0
    # models:/name/latest is the newest version, in whatever stage
    latest = nbtrack.pyfunc.load_model("models:/taxi/latest")
    assert latest.metadata.flavors.keys() >= {"xgboost"}
    info = mlflow.models.get_model_info("models:/taxi/1")
    assert info.run_id == sk.run_id and "sklearn" in info.flavors
    assert isinstance(mlflow.models.ModelSignature, type)
    with pytest.raises(MlflowException, match="has no versions yet"):
        client.create_registered_model("empty")
        nbtrack.pyfunc.load_model("models:/empty/latest")


def test_download_uri_and_copy_model_version():
    with mlflow.start_run():
        nbtrack.sklearn.log_model(LinearRegression().fit(X, Y), name="model",
                                  registered_model_name="taxi")
    client = mlflow.MlflowClient()
    folder = client.get_model_version_download_uri("taxi", 1)
    assert isinstance(folder, str) and Path(folder, "MLmodel").is_file()
    client.transition_model_version_stage("taxi", 1, "Production")
    copied = client.copy_model_version("models:/taxi/Production", "taxi-prod")
    assert copied.name == "taxi-prod" and copied.version == 1
    assert copied.source == "models:/taxi/1"  # pinned, though the stage may move later
    model = nbtrack.pyfunc.load_model("models:/taxi-prod/1")
    assert model.predict(X[:1])[0] == pytest.approx(Y[0])


def test_tables_and_images(tmp_path):
    with mlflow.start_run() as first:
        mlflow.log_table({"a": [1, 2], "b": ["x", "y"]}, "results.json")
        mlflow.log_image(np.zeros((4, 6, 3), dtype=np.uint8), "pic.png")
        mlflow.log_image(mlflow.Image(np.ones((2, 2), dtype=float)), key="masks", step=3)
    with mlflow.start_run() as second:
        mlflow.log_table(pd.DataFrame({"a": [3], "b": ["z"]}), "results.json")
    table = mlflow.load_table("results.json", extra_columns=["run_id"])
    assert sorted(table["a"]) == [1, 2, 3]
    assert set(table["run_id"]) == {first.info.run_id, second.info.run_id}
    only = mlflow.load_table("results.json", run_ids=[second.info.run_id])
    assert only.to_dict("list") == {"a": [3], "b": ["z"]}
    image = mlflow.artifacts.load_image(f"runs:/{first.info.run_id}/pic.png")
    assert image.size == (6, 4)
    masks = mlflow.artifacts.list_artifacts(run_id=first.info.run_id, artifact_path="images/masks")
    assert len(masks) == 1 and masks[0].path.startswith("images/masks/step_3_")
    with pytest.raises(MlflowException, match="saved as JSON"):
        mlflow.log_table({"a": [1]}, "t.csv")
    with pytest.raises(MlflowException, match="values in \\[0, 1\\]"):
        mlflow.log_image(np.full((2, 2), 2.0), "bad.png")
    with pytest.raises(MlflowException, match="No run logged a table"):
        mlflow.load_table("missing.json")


def test_tags_parents_and_the_last_run():
    mlflow.set_experiment("exp")
    mlflow.set_experiment_tag("team", "ml")
    mlflow.set_experiment_tags({"owner": "ana", "stage": "dev"})
    assert mlflow.get_experiment_by_name("exp").tags == {"team": "ml", "owner": "ana",
                                                          "stage": "dev"}
    with mlflow.start_run() as parent, mlflow.start_run(nested=True) as child:
        mlflow.set_tag("temp", "1")
        mlflow.delete_tag("temp")
    assert "temp" not in mlflow.get_run(child.info.run_id).data.tags
    assert mlflow.get_parent_run(child.info.run_id).info.run_id == parent.info.run_id
    assert mlflow.get_parent_run(parent.info.run_id) is None
    assert mlflow.last_active_run().info.run_id == parent.info.run_id


def test_artifacts_module(tmp_path):
    with mlflow.start_run() as run:
        mlflow.log_dict({"a": 1}, "conf/settings.json")
        mlflow.log_dict({"b": 2}, "conf/settings.yaml")
        mlflow.log_text("hello", "notes/readme.txt")
    run_id = run.info.run_id
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/conf/settings.json") == {"a": 1}
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/conf/settings.yaml") == {"b": 2}
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/notes/readme.txt") == "hello"
    local = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/notes/readme.txt")
    assert local == "hello"
    paths = [f.path for f in mlflow.artifacts.list_artifacts(f"runs:/{run_id}/conf")]
    assert paths == ["conf/settings.json", "conf/settings.yaml"]
    copy = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="conf",
                                               dst_path=tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "conf").iterdir()) == [
        "settings.json", "settings.yaml"] and copy.endswith("conf")
    one = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/notes/readme.txt",
                                              dst_path=tmp_path / "one")
    assert Path(one).read_text() == "hello"
    with pytest.raises(MlflowException, match="either artifact_uri, or run_id"):
        mlflow.artifacts.download_artifacts(f"runs:/{run_id}/x", run_id=run_id)
    with pytest.raises(ArtifactPathError):
        mlflow.artifacts.load_text(f"runs:/{run_id}/../../etc/passwd")


def test_log_artifact_of_a_folder_and_normalised_paths(tmp_path):
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    with mlflow.start_run() as run:
        mlflow.log_artifact(folder)
        mlflow.log_artifact(folder / "a.txt", artifact_path="dir/../flat")
        with pytest.raises(ArtifactPathError):
            mlflow.log_artifact(folder / "a.txt", artifact_path="dir/../../up")
    index = mlflow.MlflowClient().artifact_index(run.info.run_id)
    assert set(index) == {"plots/a.txt", "plots/sub/b.txt", "flat/a.txt"}


def test_datasets_from_pandas_and_numpy():
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]})
    dataset = mlflow.data.from_pandas(frame, source="s3://bucket/train.parquet", targets="y",
                                      name="train")
    assert dataset.df is frame and dataset.name == "train" and dataset.targets == "y"
    arrays = mlflow.data.from_numpy(X, targets=Y, name="arrays")
    assert arrays.features is X and len(arrays.digest) == 16
    with pytest.raises(MlflowException, match="not a column"):
        mlflow.data.from_pandas(frame, targets="label")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
        mlflow.log_input(arrays, tags={"mlflow.data.context": "eval"})
        with pytest.raises(MlflowException, match="not stored yet"):
            mlflow.log_input(arrays, tags={"kind": "x"})
    inputs = {i.dataset.name: i for i in mlflow.get_run(run.info.run_id).inputs.dataset_inputs}
    assert inputs["train"].context == "training" and inputs["arrays"].context == "eval"
    assert inputs["train"].dataset.source == "s3://bucket/train.parquet"
    assert inputs["train"].dataset.digest == dataset.digest
