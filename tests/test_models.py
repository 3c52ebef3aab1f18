"""Torch side of the models: ONNX agrees with torch within 1e-4, export round trip, tiny training lowers the loss."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from auracore.kernels import params as P  # noqa: E402
from auracore.models import export, nets  # noqa: E402
from auracore.models.runtime import ModelRunner, default_model_dir  # noqa: E402

FS = 48000


def sample_blocks(n=40, seed=0):
    """Sines, noise at several levels, a click, silence: (n, 1024) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(1024) / FS
    rows = [np.zeros(1024), np.eye(1, 1024, 100)[0] * 0.9]
    for i in range(n - 2):
        f = 40 * 2 ** rng.uniform(0, 9)
        level = 10 ** (rng.uniform(-60, 0) / 20)
        rows.append(level * (np.sin(2 * np.pi * f * t) if i % 2 else rng.standard_normal(1024) * 0.3))
    return np.array(rows, dtype=np.float32)


def compare(models, runner, blocks):
    with torch.no_grad():
        e_torch = models.extractor(torch.from_numpy(blocks)).numpy()
    e_ort = runner.embed_batch(blocks)
    assert np.max(np.abs(e_torch - e_ort)) < 1e-4 * max(1.0, np.max(np.abs(e_torch)))
    emb = np.tile(e_ort, (4, 1))[:nets.CONTEXT_BLOCKS]
    with torch.no_grad():
        et = torch.from_numpy(emb)[None]
        p_torch = models.classifier.probabilities(et)
        t_torch = models.predictor(et, p_torch)[0].numpy()
    p_ort, t_ort = runner.decide(emb, nets.REFERENCE_LUFS)
    assert np.max(np.abs(p_torch[0].numpy() - p_ort)) < 1e-4
    lo = [P.lookup(t).minimum for t in runner.target_ids]
    hi = [P.lookup(t).maximum for t in runner.target_ids]
    assert np.max(np.abs(np.clip(t_torch, lo, hi) - t_ort)) < 1e-4 * max(1.0, np.max(np.abs(t_torch)))


def test_shipped_onnx_matches_shipped_torch_weights():
    models = export.load_torch(default_model_dir())
    compare(models, ModelRunner(), sample_blocks())


def test_export_round_trip_of_fresh_models(tmp_path):
    from auracore.models.train import Models

    torch.manual_seed(0)
    models = Models().eval()
    manifest = export.export(models, str(tmp_path))
    assert manifest["opset"] >= 17
    compare(models, ModelRunner(str(tmp_path)), sample_blocks(seed=1))


def test_tiny_training_run_lowers_the_loss(tmp_path):
    from auracore.models import dataset, sources, train

    try:
        sources.require_tools()
    except sources.SourceError as exc:
        pytest.skip(str(exc))
    # the classes that need no score parsing: seconds to build, not minutes
    dataset.build(str(tmp_path), seed=3, jobs=1, log=lambda m: None,
                  counts={"speech": 5, "noise": 5, "silence": 4})
    data = train.Data(*dataset.load(str(tmp_path)))
    assert len(data.split["train"]) >= 20 and data.split["val"] and data.split["test"]
    cfg = train.TrainConfig(epochs=12, patience=12, batch=16, windows_per_clip=2, seed=3)
    _, summary = train.train(data, str(tmp_path), cfg, log=lambda m: None)
    import csv

    with open(os.path.join(tmp_path, train.CURVES_FILE)) as f:
        rows = list(csv.DictReader(f))
    first, best = float(rows[0]["train_total"]), min(float(r["train_total"]) for r in rows)
    assert best < 0.8 * first
    assert float(rows[-1]["val_ce"]) < float(rows[0]["val_ce"])
    assert os.path.exists(os.path.join(tmp_path, train.BEST_FILE))
