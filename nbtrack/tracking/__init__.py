"""Tracking: the Client, the fluent API over it, and the tracking URI.

``nbtrack.tracking.MlflowClient`` is the Client under MLflow's name.
"""


def __getattr__(name: str):
    if name == "MlflowClient":  # imported on use: ``nbtrack.tracking.uri`` stays light
        from nbtrack.tracking.client import Client

        return Client
    raise AttributeError(f"module 'nbtrack.tracking' has no attribute {name!r}")
