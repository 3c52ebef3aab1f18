"""Export trained models to the shipped ONNX files (opset 17), their torch weights and the manifest the runtime checks.

Files written to the weights folder:
- ``extractor.onnx``: input ``block`` (N, 1024) float32 -> ``embedding`` (N, 32)
- ``decider.onnx``: the classifier and the predictor in one graph (one call per decision):
  ``embeddings`` (N, T, 32) -> ``probabilities`` (N, classes), ``targets`` (N, len(target_ids))
  in registry units, unclamped (the runtime clamps)
- ``torch_weights.pt``: the same weights for torch (tests and the latency benchmark)
- ``manifest.json``: format, shapes, classes, target ids, context length, reference
  loudness and the SHA-256 of each file, so a damaged or mismatched file is caught at load.
"""

import json
import os
import warnings

import torch

from . import nets
from .runtime import FILES, MANIFEST, MANIFEST_FORMAT, sha256

OPSET = 17
TORCH_WEIGHTS = "torch_weights.pt"


def export(models, out_dir: str, extra: dict | None = None) -> dict:
    """Write the ONNX files, torch weights and manifest for models (train.Models) into
    out_dir; returns the manifest."""
    os.makedirs(out_dir, exist_ok=True)
    models.eval()
    t = nets.CONTEXT_BLOCKS
    emb = torch.zeros(1, t, nets.EMBED_DIM)
    jobs = (
        ("extractor", models.extractor, (torch.zeros(1, nets.BLOCK),), ["block"], ["embedding"],
         {"block": {0: "n"}, "embedding": {0: "n"}}),
        ("decider", nets.Decider(models.classifier, models.predictor), (emb,), ["embeddings"],
         ["probabilities", "targets"], {"embeddings": {0: "n", 1: "t"}, "probabilities": {0: "n"}, "targets": {0: "n"}}),
    )
    for name, module, args, inputs, outputs, axes in jobs:
        path = os.path.join(out_dir, FILES[name])
        # the TorchScript exporter (dynamo=False) needs no onnxscript; torch 2.13 warns that it is
        # no longer the default, which is no news here
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(module, args, path, input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    torch.save({"extractor": models.extractor.state_dict(), "classifier": models.classifier.state_dict(),
                "predictor": models.predictor.state_dict()}, os.path.join(out_dir, TORCH_WEIGHTS))
    manifest = {
        "format": MANIFEST_FORMAT,
        "opset": OPSET,
        "sample_rate": nets.SAMPLE_RATE,
        "block": nets.BLOCK,
        "embed_dim": nets.EMBED_DIM,
        "context_blocks": nets.CONTEXT_BLOCKS,
        "classes": list(nets.CLASSES),
        "target_ids": list(nets.TARGET_IDS),
        "reference_lufs": nets.REFERENCE_LUFS,
        "sha256": {name: sha256(os.path.join(out_dir, f)) for name, f in FILES.items()},
    }
    if extra:
        manifest.update(extra)
    with open(os.path.join(out_dir, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return manifest


def load_torch(model_dir: str):
    """The torch models (train.Models, eval mode) from TORCH_WEIGHTS in model_dir."""
    from .train import Models

    state = torch.load(os.path.join(model_dir, TORCH_WEIGHTS), weights_only=True)
    models = Models()
    models.extractor.load_state_dict(state["extractor"])
    models.classifier.load_state_dict(state["classifier"])
    models.predictor.load_state_dict(state["predictor"])
    return models.eval()
