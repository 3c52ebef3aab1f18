"""Torch definitions of the three models: feature extractor, content classifier, parameter predictor.

- ``FeatureExtractor``: one 1024-sample mono block (48 kHz) to a 32-dim embedding. A 1-D CNN
  whose first layer is a fixed filterbank of strided Gabor convolutions at three time
  resolutions (kernels of 1024, 256 and 64 samples for the low, mid and high bands, 18 bands
  half an octave apart from 40 Hz to 14.5 kHz), pooled into log energies and their spread over
  time, plus the block's level, crest factor and sub-block level spread (``FRONTEND_FEATURES``
  numbers in dB), then a learned two-layer head. The filterbank is fixed so its output can be
  computed once per clip when the data is built, which makes training on two cores quick.
- ``ContentClassifier``: (T, 32) embeddings to probabilities over ``CLASSES``.
- ``ParameterPredictor``: (T, 32) embeddings and the class probabilities to ``TARGET_IDS`` in the
  registry's units (``output.gain_db`` is the gain that brings the input to ``REFERENCE_LUFS``).

Both sequence models pool the context into mean, standard deviation and mean absolute
block-to-block change of every embedding dimension, plus the log mean power over the context
(embedding dimension 0 is the block's level), so they accept any context length; they are
trained on ``CONTEXT_BLOCKS``.
"""

import math

import torch
from torch import nn

from .labels import CLASSES, REFERENCE_LUFS, TARGET_IDS  # noqa: F401 (the models' vocabulary)

SAMPLE_RATE = 48000
BLOCK = 1024
EMBED_DIM = 32
CONTEXT_BLOCKS = 128  # 2.73 s at 48 kHz
# (kernel, stride, band centres) per resolution; half-octave centres 40 * 2**(k/2)
BRANCHES = ((1024, 1024, tuple(40.0 * 2.0 ** (k / 2) for k in range(0, 8))),
            (256, 128, tuple(40.0 * 2.0 ** (k / 2) for k in range(8, 13))),
            (64, 32, tuple(40.0 * 2.0 ** (k / 2) for k in range(13, 18))))
N_BANDS = sum(len(b[2]) for b in BRANCHES)
N_SPREAD = sum(len(b[2]) for b in BRANCHES[1:])  # bands with more than one frame per block
SUB_BLOCKS = 16
FRONTEND_FEATURES = N_BANDS + N_SPREAD + 4
FLOOR_DB = -120.0
_TINY = 10.0 ** (FLOOR_DB / 10.0)


def _db(power: torch.Tensor) -> torch.Tensor:
    return (10.0 / math.log(10.0)) * torch.log(power + _TINY)


def _std(z: torch.Tensor, dim: int, n: int) -> torch.Tensor:
    """Sample standard deviation (n - 1) of n values along dim, written out with n a constant
    so the ONNX graph has no shape arithmetic (torch.std exports a dozen more nodes)."""
    centred = z - z.mean(dim=dim, keepdim=True)
    return torch.sqrt((centred * centred).sum(dim=dim) * (1.0 / (n - 1)))


def gabor_bank(kernel: int, centres_hz, sample_rate: float = SAMPLE_RATE) -> torch.Tensor:
    """Cosine and sine Gaussian-windowed filters, interleaved per band: (2 * bands, 1, kernel). The window's time
    spread gives each band about a third of its centre frequency as standard deviation in
    frequency, as long as the kernel holds it; the gains make a unit sine at the centre read
    power 1 (0 dB)."""
    n = torch.arange(kernel, dtype=torch.float64) - (kernel - 1) / 2.0
    cos_rows, sin_rows = [], []
    for f in centres_hz:
        sigma = min(sample_rate / (2.0 * math.pi * f / 3.0), kernel / 6.0)
        window = torch.exp(-0.5 * (n / sigma) ** 2)
        window = 2.0 * window / window.sum()
        phase = 2.0 * math.pi * f * n / sample_rate
        cos_rows.append(window * torch.cos(phase))
        sin_rows.append(window * torch.sin(phase))
    rows = [r for pair in zip(cos_rows, sin_rows) for r in pair]
    return torch.stack(rows).unsqueeze(1).float()


