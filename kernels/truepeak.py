"""True-peak estimation: 4x polyphase interpolation with parabolic refinement, streaming.

Shared by the loudness meter (true-peak readings) and the limiter (its gain computer
looks at the same estimate). Each input frame m gets the estimated peak magnitude of the
continuous signal over the interval (m-1, m]: the sample itself, the three interpolated
points at m-1+k/4 (a Kaiser-windowed sinc, ``HALF_TAPS`` taps either side, flat within
0.012 dB up to 0.85 of Nyquist), and a parabola through every local maximum of that
4x sequence, which recovers most of what the 4x grid misses between its points (at
Nyquist the 4x grid alone can read 0.69 dB low; with the parabola, under 0.07 dB).
The estimate for frame m is emitted when frame m + ``HALF_TAPS`` - 1 arrives: that
delay is ``TP_DELAY``.
"""

import numpy as np
from numba import njit

FACTOR = 4
HALF_TAPS = 12
TP_DELAY = HALF_TAPS - 1
KAISER_BETA = 6.0
CHUNK = 256


def design_truepeak(half_taps: int = HALF_TAPS, beta: float = KAISER_BETA) -> np.ndarray:
    """Polyphase interpolator taps: (FACTOR, 2*half_taps) float64; row k gives the point
    n + k/FACTOR from x[n-half_taps+1 .. n+half_taps]. Row 0 is the identity.

    The interpolator works in samples, so one design serves every sample rate.
    """
    offsets = np.arange(-half_taps + 1, half_taps + 1)
    coefs = np.zeros((FACTOR, 2 * half_taps))
    for k in range(FACTOR):
        t = k / FACTOR - offsets
        window = np.i0(beta * np.sqrt(np.clip(1.0 - (t / half_taps) ** 2, 0.0, None))) / np.i0(beta)
        coefs[k] = np.sinc(t) * window
    return coefs


class TruePeakState:
    """Per-stream state for ``truepeak_process``: history, carried point, scratch."""

    def __init__(self, channels: int):
        self.coefs = design_truepeak()
        taps = self.coefs.shape[1]
        self.hist = np.zeros((channels, taps - 1))
        self.prev3 = np.zeros(channels)
        self.work = np.zeros((FACTOR + 1, CHUNK + taps - 1))

    def reset(self) -> None:
        self.hist[:] = 0.0
        self.prev3[:] = 0.0


@njit(cache=True, nogil=True, inline="always")
def _refine(a, b, c):
    """Peak magnitude of the parabola through (a, b, c) when b is a local extremum."""
    if b >= 0.0:
        if b >= a and b >= c:
            den = a - 2.0 * b + c
            if den < 0.0:
                return b - (a - c) * (a - c) / (8.0 * den)
        return b
    if b <= a and b <= c:
        den = a - 2.0 * b + c
        if den > 0.0:
            return -(b - (a - c) * (a - c) / (8.0 * den))
    return -b


@njit(cache=True, nogil=True)
def truepeak_process(x, coefs, hist, prev3, work, out):
    """Stream x: (frames, channels) through the estimator; out: (frames, channels) float64
    receives, row for row, the peak magnitude estimate of frame (row - TP_DELAY) of the
    stream (linear, not dB). hist, prev3, work: the state from ``TruePeakState``.
    """
    frames, channels = x.shape
    taps = coefs.shape[1]
    half = taps // 2
    nh = taps - 1
    chunk = work.shape[1] - nh
    start = 0
    while start < frames:
        n = min(chunk, frames - start)
        for c in range(channels):
            wb = work[0]
            for i in range(nh):
                wb[i] = hist[c, i]
            for r in range(n):
                v = x[start + r, c]
                wb[nh + r] = v
            for k in range(1, 4):
                pk = work[k]
                for r in range(n):
                    pk[r] = 0.0
                for j in range(taps):
                    h = coefs[k, j]
                    for r in range(n):
                        pk[r] += h * wb[r + j]
            p1 = work[1]
            p2 = work[2]
            p3 = work[3]
            last3 = prev3[c]
            for r in range(n):
                v0 = wb[r + half - 1]
                v4 = wb[r + half]
                a1 = p1[r]
                a2 = p2[r]
                a3 = p3[r]
                m = abs(v4)
                e = _refine(last3, v0, a1)
                if e > m:
                    m = e
                e = _refine(v0, a1, a2)
                if e > m:
                    m = e
                e = _refine(a1, a2, a3)
                if e > m:
                    m = e
                e = _refine(a2, a3, v4)
                if e > m:
                    m = e
                out[start + r, c] = m
                last3 = a3
            prev3[c] = last3
            for i in range(nh):
                hist[c, i] = wb[n + i]
        start += n
