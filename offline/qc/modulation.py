"""Reverberation B adds to (or lacks against) A, read from how it smooths the level envelopes: a modulation-transfer estimate.

Reverberation is a low-pass filter on a signal's intensity envelope: in an exponential room
of reverberation time T, the envelope's modulation at frequency F is kept by
1 / sqrt(1 + (2 pi F T / 13.8)^2) (Houtgast and Steeneken's modulation transfer function,
on which the speech transmission index stands). It needs no free decay, so it reads dense
mixes, where the profile's blind RT60 finds nothing to measure.

Each signal (mono mix) -> a ``FRAME_S`` Hann STFT every ``HOP_S`` -> intensity in octave
bands centred ``CARRIERS_HZ`` -> dB (floored ``FLOOR_DB`` under each band's loudest frame)
less its ``DETREND_S`` running median (so a louder section leaves no step) -> the magnitude
spectrum of each band's dB envelope, in third-octave modulation bands ``MODULATIONS_HZ``
(1 to 12.7 Hz). The dB domain makes a static gain, an EQ and a level
change leave it as it is and a static compressor scale it (a constant ratio, which the fit
below takes apart from the low-pass).

``added_reverb_s``: r(F) = the median over carrier bands of ln(|B|/|A|) (one band changed
by another part, brighter chords masking the hats, moves it little) in each modulation
band, fitted by least squares with c - 0.5 ln(1 + (2 pi F T / 13.8)^2) both ways (B from A,
and A from B); T of the better fit, negative when A is the more reverberant. The STFT
frames are made a chunk at a time: beside the mono mix, memory grows only by the band
levels (six numbers per 10 ms).
"""

import math

import numpy as np

from auracore.offline.fft32 import rfft32

CARRIERS_HZ = (250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
MODULATIONS_HZ = tuple(1.0 * 2.0 ** (k / 3.0) for k in range(12))  # 1.0 .. 12.7 Hz
FRAME_S = 0.02
HOP_S = 0.01
FLOOR_DB = 60.0
CHUNK_FRAMES = 4096
MAX_T_S = 10.0
DETREND_S = 1.0


def band_levels_db(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """((frames, carriers) dB intensity envelopes of x's mono mix, frame rate Hz).
    x: (frames, channels) or (frames,)."""
    x = np.asarray(x)
    mono = (x.mean(axis=1) if x.ndim == 2 else x).astype(np.float32)
    n_fft = 1 << max(6, int(math.ceil(math.log2(FRAME_S * sample_rate))))
    hop = max(1, int(round(HOP_S * sample_rate)))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    bands = np.zeros((freqs.size, len(CARRIERS_HZ)), dtype=np.float32)
    for k, c in enumerate(CARRIERS_HZ):
        bands[(freqs >= c / math.sqrt(2.0)) & (freqs < c * math.sqrt(2.0)), k] = 1.0
    window = np.hanning(n_fft).astype(np.float32)
    if mono.size < n_fft:
        return np.zeros((0, len(CARRIERS_HZ))), sample_rate / hop
    view = np.lib.stride_tricks.sliding_window_view(mono, n_fft)[::hop]
    out = np.empty((view.shape[0], len(CARRIERS_HZ)), dtype=np.float64)
    for i in range(0, view.shape[0], CHUNK_FRAMES):
        spec = rfft32(view[i:i + CHUNK_FRAMES] * window)
        out[i:i + CHUNK_FRAMES] = (spec.real ** 2 + spec.imag ** 2) @ bands
    floor = out.max(axis=0, keepdims=True) * 10.0 ** (-FLOOR_DB / 10.0) + 1e-20
    return 10.0 * np.log10(out + floor), sample_rate / hop


def modulation_spectrum(x: np.ndarray, sample_rate: int) -> np.ndarray | None:
    """(modulation bands, carrier bands): the RMS magnitude, per frame, of each carrier's dB
    envelope's spectrum in each third-octave modulation band; None for under 2 s."""
    levels, rate = band_levels_db(x, sample_rate)
    n = levels.shape[0]
    if n < 2.0 * rate:
        return None
    from scipy.ndimage import median_filter

    # less the running median: a level step (a louder section) leaves no trace in 1-12 Hz
    d = levels - median_filter(levels, size=(int(DETREND_S * rate) | 1, 1), mode="nearest")
    spec = np.abs(np.fft.rfft(d * np.hanning(n)[:, None], axis=0)) / n
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    rows = []
    for fc in MODULATIONS_HZ:
        sel = (freqs >= fc * 2.0 ** (-1.0 / 6.0)) & (freqs < fc * 2.0 ** (1.0 / 6.0))
        rows.append(np.sqrt(np.mean(spec[sel] ** 2, axis=0)) if sel.any() else np.zeros(len(CARRIERS_HZ)))
    return np.array(rows)


def _fit(r: np.ndarray) -> tuple[float, float, float]:
    """(T s, c, squared residual) of r(F) ~ c - 0.5 ln(1 + (2 pi F T / 13.8)^2), T >= 0."""
    from scipy.optimize import least_squares

    w = 2.0 * math.pi * np.asarray(MODULATIONS_HZ) / 13.8

    def resid(p):
        return p[0] - 0.5 * np.log1p((w * p[1]) ** 2) - r

    fit = least_squares(resid, [0.0, 0.1], bounds=([-10.0, 0.0], [10.0, MAX_T_S]))
    return float(fit.x[1]), float(fit.x[0]), float(np.sum(fit.fun ** 2))


def added_reverb_s(mod_a: np.ndarray, mod_b: np.ndarray) -> dict:
    """{"added_reverb_s": T (s, negative when A is the more reverberant), "modulation_ratio_db":
    the flat part c in dB (a compressor lowers it, a static gain leaves it), "fit_residual"}
    from two ``modulation_spectrum`` results of the aligned signals."""
    live = (mod_a.max(axis=0) > 0) & (mod_b.max(axis=0) > 0)  # carriers over the Nyquist hold nothing
    if not live.any():
        return {"added_reverb_s": 0.0, "modulation_ratio_db": 0.0, "fit_residual": 0.0}
    r = np.median(np.log(np.maximum(mod_b[:, live], 1e-12) / np.maximum(mod_a[:, live], 1e-12)), axis=1)
    t_up, c_up, e_up = _fit(r)
    t_dn, c_dn, e_dn = _fit(-r)
    t, c, e = (t_up, c_up, e_up) if e_up <= e_dn else (-t_dn, -c_dn, e_dn)
    return {"added_reverb_s": t, "modulation_ratio_db": 20.0 * c / math.log(10.0), "fit_residual": e}
