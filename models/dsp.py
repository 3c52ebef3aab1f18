"""The chain's EQ, compressor, width and gain held static, its exact inverse compressor, and the metrics.

Everything here calls the project's Numba kernels (``kernels/biquad.py``,
``kernels/compressor.py``, ``kernels/loudness.py``) with parameters held still, so the data
the models learn from and the metrics they are judged by use the very filters and gain
computer the engine runs. The live chain adds 20 ms parameter glides and the limiter; the
corrections here are static over a clip, and clean references sit near -23 LUFS so the
limiter would not act on them.
"""

import math

import numpy as np
from ..kernels.jit import njit

from auracore.kernels import params as P
from auracore.kernels.biquad import (SHAPE_HIGHSHELF, SHAPE_LOWSHELF, SHAPE_PEAKING, cascade_process,
                                     design_biquad)
from auracore.kernels.compressor import (DB_PER_LN, compressor_process, compressor_state, compressor_work, static_gain_db,
                                         time_coef)
from auracore.kernels.kweighting import design_kweighting
from auracore.kernels.loudness import LoudnessMeter

SAMPLE_RATE = 48000
EQ_SHAPES = tuple(SHAPE_LOWSHELF if b == 0 else SHAPE_HIGHSHELF if b == P.EQ_BANDS - 1 else SHAPE_PEAKING
                  for b in range(P.EQ_BANDS))
EQ_FREQS_HZ = np.array(P.EQ_DEFAULT_FREQS_HZ)
EQ_Q = np.array(P.EQ_DEFAULT_Q)
# The compressor settings the predictor does not steer stay at the registry defaults.
COMP_KNEE_DB = P.PARAMS[P.P_COMP_KNEE].default
COMP_ATTACK_MS = P.PARAMS[P.P_COMP_ATTACK].default
COMP_RELEASE_MS = P.PARAMS[P.P_COMP_RELEASE].default
# 1/3-octave bands for the metrics and the spectral loss: exact centres 1000 * 2**(k/3),
# k = -14..13 (40 Hz .. 20 kHz); lower bands hold no bin of a 4096-point spectrum at 48 kHz
THIRD_OCTAVE_HZ = 1000.0 * 2.0 ** (np.arange(-14, 14) / 3.0)
WELCH_FFT = 16384
BAND_FLOOR_BELOW_MAX_DB = 60.0  # bands this far under the loudest band of the reference are not judged
LEVEL_FLOOR_DB = -120.0


