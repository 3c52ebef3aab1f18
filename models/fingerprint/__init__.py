"""A flaw classifier on the 64-float fingerprint: trained here with scikit-learn, shipped as ONNX.

    from auracore.models.fingerprint import FlawModel
    FlawModel().predict(values)   # values: (n, 64) float32 -> (labels, probabilities (n, classes))

Training: ``auracore train fingerprint`` (auracore.offline.fingerprint.train); the card is
MODEL_CARD.md beside this file.
"""

from .model import FLAW_CLASSES, FlawModel, default_model_dir

__all__ = ["FlawModel", "FLAW_CLASSES", "default_model_dir"]
