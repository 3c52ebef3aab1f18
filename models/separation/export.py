"""Export the separation network to ONNX (opset 17) with the manifest the runtime checks.

Files in the weights folder (default models/separation/weights):
- ``separation.onnx``: ``band_mag`` (1, 2, T, 128) float32 -> ``masks`` (1, 6, 2, T, 128),
  T dynamic (a multiple of 8)
- ``separation.json``: format, front end (rate, n_fft, hop, bands), stems, SHA-256 of the
  ONNX file and how it was trained; a damaged or mismatched file is caught at load.
"""

import hashlib
import json
import os
import warnings

import torch

from . import features as F

OPSET = 17
MODEL_FILE = "separation.onnx"
MANIFEST_FILE = "separation.json"
MANIFEST_FORMAT = 1


def weights_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export(net, out_dir: str, extra: dict | None = None) -> dict:
    """Write separation.onnx and separation.json for net into out_dir; returns the manifest."""
    os.makedirs(out_dir, exist_ok=True)
    net.eval()
    path = os.path.join(out_dir, MODEL_FILE)
    tmp = path + ".tmp"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.full((1, 2, 64, F.N_BANDS), 0.01),), tmp, input_names=["band_mag"],
                          output_names=["masks"], dynamic_axes={"band_mag": {2: "t"}, "masks": {3: "t"}},
                          opset_version=OPSET, dynamo=False)
    os.replace(tmp, path)
    manifest = {"format": MANIFEST_FORMAT, "name": "sepnet-unet", "opset": OPSET, "sample_rate": F.SAMPLE_RATE,
                "n_fft": F.N_FFT, "hop": F.HOP, "n_bands": F.N_BANDS, "linear_bins": F.LINEAR_BINS,
                "stems": list(F.STEMS6), "sha256": _sha256(path)}
    if extra:
        manifest.update(extra)
    with open(os.path.join(out_dir, MANIFEST_FILE + ".tmp"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.replace(os.path.join(out_dir, MANIFEST_FILE + ".tmp"), os.path.join(out_dir, MANIFEST_FILE))
    return manifest
