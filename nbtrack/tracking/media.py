"""Tables and images as run artifacts: MLflow's ``log_table``, ``load_table``, ``log_image``.

A table is saved as JSON in pandas' ``split`` layout and listed in the run's
``mlflow.loggedArtifacts`` tag, as MLflow does, so ``load_table`` finds it across runs.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import PurePosixPath

from nbtrack.artifact_files import safe_relative_path
from nbtrack.exceptions import InvalidValueError
from nbtrack.tracking import fluent

LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"


def pillow():
    """``PIL.Image``, or an error saying how to install it."""
    try:
        from PIL import Image as PILImage
    except ImportError:
        raise InvalidValueError("Images need Pillow: pip install pillow.") from None
    return PILImage


class Image:
    """An image to log: from a numpy array (HxW, HxWx3 or HxWx4) or a ``PIL.Image``."""

    def __init__(self, image) -> None:
        self._image = _to_pil(image)

    def to_pil(self):
        """The image as a ``PIL.Image.Image``."""
        return self._image

    def to_array(self):
        """The image as a numpy array."""
        import numpy as np

        return np.asarray(self._image)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return self._image.size

    def save(self, path) -> None:
        """Save as a file; its suffix picks the format."""
        self._image.save(path)


def _to_pil(image):
    if isinstance(image, Image):
        return image.to_pil()
    pil = pillow()
    if isinstance(image, pil.Image):
        return image
    module = type(image).__module__
    if module.startswith("numpy") and hasattr(image, "ndim"):
        import numpy as np

        array = image
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
            raise InvalidValueError(
                f"An image array has shape HxW, HxWx1, HxWx3 or HxWx4, not {array.shape}.")
        if array.dtype.kind == "f":
            if np.nanmin(array) < 0 or np.nanmax(array) > 1:
                raise InvalidValueError("A float image array holds values in [0, 1]; scale it, "
                                        "or pass uint8 values in [0, 255].")
            array = (array * 255).round().astype("uint8")
        elif array.dtype != np.uint8:
            if array.min() < 0 or array.max() > 255:
                raise InvalidValueError("An integer image array holds values in [0, 255].")
            array = array.astype("uint8")
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        return pil.fromarray(array)
    raise InvalidValueError(f"log_image takes a numpy array, a PIL image or nbtrack.Image, not "
                            f"a {type(image).__name__}.")


def log_image(image, artifact_file: str | None = None, key: str | None = None,
              step: int | None = None, timestamp: int | None = None,
              run_id: str | None = None) -> None:
    """Log an image to the active run (or ``run_id``).

    Either as ``artifact_file`` (its suffix picks the format), or as a step of the image
    series ``key``: saved as PNG under ``images/<key>/``.
    """
    if (artifact_file is None) == (key is None):
        raise InvalidValueError("log_image takes either artifact_file or key (with step).")
    picture = _to_pil(image)
    if key is not None:
        from nbtrack.clock import now_ms
        from nbtrack.tracking.names import check_key

        check_key(key, "image")
        when = now_ms() if timestamp is None else timestamp
        artifact_file = f"images/{key}/step_{step or 0}_{when}_{uuid.uuid4().hex[:8]}.png"
    assert artifact_file is not None
    suffix = PurePosixPath(artifact_file).suffix.lower().lstrip(".") or "png"
    buffer = io.BytesIO()
    picture.save(buffer, format={"jpg": "jpeg"}.get(suffix, suffix))
    client, target = fluent.target(run_id)
    client.log_bytes(target, buffer.getvalue(), artifact_file)


def log_table(data, artifact_file: str, run_id: str | None = None) -> None:
    """Log a DataFrame (or a dict of columns) as a JSON table artifact."""
    import pandas as pd

    if PurePosixPath(artifact_file).suffix.lower() != ".json":
        raise InvalidValueError(f"A table is saved as JSON: name it like 'table.json', not "
                                f"{artifact_file!r}.")
    if isinstance(data, dict):
        data = pd.DataFrame(data)
    if not isinstance(data, pd.DataFrame):
        raise InvalidValueError(f"log_table takes a DataFrame or a dict of columns, not a "
                                f"{type(data).__name__}.")
    client, target = fluent.target(run_id)
    client.log_bytes(target, data.to_json(orient="split", index=False).encode(), artifact_file)
    logged = json.loads(client.get_run(target).data.tags.get(LOGGED_ARTIFACTS_TAG, "[]"))
    if {"path": artifact_file, "type": "table"} not in logged:
        logged.append({"path": artifact_file, "type": "table"})
        client.set_tag(target, LOGGED_ARTIFACTS_TAG, json.dumps(logged))


def load_table(artifact_file: str, run_ids: list[str] | None = None,
               extra_columns: list[str] | None = None):
    """One DataFrame of the table ``artifact_file`` from each run that logged it.

    By default the runs of the active experiment; ``extra_columns`` (e.g. ``["run_id"]``) adds
    run attributes as columns.
    """
    import pandas as pd

    client = fluent.current_client()
    relative = safe_relative_path(artifact_file, "artifact_file")
    if run_ids is None:
        runs = fluent.search_runs(output_format="list")
        run_ids = [r.info.run_id for r in runs if {"path": artifact_file, "type": "table"} in
                   json.loads(r.data.tags.get(LOGGED_ARTIFACTS_TAG, "[]"))]
    frames = []
    for run_id in run_ids:
        if relative not in client.artifact_index(run_id):
            continue
        text = (client.artifact_path(run_id) / relative).read_text(encoding="utf-8")
        frame = pd.read_json(io.StringIO(text), orient="split")
        for column in extra_columns or []:
            if column != "run_id":
                raise InvalidValueError(f"load_table adds the column 'run_id' only, not "
                                        f"{column!r}.")
            frame[column] = run_id
        frames.append(frame)
    if not frames:
        raise InvalidValueError(f"No run logged a table {artifact_file!r}. Log one with "
                                "nbtrack.log_table(frame, artifact_file).")
    return pd.concat(frames, ignore_index=True)
