"""The offline linear-phase matching stage: what the 8 bands cannot follow, as FIR filters on mid and side.

Designed by frequency sampling (the curve read on the FFT bins, zero phase, a Hann window)
and run block by block with overlap-add, so it streams: ``MatchFilter.process`` returns as
many frames as it is given, delayed by ``delay`` frames.
"""

import numpy as np
from scipy.signal import fftconvolve

TAPS_AT_48K = 4097


def fir_taps(sample_rate: float) -> int:
    """An odd tap count giving the same frequency resolution (about 23 Hz) at any rate."""
    half = int(round((TAPS_AT_48K - 1) / 2 * sample_rate / 48000.0))
    return 2 * max(half, 64) + 1


def design_fir(grid_hz: np.ndarray, gain_db: np.ndarray, sample_rate: float, taps: int) -> np.ndarray:
    """Linear-phase FIR (taps,) whose magnitude follows gain_db at grid_hz (held flat beyond
    the grid's ends, interpolated on log frequency); its delay is (taps - 1) / 2 frames."""
    n_fft = 1 << int(np.ceil(np.log2(taps * 4)))
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lf = np.log2(np.maximum(f, grid_hz[0]))
    mag = 10.0 ** (np.interp(lf, np.log2(grid_hz), gain_db) / 20.0)
    h = np.fft.irfft(mag, n_fft)
    half = (taps - 1) // 2
    h = np.concatenate([h[-half:], h[:half + 1]])
    return h * np.hanning(taps + 2)[1:-1]


class MatchFilter:
    """Stream (frames, channels) blocks through the mid and side FIRs (mono: mid only).

    mid_fir, side_fir: (taps,) each (side_fir None for mono or when the side is left alone:
    then the side gets the mid filter, as both channels would)."""

    def __init__(self, mid_fir: np.ndarray, side_fir: np.ndarray | None, channels: int):
        self.channels = channels
        self.mid_fir = mid_fir
        self.side_fir = mid_fir if side_fir is None else side_fir
        self.delay = (mid_fir.shape[0] - 1) // 2
        self.tail = np.zeros((mid_fir.shape[0] - 1, channels))

    def _conv(self, sig: np.ndarray, fir: np.ndarray) -> np.ndarray:
        return fftconvolve(sig, fir) if sig.shape[0] > 0 else np.zeros(fir.shape[0] - 1)

    def process(self, x: np.ndarray) -> np.ndarray:
        """x: (frames, channels) float64 -> (frames, channels) filtered, delayed by self.delay."""
        n = x.shape[0]
        if self.channels == 2:
            mid = self._conv(0.5 * (x[:, 0] + x[:, 1]), self.mid_fir)
            side = self._conv(0.5 * (x[:, 0] - x[:, 1]), self.side_fir)
            y = np.stack([mid + side, mid - side], axis=1)
        else:
            y = self._conv(x[:, 0], self.mid_fir)[:, None]
        k = self.tail.shape[0]
        y[:k] += self.tail
        out = y[:n].copy() if n <= k else y[:n]
        self.tail = y[n:n + k].copy()
        return out
