"""Turn text, dicts and figures into artifact bytes, by the artifact file's suffix."""

from __future__ import annotations

import io
import json
from pathlib import PurePosixPath

from nbtrack.exceptions import InvalidValueError


def dict_bytes(dictionary: dict, artifact_file: str) -> bytes:
    """JSON for ``.json`` (the default), YAML for ``.yaml``/``.yml``."""
    suffix = PurePosixPath(artifact_file).suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise InvalidValueError(
                f"Writing {artifact_file!r} as YAML needs PyYAML: pip install pyyaml, or use a "
                ".json file name."
            ) from None
        return yaml.safe_dump(dictionary, sort_keys=False).encode()
    return json.dumps(dictionary, indent=2, default=str).encode()


def figure_bytes(figure, artifact_file: str) -> bytes:
    """Render a matplotlib or plotly figure in the format its file suffix names."""
    suffix = PurePosixPath(artifact_file).suffix.lower().lstrip(".")
    if not suffix:
        raise InvalidValueError(
            f"log_figure needs a file suffix to pick a format: {artifact_file!r} has none. "
            "Use e.g. 'plot.png', 'plot.svg', 'plot.html' or 'plot.json'."
        )
    module = type(figure).__module__
    if module.startswith("matplotlib"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=suffix)
        return buffer.getvalue()
    if module.startswith("plotly"):
        if suffix == "html":
            return figure.to_html(include_plotlyjs="cdn").encode()
        if suffix == "json":
            return figure.to_json().encode()
        try:
            return figure.to_image(format=suffix)
        except Exception as exc:
            raise InvalidValueError(
                f"plotly could not render {artifact_file!r} ({exc}). Static images need the "
                "kaleido package; or log the figure as .html or .json."
            ) from exc
    raise InvalidValueError(
        f"log_figure takes a matplotlib or plotly figure, not a {type(figure).__name__}."
    )