def design_cascade(shapes, freqs_hz, gains_db, qs, sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """RBJ biquads as the kernels design them: (stages, 5) float64 rows [b0, b1, b2, a1, a2]."""
    coefs = np.zeros((len(shapes), 5))
    for s, (shape, f, g, q) in enumerate(zip(shapes, freqs_hz, gains_db, qs)):
        design_biquad(int(shape), float(sample_rate), float(f), float(g), float(q), coefs[s])
    return coefs


def filter_cascade(x: np.ndarray, coefs: np.ndarray) -> np.ndarray:
    """x: (frames, channels) through the biquad cascade (kernels' TDF-II); returns float64 copy."""
    y = np.array(x, dtype=np.float64, order="C", copy=True)
    if coefs.shape[0]:
        state = np.zeros((y.shape[1], coefs.shape[0], 2))
        cascade_process(y, 0, y.shape[0], coefs, state)
    return y


def eq_coefs(gains_db, sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """The chain's 8-band EQ at its default frequencies and Q for gains_db: (8,) dB."""
    return design_cascade(EQ_SHAPES, EQ_FREQS_HZ, gains_db, EQ_Q, sample_rate)


def cascade_response_db(coefs: np.ndarray, freqs_hz: np.ndarray, sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """Magnitude response (dB) of a biquad cascade at freqs_hz: (n,)."""
    z1 = np.exp(-2j * np.pi * np.asarray(freqs_hz) / sample_rate)
    out = np.zeros(len(z1))
    for b0, b1, b2, a1, a2 in coefs:
        num = b0 + b1 * z1 + b2 * z1 * z1
        den = 1.0 + a1 * z1 + a2 * z1 * z1
        out += 20.0 * np.log10(np.abs(num) / np.abs(den))
    return out


def compress(x: np.ndarray, threshold_db: float, ratio: float, knee_db: float = COMP_KNEE_DB,
             attack_ms: float = COMP_ATTACK_MS, release_ms: float = COMP_RELEASE_MS,
             sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """The chain's compressor (peak detector, linked, no makeup) over x: (frames, channels); a copy."""
    y = np.array(x, dtype=np.float64, order="C", copy=True)
    if ratio > 1.0:
        st = compressor_state()
        compressor_process(y, 0, y.shape[0], float(threshold_db), float(ratio), float(knee_db),
                           time_coef(attack_ms, sample_rate), time_coef(release_ms, sample_rate),
                           False, 0.0, 0.0, 0.0, 0, y.shape[0], st, compressor_work())
    return y


@njit(cache=True, nogil=True)
def _solve_gain_db(level_db, gr_prev, coef, threshold_db, ratio, knee_db):
    """The gain gr (dB) with gr = gr_prev + coef * (static(level_db - gr) - gr_prev).

    The right side minus gr falls strictly with gr (coef * (1 - 1/ratio) < 1), so
    bisection on [lowest possible, 0] finds the one root."""
    lo = -200.0
    hi = 0.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        f = gr_prev + coef * (static_gain_db(level_db - mid, threshold_db, ratio, knee_db) - gr_prev) - mid
        if f > 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@njit(cache=True, nogil=True)
def _expand(y, threshold_db, ratio, knee_db, attack_coef, release_coef):
    frames, channels = y.shape
    out = np.empty_like(y)
    gr = 0.0
    for n in range(frames):
        level = 0.0
        for c in range(channels):
            a = abs(y[n, c])
            if a > level:
                level = a
        if level > 0.0:
            level_db = DB_PER_LN * math.log(level)
            # the compressor picks attack when its target lies under the gain it holds
            g = _solve_gain_db(level_db, gr, attack_coef, threshold_db, ratio, knee_db)
            if not static_gain_db(level_db - g, threshold_db, ratio, knee_db) < gr:
                g = _solve_gain_db(level_db, gr, release_coef, threshold_db, ratio, knee_db)
            gr = g
        else:
            gr += release_coef * (0.0 - gr)
        inv = math.exp(-gr / DB_PER_LN)
        for c in range(channels):
            out[n, c] = y[n, c] * inv
    return out


def expand_inverse(y: np.ndarray, threshold_db: float, ratio: float, knee_db: float = COMP_KNEE_DB,
                   attack_ms: float = COMP_ATTACK_MS, release_ms: float = COMP_RELEASE_MS,
                   sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """The signal x with compress(x, threshold_db, ratio, ...) == y: the compressor's exact
    inverse, solved sample by sample. y: (frames, channels); returns float64."""
    return _expand(np.ascontiguousarray(y, dtype=np.float64), float(threshold_db), float(ratio),
                   float(knee_db), time_coef(attack_ms, sample_rate), time_coef(release_ms, sample_rate))


def set_width(x: np.ndarray, amount: float) -> np.ndarray:
    """Scale the side signal of stereo x: (frames, 2) by amount (the chain's width stage); a copy."""
    y = np.array(x, dtype=np.float64, copy=True)
    if y.shape[1] == 2:
        mid = 0.5 * (y[:, 0] + y[:, 1])
        side = 0.5 * (y[:, 0] - y[:, 1]) * amount
        y[:, 0] = mid + side
        y[:, 1] = mid - side
    return y


def apply_correction(x: np.ndarray, targets: dict, sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """The chain's EQ > compressor > width > gain with static targets (registry ids to values,
    missing ids at their defaults; output.gain_db is the final gain). x: (frames, channels)."""
    get = lambda pid: float(targets.get(pid, P.PARAMS[P.INDEX[pid]].default))  # noqa: E731
    gains = [get(f"eq.{b + 1}.gain_db") for b in range(P.EQ_BANDS)]
    y = filter_cascade(x, eq_coefs(gains, sample_rate))
    y = compress(y, get("comp.threshold_db"), get("comp.ratio"), sample_rate=sample_rate)
    y = set_width(y, get("width.amount"))
    return y * 10.0 ** (get("output.gain_db") / 20.0)


def loudness_lufs(x: np.ndarray, sample_rate: float = SAMPLE_RATE) -> float:
    """Integrated loudness (BS.1770, LUFS) of x: (frames, channels); -inf for silence."""
    meter = LoudnessMeter(sample_rate, x.shape[1], true_peak=False)
    meter.process(np.ascontiguousarray(x, dtype=np.float64))
    return meter.integrated_lufs


def crest_factor_db(x: np.ndarray) -> float:
    """Sample peak over pooled RMS, dB (as ``auracore analyze``); 0 for silence."""
    ms = float(np.mean(np.square(x)))
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if ms <= 0.0 or peak <= 0.0:
        return 0.0
    return 20.0 * math.log10(peak) - 10.0 * math.log10(ms)


def third_octave_levels_db(x: np.ndarray, sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """Welch (Hann, WELCH_FFT, 50 %) power per 1/3-octave band, mean over channels, dB: (28,)."""
    x = np.asarray(x, dtype=np.float64)
    hop = WELCH_FFT // 2
    window = np.hanning(WELCH_FFT)
    if x.shape[0] < WELCH_FFT:
        x = np.concatenate([x, np.zeros((WELCH_FFT - x.shape[0], x.shape[1]))])
    starts = range(0, x.shape[0] - WELCH_FFT + 1, hop)
    power = np.zeros(WELCH_FFT // 2 + 1)
    for s in starts:
        spec = np.fft.rfft(x[s:s + WELCH_FFT].T * window, axis=1)
        power += (spec.real ** 2 + spec.imag ** 2).mean(axis=0)
    power /= len(starts) * (window.sum() ** 2 / 4.0)
    freqs = np.fft.rfftfreq(WELCH_FFT, 1.0 / sample_rate)
    return _bands_db(freqs, power[None, :])[0]


BLOCK = 1024
BLOCK_FFT = 4096  # centred on each block: 11.7 Hz bins resolve the 40 Hz band
_BLOCK_WINDOW = np.hanning(BLOCK_FFT)


def _band_matrix(freqs_hz: np.ndarray) -> np.ndarray:
    edges_lo = THIRD_OCTAVE_HZ * 2.0 ** (-1.0 / 6.0)
    edges_hi = THIRD_OCTAVE_HZ * 2.0 ** (1.0 / 6.0)
    return ((freqs_hz[:, None] >= edges_lo[None, :]) & (freqs_hz[:, None] < edges_hi[None, :])).astype(np.float64)


def _bands_db(freqs_hz: np.ndarray, power: np.ndarray) -> np.ndarray:
    band = power @ _band_matrix(freqs_hz)
    return 10.0 * np.log10(np.maximum(band, 10.0 ** (LEVEL_FLOOR_DB / 10.0)))


def block_band_power(x: np.ndarray, sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """Per 1024-frame block: power per 1/3-octave band of a Hann window of BLOCK_FFT frames
    centred on the block, mean over channels: (blocks, 28) linear float32 (the spectral loss
    averages blocks over a window before taking dB)."""
    blocks = x.shape[0] // BLOCK
    pad = (BLOCK_FFT - BLOCK) // 2
    xp = np.concatenate([np.zeros((pad, x.shape[1])), np.asarray(x[:blocks * BLOCK], dtype=np.float64),
                         np.zeros((pad, x.shape[1]))])
    freqs = np.fft.rfftfreq(BLOCK_FFT, 1.0 / sample_rate)
    bands = _band_matrix(freqs)
    out = np.empty((blocks, len(THIRD_OCTAVE_HZ)), dtype=np.float32)
    for b0 in range(0, blocks, 64):
        idx = np.arange(b0, min(blocks, b0 + 64))
        frames = np.stack([xp[i * BLOCK:i * BLOCK + BLOCK_FFT] for i in idx])
        spec = np.fft.rfft(frames * _BLOCK_WINDOW[None, :, None], axis=1)
        power = (spec.real ** 2 + spec.imag ** 2).mean(axis=2) / (_BLOCK_WINDOW.sum() ** 2 / 4.0)
        out[idx] = power @ bands
    return out


def band_distance_db(a_db: np.ndarray, b_db: np.ndarray, ref_db: np.ndarray, align: bool = False) -> float:
    """Mean |a - b| over the bands where the reference is within BAND_FLOOR_BELOW_MAX_DB of
    its loudest band; align=True first removes the mean difference (shape only)."""
    keep = ref_db > ref_db.max() - BAND_FLOOR_BELOW_MAX_DB
    diff = a_db[keep] - b_db[keep]
    if align:
        diff = diff - diff.mean()
    return float(np.mean(np.abs(diff)))


def hop_envelope(x: np.ndarray, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Per hop of `hop` frames: (RMS over the hop of the largest |sample| across channels, i.e.
    the compressor's peak detector input; mean square over channels and frames), (hops,) each.

    The kernel's detector follows the per-sample peak with a 10 ms attack on the gain, which
    averages that peak over a 128-frame hop much like this RMS does (the twin tests show how
    closely); the hop's maximum would overstate it by several dB on noise-like signals."""
    hops = x.shape[0] // hop
    xb = np.abs(np.asarray(x[:hops * hop], dtype=np.float64)).reshape(hops, hop, x.shape[1])
    detector = np.sqrt(np.square(xb.max(axis=2)).mean(axis=1))
    return detector.astype(np.float32), np.square(xb).mean(axis=(1, 2)).astype(np.float32)


def block_kweighted_energy(x: np.ndarray, sample_rate: float = SAMPLE_RATE) -> np.ndarray:
    """Per 1024-frame block: the BS.1770 energy (K-weighted mean square summed over channels),
    (blocks,) float32; -0.691 + 10 log10 of a gated mean of these is loudness in LUFS."""
    y = filter_cascade(x, design_kweighting(sample_rate))
    blocks = y.shape[0] // BLOCK
    return np.square(y[:blocks * BLOCK]).reshape(blocks, BLOCK, y.shape[1]).mean(axis=1).sum(axis=1).astype(np.float32)


def fit_eq_gains(response_db, freqs_hz: np.ndarray, sample_rate: float = SAMPLE_RATE,
                 iterations: int = 8) -> np.ndarray:
    """The 8 band gains (dB, within the registry's range) whose EQ response best matches
    response_db at freqs_hz in least squares: Gauss-Newton on a finite-difference Jacobian."""
    lo, hi = P.PARAMS[P.P_EQ_GAIN].minimum, P.PARAMS[P.P_EQ_GAIN].maximum
    g = np.zeros(P.EQ_BANDS)
    step_db = 0.01
    for _ in range(iterations):
        base = cascade_response_db(eq_coefs(g, sample_rate), freqs_hz, sample_rate)
        jac = np.empty((len(freqs_hz), P.EQ_BANDS))
        for b in range(P.EQ_BANDS):
            gb = g.copy()
            gb[b] += step_db
            jac[:, b] = (cascade_response_db(eq_coefs(gb, sample_rate), freqs_hz, sample_rate) - base) / step_db
        delta, *_ = np.linalg.lstsq(jac, response_db - base, rcond=None)
        g = np.clip(g + delta, lo, hi)
        if np.max(np.abs(delta)) < 1e-4:
            break
    return g
