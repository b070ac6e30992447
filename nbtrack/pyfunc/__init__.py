"""``pyfunc``: any saved model as an object with ``.predict(DataFrame)``, and custom models.

Loading a model unpickles it, and unpickling runs code: load only models you trust (models
from your own store, checked by sha256 at load, are the ones you logged). For scikit-learn,
``nbtrack.sklearn.log_model(..., serialization_format="skops")`` saves in a format that does
not run code on load.

Custom models subclass ``PythonModel``::

    class Doubler(nbtrack.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input["x"] * 2

    info = nbtrack.pyfunc.log_model("doubler", python_model=Doubler(), input_example=df)
    nbtrack.pyfunc.load_model(info.model_uri).predict(df)
"""

from __future__ import annotations

import importlib
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from nbtrack.exceptions import NbtrackError
from nbtrack.models import store_io, uris
from nbtrack.models.model import Model, ModelInfo, finish_folder, prepare_folder
from nbtrack.models.requirements import dumps_recording, requirements_for
from nbtrack.models.signature import ModelSignature, enforce
from nbtrack.tracking.fluent import current_client

FLAVOR = "python_function"
PYTHON_MODEL_FILE = "python_model.pkl"
ARTIFACTS_DIR = "artifacts"


@dataclass
class PythonModelContext:
    """What a custom model gets at load: local paths of the artifacts it was logged with."""

    artifacts: dict[str, str] = field(default_factory=dict)


class PythonModel(ABC):
    """Base class of custom models: define ``predict`` (and ``load_context`` if needed)."""

    def load_context(self, context: PythonModelContext) -> None:  # noqa: B027 - optional hook
        """Called once at load, with the model's artifacts."""

    @abstractmethod
    def predict(self, context: PythonModelContext, model_input, params: dict | None = None):
        """Return predictions for ``model_input`` (a DataFrame by default)."""


class PyFuncModel:
    """A loaded model: ``predict`` checks the input against the signature, then predicts."""

    def __init__(self, implementation, metadata: Model, folder: Path) -> None:
        self._implementation = implementation
        self.metadata = metadata
        self.path = folder

    @property
    def signature(self) -> ModelSignature | None:
        """The model's signature, if it was saved with one."""
        return self.metadata.signature

    def predict(self, data, params: dict | None = None):
        """Predict; a missing or mistyped column raises ``SchemaMismatchError`` naming it."""
        if self.metadata.signature is not None:
            data = enforce(self.metadata.signature, data)
        return self._implementation.predict(data, params=params)

    def unwrap_python_model(self):
        """The underlying model object (the ``PythonModel``, or the flavor's native model)."""
        return getattr(self._implementation, "native", self._implementation)

    def __repr__(self) -> str:
        flavors = ", ".join(sorted(self.metadata.flavors))
        return (f"PyFuncModel(flavors: {flavors}; run {self.metadata.run_id or '-'}; "
                f"{self.metadata.artifact_path or self.path})")


class _CustomModel:
    def __init__(self, python_model: PythonModel, context: PythonModelContext) -> None:
        self.native = python_model
        self._context = context

    def predict(self, data, params=None):
        return self.native.predict(self._context, data, params=params) if params else \
            self.native.predict(self._context, data)


def _save(folder: Path, python_model: PythonModel, artifacts: dict[str, str] | None):
    if not isinstance(python_model, PythonModel):
        raise NbtrackError("python_model must be an instance of a nbtrack.pyfunc.PythonModel "
                           f"subclass; got {type(python_model).__name__}.")
    data, modules = dumps_recording(python_model)
    (folder / PYTHON_MODEL_FILE).write_bytes(data)
    copied = {}
    for key, source in (artifacts or {}).items():
        source_path = Path(source)
        if not source_path.exists():
            raise NbtrackError(f"Artifact {key!r} points at {source}, which does not exist.")
        target = folder / ARTIFACTS_DIR / key / source_path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source_path.is_dir():
            shutil.copytree(source_path, target)
        else:
            shutil.copy2(source_path, target)
        copied[key] = target.relative_to(folder).as_posix()
    return data, modules, copied


