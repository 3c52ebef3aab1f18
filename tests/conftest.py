"""Shared helpers for the DSP tests: settled chain set-up, rendering, test signals, tone
amplitude fits, and two independent true-peak meters (a 16x oversampled long-filter
reference and libebur128 through pyebur128)."""

import numpy as np
import pyebur128
import scipy.signal as ss

from auracore.kernels import chain
from auracore.kernels import params as P

# 16x reference: a Kaiser-windowed sinc reaching 128 input samples either side. Its own
# reading error on sines up to 0.46 fs is below 0.0001 dB (test_limiter checks this); the
# limiter assertions allow REF_SLACK_DB for it.
REF_UP = 16
REF_HALF_TAPS = 128
REF_BETA = 12.0
REF_SLACK_DB = 0.001
_REF_FILTER = ss.firwin(2 * REF_UP * REF_HALF_TAPS + 1, 1.0 / REF_UP, window=("kaiser", REF_BETA))

# libebur128 1.2.6 reads pure sines up to +0.110 dB high (16.02 kHz at 48 kHz, 14.77 kHz at
# 44.1 kHz; test_limiter measures it): a +0.05 dB slack is not enough for its own error.
LIBEBUR128_SLACK_DB = 0.12


def db(v):
    return 20.0 * np.log10(v)


def true_peak_16x(y):
    """Per-channel true peak (linear) of y: (frames, channels) by 16x oversampling with a
    long windowed-sinc filter; the stream is taken as silent before and after y."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    pad = np.zeros((REF_HALF_TAPS + 8, y.shape[1]))
    up = ss.resample_poly(np.concatenate([pad, y, pad]), REF_UP, 1, axis=0, window=_REF_FILTER)
    return np.abs(up).max(axis=0)


def true_peak_ebur128(y, sample_rate):
    """Per-channel true peak (linear) of y: (frames, channels) as libebur128 reads it."""
    y = np.ascontiguousarray(np.asarray(y, dtype=np.float64).reshape(len(y), -1))
    st = pyebur128.R128State(y.shape[1], int(sample_rate), pyebur128.MeasurementMode.MODE_TRUE_PEAK)
    st.add_frames(y.reshape(-1), y.shape[0])
    return np.array([pyebur128.get_true_peak(st, c) for c in range(y.shape[1])])


def param_vector(overrides=None, base=None):
    """A parameter vector: defaults (or base) with {id: value} overrides."""
    p = P.default_vector() if base is None else base.copy()
    for pid, v in (overrides or {}).items():
        p[P.INDEX[pid]] = v
    return p


def neutral_params(overrides=None):
    """Every stage neutral (EQ flat, ratio 1, width 1, no auto loudness, 0 dBTP ceiling),
    then the overrides."""
    flat = {f"eq.{b}.gain_db": 0.0 for b in range(1, P.EQ_BANDS + 1)}
    flat.update({"comp.ratio": 1.0, "comp.makeup_db": 0.0, "width.amount": 1.0, "loudness.auto": 0.0,
                 "input.gain_db": 0.0, "output.gain_db": 0.0, "limiter.ceiling_dbtp": 0.0, "bypass": 0.0})
    flat.update(overrides or {})
    return param_vector(flat)


def settled_chain(sample_rate, channels, params, lookahead_ms=1.5):
    """A ChainState that starts at params (no glide from the defaults at the start)."""
    st = chain.ChainState(sample_rate, channels, lookahead_ms, params=params)
    assert np.array_equal(st.ps, params) and np.array_equal(st.ps_prev, params)
    return st


def render(x, state, params, blocks=1024, dtype=np.float64):
    """Run x: (frames, channels) through the chain followed by latency + 256 frames of
    silence (so the whole signal comes out); blocks: a size or a sequence of sizes
    (cycled). Returns the raw output stream (frames + latency + 256, channels)."""
    y = np.concatenate([x, np.zeros((state.latency + 256, x.shape[1]))]).astype(dtype)
    sizes = [blocks] if np.isscalar(blocks) else list(blocks)
    i = 0
    k = 0
    while i < len(y):
        n = sizes[k % len(sizes)]
        blk = y[i:i + n]
        chain.process(blk, state, params)
        i += n
        k += 1
    return y


def aligned(y, state, frames):
    """The output rows that correspond to the first `frames` input rows."""
    return y[state.latency:state.latency + frames]


def sine(sample_rate, seconds, freq_hz, amp=1.0, phase=0.0, channels=2):
    n = np.arange(int(round(seconds * sample_rate)))
    s = amp * np.sin(2.0 * np.pi * freq_hz / sample_rate * n + phase)
    return np.repeat(s[:, None], channels, axis=1)


def tone_amplitude(y, sample_rate, freq_hz):
    """Amplitude of the freq_hz component of y: (frames,) by least squares (sin, cos, DC)."""
    n = np.arange(len(y))
    w = 2.0 * np.pi * freq_hz / sample_rate * n
    basis = np.stack([np.sin(w), np.cos(w), np.ones_like(w)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return float(np.hypot(coef[0], coef[1]))


def music_like(sample_rate, seconds, seed=0, peak_dbfs=-3.0):
    """Deterministic music-like stereo: enveloped harmonic tones plus band-passed noise
    drum hits, peak-normalised to peak_dbfs. (frames, 2) float64."""
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * sample_rate))
    t = np.arange(frames) / sample_rate
    out = np.zeros((frames, 2))
    for k, f0 in enumerate((110.0, 164.8, 220.0, 329.6, 440.0)):
        env = 0.55 + 0.45 * np.sin(2.0 * np.pi * (0.4 + 0.27 * k) * t + k)
        pan = (k + 1) / 6.0
        tone = np.zeros(frames)
        for h in range(1, 16):
            if f0 * h < 0.45 * sample_rate:
                tone += np.sin(2.0 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h
        out[:, 0] += (1.0 - pan) * env * tone
        out[:, 1] += pan * env * tone
    sos = ss.butter(2, [60.0, 8000.0], btype="bandpass", fs=sample_rate, output="sos")
    noise = ss.sosfilt(sos, rng.standard_normal((frames, 2)), axis=0)
    beat = np.exp(-np.mod(t, 0.25) / 0.04)  # a hit every 250 ms, 40 ms decay
    out += 4.0 * noise * beat[:, None]
    return out * (10.0 ** (peak_dbfs / 20.0) / np.abs(out).max())
