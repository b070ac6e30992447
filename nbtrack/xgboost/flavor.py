"""XGBoost models: log, save and load them (``Booster`` or the scikit-learn API).

Models are saved in XGBoost's own JSON format, which loads without running code.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from nbtrack.exceptions import NbtrackError
from nbtrack.models import store_io, uris
from nbtrack.models.model import Model, ModelInfo, finish_folder, prepare_folder
from nbtrack.models.requirements import requirements_for
from nbtrack.models.signature import ModelSignature
from nbtrack.tracking.fluent import current_client

FLAVOR = "xgboost"
MODEL_FILE = "model.json"


def _check(model):
    import xgboost as xgb

    if not isinstance(model, (xgb.Booster, xgb.XGBModel)):
        raise NbtrackError("nbtrack.xgboost saves an xgboost.Booster or an XGBoost scikit-learn "
                           f"model (XGBRegressor, XGBClassifier...), not {type(model).__name__}.")
    return xgb


def _predict_function(model):
    xgb = _check(model)
    if isinstance(model, xgb.Booster):
        return lambda data: model.predict(xgb.DMatrix(data))
    return model.predict


def _write(folder: Path, model, input_example, signature, pip_requirements,
           meta: Model) -> tuple[Model, str]:
    xgb = _check(model)
    model.save_model(str(folder / MODEL_FILE))
    kind = type(model)
    meta.flavors = {
        FLAVOR: {"data": MODEL_FILE, "model_class": f"{kind.__module__}.{kind.__qualname__}",
                 "xgb_version": xgb.__version__},
        "python_function": {"loader_module": "nbtrack.xgboost", "model_path": MODEL_FILE},
    }
    finish_folder(folder, meta, input_example=input_example, signature=signature,
                  predict=_predict_function(model),
                  requirements=pip_requirements or requirements_for({"xgboost", "numpy"}))
    return meta, store_io.model_digest((folder / MODEL_FILE).read_bytes())


def save_model(xgb_model, path, input_example=None, signature: ModelSignature | None = None,
               pip_requirements: list[str] | None = None) -> Model:
    """Save a Booster or an XGBoost scikit-learn model to a new local folder."""
    folder = prepare_folder(path)
    meta, _ = _write(folder, xgb_model, input_example, signature, pip_requirements, Model())
    return meta


def log_model(xgb_model, name: str | None = None, input_example=None,
              signature: ModelSignature | None = None, pip_requirements: list[str] | None = None,
              artifact_path: str | None = None, run_id: str | None = None,
              registered_model_name: str | None = None) -> ModelInfo:
    """Log a Booster or an XGBoost scikit-learn model to the active run (or ``run_id``).

    ``registered_model_name`` also registers it as a new version of that registered model.
    """
    return store_io.log_written(
        lambda folder, meta: _write(folder, xgb_model, input_example, signature,
                                    pip_requirements, meta),
        name, artifact_path, run_id, registered_model_name)


def _load_native(folder: Path, conf: dict):
    module_name, _, class_name = conf["model_class"].rpartition(".")
    if not module_name.startswith("xgboost"):
        raise NbtrackError(f"The model in {folder} names the class {conf['model_class']!r}, "
                           "which is not XGBoost's.")
    model = getattr(importlib.import_module(module_name), class_name)()
    model.load_model(str(folder / conf["data"]))
    return model


def load_model(model_uri):
    """Load the XGBoost object itself (runs:/..., models:/..., file:///... or a folder)."""
    folder, meta = uris.resolve(model_uri, current_client())
    return _load_native(folder, meta.flavor(FLAVOR, folder))


class _XGBoostPyfunc:
    def __init__(self, native) -> None:
        self.native = native
        self._predict = _predict_function(native)

    def predict(self, data, params=None):
        return self._predict(data)


def load_pyfunc(folder: Path, conf: dict):
    """The pyfunc of a checked XGBoost model folder (nbtrack's or MLflow's)."""
    meta = Model.load(folder)
    return _XGBoostPyfunc(_load_native(folder, meta.flavor(FLAVOR, folder)))
