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

``truepeak_process`` emits every frame's estimate (the limiter); ``truepeak_max`` keeps
only their running maximum (the meter). Both skip work that provably cannot reach a floor
(the limiter's ceiling, the meter's running maximum): a chunk whose input, times the
interpolators' largest L1 norm, stays under it needs no interpolation, a frame whose 4x
points stay under it needs no parabola; what can reach it is computed exactly.
"""

import numpy as np
from .jit import njit

FACTOR = 4
HALF_TAPS = 12
TAPS = 2 * HALF_TAPS
TP_DELAY = HALF_TAPS - 1
KAISER_BETA = 6.0
CHUNK = 256

# A parabola through (a, b, c) with b the extremum rises above |b| by at most
# max(|b - a|, |b - c|) / 8 <= 2 M / 8, M = max(|a|, |b|, |c|): its peak is within 1.25 M.
REFINE_BOUND = 1.25
# Rounding in the dot products and the parabola is ~1e-15 relative; the bounds keep this slack.
BOUND_SLACK = 1.0 + 1e-9


def design_truepeak(half_taps: int = HALF_TAPS, beta: float = KAISER_BETA) -> np.ndarray:
    """Polyphase interpolator taps: (FACTOR, 2*half_taps) float64; row k gives the point
    n + k/FACTOR from x[n-half_taps+1 .. n+half_taps]. Row 0 is the identity.

    The interpolator works in samples, so one design serves every sample rate;
    ``truepeak_process`` takes the default ``half_taps`` only (its loops unroll on it).
    """
    offsets = np.arange(-half_taps + 1, half_taps + 1)
    coefs = np.zeros((FACTOR, 2 * half_taps))
    for k in range(FACTOR):
        t = k / FACTOR - offsets
        window = np.i0(beta * np.sqrt(np.clip(1.0 - (t / half_taps) ** 2, 0.0, None))) / np.i0(beta)
        coefs[k] = np.sinc(t) * window
    return coefs


class TruePeakState:
    """Per-stream state for ``truepeak_process`` / ``truepeak_max``: history, carried point,
    scratch."""

    def __init__(self, channels: int):
        self.coefs = design_truepeak()
        self.hist = np.zeros((channels, TAPS - 1))
        self.prev3 = np.zeros(channels)
        # rows: input window, the three interpolated phases, per-frame lower bounds
        self.work = np.zeros((FACTOR + 1, CHUNK + TAPS - 1))

    def reset(self) -> None:
        self.hist[:] = 0.0
        self.prev3[:] = 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _refine(a, b, c):
    """Peak magnitude of the parabola through (a, b, c) when b is a local extremum of the
    sign of b, else |b|. Written without branches (so that loops over it can vectorise),
    hence numpy's error model: a zero denominator gives inf in a result that is discarded.
    Not marked inline: a copy inlined by Numba would take its caller's error model."""
    den = a - 2.0 * b + c
    rise = (a - c) * (a - c) / (8.0 * den)
    top = (b >= 0.0) & (b >= a) & (b >= c) & (den < 0.0)
    bottom = (b < 0.0) & (b <= a) & (b <= c) & (den > 0.0)
    return abs(b) + (abs(rise) if top | bottom else 0.0)


@njit(cache=True, nogil=True)
def _frame_peak(last3, v0, a1, a2, a3, v4):
    """The estimate for one frame from its 4x points: samples v0, v4 and between them
    a1..a3, with last3 the point before v0."""
    m = abs(v4)
    m = max(m, _refine(last3, v0, a1))
    m = max(m, _refine(v0, a1, a2))
    m = max(m, _refine(a1, a2, a3))
    return max(m, _refine(a2, a3, v4))


@njit(cache=True, nogil=True)
def _absmax(a, lo, hi):
    """max |a[lo:hi]| (0 when empty; NaNs are passed over)."""
    m = 0.0
    for i in range(lo, hi):
        v = abs(a[i])
        m = v if v > m else m
    return m


@njit(cache=True, nogil=True)
def _reach(coefs):
    """The interpolators' largest L1 norm (at least 1): |interpolated point| <= it x the
    largest input magnitude within the taps' reach."""
    reach = 1.0
    for k in range(1, FACTOR):
        l1 = 0.0
        for j in range(TAPS):
            l1 += abs(coefs[k, j])
        reach = max(reach, l1)
    return reach


@njit(cache=True, nogil=True)
def _phases(wb, coefs, p1, p2, p3, n):
    """The three interpolated points after wb[r + HALF_TAPS - 1] for r < n, into p1..p3.

    The sinc and the window are even, so row 2 is symmetric and row 3 is row 1 reversed:
    folding the window into sums and differences of mirrored samples does all three with
    36 multiplies instead of 72 (the loops unroll on the compile-time HALF_TAPS and r
    vectorises).
    """
    for r in range(n):
        a2 = 0.0
        s13 = 0.0
        d13 = 0.0
        for j in range(HALF_TAPS):
            u = wb[r + j]
            v = wb[r + TAPS - 1 - j]
            s = u + v
            d = u - v
            a2 += coefs[2, j] * s
            s13 += (coefs[1, j] + coefs[1, TAPS - 1 - j]) * s
            d13 += (coefs[1, j] - coefs[1, TAPS - 1 - j]) * d
        p1[r] = 0.5 * (s13 + d13)
        p2[r] = a2
        p3[r] = 0.5 * (s13 - d13)


@njit(cache=True, nogil=True)
def _phase3(wb, coefs, r):
    """p3[r] of ``_phases`` alone, with the same arithmetic (bit for bit)."""
    s13 = 0.0
    d13 = 0.0
    for j in range(HALF_TAPS):
        u = wb[r + j]
        v = wb[r + TAPS - 1 - j]
        s13 += (coefs[1, j] + coefs[1, TAPS - 1 - j]) * (u + v)
        d13 += (coefs[1, j] - coefs[1, TAPS - 1 - j]) * (u - v)
    return 0.5 * (s13 - d13)


