"""Alignment of a candidate to an original before scoring: sample rate, time offset, level, common length."""

import math
from dataclasses import dataclass

import numpy as np

from auracore.kernels.loudness import LoudnessMeter

MAX_OFFSET_S = 2.0
ENVELOPE_HOP_S = 0.002
REFINE_WINDOW_S = 30.0


@dataclass(frozen=True)
class Aligned:
    """A and B over their common span at one rate: (frames, channels) float64 each;
    offset_s > 0 when B starts late (B was advanced by it), gain_db applied to B."""

    a: np.ndarray
    b: np.ndarray
    sample_rate: int
    offset_s: float
    gain_db: float


def to_rate(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """x: (frames, channels) resampled from src to dst Hz (polyphase, Kaiser)."""
    if src == dst:
        return x
    g = math.gcd(int(src), int(dst))
    from scipy.signal import resample_poly  # here: scipy.signal costs 0.6 s of start-up

    return resample_poly(x, dst // g, src // g, axis=0)


def integrated_lufs(x: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (LUFS) of x: (frames, channels)."""
    m = LoudnessMeter(sample_rate, x.shape[1], true_peak=False)
    m.process(np.ascontiguousarray(x))
    return m.integrated_lufs


def _onset_envelope(mono: np.ndarray, hop: int) -> np.ndarray:
    n = mono.shape[0] // hop
    e = np.log10(np.sum(mono[:n * hop].reshape(n, hop) ** 2, axis=1) + 1e-10)
    return np.maximum(np.diff(e, prepend=e[:1]), 0.0)


def _best_lag(a: np.ndarray, b: np.ndarray, max_lag: int) -> int:
    """The lag L in -max_lag..max_lag maximising sum a[t] b[t + L] (B late by L)."""
    n = 1 << int(math.ceil(math.log2(a.shape[0] + b.shape[0] + 1)))
    c = np.fft.irfft(np.conj(np.fft.rfft(a, n)) * np.fft.rfft(b, n), n)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    vals = np.concatenate([c[:max_lag + 1], c[n - max_lag:]])
    return int(lags[np.argmax(vals)])


def align(a: np.ndarray, b: np.ndarray, sample_rate: int, b_rate: int | None = None) -> Aligned:
    """B brought onto A: resampled to A's rate, shifted by the offset (found on onset
    envelopes, 2 ms hops, within MAX_OFFSET_S, then refined to the sample on the waveforms),
    gained to A's integrated loudness, both cut to the common span. Channels: B takes A's
    count (a mono side is duplicated for a stereo other)."""
    b = to_rate(b, b_rate or sample_rate, sample_rate)
    if a.shape[1] != b.shape[1]:
        if a.shape[1] == 2:
            b = np.repeat(b[:, :1], 2, axis=1) if b.shape[1] == 1 else b
        else:
            b = b.mean(axis=1, keepdims=True)
    hop = max(1, int(round(ENVELOPE_HOP_S * sample_rate)))
    ma, mb = a.mean(axis=1), b.mean(axis=1)
    coarse = _best_lag(_onset_envelope(ma, hop), _onset_envelope(mb, hop), int(MAX_OFFSET_S / ENVELOPE_HOP_S)) * hop
    # refine on the waveforms near the coarse lag, over a window of each
    w = min(int(REFINE_WINDOW_S * sample_rate), ma.shape[0], mb.shape[0])
    start_b = max(coarse, 0)
    start_a = max(-coarse, 0)
    wa = ma[start_a:start_a + w]
    wb = mb[start_b:start_b + w]
    fine = _best_lag(wa, wb, 2 * hop) if wa.shape[0] and wb.shape[0] else 0
    lag = coarse + fine
    if lag >= 0:
        a2, b2 = a, b[lag:]
    else:
        a2, b2 = a[-lag:], b
    n = min(a2.shape[0], b2.shape[0])
    a2, b2 = a2[:n], b2[:n]
    la, lb = integrated_lufs(a2, sample_rate), integrated_lufs(b2, sample_rate)
    gain_db = la - lb if math.isfinite(la) and math.isfinite(lb) else 0.0
    return Aligned(a2, b2 * 10 ** (gain_db / 20), sample_rate, lag / sample_rate, gain_db)
