"""Tonal balance stem by stem: a re-synthesised stem given the long-term spectrum of the stem it replaces.

The master matches the whole mix's tonal balance to the input, but not the balance between
the parts: a SoundFont's piano is brighter or darker than the recording's, and the input's
parts carry EQ the reconstruction is not told. This step measures the long-term power
spectrum of the render and of the original (separated) stem, smoothed over 1/3 octave on
the master's log grid, and filters the render by the difference: a linear-phase FIR
(``offline/master/fir.py``, about 23 Hz resolution), at most ``MAX_GAIN_DB`` either way.
Where the render is more than ``FLOOR_DB`` under its own loudest point (nothing to shape),
the gain is 0 dB; the original is read no lower than ``FLOOR_DB`` under its own (its
noise and bleed are not chased). The overall level is left alone: the stem's level is
matched afterwards, section by section (``core.level_match``).
"""

import numpy as np
from scipy.signal import oaconvolve

from auracore.offline.master.fir import design_fir, fir_taps
from auracore.offline.master.fit import log_grid, smooth_power

MAX_GAIN_DB = 12.0
FLOOR_DB = 50.0
SMOOTH_OCTAVES = 1.0 / 3.0
N_FFT_AT_48K = 8192


def long_term_db(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(grid_hz, level_db): x's mean power spectrum (channels summed; Hann frames of about
    170 ms, hop half of it), smoothed over SMOOTH_OCTAVES on the master's log grid."""
    n_fft = 1 << int(round(np.log2(N_FFT_AT_48K * sample_rate / 48000.0)))
    hop = n_fft // 2
    mono = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1).sum(axis=1)
    if mono.shape[0] < n_fft:
        mono = np.pad(mono, (0, n_fft - mono.shape[0]))
    frames = 1 + (mono.shape[0] - n_fft) // hop
    win = np.hanning(n_fft)
    power = np.zeros(n_fft // 2 + 1)
    for s in range(0, frames, 256):
        idx = np.arange(s, min(frames, s + 256))[:, None] * hop + np.arange(n_fft)[None, :]
        power += np.sum(np.abs(np.fft.rfft(mono[idx] * win, axis=1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    grid = log_grid(min(16000.0, 0.45 * sample_rate))
    return grid, 10.0 * np.log10(np.maximum(smooth_power(freqs, power / frames, grid, SMOOTH_OCTAVES), 1e-30))


def gain_curve_db(render: np.ndarray, target: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(grid_hz, gain_db) that brings render's long-term spectrum to target's, within
    +-MAX_GAIN_DB: the difference less its median where both have content (level is
    matched elsewhere). Where render is FLOOR_DB under its own maximum the gain is 0 (no
    content to shape); target is read no lower than FLOOR_DB under its maximum (what the
    original lacks is cut, by at most MAX_GAIN_DB, not chased into its noise)."""
    grid, r = long_term_db(render, sample_rate)
    _, t = long_term_db(target, sample_rate)
    used = r > r.max() - FLOOR_DB
    both = used & (t > t.max() - FLOOR_DB)
    gain = np.zeros_like(r)
    if not both.any():
        return grid, gain
    diff = np.maximum(t, t.max() - FLOOR_DB) - r
    diff -= np.median(diff[both])
    gain[used] = np.clip(diff[used], -MAX_GAIN_DB, MAX_GAIN_DB)
    return grid, gain


def match_tone(render: np.ndarray, target: np.ndarray, sample_rate: int) -> np.ndarray:
    """render (frames, channels) filtered so its long-term spectrum follows target's
    (``gain_curve_db``), same shape, float32, time-aligned (the FIR's delay removed)."""
    grid, gain = gain_curve_db(render, target, sample_rate)
    return _filtered(np.asarray(render, dtype=np.float32), grid, gain, sample_rate)


def _filtered(x: np.ndarray, grid: np.ndarray, gain: np.ndarray, sample_rate: int) -> np.ndarray:
    """x (frames, channels) float32 through the linear-phase FIR of gain_db on grid, its delay
    removed (x itself when the gain is flat 0)."""
    if not np.any(gain):
        return x
    taps = fir_taps(sample_rate)
    h = design_fir(grid, gain, sample_rate, taps).astype(np.float32)
    delay = (taps - 1) // 2
    # overlap-add in float32: 0.2 s for a 3-minute stereo stem (one FFT of the whole took 2 s)
    return oaconvolve(x, h[:, None], axes=0)[delay:delay + x.shape[0]]


SPAN_FADE_S = 0.05


def match_tone_spans(render: np.ndarray, target: np.ndarray, sample_rate: int, spans) -> np.ndarray:
    """``match_tone`` span by span (spans: the input's sections, (start_s, end_s) in order):
    each section of the render takes the long-term spectrum of the same section of target,
    the filtered sections crossfaded over SPAN_FADE_S at each boundary. One span or none:
    ``match_tone`` over the whole."""
    n = render.shape[0]
    edges = sorted({0, n} | {min(max(int(round(s * sample_rate)), 0), n) for s, _ in spans})
    bounds = list(zip(edges[:-1], edges[1:]))
    if len(bounds) <= 1:
        return match_tone(render, target, sample_rate)
    x = np.asarray(render, dtype=np.float32)
    taps = fir_taps(sample_rate)
    delay = (taps - 1) // 2
    fade = max(1, int(round(SPAN_FADE_S * sample_rate)))
    out = np.zeros_like(x)
    for k, (a, b) in enumerate(bounds):
        lo, hi = (a - fade // 2 if k else 0), (b + fade - fade // 2 if k < len(bounds) - 1 else n)
        lo, hi = max(lo, 0), min(hi, n)
        m0, m1 = max(lo - delay, 0), min(hi + delay, n)
        seg = _filtered(x[m0:m1], *gain_curve_db(x[a:b], target[a:b], sample_rate), sample_rate)
        w = np.ones(hi - lo, dtype=np.float32)
        if k:
            w[:fade] = np.linspace(0.0, 1.0, fade + 2, dtype=np.float32)[1:-1][:w.size]
        if k < len(bounds) - 1:
            w[-fade:] = np.minimum(w[-fade:], np.linspace(1.0, 0.0, fade + 2, dtype=np.float32)[1:-1][-w[-fade:].size:])
        out[lo:hi] += seg[lo - m0:hi - m0] * w[:, None]
    return out
