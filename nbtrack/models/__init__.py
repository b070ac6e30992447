"""Saved models: metadata, signatures, requirements, and where models are stored."""

from nbtrack.models.model import Model, ModelInfo
from nbtrack.models.signature import ModelSignature, infer_signature

__all__ = ["Model", "ModelInfo", "ModelSignature", "infer_signature"]
