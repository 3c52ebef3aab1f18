"""Run the fingerprint flaw classifier (ONNX, exported from scikit-learn) on ONNX Runtime."""

import hashlib
import json
import os

import numpy as np

from auracore.errors import ModelError

FLAW_CLASSES = ("clean", "tonal", "under_compressed", "over_compressed", "narrow", "wide")
MODEL_FILE = "flaws.onnx"
MANIFEST_FILE = "flaws.json"


def default_model_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")


class FlawModel:
    """The classifier: which single flaw a clip's fingerprint shows (FLAW_CLASSES)."""

    def __init__(self, model_dir: str | None = None):
        from auracore.models.runtime import open_session

        self.model_dir = os.path.abspath(model_dir or default_model_dir())
        try:
            with open(os.path.join(self.model_dir, MANIFEST_FILE), encoding="utf-8") as f:
                manifest = json.load(f)
            path = os.path.join(self.model_dir, MODEL_FILE)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        except (OSError, ValueError) as exc:
            raise ModelError(f"fingerprint flaw model unreadable in {self.model_dir}: {exc}") from None
        if digest != manifest.get("sha256"):
            raise ModelError(f"{path}: checksum differs from {MANIFEST_FILE}; retrain with `auracore train fingerprint`")
        self.classes = tuple(manifest["classes"])
        self.features = tuple(manifest["features"])
        self.session = open_session(path, threads=1)
        self._input = self.session.get_inputs()[0].name

    def predict(self, values) -> tuple[list[str], np.ndarray]:
        """(labels, probabilities (n, classes)) for values: (n, 64) or (64,) fingerprints."""
        x = np.atleast_2d(np.asarray(values, dtype=np.float32))
        if x.shape[1] != len(self.features):
            raise ModelError(f"the flaw model takes {len(self.features)} features, not {x.shape[1]}")
        label, prob = self.session.run(None, {self._input: x})
        prob = np.asarray(prob, dtype=np.float64)
        return [self.classes[int(i)] for i in np.argmax(prob, axis=1)], prob
