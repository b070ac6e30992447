"""Opening an MLflow store: its tracking URI from what the user typed, and MLflow itself."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from nbtrack.exceptions import NbtrackError

URI_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql", "file:", "http://", "https://",
               "databricks")


def require_mlflow():
    """The ``mlflow`` module, or an error saying how to install it."""
    try:
        import mlflow
        from mlflow import MlflowClient  # noqa: F401 - fails on a broken install
    except ImportError:
        raise NbtrackError("Moving runs between MLflow and nbtrack needs MLflow: "
                           "pip install mlflow.") from None
    return mlflow


def tracking_uri(source: str, must_exist: bool = True) -> str:
    """The MLflow tracking URI of ``source``: a URI as given, a folder, or a ``.db`` file.

    A folder (``mlruns/``) becomes a ``file://`` URI and a ``.db`` file a ``sqlite:///`` one.
    """
    text = str(source)
    if text.startswith(URI_SCHEMES):
        if must_exist and text.startswith("sqlite:///"):
            path = Path(text[len("sqlite:///"):])
            if not path.is_file():
                raise NbtrackError(f"{path} does not exist: give the sqlite file MLflow "
                                   "tracked to, e.g. sqlite:///mlflow.db.")
        return text
    path = Path(text).expanduser().resolve()
    if path.is_file() and path.suffix in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{path}"
    if path.is_dir() or not must_exist:
        return path.as_uri()
    raise NbtrackError(
        f"{text} is neither an MLflow store URI nor a folder. Give sqlite:///mlflow.db, a "
        "mlruns/ folder, or a database URI such as postgresql://user@host/db."
    )


def client_for(uri: str):
    """An ``MlflowClient`` on the store at ``uri``, its registry included.

    MLflow 3 refuses ``mlruns/`` folders unless ``MLFLOW_ALLOW_FILE_STORE`` is set; asking
    for one by name is taken as that opt-in.
    """
    require_mlflow()
    from mlflow import MlflowClient

    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def pages(fetch, **kwargs) -> list:
    """Every item of an MLflow search that pages with ``page_token``."""
    items: list = []
    token = None
    while True:
        page = fetch(page_token=token, **kwargs)
        items.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return items


def progress(total: int, what: str):
    """A tqdm bar over ``total`` items shown once the work lasts a second (none if no tqdm)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=what, unit=" runs", delay=1.0, leave=False)


def artifact_location(uri: str, experiment_name: str) -> str | None:
    """Where an experiment exported to a sqlite file keeps its artifacts: beside the file.

    MLflow's default for sqlite is ``./mlruns`` under whatever the working directory is; for
    other stores MLflow's own default (the server's, or the folder's) is kept (None).
    """
    if not uri.startswith("sqlite:///"):
        return None
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", experiment_name).strip("-") or "experiment"
    return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts" / slug).as_uri()


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Without MLflow's own bar for each artifact download (the import shows one bar)."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
