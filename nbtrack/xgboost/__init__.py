"""XGBoost: log, save and load models (``Booster`` or the scikit-learn API), and ``autolog``.

Models are saved in XGBoost's own JSON format, which loads without running code.
"""

from __future__ import annotations

from nbtrack.xgboost.flavor import FLAVOR, load_model, load_pyfunc, log_model, save_model

__all__ = ["FLAVOR", "autolog", "load_model", "log_model", "save_model"]


def _load_pyfunc(path, model_config=None):
    """The loader ``MLmodel`` files name (``loader_module: nbtrack.xgboost``).

    MLflow's ``mlflow.pyfunc.load_model`` calls it with the model's folder; the folder is
    checked against its sha256 manifest before anything is unpickled.
    """
    from nbtrack.models.uris import checked_folder

    folder, model = checked_folder(path)
    return load_pyfunc(folder, model.flavor("python_function", folder))


def autolog(disable: bool = False, log_models: bool = True, log_input_examples: bool = True,
            silent: bool = False) -> None:
    """Log params, per-iteration eval metrics, the model and feature importances.

    Covers ``xgboost.train`` and the scikit-learn API (``XGBRegressor.fit``...).
    ``autolog(disable=True)`` turns it off.
    """
    from nbtrack.xgboost import autologging

    autologging.configure(disable=disable, log_models=log_models,
                          log_input_examples=log_input_examples, silent=silent)
