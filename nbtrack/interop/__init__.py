"""Moving between MLflow and nbtrack: ``nbtrack import-mlflow`` and ``nbtrack export-mlflow``.

Both read and write MLflow stores through MLflow's own public client (``MlflowClient`` on the
store's tracking URI), so every store MLflow reads works: ``sqlite:///mlflow.db``, a
``mlruns/`` folder, PostgreSQL or MySQL URIs, or a tracking server. MLflow must be installed
(``pip install mlflow``); ``import nbtrack`` never imports it.

``nbtrack push`` (``interop.push``) copies between two nbtrack stores the same way, through the
Client: a laptop's or a cluster node's store to the team store.
"""

from nbtrack.interop.exporter import export_mlflow
from nbtrack.interop.importer import import_mlflow
from nbtrack.interop.summary import Summary

__all__ = ["Summary", "export_mlflow", "import_mlflow"]
