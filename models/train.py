"""Train extractor head, classifier and predictor together: fixed seeds, checkpoints, early stopping, CSV curves.

One training example is a window of ``CONTEXT_BLOCKS`` blocks of one flawed clip. The loss is

    cross-entropy(class)
    + regression: smooth L1 on the targets as z-scores (the threshold counts in proportion to
      how much the target compresses: it means nothing at ratio 1; width counts a quarter;
      ``output.gain_db`` is the gain the window itself needs, ``window_gain_db``)
    + W_SPEC x spectral: the window's 1/3-octave spectrum through the predicted EQ (the torch
      twin ``twin.eq_response_db``) against the spectrum with the flaw undone, level-aligned,
      mean |dB| over the bands within 60 dB of the loudest
    + W_DYN x dynamics: the window's hop levels through the predicted compressor (the torch
      twin ``twin.compressor_gain_db`` on 128-frame hops) against what the compressor should
      put out, level-aligned, mean |dB| over hops within 50 dB of the loudest.

Each epoch draws ``windows_per_clip`` random windows of every training clip; validation uses
three fixed windows per clip (start, middle, end). The best epoch by validation loss is kept;
training stops after ``patience`` epochs without improvement, at ``epochs``, or at
``max_minutes``.
"""

import csv
import math
import os
import random
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from . import dsp, twin
from .dataset import HOP
from .nets import (CLASSES, CONTEXT_BLOCKS, LEVEL_DB_PER_POOLED, REFERENCE_LUFS, TARGET_IDS,
                   ContentClassifier, FeatureExtractor, ParameterPredictor, pool_context)

W_SPEC = 0.1
W_DYN = 0.05
DYN_HOPS = 256          # 0.68 s of hops per window go through the compressor twin
DYN_WARMUP_HOPS = 64    # the twin starts at 0 dB gain: its first hops are not judged
BAND_FLOOR_DB = 60.0
HOP_FLOOR_DB = 50.0
I_THRESHOLD = TARGET_IDS.index("comp.threshold_db")
I_RATIO = TARGET_IDS.index("comp.ratio")
I_WIDTH = TARGET_IDS.index("width.amount")
I_GAIN = TARGET_IDS.index("output.gain_db")
# Width is invisible in mono blocks: the models can only learn its prior, and a full weight
# only teaches them spurious cues for it.
WIDTH_WEIGHT = 0.25
GATE_BLOCKS = 16  # 341 ms gating blocks for a window's loudness (BS.1770 uses 400 ms)
ABS_GATE_ENERGY = 10.0 ** ((-70.0 + 0.691) / 10.0)
REL_GATE = 0.1    # -10 LU
CURVES_FILE = "curves.csv"
BEST_FILE = "best.pt"
LAST_FILE = "last.pt"


@dataclass
class TrainConfig:
    epochs: int = 80
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 10
    windows_per_clip: int = 2
    max_minutes: float = 20.0
    seed: int = 1


