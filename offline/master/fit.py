"""Fitting the chain to a reference: EQ to the smoothed mid/side spectral difference, width, compressor, ceiling.

Pure functions of two ``Measurement`` s; nothing here touches audio samples. The level is
left to ``level``, which solves it on the chain's front half's output.
"""

import math
from dataclasses import dataclass

import numpy as np
from ...kernels.jit import njit

from auracore.kernels import params as P
from auracore.kernels.biquad import SHAPE_HIGHSHELF, SHAPE_LOWSHELF, SHAPE_PEAKING, design_biquad
from auracore.kernels.compressor import static_gain_db

from .measure import Measurement, hist_levels_lufs

GRID_LOW_HZ = 20.0
GRID_HIGH_HZ = 20000.0
GRID_POINTS_PER_OCTAVE = 24
SMOOTH_OCTAVES = 1.0 / 6.0
FIT_LOW_HZ = 25.0
FIT_HIGH_HZ = 18000.0
CONTENT_FLOOR_DB = 50.0        # bins this far under a spectrum's peak carry little weight
DIFF_LIMIT_DB = 15.0
EQ_GAIN_LIMIT_DB = 12.0
EQ_START_HZ = (100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0, 10000.0)
EQ_START_Q = (0.707, 1.4, 1.4, 1.4, 1.4, 1.4, 1.4, 0.707)
EQ_MOVE_OCTAVES = 1.2
GAIN_REGULARISATION = 0.03     # per dB of band gain, against opposing bands that cancel
RESIDUAL_FIR_DB = 0.75         # an offline matching filter is used when 8 bands leave more than this (max)
NOMINAL_LEVEL_LUFS = -18.0     # input.gain_db brings the input here, where the compressor's threshold is set
COMP_ATTACK_MS = 30.0
COMP_RELEASE_MS = 300.0
COMP_KNEE_DB = 6.0
MAX_RATIO = 6.0
DEFAULT_CEILING_DBTP = -1.0
LRA_TOLERANCE_LU = 0.5
SHAPES = tuple(SHAPE_LOWSHELF if b == 0 else SHAPE_HIGHSHELF if b == P.EQ_BANDS - 1 else SHAPE_PEAKING
               for b in range(P.EQ_BANDS))


def log_grid(high_hz: float) -> np.ndarray:
    """Frequencies (Hz) from GRID_LOW_HZ to high_hz, GRID_POINTS_PER_OCTAVE per octave."""
    octaves = math.log2(high_hz / GRID_LOW_HZ)
    n = int(octaves * GRID_POINTS_PER_OCTAVE) + 1
    return GRID_LOW_HZ * 2.0 ** (np.arange(n) / GRID_POINTS_PER_OCTAVE)


def smooth_power(freqs_hz: np.ndarray, power: np.ndarray, grid_hz: np.ndarray,
                 octaves: float = SMOOTH_OCTAVES) -> np.ndarray:
    """Mean power over bins within +-octaves/2 of each grid frequency (at least one bin)."""
    cum = np.concatenate([[0.0], np.cumsum(power)])
    lo = np.searchsorted(freqs_hz, grid_hz * 2.0 ** (-octaves / 2))
    hi = np.searchsorted(freqs_hz, grid_hz * 2.0 ** (octaves / 2))
    hi = np.minimum(np.maximum(hi, lo + 1), power.shape[0])
    lo = np.minimum(lo, hi - 1)
    return (cum[hi] - cum[lo]) / (hi - lo)


def _db(p: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(p, 1e-30))


@njit(cache=True, nogil=True)
def responses_db(shapes, gains_db, freqs_hz, qs, sample_rate, grid_hz, out):
    """out[m]: the magnitude response (dB) at grid_hz of a band of shape shapes[m] with
    gains_db[m], freqs_hz[m] and qs[m], as the chain designs it (a band of 0 dB: 0). Many
    bands in one call: the fit evaluates hundreds of them."""
    coef = np.zeros(5)
    z1 = np.exp(-2j * np.pi * grid_hz / sample_rate)
    z2 = z1 * z1
    for m in range(shapes.shape[0]):
        if gains_db[m] == 0.0:
            out[m, :] = 0.0
            continue
        design_biquad(shapes[m], sample_rate, freqs_hz[m], gains_db[m], qs[m], coef)
        for i in range(grid_hz.shape[0]):
            h = (coef[0] + coef[1] * z1[i] + coef[2] * z2[i]) / (1.0 + coef[3] * z1[i] + coef[4] * z2[i])
            out[m, i] = 10.0 * np.log10(h.real * h.real + h.imag * h.imag)


_SHAPES = np.array(SHAPES, dtype=np.int64)