@njit(cache=True, nogil=True)
def _stream(x, coefs, hist, prev3, work, out, peak, floor):
    """The estimator over x: (frames, channels). With out: (frames, channels) it writes
    every frame's estimate as ``truepeak_process`` documents (floor applies); with out of
    no rows it raises peak[c] to channel c's largest estimate instead, peak[c] itself the
    channel's floor. Chunks and frames that provably stay at or under the floor skip the
    interpolation or the parabolas."""
    frames, channels = x.shape
    if coefs.shape[1] != TAPS:
        raise ValueError("the true-peak estimator needs the default design_truepeak() taps")
    per_frame = out.shape[0] > 0
    nh = TAPS - 1
    chunk = work.shape[1] - nh
    wb = work[0]
    p1 = work[1]
    p2 = work[2]
    p3 = work[3]
    low = work[4]
    reach = _reach(coefs)
    start = 0
    while start < frames:
        n = min(chunk, frames - start)
        for c in range(channels):
            for i in range(nh):
                wb[i] = hist[c, i]
            for r in range(n):
                wb[nh + r] = x[start + r, c]
            last3 = prev3[c]
            # a frame whose 4x points (and the one before) are all below this cannot exceed the floor
            point_floor = (floor if per_frame else peak[c]) / (REFINE_BOUND * BOUND_SLACK)
            if max(reach * _absmax(wb, 0, n + nh), abs(last3)) <= point_floor:
                # nothing in reach can beat the floor: report sample magnitudes, and keep
                # the one interpolated point the next chunk's first parabola needs
                if per_frame:
                    for r in range(n):
                        out[start + r, c] = abs(wb[r + HALF_TAPS])
                prev3[c] = _phase3(wb, coefs, n - 1)
            else:
                _phases(wb, coefs, p1, p2, p3, n)
                for r in range(n):
                    low[r] = max(abs(wb[r + HALF_TAPS - 1]), abs(p1[r]), abs(p2[r]), abs(p3[r]),
                                 abs(wb[r + HALF_TAPS]))
                if max(_absmax(low, 0, n), abs(last3)) <= point_floor:
                    if per_frame:
                        for r in range(n):
                            out[start + r, c] = low[r]
                else:
                    top = 0.0
                    for r in range(n):
                        m = low[r]
                        if max(m, abs(last3)) > point_floor:
                            m = _frame_peak(last3, wb[r + HALF_TAPS - 1], p1[r], p2[r], p3[r],
                                            wb[r + HALF_TAPS])
                        if per_frame:
                            out[start + r, c] = m
                        top = max(top, m)
                        last3 = p3[r]
                    if not per_frame and top > peak[c]:
                        peak[c] = top
                prev3[c] = p3[n - 1]
            for i in range(nh):
                hist[c, i] = wb[n + i]
        start += n


@njit(cache=True, nogil=True)
def truepeak_quiet(x, coefs, hist, prev3, work, floor):
    """True when no estimate ``truepeak_process`` would emit for x: (frames, channels) can
    exceed floor, proved from the input alone (its largest magnitude, and the history's,
    times the interpolators' largest L1 norm). Then the state moves on exactly as
    ``truepeak_process`` would move it, and nothing else is done: the caller knows every
    estimate is at most floor. Otherwise nothing changes and the result is False."""
    frames, channels = x.shape
    if frames == 0:
        return True
    nh = TAPS - 1
    reach = _reach(coefs)
    top = 0.0
    for c in range(channels):
        top = max(top, _absmax(hist[c], 0, nh), abs(prev3[c]) / reach)
    for c in range(channels):
        for i in range(frames):
            v = abs(x[i, c])
            top = v if v > top else top
    if not reach * top <= floor / (REFINE_BOUND * BOUND_SLACK):
        return False
    # the state after the last frame: the last TAPS - 1 inputs, and the interpolated
    # point the next frame's first parabola needs (``_phase3`` on the last TAPS inputs)
    wb = work[0]
    for c in range(channels):
        for k in range(TAPS):
            i = frames - TAPS + k       # index into x; negative: the history's tail
            wb[k] = x[i, c] if i >= 0 else hist[c, nh + i]
        prev3[c] = _phase3(wb, coefs, 0)
        for k in range(nh):
            hist[c, k] = wb[k + 1]
    return True


@njit(cache=True, nogil=True)
def truepeak_process(x, coefs, hist, prev3, work, out, floor=0.0):
    """Stream x: (frames, channels) through the estimator; out: (frames, channels) float64
    receives, row for row, the peak magnitude estimate of frame (row - TP_DELAY) of the
    stream (linear, not dB). hist, prev3, work: the state from ``TruePeakState``.

    floor: estimates that provably cannot exceed it may be returned as any lower bound
    not above it (the sample magnitudes) instead of being computed. The limiter passes its
    ceiling and a max-meter its running maximum; results above floor are always exact.
    """
    _stream(x, coefs, hist, prev3, work, out, out[:0, 0], floor)


@njit(cache=True, nogil=True)
def truepeak_max(x, coefs, hist, prev3, work, peak):
    """Stream x: (frames, channels) through the estimator like ``truepeak_process`` (same
    state, same estimates) but keep only their maximum: peak: (channels,) float64 rises to
    the largest estimate emitted for each channel (linear). Exact, and much cheaper: whatever
    provably stays under the running maximum is skipped."""
    _stream(x, coefs, hist, prev3, work, work[:0, :0], peak, 0.0)