def save_model(path, python_model: PythonModel, artifacts: dict[str, str] | None = None,
               input_example=None, signature: ModelSignature | None = None,
               pip_requirements: list[str] | None = None) -> Model:
    """Save a custom model to a new local folder."""
    folder = prepare_folder(path)
    _, modules, copied = _save(folder, python_model, artifacts)
    model = Model(flavors={FLAVOR: {"loader_module": __name__, "python_model": PYTHON_MODEL_FILE,
                                    "artifacts": copied}})
    context = PythonModelContext({k: str(folder / v) for k, v in copied.items()})
    return finish_folder(folder, model, input_example=input_example, signature=signature,
                         predict=lambda x: python_model.predict(context, x),
                         requirements=pip_requirements or requirements_for(modules))


def log_model(name: str | None = None, python_model: PythonModel | None = None,
              artifacts: dict[str, str] | None = None, input_example=None,
              signature: ModelSignature | None = None,
              pip_requirements: list[str] | None = None, artifact_path: str | None = None,
              run_id: str | None = None, registered_model_name: str | None = None) -> ModelInfo:
    """Log a custom model to the active run (or ``run_id``) under ``name``.

    ``registered_model_name`` also registers it as a new version of that registered model.
    """
    if python_model is None:
        raise NbtrackError("pyfunc.log_model needs python_model=, an instance of a "
                           "PythonModel subclass.")
    client, run_id = store_io.target_run(run_id)
    folder = prepare_folder(None)
    data, modules, copied = _save(folder, python_model, artifacts)
    digest = store_io.model_digest(data)
    if (found := store_io.already_logged(run_id, digest)) is not None:
        store_io.remove_folder(folder)
        return store_io.register_logged(client, found, registered_model_name)
    model = Model(flavors={FLAVOR: {"loader_module": __name__, "python_model": PYTHON_MODEL_FILE,
                                    "artifacts": copied}},
                  run_id=run_id, artifact_path=store_io.model_name(name, artifact_path))
    context = PythonModelContext({k: str(folder / v) for k, v in copied.items()})
    finish_folder(folder, model, input_example=input_example, signature=signature,
                  predict=lambda x: python_model.predict(context, x),
                  requirements=pip_requirements or requirements_for(modules))
    return store_io.register_logged(
        client, store_io.log_folder(client, run_id, folder, model, digest), registered_model_name)


def load_pyfunc(folder: Path, conf: dict):
    """The pyfunc of a checked custom-model folder: unpickle, then load the context."""
    import pickle

    with open(folder / conf["python_model"], "rb") as fh:
        python_model = pickle.load(fh)
    context = PythonModelContext({k: str(folder / v) for k, v in conf.get("artifacts", {}).items()})
    python_model.load_context(context)
    return _CustomModel(python_model, context)


def _load_pyfunc(path, model_config=None):
    """The loader ``MLmodel`` files name (``loader_module: nbtrack.pyfunc``).

    MLflow's ``mlflow.pyfunc.load_model`` calls it with the model's folder; the folder is
    checked against its sha256 manifest before anything is unpickled.
    """
    folder, model = uris.checked_folder(path)
    return load_pyfunc(folder, model.flavor(FLAVOR, folder))


#: loader modules of MLmodel files -> the nbtrack module whose ``load_pyfunc`` loads them
LOADERS = {"nbtrack.sklearn": "nbtrack.sklearn", "mlflow.sklearn": "nbtrack.sklearn",
           "nbtrack.xgboost": "nbtrack.xgboost", "mlflow.xgboost": "nbtrack.xgboost",
           "nbtrack.pyfunc": "nbtrack.pyfunc"}


def load_model(model_uri) -> PyFuncModel:
    """Load any model as a ``PyFuncModel`` (runs:/..., models:/..., file:///... or a folder).

    Models MLflow wrote load too: scikit-learn and XGBoost ones through nbtrack's flavors,
    other MLflow flavors (custom ``mlflow.pyfunc.PythonModel`` models...) through MLflow
    itself, which must then be installed.
    """
    folder, model = uris.resolve(model_uri, current_client())
    conf = model.flavor(FLAVOR, folder)
    loader = conf.get("loader_module", "")
    if loader in LOADERS:
        implementation = importlib.import_module(LOADERS[loader]).load_pyfunc(folder, conf)
    elif loader.startswith("mlflow."):
        from nbtrack.pyfunc import mlflow_models

        implementation = mlflow_models.load_with_mlflow(folder, loader)
    else:
        raise NbtrackError(f"The model in {folder} names the loader {loader!r}, which nbtrack "
                           "does not know; it loads nbtrack's and MLflow's flavors.")
    return PyFuncModel(implementation, model, folder)