def eq_response_db(gains_db, freqs_hz, qs, sample_rate: float, grid_hz: np.ndarray) -> np.ndarray:
    """Magnitude response (dB) of the chain's 8-band EQ at grid_hz, as the chain designs it."""
    out = np.empty((P.EQ_BANDS, grid_hz.shape[0]))
    responses_db(_SHAPES, np.asarray(gains_db, dtype=np.float64), np.asarray(freqs_hz, dtype=np.float64),
                 np.asarray(qs, dtype=np.float64), float(sample_rate), np.asarray(grid_hz, dtype=np.float64), out)
    return out.sum(axis=0)


@dataclass(frozen=True)
class SpectralMatch:
    """The smoothed mid difference (reference minus input, dB, level removed) on grid_hz,
    its fit weights, the fitted EQ (gains dB, freqs Hz, Qs; eq_db its response), the width,
    and the matching curves (dB) for what the bands leave: mid_fir_db, side_fir_db (None
    when the 8 bands are close enough, or for the side of a mono signal)."""

    grid_hz: np.ndarray
    weights: np.ndarray
    mid_diff_db: np.ndarray
    eq_gains_db: np.ndarray
    eq_freqs_hz: np.ndarray
    eq_qs: np.ndarray
    eq_db: np.ndarray
    width: float
    mid_fir_db: np.ndarray | None
    side_fir_db: np.ndarray | None


def _content_weights(grid_hz, *spectra_db) -> np.ndarray:
    w = ((grid_hz >= FIT_LOW_HZ) & (grid_hz <= FIT_HIGH_HZ)).astype(float)
    for s in spectra_db:
        w = w * np.clip((s - (s.max() - CONTENT_FLOOR_DB)) / 10.0, 0.0, 1.0)
    return np.maximum(w, 1e-3)


def _energy(power: np.ndarray, grid_hz: np.ndarray, gain_db: np.ndarray) -> float:
    """Energy of a smoothed spectrum through a gain curve (each grid point spans 1/24 octave)."""
    return float(np.sum(power * grid_hz * 10.0 ** (gain_db / 10.0)))


def spectral_match(inp: Measurement, ref: Measurement, fit_eq: bool, fit_width: bool) -> SpectralMatch:
    """Fit the EQ to the smoothed mid difference; what it leaves (mid), and the side's own
    shape, become the matching curves when either strays more than RESIDUAL_FIR_DB; the width
    then brings the side/mid energy ratio of the processed input to the reference's (mono
    input: width 1; a mono reference for a stereo input: width 0)."""
    high = min(GRID_HIGH_HZ, 0.45 * inp.sample_rate, 0.45 * ref.sample_rate)
    grid = log_grid(high)
    mid_in = smooth_power(inp.freqs_hz, inp.mid_power, grid)
    mid_ref = smooth_power(ref.freqs_hz, ref.mid_power, grid)
    weights = _content_weights(grid, _db(mid_in), _db(mid_ref))
    mid_diff = _db(mid_ref) - _db(mid_in)
    offset = np.average(mid_diff, weights=weights)
    mid_diff = np.clip(mid_diff - offset, -DIFF_LIMIT_DB, DIFF_LIMIT_DB)
    gains = np.zeros(P.EQ_BANDS)
    freqs = np.array(EQ_START_HZ)
    qs = np.array(EQ_START_Q)
    if fit_eq:
        gains, freqs, qs = fit_eq_bands(grid, mid_diff, weights, inp.sample_rate)
    eq_db = eq_response_db(gains, freqs, qs, inp.sample_rate, grid)
    fade = np.clip(weights / 0.5, 0.0, 1.0)
    mid_fir = np.clip((mid_diff - eq_db) * fade, -EQ_GAIN_LIMIT_DB, EQ_GAIN_LIMIT_DB) if fit_eq else None
    side_fir = None
    stereo = inp.channels == 2 and ref.channels == 2
    if stereo and fit_eq:
        side_in = smooth_power(inp.freqs_hz, inp.side_power, grid)
        side_ref = smooth_power(ref.freqs_hz, ref.side_power, grid)
        sw = _content_weights(grid, _db(side_in), _db(side_ref))
        through_eq = side_in * 10.0 ** (eq_db / 10.0)
        zero = np.zeros_like(grid)

        def level_free(curve):
            # the side curve keeps the side's energy: its level is the width's job
            return curve - 10.0 * math.log10(max(_energy(through_eq, grid, curve), 1e-30)
                                             / max(_energy(through_eq, grid, zero), 1e-30))

        shape = level_free(np.clip(_db(side_ref) - _db(side_in) - offset - eq_db, -40.0, 40.0))
        shape = level_free(np.clip(shape, -DIFF_LIMIT_DB, DIFF_LIMIT_DB) * np.clip(sw / 0.5, 0.0, 1.0))
        side_fir = np.clip(shape, -EQ_GAIN_LIMIT_DB, EQ_GAIN_LIMIT_DB)
    worst = max(float(np.max(np.abs(c))) for c in (mid_fir, side_fir) if c is not None) if fit_eq else 0.0
    if worst <= RESIDUAL_FIR_DB:
        mid_fir = side_fir = None
    width = 1.0
    if stereo and fit_width:
        side_in = smooth_power(inp.freqs_hz, inp.side_power, grid)
        side_ref = smooth_power(ref.freqs_hz, ref.side_power, grid)
        zero = np.zeros_like(grid)
        mid_gain = eq_db + (mid_fir if mid_fir is not None else zero)
        side_gain = eq_db + (side_fir if side_fir is not None else zero)
        ratio_in = _energy(side_in, grid, side_gain) / max(_energy(mid_in, grid, mid_gain), 1e-30)
        ratio_ref = _energy(side_ref, grid, zero) / max(_energy(mid_ref, grid, zero), 1e-30)
        width = float(np.clip(math.sqrt(ratio_ref / ratio_in), 0.0, 2.0)) if ratio_in > 1e-9 else 1.0
    elif fit_width and inp.channels == 2 and ref.channels == 1:
        width = 0.0
    return SpectralMatch(grid, weights, mid_diff, gains, freqs, qs, eq_db, width, mid_fir, side_fir)


