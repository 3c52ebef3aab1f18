"""Alignment of a candidate to an original before scoring: sample rate, time offset, level, common length."""

import math
from dataclasses import dataclass

import numpy as np

from auracore.kernels.loudness import LoudnessMeter
from auracore.offline.fft32 import rfft32

MAX_OFFSET_S = 2.0
ENVELOPE_HOP_S = 0.002
REFINE_WINDOW_S = 30.0
FLUX_FFT_S = 0.023
FLUX_BANDS = 40
FLUX_FLOOR_DB = 80.0
FLUX_CAP_DB = 30.0
# the coarse lag's score falls by |lag| / PRIOR_S of itself: 1.5 % at a beat of 0.6 s, so
# a repetitive piece's next beat does not win by a hair over no offset at all
PRIOR_S = 40.0
# the waveform refinement is kept only where the two waveforms correlate at least this
# well (the same recording, processed); a re-synthesis shares no waveform with its original
REFINE_MIN_R = 0.5


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


def _onset_envelope(mono: np.ndarray, sample_rate: int, hop: int) -> np.ndarray:
    """Spectral flux every hop frames: the rises of the log energy in FLUX_BANDS log-spaced
    bands (40 Hz - 16 kHz, Hann frames of about 23 ms), each floored FLUX_FLOOR_DB under the
    loudest band reading and capped at FLUX_CAP_DB, summed over the bands. The signal is
    read after a frame of silence, so its first onset counts as on any other side. Rises per
    band, not of the broadband level: a re-synthesis has the original's onsets in other
    proportions (a rebuilt kick louder, a pad softer), and the broadband envelope's peak
    wandered by tens of ms on rebuilds."""
    n_fft = 1 << int(round(math.log2(FLUX_FFT_S * sample_rate)))
    x = np.concatenate([np.zeros(n_fft, dtype=np.float32), mono.astype(np.float32)])
    frames = (x.shape[0] - n_fft) // hop + 1
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = np.geomspace(40.0, min(16000.0, 0.475 * sample_rate), FLUX_BANDS + 1)
    band = np.clip(np.searchsorted(edges, f, side="right") - 1, -1, FLUX_BANDS)
    fb = np.zeros((f.shape[0], FLUX_BANDS), dtype=np.float32)
    inside = (band >= 0) & (band < FLUX_BANDS)
    fb[np.flatnonzero(inside), band[inside]] = 1.0
    win = np.hanning(n_fft).astype(np.float32)
    energy = np.empty((frames, FLUX_BANDS), dtype=np.float32)
    for s in range(0, frames, 2048):
        idx = np.arange(s, min(frames, s + 2048))[:, None] * hop + np.arange(n_fft)[None, :]
        spec = rfft32(x[idx] * win)  # float32 transforms: 3x numpy's float64 ones here
        energy[s:s + idx.shape[0]] = (spec.real ** 2 + spec.imag ** 2) @ fb
    level = 10.0 * np.log10(energy + max(float(energy.max()), 1e-30) * 10 ** (-FLUX_FLOOR_DB / 10))
    rise = np.clip(np.diff(level, axis=0, prepend=level[:1]), 0.0, FLUX_CAP_DB)
    return rise.sum(axis=1).astype(np.float64)


def _best_lag(a: np.ndarray, b: np.ndarray, max_lag: int, prior_lags: float | None = None) -> tuple[int, float]:
    """(L, r): the lag L in -max_lag..max_lag maximising sum a[t] b[t + L] (B late by L),
    weighted by (1 - |L| / prior_lags) when prior_lags is given (of two near-equal peaks a
    beat apart, the smaller offset), and r the normalised correlation at L."""
    n = 1 << int(math.ceil(math.log2(a.shape[0] + b.shape[0] + 1)))
    c = np.fft.irfft(np.conj(np.fft.rfft(a, n)) * np.fft.rfft(b, n), n)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    vals = np.concatenate([c[:max_lag + 1], c[n - max_lag:]])
    score = vals * (1.0 - np.abs(lags) / prior_lags) if prior_lags else vals
    k = int(np.argmax(score))
    norm = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    return int(lags[k]), float(vals[k] / norm) if norm > 0 else 0.0


def align(a: np.ndarray, b: np.ndarray, sample_rate: int, b_rate: int | None = None) -> Aligned:
    """B brought onto A: resampled to A's rate, shifted by the offset (found on spectral-flux
    onset envelopes, 2 ms hops, within MAX_OFFSET_S, the smaller offset preferred by
    PRIOR_S; then refined to the sample on the waveforms when they correlate by
    REFINE_MIN_R or more, as a processed copy of A does and a re-synthesis does not),
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
    coarse, _ = _best_lag(_onset_envelope(ma, sample_rate, hop), _onset_envelope(mb, sample_rate, hop),
                          int(MAX_OFFSET_S / ENVELOPE_HOP_S), PRIOR_S / ENVELOPE_HOP_S)
    coarse *= hop
    # refine on the waveforms near the coarse lag, over a window of each, where they are one
    w = min(int(REFINE_WINDOW_S * sample_rate), ma.shape[0], mb.shape[0])
    start_b = max(coarse, 0)
    start_a = max(-coarse, 0)
    wa = ma[start_a:start_a + w]
    wb = mb[start_b:start_b + w]
    n = min(wa.shape[0], wb.shape[0])
    fine, r = _best_lag(wa[:n], wb[:n], 2 * hop) if n else (0, 0.0)
    lag = coarse + (fine if r >= REFINE_MIN_R else 0)
    if lag >= 0:
        a2, b2 = a, b[lag:]
    else:
        a2, b2 = a[-lag:], b
    n = min(a2.shape[0], b2.shape[0])
    a2, b2 = a2[:n], b2[:n]
    la, lb = integrated_lufs(a2, sample_rate), integrated_lufs(b2, sample_rate)
    gain_db = la - lb if math.isfinite(la) and math.isfinite(lb) else 0.0
    return Aligned(a2, b2 * 10 ** (gain_db / 20), sample_rate, lag / sample_rate, gain_db)
