"""XGBoost: log, save and load models (``Booster`` or the scikit-learn API), and ``autolog``.

Models are saved in XGBoost's own JSON format, which loads without running code.
"""

from __future__ import annotations

from nbtrack.xgboost.flavor import FLAVOR, load_model, load_pyfunc, log_model, save_model

__all__ = ["FLAVOR", "autolog", "load_model", "log_model", "save_model"]

#: the loader MLmodel files name (``loader_module: nbtrack.xgboost``), as MLflow's flavors do
_load_pyfunc = load_pyfunc


def autolog(disable: bool = False, log_models: bool = True, log_input_examples: bool = True,
            silent: bool = False) -> None:
    """Log params, per-iteration eval metrics, the model and feature importances.

    Covers ``xgboost.train`` and the scikit-learn API (``XGBRegressor.fit``...).
    ``autolog(disable=True)`` turns it off.
    """
    from nbtrack.xgboost import autologging

    autologging.configure(disable=disable, log_models=log_models,
                          log_input_examples=log_input_examples, silent=silent)