def set_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Data:
    """The arrays of ``dataset.load`` as tensors, with window sampling per split."""

    def __init__(self, arrays: dict, clips: list[dict]):
        self.feats = torch.from_numpy(arrays["feats"])
        self.band_flawed = torch.from_numpy(arrays["band_flawed"])
        self.band_clean = torch.from_numpy(arrays["band_clean"])
        self.env = torch.from_numpy(arrays["env"])
        self.clips = clips
        self.kw_energy = torch.from_numpy(arrays["kw_energy"])
        self.cls = torch.tensor([CLASSES.index(c["kind"]) for c in clips])
        self.mastered = torch.tensor([c["kind"] not in ("noise", "silence") for c in clips])
        self.targets = torch.tensor([c["targets"] for c in clips], dtype=torch.float32)
        self.split = {s: [i for i, c in enumerate(clips) if c["split"] == s] for s in ("train", "val", "test")}

    def windows(self, idx: list[int], starts: list[int]) -> dict:
        """Batch of windows: clip indices and start blocks -> tensors."""
        t = torch.arange(CONTEXT_BLOCKS)
        b = torch.tensor([self.clips[i]["block0"] + s for i, s in zip(idx, starts)]).unsqueeze(1) + t
        h = torch.tensor([self.clips[i]["hop0"] + s * (dsp.BLOCK // HOP) for i, s in zip(idx, starts)]).unsqueeze(1) \
            + torch.arange(DYN_HOPS)
        targets = self.targets[idx].clone()
        gain, known = window_gain_db(self.kw_energy[b])
        use = known & self.mastered[idx]
        targets[use, I_GAIN] = gain[use]
        return {"feats": self.feats[b], "band_flawed": self.band_flawed[b].mean(dim=1),
                "band_clean": self.band_clean[b].mean(dim=1), "env": self.env[h],
                "cls": self.cls[idx], "targets": targets}

    def max_start(self, i: int) -> int:
        c = self.clips[i]
        by_hops = (c["hops"] - DYN_HOPS) // (dsp.BLOCK // HOP)
        return max(0, min(c["blocks"] - CONTEXT_BLOCKS, by_hops))


def window_gain_db(energy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gain that puts each window at REFERENCE_LUFS, from its blocks' BS.1770 energies
    (B, T): gated like BS.1770 on GATE_BLOCKS-block groups (-70 LUFS absolute, -10 LU
    relative). Returns (gain dB clamped to the registry's range, whether any group passed).
    The whole clip's gain would ask a quiet passage for the loud parts' level, which the
    models cannot hear in the window; this target is what the window itself needs."""
    groups = energy.reshape(energy.shape[0], -1, GATE_BLOCKS).mean(dim=2)
    passed = groups > ABS_GATE_ENERGY
    n = passed.sum(dim=1).clamp_min(1)
    first = (groups * passed).sum(dim=1) / n
    passed = passed & (groups > REL_GATE * first.unsqueeze(1))
    mean = (groups * passed).sum(dim=1) / passed.sum(dim=1).clamp_min(1)
    lufs = -0.691 + 10.0 * torch.log10(mean.clamp_min(1e-30))
    return (REFERENCE_LUFS - lufs).clamp(-24.0, 24.0), passed.any(dim=1)


class Models(nn.Module):
    def __init__(self):
        super().__init__()
        self.extractor = FeatureExtractor()
        self.classifier = ContentClassifier()
        self.predictor = ParameterPredictor()

    def forward(self, feats: torch.Tensor):
        """(B, T, FRONTEND_FEATURES) -> (class logits, targets in registry units)."""
        emb = self.extractor.embed_features(feats)
        logits = self.classifier(emb)
        return logits, self.predictor(emb, torch.softmax(logits, dim=1))


def _db(power: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(power + 1e-12)


def _aligned_l1(err: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the masked mean |err - masked mean err|."""
    m = mask.float()
    n = m.sum(dim=1).clamp_min(1.0)
    centred = err - (err * m).sum(dim=1, keepdim=True) / n.unsqueeze(1)
    return ((centred.abs() * m).sum(dim=1) / n).mean()


_BAND_HZ = torch.tensor(dsp.THIRD_OCTAVE_HZ, dtype=torch.float32)


def losses(models: Models, batch: dict) -> dict:
    """Every loss term of a batch, and their weighted sum under "total"."""
    logits, values = models(batch["feats"])
    pred = models.predictor
    z = (values - pred.target_mean) / pred.target_std
    target_z = (batch["targets"] - pred.target_mean) / pred.target_std
    weights = torch.ones_like(target_z)
    weights[:, I_THRESHOLD] = (batch["targets"][:, I_RATIO] - 1.0).clamp(0.0, 1.0)
    weights[:, I_WIDTH] = WIDTH_WEIGHT
    reg = (nn.functional.smooth_l1_loss(z, target_z, reduction="none") * weights).mean()
    ce = nn.functional.cross_entropy(logits, batch["cls"])
    flawed_db = _db(batch["band_flawed"])
    clean_db = _db(batch["band_clean"])
    corrected_db = flawed_db + twin.eq_response_db(values[:, :8], _BAND_HZ)
    spec = _aligned_l1(corrected_db - clean_db, clean_db > clean_db.amax(dim=1, keepdim=True) - BAND_FLOOR_DB)
    env = batch["env"]
    gr = twin.compressor_gain_db(20.0 * torch.log10(env[:, :, 0] + 1e-9), values[:, I_THRESHOLD],
                                 values[:, I_RATIO].clamp_min(1.0), hop=HOP)
    out_db = _db(env[:, :, 1]) + gr
    want_db = _db(env[:, :, 2])
    hop_mask = want_db > want_db.amax(dim=1, keepdim=True) - HOP_FLOOR_DB
    hop_mask[:, :DYN_WARMUP_HOPS] = False
    dyn = _aligned_l1(out_db - want_db, hop_mask)
    total = ce + reg + W_SPEC * spec + W_DYN * dyn
    acc = (logits.argmax(dim=1) == batch["cls"]).float().mean()
    return {"total": total, "ce": ce, "reg": reg, "spec": spec, "dyn": dyn, "acc": acc}


def init_stats(models: Models, data: Data) -> None:
    """Feature and target standardisation from the training clips only."""
    train = data.split["train"]
    rows = torch.cat([torch.arange(data.clips[i]["block0"], data.clips[i]["block0"] + data.clips[i]["blocks"])
                      for i in train])
    f = data.feats[rows]
    models.extractor.set_feature_stats(f.mean(dim=0), f.std(dim=0))
    t = data.targets[train]
    mean = t.mean(dim=0)
    # the gain is learned as a residual on the level-following gain (nets.ParameterPredictor):
    # its mean is the mean residual over the clips to master
    with torch.no_grad():
        residuals = []
        for i in train:
            c = data.clips[i]
            if c["kind"] in ("noise", "silence"):
                continue
            emb = models.extractor.embed_features(data.feats[c["block0"]:c["block0"] + c["blocks"]]).unsqueeze(0)
            pooled = pool_context(emb)
            base = float(REFERENCE_LUFS - pooled[0, -1] * LEVEL_DB_PER_POOLED)
            residuals.append(float(data.targets[i, I_GAIN]) - base)
    mean[I_GAIN] = float(np.mean(residuals)) if residuals else 0.0
    models.predictor.set_target_stats(mean, t.std(dim=0))


def _val_batches(data: Data, split: str, batch: int):
    items = []
    for i in data.split[split]:
        top = data.max_start(i)
        items += [(i, s) for s in sorted({0, top // 2, top})]
    for k in range(0, len(items), batch):
        chunk = items[k:k + batch]
        yield data.windows([i for i, _ in chunk], [s for _, s in chunk]), len(chunk)


def evaluate_split(models: Models, data: Data, split: str, batch: int = 64) -> dict:
    """Mean of every loss term over the fixed windows of a split."""
    models.eval()
    sums, count = {}, 0
    with torch.no_grad():
        for b, n in _val_batches(data, split, batch):
            for k, v in losses(models, b).items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            count += n
    return {k: v / max(count, 1) for k, v in sums.items()}


def train(data: Data, out_dir: str, cfg: TrainConfig, log=print) -> tuple[Models, dict]:
    """Train; writes CURVES_FILE, LAST_FILE and BEST_FILE to out_dir; returns the best models
    and a summary (epochs, best epoch, best validation losses, seconds)."""
    set_seeds(cfg.seed)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(out_dir, exist_ok=True)
    models = Models()
    init_stats(models, data)
    opt = torch.optim.AdamW(models.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=3)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.time()
    best, best_epoch, stale = math.inf, 0, 0
    fields = ["epoch", "seconds", "lr"] + [f"{s}_{k}" for s in ("train", "val") for k in
                                            ("total", "ce", "reg", "spec", "dyn", "acc")]
    curves_path = os.path.join(out_dir, CURVES_FILE)
    with open(curves_path, "w", newline="") as f:
        csv.writer(f).writerow(fields)
    train_idx = data.split["train"]
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        models.train()
        order = np.repeat(np.array(train_idx), cfg.windows_per_clip)
        rng.shuffle(order)
        sums, count = {}, 0
        for k in range(0, len(order), cfg.batch):
            idx = [int(i) for i in order[k:k + cfg.batch]]
            starts = [int(rng.integers(0, data.max_start(i) + 1)) for i in idx]
            out = losses(models, data.windows(idx, starts))
            opt.zero_grad()
            out["total"].backward()
            nn.utils.clip_grad_norm_(models.parameters(), 5.0)
            opt.step()
            for key, v in out.items():
                sums[key] = sums.get(key, 0.0) + float(v.detach()) * len(idx)
            count += len(idx)
        tr = {k: v / count for k, v in sums.items()}
        va = evaluate_split(models, data, "val")
        sched.step(va["total"])
        row = [epoch, round(time.time() - t0, 1), opt.param_groups[0]["lr"]] + \
              [round(d[k], 5) for d in (tr, va) for k in ("total", "ce", "reg", "spec", "dyn", "acc")]
        with open(curves_path, "a", newline="") as f:
            csv.writer(f).writerow(row)
        state = {"models": models.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                 "config": asdict(cfg)}
        torch.save(state, os.path.join(out_dir, LAST_FILE))
        if va["total"] < best - 1e-4:
            best, best_epoch, stale = va["total"], epoch, 0
            torch.save(state, os.path.join(out_dir, BEST_FILE))
        else:
            stale += 1
        log(f"train: epoch {epoch} train {tr['total']:.4f} val {va['total']:.4f} (ce {va['ce']:.3f} "
            f"reg {va['reg']:.3f} spec {va['spec']:.2f} dB dyn {va['dyn']:.2f} dB acc {va['acc']:.3f}) "
            f"{time.time() - t0:.0f} s")
        if stale >= cfg.patience or time.time() - t0 > 60.0 * cfg.max_minutes:
            break
    models.load_state_dict(torch.load(os.path.join(out_dir, BEST_FILE), weights_only=False)["models"])
    models.eval()
    summary = {"epochs": epoch, "best_epoch": best_epoch, "val": evaluate_split(models, data, "val"),
               "seconds": round(time.time() - t0, 1), "config": asdict(cfg)}
    return models, summary
