"""The separation training's loss: what it computes, and its eager fallback when torch.compile fails."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from auracore.models.separation import features as F  # noqa: E402
from auracore.models.separation import train as T  # noqa: E402


class Uniform(torch.nn.Module):
    """Masks of 1/S for every stem, channel, frame and band (what the loss sees of a net)."""

    def forward(self, band):
        b, c, t, k = band.shape
        return torch.full((b, len(F.STEMS6), c, t, k), 1.0 / len(F.STEMS6))


def _stems(frames=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, len(F.STEMS6), 2, T.segment_samples(frames))).astype(np.float32) * 0.1


def _reference_loss(stems):
    """The loss by its definition, in numpy: sqrt-Hann frames (no centring), uniform masks
    (hat functions sum to one, so 1/S on every bin), L1 to each stem's magnitude, x100."""
    w = F.window().astype(np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(stems.astype(np.float64), F.N_FFT, axis=-1)[..., ::F.HOP, :]
    spec = np.fft.rfft(frames * w, axis=-1)  # (B, S, 2, T, K)
    mix = np.abs(spec.sum(axis=1))
    est = mix[:, None] / len(F.STEMS6)
    return float(np.mean(np.abs(est - np.abs(spec))) * 100.0)


def test_loss_is_the_l1_of_the_masked_mixture_magnitude():
    stems = _stems()
    got = float(T.Loss(T.Frontend(), compiled=False)(Uniform(), torch.from_numpy(stems)))
    want = _reference_loss(stems)
    assert got == pytest.approx(want, rel=1e-4)


def test_a_failing_compile_falls_back_to_the_eager_loss(monkeypatch):
    def broken(fn):
        def run(*args, **kwargs):
            raise RuntimeError("no C++ compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    lines = []
    stems = torch.from_numpy(_stems(seed=1))
    loss = T.Loss(T.Frontend(), compiled=True, log=lines.append)
    got = float(loss(Uniform(), stems))
    assert loss.compiled is False
    assert any("runs eagerly" in line for line in lines)
    assert got == pytest.approx(_reference_loss(stems.numpy()), rel=1e-4)
    # and it stays eager on the next batch
    assert float(loss(Uniform(), stems)) == pytest.approx(got, rel=1e-6)
