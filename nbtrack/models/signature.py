"""Model signatures: the input columns (or tensor) a model takes and what it returns.

A signature is inferred from an input example and the model's output on it, saved with the
model, and checked on every ``predict`` of a loaded model, so a missing or mistyped column is
named before the model sees the data.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from nbtrack.exceptions import SchemaMismatchError

# pandas/numpy dtype kind -> signature type
_KIND_TYPES = {"b": "boolean", "i": "long", "u": "long", "f": "double", "M": "datetime",
               "O": "string", "U": "string", "S": "binary"}
# types a column of another type may be converted to without losing meaning
_WIDENS_TO = {"long": {"double"}, "integer": {"long", "double"}, "float": {"double"},
              "boolean": set(), "double": set(), "string": set(), "datetime": set(),
              "binary": set()}
#: MLflow's types nbtrack checks; any other (arrays, objects, maps) is taken as it comes
ANY = "any"


@dataclass(frozen=True)
class ColSpec:
    """One input or output column: its name (None for an unnamed output) and type."""

    type: str
    name: str | None = None


@dataclass(frozen=True)
class TensorSpec:
    """An array input or output: its numpy dtype and shape (-1 for any size)."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Schema:
    """Columns or a single tensor."""

    columns: tuple[ColSpec, ...] = ()
    tensor: TensorSpec | None = None

    def to_dict(self) -> dict:
        if self.tensor is not None:
            return {"tensor": {"dtype": self.tensor.dtype, "shape": list(self.tensor.shape)}}
        return {"columns": [asdict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, data: dict | list | str) -> Schema:
        """Read nbtrack's form (``{"columns": ...}``) or MLflow's (a JSON list of specs)."""
        if isinstance(data, str):
            data = json.loads(data)
        if isinstance(data, list):
            return cls.from_mlflow(data)
        assert isinstance(data, dict), "a schema is a dict, a list or JSON text"
        if "tensor" in data:
            return cls(tensor=TensorSpec(data["tensor"]["dtype"], tuple(data["tensor"]["shape"])))
        return cls(columns=tuple(ColSpec(c["type"], c.get("name")) for c in data["columns"]))

    @classmethod
    def from_mlflow(cls, specs: list) -> Schema:
        """MLflow's list of column or tensor specs."""
        for spec in specs:
            if spec.get("type") == "tensor":
                tensor = spec["tensor-spec"]
                return cls(tensor=TensorSpec(str(tensor["dtype"]), tuple(tensor["shape"])))
        return cls(columns=tuple(
            ColSpec(s["type"] if s.get("type") in _WIDENS_TO else ANY,
                    None if s.get("name") is None else str(s["name"]))
            for s in specs))

    def to_mlflow(self) -> str:
        """MLflow's form: a JSON list of column specs, or of one tensor spec."""
        if self.tensor is not None:
            return json.dumps([{"type": "tensor", "tensor-spec": {
                "dtype": self.tensor.dtype, "shape": list(self.tensor.shape)}}])
        return json.dumps([{"type": c.type, **({"name": c.name} if c.name is not None else {}),
                            "required": True} for c in self.columns])

    def __str__(self) -> str:
        if self.tensor is not None:
            return f"tensor {self.tensor.dtype}{list(self.tensor.shape)}"
        return ", ".join(f"{c.name}: {c.type}" if c.name else c.type for c in self.columns)


@dataclass(frozen=True)
class ModelSignature:
    """What a model takes (``inputs``) and returns (``outputs``, optional)."""

    inputs: Schema
    outputs: Schema | None = None
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"inputs": self.inputs.to_dict(),
                "outputs": self.outputs.to_dict() if self.outputs else None}

    def to_mlflow(self) -> dict:
        """The signature as MLflow writes it in ``MLmodel``: each schema as a JSON string."""
        return {"inputs": self.inputs.to_mlflow(),
                "outputs": self.outputs.to_mlflow() if self.outputs else None,
                "params": None}

    @classmethod
    def from_dict(cls, data: dict) -> ModelSignature:
        """Read a signature in nbtrack's form or in MLflow's."""
        outputs = data.get("outputs")
        return cls(Schema.from_dict(data["inputs"]), Schema.from_dict(outputs) if outputs else None)

    def __repr__(self) -> str:
        return f"inputs: [{self.inputs}]\noutputs: [{self.outputs or 'unknown'}]"


