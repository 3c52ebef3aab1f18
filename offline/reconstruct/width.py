"""Stereo width band by band: the rebuild's side channel reshaped to the input's side/mid ratios.

Each stem is placed and widened as a whole (its pan and width), and the master matches one
width for the whole mix; what neither can do is give the rebuild the input's width in each
octave band (a wide pad over a centred bass, hats wider than the guitar). This step measures
the side/mid energy ratio of the input and of the mix in the octave bands of qc's ``width``
dimension (``band_side_mid``), and scales the mix's side channel by a gain that follows those
ratios in log frequency (zero phase, one FFT of the whole side channel), at most
``MAX_GAIN_DB`` either way. Bands where the input has little energy, or either signal no side
at all, are left alone. The mid channel is not touched, so the tonal balance of the centre
stays as it was. Mono input or output: nothing to do.
"""

import numpy as np
from scipy import fft as sfft

from auracore.offline.qc.dimensions import WIDTH_BANDS_HZ, band_side_mid

MAX_GAIN_DB = 12.0
QUIET = 1e-4  # a band under this share of the input's loudest band is left alone
MIN_RATIO = 1e-4  # side/mid under -40 dB: no side to scale (or to aim for)


def side_gains_db(mix: np.ndarray, ref: np.ndarray, sample_rate: int) -> np.ndarray:
    """(bands,) side gain in dB per band of WIDTH_BANDS_HZ that brings mix's side/mid ratio
    to ref's (0 where a band is quiet or has no side), within +-MAX_GAIN_DB."""
    r_ref, e_ref = band_side_mid(ref, sample_rate)
    r_mix, _ = band_side_mid(mix, sample_rate)
    used = (e_ref > e_ref.max() * QUIET) & (r_ref > MIN_RATIO) & (r_mix > MIN_RATIO)
    gains = np.zeros(len(WIDTH_BANDS_HZ))
    # the ratio is of energies: a side gain of g dB moves it by g dB
    gains[used] = 10.0 * np.log10(r_ref[used] / r_mix[used])
    return np.clip(gains, -MAX_GAIN_DB, MAX_GAIN_DB)


def match_band_width(mix: np.ndarray, ref: np.ndarray, sample_rate: int) -> np.ndarray:
    """mix (frames, 2) with its side channel shaped so that its side/mid ratio per octave band
    follows ref's (frames', 2); mix unchanged when either is not stereo."""
    if mix.ndim != 2 or ref.ndim != 2 or mix.shape[1] != 2 or ref.shape[1] != 2 or mix.shape[0] < 2:
        return mix
    gains_db = side_gains_db(mix, ref, sample_rate)
    if not np.any(gains_db):
        return mix
    n = mix.shape[0]
    size = 1 << int(np.ceil(np.log2(n + 8192)))  # room for the short response of a smooth gain curve
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    logf = np.log2(np.maximum(freqs, 1.0))
    curve_db = np.interp(logf, np.log2(np.array(WIDTH_BANDS_HZ)), gains_db)  # flat beyond the end bands
    mid = 0.5 * (mix[:, 0] + mix[:, 1])
    side = 0.5 * (mix[:, 0] - mix[:, 1])
    gain = (10.0 ** (curve_db / 20.0)).astype(np.float32 if mix.dtype == np.float32 else np.float64)
    shaped = sfft.irfft(sfft.rfft(side, size) * gain, size)[:n]  # float32 in, float32 out
    out = np.empty_like(mix)
    out[:, 0] = mid + shaped
    out[:, 1] = mid - shaped
    return out
