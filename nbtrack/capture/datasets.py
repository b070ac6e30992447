"""Content fingerprints of datasets: DataFrames, arrays and files, recorded as run inputs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from nbtrack.artifact_files import file_sha256
from nbtrack.exceptions import InvalidValueError


def dataframe_digest(frame) -> str:
    """A digest of a DataFrame's values, index, column names and dtypes."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(json.dumps([str(t) for t in frame.dtypes]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def describe_dataset(data, name: str | None = None) -> dict:
    """Describe ``data`` as a dataset record.

    ``data`` is a DataFrame, a numpy array, a file path, or a dataset made by ``nbtrack.data``.
    """
    if hasattr(data, "to_record"):  # nbtrack.data's datasets
        return {**data.to_record(), **({"name": name} if name else {})}
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            raise InvalidValueError(
                f"log_input got the path {str(data)!r}, which is not a file. Pass a DataFrame, "
                "an array, or the path of an existing file."
            )
        stat = path.stat()
        return {
            "name": name or path.name,
            "digest": file_sha256(path)[:16],
            "source_type": "local",
            "source": str(path.resolve()),
            "schema": None,
            "profile": json.dumps({"bytes": stat.st_size}),
        }
    module = type(data).__module__
    if module.startswith("pandas") and hasattr(data, "columns"):
        schema = {str(c): str(t) for c, t in data.dtypes.items()}
        return {
            "name": name or "dataframe",
            "digest": dataframe_digest(data),
            "source_type": "pandas",
            "source": "memory",
            "schema": json.dumps(schema),
            "profile": json.dumps({"num_rows": len(data), "num_columns": data.shape[1]}),
        }
    if module.startswith("numpy") and hasattr(data, "tobytes"):
        digest = hashlib.sha256(str((data.shape, str(data.dtype))).encode())
        digest.update(data.tobytes())
        return {
            "name": name or "array",
            "digest": digest.hexdigest()[:16],
            "source_type": "numpy",
            "source": "memory",
            "schema": json.dumps({"dtype": str(data.dtype), "shape": list(data.shape)}),
            "profile": json.dumps({"size": int(data.size)}),
        }
    raise InvalidValueError(
        f"log_input cannot fingerprint a {type(data).__name__}. Pass a pandas DataFrame, a "
        "numpy array, or a file path."
    )
