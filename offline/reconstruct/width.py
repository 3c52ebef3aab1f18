"""Stereo width band by band: the rebuild's side channel reshaped to the input's side/mid ratios.

Each render is balanced left/right as its stem (place.py), and the master matches one width
for the whole mix; what neither can do is give the rebuild the input's width in each octave
band (a wide pad over a centred bass, hats wider than the guitar). This step measures
the side/mid energy ratio of the input and of the mix in the octave bands of qc's ``width``
dimension (``band_side_mid``), and scales the mix's side channel by a gain that follows those
ratios in log frequency (zero phase, one FFT of the whole side channel), at most
``MAX_GAIN_DB`` either way. Where the input has side in a band and the mix has none to scale
(under -40 dB), or the gain cannot reach the input's ratio, a decorrelated copy of the mid
(the mid through ``FILL_LENGTH_S`` of decaying noise) is added to the side in that band, its
energy measured and set to make up the missing side: the input's rooms put side content
under 100 Hz that the rebuild's centred bass and kick lack (the 3-minute piece of
docs/reconstruct.md: 16 dB short in the 62.5 Hz band, qc's width 65; filled, 91). Bands
where the input has little energy or no side are left alone. The mid channel is not touched,
so the tonal balance of the centre stays as it was. Mono input or output: nothing to do.
"""

import numpy as np
from scipy import fft as sfft

from auracore.offline.qc.dimensions import WIDTH_BANDS_HZ, band_side_mid

MAX_GAIN_DB = 12.0
QUIET = 1e-4  # a band under this share of the input's loudest band is left alone
MIN_RATIO = 1e-4  # side/mid under -40 dB: no side to scale (or to aim for)


def side_gains_db(r_mix: np.ndarray, r_ref: np.ndarray, e_ref: np.ndarray) -> np.ndarray:
    """(bands,) side gain in dB per band of WIDTH_BANDS_HZ that brings the mix's side/mid ratio
    r_mix to the input's r_ref (0 where the input's band energy e_ref is quiet or either has
    no side), within +-MAX_GAIN_DB; the ratios and energies as ``band_side_mid`` gives them."""
    used = (e_ref > e_ref.max() * QUIET) & (r_ref > MIN_RATIO) & (r_mix > MIN_RATIO)
    gains = np.zeros(len(WIDTH_BANDS_HZ))
    # the ratio is of energies: a side gain of g dB moves it by g dB
    gains[used] = 10.0 * np.log10(r_ref[used] / r_mix[used])
    return np.clip(gains, -MAX_GAIN_DB, MAX_GAIN_DB)


FILL_TAU_S = 0.02      # the decorrelating filter: white noise decaying with this time constant ...
FILL_LENGTH_S = 0.1    # ... over this length (fixed seed)


def fill_gains(r_mix: np.ndarray, r_ref: np.ndarray, e_ref: np.ndarray, gains_db: np.ndarray) -> np.ndarray:
    """(bands,) amplitude of a decorrelated copy of the mid to add to the side, per band of
    WIDTH_BANDS_HZ: where the input has side in a band that is not quiet and the mix's own
    side, scaled by gains_db, stays short of the input's ratio (no side to scale, or more than
    MAX_GAIN_DB short), the copy makes up the missing side energy; 0 elsewhere."""
    reached = r_mix * 10.0 ** (gains_db / 10.0)
    need = (e_ref > e_ref.max() * QUIET) & (r_ref > MIN_RATIO) & (reached < r_ref / 10.0 ** (1.0 / 10.0))
    out = np.zeros(len(WIDTH_BANDS_HZ))
    # the copy has the mid's energy in the band (a unit-energy filter of random phase): its
    # amplitude makes the side/mid ratio up to ref's
    out[need] = np.sqrt(np.maximum(r_ref[need] - reached[need], 0.0))
    return out


def _band_energy(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """(bands,) energy of one channel x per band of WIDTH_BANDS_HZ, measured as band_side_mid measures."""
    return band_side_mid(np.stack([x, x], axis=1), sample_rate)[1] / 4.0


def _flat_bands(logf: np.ndarray, log_bands: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values[k] across octave band k (log2 Hz centre log_bands[k]), 1/6-octave ramps between bands."""
    edges = np.ravel([[b - 0.5 + 1.0 / 12.0, b + 0.5 - 1.0 / 12.0] for b in log_bands])
    return np.interp(logf, edges, np.repeat(values, 2))


def _decorrelator(sample_rate: int) -> np.ndarray:
    n = max(16, int(FILL_LENGTH_S * sample_rate))
    d = np.random.default_rng(7).standard_normal(n) * np.exp(-np.arange(n) / (FILL_TAU_S * sample_rate))
    return d / np.sqrt(np.sum(d ** 2))


def match_band_width(mix: np.ndarray, ref: np.ndarray, sample_rate: int) -> np.ndarray:
    """mix (frames, 2) with its side channel shaped so that its side/mid ratio per octave band
    follows ref's (frames', 2); mix unchanged when either is not stereo."""
    if mix.ndim != 2 or ref.ndim != 2 or mix.shape[1] != 2 or ref.shape[1] != 2 or mix.shape[0] < 2:
        return mix
    r_ref, e_ref = band_side_mid(ref, sample_rate)
    r_mix, _ = band_side_mid(mix, sample_rate)
    gains_db = side_gains_db(r_mix, r_ref, e_ref)
    fills = fill_gains(r_mix, r_ref, e_ref, gains_db)
    if not np.any(gains_db) and not np.any(fills):
        return mix
    n = mix.shape[0]
    size = 1 << int(np.ceil(np.log2(n + 8192)))  # room for the short response of a smooth gain curve
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    logf = np.log2(np.maximum(freqs, 1.0))
    log_bands = np.log2(np.array(WIDTH_BANDS_HZ))
    curve_db = np.interp(logf, log_bands, gains_db)  # flat beyond the end bands
    mid = 0.5 * (mix[:, 0] + mix[:, 1])
    side = 0.5 * (mix[:, 0] - mix[:, 1])
    dtype = np.float32 if mix.dtype == np.float32 else np.float64
    spec = sfft.rfft(side, size) * (10.0 ** (curve_db / 20.0)).astype(dtype)
    if np.any(fills):
        # where the mix has too little side to scale: a decorrelated copy of the mid, flat within
        # each such band; the copy's energy in a band is the mid's only on average (its filter
        # is short), so it is measured once and set
        copy = sfft.rfft(mid, size) * sfft.rfft(_decorrelator(sample_rate).astype(dtype), size)
        first = sfft.irfft(copy * _flat_bands(logf, log_bands, fills).astype(dtype), size)[:n]
        got, want = _band_energy(first, sample_rate), fills ** 2 * _band_energy(mid, sample_rate)
        fills = np.where((fills > 0) & (got > 0), fills * np.sqrt(want / np.maximum(got, 1e-30)), 0.0)
        spec = spec + copy * _flat_bands(logf, log_bands, fills).astype(dtype)
    shaped = sfft.irfft(spec, size)[:n]  # float32 in, float32 out
    out = np.empty_like(mix)
    out[:, 0] = mid + shaped
    out[:, 1] = mid - shaped
    return out
