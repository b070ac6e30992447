"""Models MLflow wrote with a flavor nbtrack has no loader for, loaded through MLflow itself.

Custom ``mlflow.pyfunc.PythonModel`` models pickle MLflow's own classes, so loading them needs
MLflow installed whatever loads them.
"""

from __future__ import annotations

from pathlib import Path

from nbtrack.exceptions import NbtrackError


class MlflowPyfunc:
    """An MLflow ``PyFuncModel`` seen through nbtrack's pyfunc interface."""

    def __init__(self, loaded) -> None:
        self.loaded = loaded
        try:
            self.native = loaded.unwrap_python_model()
        except Exception:  # flavors without a python model: the MLflow model itself
            self.native = loaded

    def predict(self, data, params=None):
        return self.loaded.predict(data, params=params) if params else self.loaded.predict(data)


def load_with_mlflow(folder: Path, loader: str) -> MlflowPyfunc:
    """Load the checked folder of an MLflow model with ``mlflow.pyfunc.load_model``."""
    try:
        import mlflow.pyfunc
    except ImportError:
        raise NbtrackError(
            f"The model in {folder} was saved by MLflow with the loader {loader!r}; loading it "
            "needs MLflow: pip install mlflow."
        ) from None
    return MlflowPyfunc(mlflow.pyfunc.load_model(str(folder)))