def fit_eq_bands(grid_hz, target_db, weights, sample_rate):
    """Least-squares fit of the 8 bands' gains, frequencies and Qs to target_db on grid_hz,
    weighted; returns (gains_db, freqs_hz, qs), each (8,), inside the registry's ranges."""
    top = 0.45 * sample_rate
    f0 = np.minimum(np.array(EQ_START_HZ), top / 1.5)
    lo_f = np.log2(np.maximum(f0 * 2.0 ** -EQ_MOVE_OCTAVES, 20.0))
    hi_f = np.log2(np.minimum(f0 * 2.0 ** EQ_MOVE_OCTAVES, top))
    sw = np.sqrt(weights)
    n = P.EQ_BANDS

    def unpack(v):
        return v[:n], 2.0 ** v[n:2 * n], np.exp(v[2 * n:])

    grid_hz = np.asarray(grid_hz, dtype=np.float64)
    sample_rate = float(sample_rate)
    shapes = np.concatenate([_SHAPES, np.tile(_SHAPES, 3)])   # the bands, then one per column

    def bands(v):   # (8, grid) each band's response
        g, f, q = unpack(v)
        out = np.empty((n, grid_hz.shape[0]))
        responses_db(_SHAPES, g, f, q, sample_rate, grid_hz, out)
        return out

    def residual(v):
        return np.concatenate([sw * (bands(v).sum(axis=0) - target_db), GAIN_REGULARISATION * v[:n]])

    def jacobian(v, eps):
        # forward differences, one band redesigned per column (a column moves one band):
        # rows 0..7 the bands at v, row 8 + k band k % 8 with v[k] moved by eps
        m = v.shape[0]
        specs = np.tile(v, (m + 1, 1))
        specs[1 + np.arange(m), np.arange(m)] += eps
        g, f, q = specs[:, :n], 2.0 ** specs[:, n:2 * n], np.exp(specs[:, 2 * n:])
        band = np.arange(m) % n
        gains = np.concatenate([g[0], g[1 + np.arange(m), band]])
        freqs = np.concatenate([f[0], f[1 + np.arange(m), band]])
        qq = np.concatenate([q[0], q[1 + np.arange(m), band]])
        resp = np.empty((n + m, grid_hz.shape[0]))
        responses_db(shapes, gains, freqs, qq, sample_rate, grid_hz, resp)
        jac = np.zeros((grid_hz.shape[0] + n, m))
        jac[:grid_hz.shape[0]] = sw[:, None] * (resp[n:] - resp[band]).T / eps
        jac[grid_hz.shape[0] + np.arange(n), np.arange(n)] = GAIN_REGULARISATION
        return jac

    start = np.concatenate([np.interp(np.log2(f0), np.log2(grid_hz), target_db) * 0.5,
                            np.log2(f0), np.log(EQ_START_Q)])
    lower = np.concatenate([np.full(n, -EQ_GAIN_LIMIT_DB), lo_f, np.log(np.full(n, 0.3))])
    upper = np.concatenate([np.full(n, EQ_GAIN_LIMIT_DB), hi_f, np.log(np.full(n, 4.0))])
    lower[2 * n] = lower[3 * n - 1] = math.log(0.4)   # shelves: no resonant bump
    upper[2 * n] = upper[3 * n - 1] = math.log(1.2)
    start = np.clip(start, lower + 1e-9, upper - 1e-9)
    g, f, q = unpack(_levenberg_marquardt(residual, jacobian, start, lower, upper))
    return np.round(g, 2), np.round(f, 1), np.round(q, 3)


