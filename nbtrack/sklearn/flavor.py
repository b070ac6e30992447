"""scikit-learn models: log, save and load them.

``serialization_format="pickle"`` (the default) loads anywhere scikit-learn does, but
unpickling runs code, so load only models you trust. ``"skops"`` (``pip install skops``)
loads without running code: types it does not know are refused unless you pass them in
``trusted=``.
"""

from __future__ import annotations

from pathlib import Path

from nbtrack.exceptions import NbtrackError
from nbtrack.models import store_io, uris
from nbtrack.models.model import Model, ModelInfo, finish_folder, prepare_folder
from nbtrack.models.requirements import dumps_recording, requirements_for
from nbtrack.models.signature import ModelSignature
from nbtrack.tracking.fluent import current_client

FLAVOR = "sklearn"
FORMATS = {"pickle": "model.pkl", "skops": "model.skops"}


def _serialize(sk_model, serialization_format: str) -> tuple[bytes, set[str], str]:
    if serialization_format not in FORMATS:
        raise NbtrackError(f"serialization_format must be one of {', '.join(FORMATS)}; got "
                           f"{serialization_format!r}.")
    data, modules = dumps_recording(sk_model)
    if serialization_format == "skops":
        try:
            import skops.io
        except ImportError:
            raise NbtrackError("serialization_format='skops' needs the skops package: "
                               "pip install skops.") from None
        data = skops.io.dumps(sk_model)
        modules.add("skops")
    return data, modules, FORMATS[serialization_format]


def _write(folder: Path, sk_model, serialization_format: str, input_example, signature,
           pip_requirements, model: Model) -> tuple[Model, str]:
    import sklearn

    data, modules, file_name = _serialize(sk_model, serialization_format)
    (folder / file_name).write_bytes(data)
    model.flavors = {
        FLAVOR: {"pickled_model": file_name, "serialization_format": serialization_format,
                 "sklearn_version": sklearn.__version__},
        "python_function": {"loader_module": "nbtrack.sklearn", "model_path": file_name},
    }
    predict = getattr(sk_model, "predict", None)
    finish_folder(folder, model, input_example=input_example, signature=signature,
                  predict=predict, requirements=pip_requirements or requirements_for(modules))
    return model, store_io.model_digest(data)


def save_model(sk_model, path, serialization_format: str = "pickle", input_example=None,
               signature: ModelSignature | None = None,
               pip_requirements: list[str] | None = None) -> Model:
    """Save a scikit-learn model to a new local folder."""
    folder = prepare_folder(path)
    model, _ = _write(folder, sk_model, serialization_format, input_example, signature,
                      pip_requirements, Model())
    return model


def log_model(sk_model, name: str | None = None, serialization_format: str = "pickle",
              input_example=None, signature: ModelSignature | None = None,
              pip_requirements: list[str] | None = None, artifact_path: str | None = None,
              run_id: str | None = None, registered_model_name: str | None = None) -> ModelInfo:
    """Log a scikit-learn model to the active run (or ``run_id``) under ``name``.

    ``registered_model_name`` also registers it as a new version of that registered model.

    The same fitted model logged again to the same run (say by autolog, then by hand) is
    stored once: the second call returns the first one's ``ModelInfo``.
    """
    return store_io.log_written(
        lambda folder, model: _write(folder, sk_model, serialization_format, input_example,
                                     signature, pip_requirements, model),
        name, artifact_path, run_id, registered_model_name)


def _load_native(folder: Path, conf: dict, trusted: list[str] | None):
    """Load the estimator; ``conf`` is the sklearn flavor (nbtrack's or MLflow's, alike)."""
    path = folder / conf["pickled_model"]
    if conf.get("serialization_format", "pickle") == "skops":
        import skops.io

        trusted = [*(trusted or []), *(conf.get("skops_trusted_types") or [])]

        unknown = [t for t in skops.io.get_untrusted_types(file=path) if t not in (trusted or [])]
        if unknown:
            raise NbtrackError(
                f"The skops model in {folder} uses types skops does not trust by default: "
                f"{', '.join(unknown)}. If you trust them, pass trusted={unknown!r}."
            )
        return skops.io.load(path, trusted=trusted or None)
    import pickle

    with open(path, "rb") as fh:
        return pickle.load(fh)


def load_model(model_uri, trusted: list[str] | None = None):
    """Load the scikit-learn object itself (runs:/..., file:///... or a folder)."""
    folder, model = uris.resolve(model_uri, current_client())
    return _load_native(folder, model.flavor(FLAVOR, folder), trusted)


class _SklearnPyfunc:
    def __init__(self, native, predict_fn: str = "predict") -> None:
        self.native = native
        self._predict = getattr(native, predict_fn)

    def predict(self, data, params=None):
        return self._predict(data)


def load_pyfunc(folder: Path, conf: dict):
    """The pyfunc of a checked scikit-learn model folder (nbtrack's or MLflow's).

    ``conf`` is the ``python_function`` flavor; MLflow's ``predict_fn`` (such as
    ``predict_proba``) is honoured.
    """
    model = Model.load(folder)
    native = _load_native(folder, model.flavor(FLAVOR, folder), None)
    return _SklearnPyfunc(native, conf.get("predict_fn") or "predict")