def _dtype_type(dtype) -> str:
    kind = getattr(dtype, "kind", "O")
    if kind == "i" and getattr(dtype, "itemsize", 8) <= 4:
        return "integer"
    if kind == "f" and getattr(dtype, "itemsize", 8) <= 4:
        return "float"
    return _KIND_TYPES.get(kind, "string")


def _schema_of(data) -> Schema:
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return Schema(columns=tuple(ColSpec(_dtype_type(t), str(n))
                                    for n, t in data.dtypes.items()))
    if isinstance(data, pd.Series):
        name = None if data.name is None else str(data.name)
        return Schema(columns=(ColSpec(_dtype_type(data.dtype), name),))
    if isinstance(data, dict):
        return _schema_of(pd.DataFrame(data))
    array = np.asarray(data)
    if array.dtype.kind == "O":
        return _schema_of(pd.DataFrame(array))
    return Schema(tensor=TensorSpec(str(array.dtype), (-1, *array.shape[1:])))


def infer_signature(model_input, model_output=None) -> ModelSignature:
    """Infer a signature from example input (DataFrame, dict of columns or array) and output."""
    outputs = None if model_output is None else _schema_of(model_output)
    return ModelSignature(_schema_of(model_input), outputs)


def _check_column(spec: ColSpec, series) -> None:
    actual = _dtype_type(series.dtype)
    if spec.type == ANY or actual == spec.type or spec.type in _WIDENS_TO.get(actual, set()):
        return
    if spec.type in ("integer", "long") and actual == "double" and series.notna().all() \
            and (series % 1 == 0).all():
        return
    raise SchemaMismatchError(
        f"Column {spec.name!r} has type {actual} ({series.dtype}), but the model's signature "
        f"says {spec.type}. Convert it first, e.g. df[{spec.name!r}].astype(...)."
    )


def enforce(signature: ModelSignature, data):
    """Check ``data`` against the signature's inputs; return it in the order the model wants.

    Extra columns are dropped; a missing or mistyped column raises ``SchemaMismatchError``
    naming it.
    """
    import numpy as np
    import pandas as pd

    schema = signature.inputs
    if schema.tensor is not None:
        array = np.asarray(data)
        width = schema.tensor.shape[1:]
        if tuple(array.shape[1:]) != tuple(width):
            raise SchemaMismatchError(
                f"The model takes arrays of shape {list(schema.tensor.shape)}; got "
                f"{list(array.shape)}."
            )
        expected = np.dtype(schema.tensor.dtype)
        if array.dtype != expected and not np.can_cast(array.dtype, expected, "same_kind"):
            raise SchemaMismatchError(
                f"The model takes {expected} arrays; got {array.dtype}. Convert with "
                f".astype({str(expected)!r})."
            )
        return array.astype(expected, copy=False)
    if isinstance(data, dict):
        data = pd.DataFrame(data)
    if not isinstance(data, pd.DataFrame):
        raise SchemaMismatchError(
            f"The model takes a DataFrame with columns [{schema}]; got {type(data).__name__}."
        )
    named = [c for c in schema.columns if c.name is not None]
    missing = [c.name for c in named if c.name not in data.columns]
    if missing:
        raise SchemaMismatchError(
            f"Input is missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)}; the model's signature needs [{schema}]."
        )
    for spec in named:
        _check_column(spec, data[spec.name])
    return data[[c.name for c in named]] if named else data