def _levenberg_marquardt(residual, jacobian, v, lower, upper, iterations: int = 60) -> np.ndarray:
    """Minimise |residual(v)|^2 inside [lower, upper] (steps projected on the box);
    jacobian(v, eps): residual's Jacobian at v by forward differences of eps."""
    r = residual(v)
    cost = float(r @ r)
    lam = 1e-2
    eps = 1e-6
    for _ in range(iterations):
        jac = jacobian(v, eps)
        jtj = jac.T @ jac
        grad = jac.T @ r
        improved = False
        for _ in range(8):
            step = np.linalg.solve(jtj + lam * (np.diag(np.diag(jtj)) + 1e-9 * np.eye(v.shape[0])), -grad)
            trial = np.clip(v + step, lower, upper)
            rt = residual(trial)
            ct = float(rt @ rt)
            if ct < cost:
                improved = cost - ct > 1e-9 * cost
                v, r, cost = trial, rt, ct
                lam = max(lam / 3.0, 1e-7)
                break
            lam *= 4.0
        if not improved:
            break
    return v


def lra_of(levels_lufs: np.ndarray, counts: np.ndarray) -> float:
    """EBU Tech 3342 loudness range (LU) of short-term values given as a histogram."""
    keep = (levels_lufs > -70.0) & (counts > 0)
    lv, ct = levels_lufs[keep], counts[keep]
    if ct.sum() < 2:
        return 0.0
    gate = 10.0 * math.log10(np.sum(ct * 10.0 ** (lv / 10.0)) / ct.sum()) - 20.0
    keep = lv >= gate
    lv, ct = lv[keep], ct[keep]
    order = np.argsort(lv)
    lv, ct = lv[order], ct[order]
    cum = np.cumsum(ct)
    total = cum[-1]
    lo = lv[np.searchsorted(cum, int((total - 1) * 0.10 + 0.5) + 1)]
    hi = lv[np.searchsorted(cum, int((total - 1) * 0.95 + 0.5) + 1)]
    return float(hi - lo)


@njit(cache=True)
def _curve(levels_db, threshold_db, ratio, knee_db):
    out = np.empty_like(levels_db)
    for i in range(levels_db.shape[0]):
        out[i] = static_gain_db(levels_db[i], threshold_db, ratio, knee_db)
    return out


@dataclass(frozen=True)
class Dynamics:
    """Compressor settings (registry units) and the LRA they are predicted to give (LU)."""

    threshold_db: float
    ratio: float
    predicted_lra_lu: float


def fit_dynamics(inp: Measurement, ref: Measurement, input_gain_db: float) -> Dynamics:
    """The gentlest compressor that brings the input's short-term loudness range to the
    reference's: the static curve applied to the histogram of the input's short-term
    loudness (one value a second), the detector reading that loudness plus the input's
    RMS-to-LUFS offset plus input_gain_db. A reference as wide or wider: ratio 1."""
    levels = hist_levels_lufs(inp.st_hist)
    counts = inp.st_hist.astype(float)
    lra_in = lra_of(levels, counts)
    target = ref.loudness_range_lu
    if not (math.isfinite(target) and lra_in > target + LRA_TOLERANCE_LU) or counts.sum() < 4:
        return Dynamics(-18.0, 1.0, lra_in)
    offset = (inp.rms_dbfs - inp.integrated_lufs) + input_gain_db
    active = counts * (levels > inp.integrated_lufs - 20.0)
    cum = np.cumsum(active) / max(active.sum(), 1.0)
    present = levels[counts > 0]
    weights = counts[counts > 0]
    best = None
    for pct in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
        threshold = float(levels[np.searchsorted(cum, pct)] + offset)
        threshold = min(max(threshold, -60.0), 0.0)
        for ratio in np.arange(1.1, MAX_RATIO + 1e-9, 0.1):
            lra = lra_of(present + _curve(present + offset, threshold, ratio, COMP_KNEE_DB), weights)
            # the nearest LRA; of equals, the lower ratio and the higher threshold
            cost = abs(lra - target) + 0.05 * (ratio - 1.0) + 0.05 * (1.0 - pct)
            if best is None or cost < best[0]:
                best = (cost, threshold, float(ratio), lra)
            if lra < target - LRA_TOLERANCE_LU:
                break
    _, threshold, ratio, lra = best
    return Dynamics(round(threshold, 2), round(ratio, 2), lra)


def ceiling_for(ref: Measurement) -> float:
    """The limiter ceiling (dBTP): -1 dBTP, or the reference's own true peak when lower."""
    tp = ref.true_peak_dbtp
    if not math.isfinite(tp):
        return DEFAULT_CEILING_DBTP
    return float(round(min(max(tp, -20.0), DEFAULT_CEILING_DBTP), 2))