class Frontend(nn.Module):
    """The fixed part of the extractor: (B, 1024) blocks to (B, FRONTEND_FEATURES) in dB."""

    def __init__(self):
        super().__init__()
        for i, (kernel, _, centres) in enumerate(BRANCHES):
            self.register_buffer(f"bank{i}", gabor_bank(kernel, centres))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xc = x.unsqueeze(1)
        means, spreads = [], []
        for i, (kernel, stride, centres) in enumerate(BRANCHES):
            y = nn.functional.conv1d(xc, getattr(self, f"bank{i}"), stride=stride)
            frames = (BLOCK - kernel) // stride + 1
            power = (y * y).reshape(-1, len(centres), 2, frames).sum(dim=2)  # (B, bands, frames)
            means.append(power.mean(dim=2))
            if frames > 1:  # the low branch has one frame per block: no spread over time
                spreads.append(_std(_db(power), 2, frames))
        sq = x * x
        ms = sq.mean(dim=1, keepdim=True)
        peak = x.abs().amax(dim=1, keepdim=True)
        sub_db = _db(sq.reshape(-1, SUB_BLOCKS, BLOCK // SUB_BLOCKS).mean(dim=2))
        sub_range = sub_db.amax(dim=1, keepdim=True) - sub_db.amin(dim=1, keepdim=True)
        # one logarithm for all band means and the level
        levels = _db(torch.cat(means + [ms], dim=1))
        level_db = levels[:, -1:]
        peak_db = 20.0 * torch.log10(peak + 1e-6)
        return torch.cat([levels[:, :-1]] + spreads + [level_db, peak_db - level_db,
                                                       _std(sub_db, 1, SUB_BLOCKS).unsqueeze(1), sub_range], dim=1)


LEVEL_FEATURE = N_BANDS + N_SPREAD  # index of the block's mean square (dB) among the features
LEVEL_SCALE = math.log(10.0) / 100.0  # dB to ln(mean square) / 10


class FeatureExtractor(nn.Module):
    """(B, 1024) float32 mono blocks to (B, 32) embeddings.

    Dimension 0 is not learned: it is the block's ln(mean square) / 10, so that the sequence
    models can pool it into the log of the mean power over the context (``pool_context``),
    which is what loudness is made of; the other 31 are the learned head's."""

    def __init__(self):
        super().__init__()
        self.frontend = Frontend()
        # feature standardisation, set from the training data (``set_feature_stats``)
        self.register_buffer("feat_mean", torch.zeros(FRONTEND_FEATURES))
        self.register_buffer("feat_std", torch.ones(FRONTEND_FEATURES))
        self.head = nn.Sequential(nn.Linear(FRONTEND_FEATURES, 64), nn.ReLU(), nn.Linear(64, EMBED_DIM - 1))

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(std.clamp_min(1e-3))

    def embed_features(self, feats: torch.Tensor) -> torch.Tensor:
        """(..., FRONTEND_FEATURES) precomputed frontend output to (..., 32)."""
        level = feats[..., LEVEL_FEATURE:LEVEL_FEATURE + 1] * LEVEL_SCALE
        return torch.cat([level, self.head((feats - self.feat_mean) / self.feat_std)], dim=-1)

    def forward(self, block: torch.Tensor) -> torch.Tensor:
        return self.embed_features(self.frontend(block))


POOLED = 3 * EMBED_DIM + 1


def pool_context(emb: torch.Tensor) -> torch.Tensor:
    """(B, T, D) to (B, 3D + 1): mean, standard deviation and mean |change| over time of every
    dimension (T >= 2), and the log of the mean power over the context (from dimension 0)."""
    mean = emb.mean(dim=1)
    std = torch.sqrt(((emb - mean.unsqueeze(1)) ** 2).mean(dim=1) + 1e-6)
    change = (emb[:, 1:] - emb[:, :-1]).abs().mean(dim=1)
    level = emb[:, :, 0] * 10.0
    top = level.amax(dim=1, keepdim=True)
    mean_power = (top + torch.log(torch.exp(level - top).mean(dim=1, keepdim=True))) / 10.0
    return torch.cat([mean, std, change, mean_power], dim=1)


class ContentClassifier(nn.Module):
    """(B, T, 32) embeddings to (B, classes) logits; ``probabilities`` applies the softmax."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(POOLED, 64), nn.ReLU(), nn.Linear(64, len(CLASSES)))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.net(pool_context(emb))

    def probabilities(self, emb: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.forward(emb), dim=1)


LEVEL_DB_PER_POOLED = 100.0 / math.log(10.0)  # pooled mean power (ln / 10) to dB
MASTERED = ("speech", "acoustic", "band")  # noise and silence are left alone


class ParameterPredictor(nn.Module):
    """(B, T, 32) embeddings and (B, classes) probabilities to (B, targets) in registry units.

    ``output.gain_db`` is built to follow the input level: the learned part is a residual on
    top of the gain that brings the context's mean power to REFERENCE_LUFS, weighted by the
    probability that the context is material to master (so noise and silence get none)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(POOLED + len(CLASSES), 128), nn.ReLU(),
            nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, len(TARGET_IDS)))
        # targets are learned as z-scores of the training targets (the gain's mean is that of
        # its residual); these map them back
        self.register_buffer("target_mean", torch.zeros(len(TARGET_IDS)))
        self.register_buffer("target_std", torch.ones(len(TARGET_IDS)))
        self.register_buffer("gain_onehot", torch.eye(len(TARGET_IDS))[TARGET_IDS.index("output.gain_db")])
        self.register_buffer("mastered", torch.tensor([float(c in MASTERED) for c in CLASSES]))

    def set_target_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.target_mean.copy_(mean)
        self.target_std.copy_(std.clamp_min(1e-3))

    def level_gain_db(self, pooled: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """(B,) the gain that puts the context's mean power at REFERENCE_LUFS, times the
        probability of material to master."""
        return (REFERENCE_LUFS - pooled[:, -1] * LEVEL_DB_PER_POOLED) * (probs * self.mastered).sum(dim=1)

    def forward(self, emb: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        pooled = pool_context(emb)
        z = self.net(torch.cat([pooled, probs], dim=1))
        return z * self.target_std + self.target_mean + self.level_gain_db(pooled, probs).unsqueeze(1) * self.gain_onehot


class Decider(nn.Module):
    """Classifier and predictor as shipped, in one graph so one call decides (ONNX Runtime
    merges their common pooling): (B, T, 32) -> (probabilities (B, classes), targets (B, targets))."""

    def __init__(self, classifier: ContentClassifier, predictor: ParameterPredictor):
        super().__init__()
        self.classifier = classifier
        self.predictor = predictor

    def forward(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = self.classifier.probabilities(emb)
        return probs, self.predictor(emb, probs)
