"""Saved models: metadata, signatures, requirements, and where models are stored."""

from nbtrack.models.model import Model, ModelInfo
from nbtrack.models.signature import ModelSignature, infer_signature


def get_model_info(model_uri: str) -> ModelInfo:
    """What a logged or registered model holds (``runs:/…``, ``models:/…`` or a folder)."""
    from nbtrack.models import uris
    from nbtrack.tracking.fluent import current_client

    _, model = uris.resolve(model_uri, current_client())
    return ModelInfo(
        model_uri=str(model_uri), run_id=model.run_id or "",
        artifact_path=model.artifact_path or "", flavors=model.flavors,
        signature=model.signature, model_uuid=model.model_uuid,
        utc_time_created=model.utc_time_created,
    )


__all__ = ["Model", "ModelInfo", "ModelSignature", "get_model_info", "infer_signature"]
