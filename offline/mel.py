"""The mel scale (Slaney's, as in the Auditory Toolbox) and triangular mel filter banks.

Linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4). The
filter bank is the one librosa builds with ``htk=False, norm=None`` (each filter a triangle
from its lower to its upper neighbour's centre frequency, peak 1, no area normalisation),
in float32 as librosa returns it, computed with the same operations: tests/test_mel.py
holds it equal to librosa's bit for bit. Built here so the profile and fingerprint features
need not import librosa, which imports Numba (0.3-0.5 s of start-up and about 100 MB for
every command that reads a profile).
"""

import numpy as np

_F_SP = 200.0 / 3.0                 # Hz per mel below the break
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0     # natural log of the frequency ratio per mel above the break


def hz_to_mel(hz: float) -> float:
    """One frequency (Hz) in mels."""
    hz = np.float64(hz)
    if hz >= _BREAK_HZ:
        return _BREAK_MEL + np.log(hz / _BREAK_HZ) / _LOGSTEP
    return hz / _F_SP


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Mels (array) in Hz."""
    mels = np.asarray(mels, dtype=np.float64)
    hz = _F_SP * mels
    above = mels >= _BREAK_MEL
    hz[above] = _BREAK_HZ * np.exp(_LOGSTEP * (mels[above] - _BREAK_MEL))
    return hz


def mel_frequencies(n: int, fmin: float, fmax: float) -> np.ndarray:
    """n frequencies (Hz) evenly spaced in mels from fmin to fmax, both included."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n))


def filter_bank(sample_rate: float, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32 triangular filters over the rfft bins of n_fft."""
    bins_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = mel_frequencies(n_mels + 2, fmin, fmax)
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, bins_hz)
    bank = np.zeros((n_mels, bins_hz.size), dtype=np.float32)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        bank[i] = np.maximum(0, np.minimum(rising, falling))
    return bank
