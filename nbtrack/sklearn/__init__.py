"""scikit-learn: log, save and load models, and ``autolog`` for ``fit``, as ``mlflow.sklearn``.

``serialization_format="pickle"`` (the default) loads anywhere scikit-learn does, but
unpickling runs code, so load only models you trust. ``"skops"`` (``pip install skops``)
loads without running code: types it does not know are refused unless you pass them in
``trusted=``.
"""

from __future__ import annotations

from nbtrack.sklearn.flavor import FLAVOR, load_model, load_pyfunc, log_model, save_model

__all__ = ["FLAVOR", "autolog", "load_model", "log_model", "save_model"]


def _load_pyfunc(path, model_config=None):
    """The loader ``MLmodel`` files name (``loader_module: nbtrack.sklearn``).

    MLflow's ``mlflow.pyfunc.load_model`` calls it with the model's folder; the folder is
    checked against its sha256 manifest before anything is unpickled.
    """
    from nbtrack.models.uris import checked_folder

    folder, model = checked_folder(path)
    return load_pyfunc(folder, model.flavor("python_function", folder))


def autolog(disable: bool = False, log_models: bool = True, log_input_examples: bool = True,
            max_tuning_runs: int | None = 50, silent: bool = False) -> None:
    """Log params, training metrics, the model and feature importances on every ``fit``.

    ``GridSearchCV`` and ``RandomizedSearchCV`` get a child run per candidate (up to
    ``max_tuning_runs``) under the search's run. ``autolog(disable=True)`` turns it off.
    """
    from nbtrack.sklearn import autologging

    autologging.configure(disable=disable, log_models=log_models,
                          log_input_examples=log_input_examples,
                          max_tuning_runs=max_tuning_runs, silent=silent)
