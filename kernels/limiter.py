"""Lookahead brickwall limiter on a true-peak estimate: it owns the chain's latency.

Gain computer (stereo-linked): for every frame q, r(q) = min(1, ceiling / p(q)) where p is
the true-peak estimate of kernels/truepeak.py (4x + parabola). A minimum over a window of
B + 2R frames, a release one-pole that only rises, and a B-frame moving average give the
gain G. Because the average only sees values no larger than r(q) for every frame within R
of a peak, G has reached r(q) before the peak arrives and holds it across the
interpolator's reach: the attack is a smooth ramp of B frames and nothing overshoots.
Latency = TP_DELAY + (B - 1) + R frames, reported exactly; B follows from the lookahead.
The dry input is delayed by the same amount so that bypass stays time-aligned.

Near Nyquist the estimator's interpolation filter rolls off (-1 dB at 0.9, -6 dB at 1.0 x
Nyquist), so content there (the Gibbs ripple of hard edges: naive squares, clipped
masters) reads low. A 4th-order high-pass at HF_CUTOFF x Nyquist measures that content,
its peak over the current and the previous tick spans the estimator's reach, and
HF_MARGIN times it is added to the estimate: conservative where the estimator is weak,
nothing on material without such content (measured: naive squares and spikes land
0.25-1.5 dB under the ceiling, music-like material costs 0.05-0.1 LU, the bright
generated demo 0.25 LU).

Two shortcuts keep a limiter that has nothing to do cheap, with the same samples as the
full path (a test holds them to it): when the input alone proves that no estimate can reach
the ceiling, the estimator is skipped (``truepeak_quiet`` moves its state on); when, besides,
the gain computer is at rest (the release has ended: it snaps to 1 at REST_SNAP), the
per-frame gain computer is skipped and only the delay lines move.
"""


from typing import NamedTuple

import numpy as np
from .jit import njit

from .biquad import SHAPE_HIGHPASS, cascade_process, design_biquad, flush_denormals
from .truepeak import TP_DELAY, TruePeakState, truepeak_process, truepeak_quiet

HOLD_RADIUS = 4
# The estimate reads within 0.012 dB of the band-limited peak up to 0.85 x Nyquist; aiming
# this far under the ceiling keeps what an independent 16x reference measures at or below it.
SAFETY_DB = 0.02
SAFETY_LIN = 10.0 ** (-SAFETY_DB / 20.0)
MIN_ATTACK = 8
# the release snaps to 1 this close to it (-9e-6 dB, 14 release time constants after the
# last gain reduction; the box average smooths the step), so the gain computer comes to rest
REST_SNAP = 1.0 - 1e-6
# the at-rest test allows for the rounding of the ceiling's glide
REST_SLACK = 1.0 - 1e-12
HF_CUTOFF = 0.9
HF_MARGIN = 0.8
# the limiter's scalar state: one record (a one-element structured array, which Numba reads
# and writes by field name)
SCALARS = np.dtype([
    ("pos", "i8"),       # delay-line write position
    ("head", "i8"),      # deque head
    ("tail", "i8"),      # deque tail (one past last)
    ("bpos", "i8"),      # box ring position
    ("frame", "i8"),     # frames seen
    ("erel", "f8"),      # release follower
    ("boxsum", "f8"),    # box filter running sum
    ("gain", "f8"),      # last gain applied (linear)
    ("hf_prev", "f8"),   # near-Nyquist peak of the previous tick
    ("hf_cur", "f8"),    # ... of the current tick so far
])


class LimiterArrays(NamedTuple):
    """The limiter's state as Numba kernels take it: arrays by name."""
    delay: np.ndarray      # (channels, ring) the frames in flight
    dry: np.ndarray        # (channels, ring) the dry input, delayed alike (bypass)
    dq_val: np.ndarray     # running-minimum deque: values ...
    dq_idx: np.ndarray     # ... and their frame indices
    box: np.ndarray        # (attack,) the moving average's ring
    scalars: np.ndarray    # (1,) SCALARS
    hf_coefs: np.ndarray   # the near-Nyquist high-pass (2 biquads) ...
    hf_state: np.ndarray
    hf_work: np.ndarray
    tp_coefs: np.ndarray   # the true-peak estimator (kernels/truepeak.py)
    tp_hist: np.ndarray
    tp_prev3: np.ndarray
    tp_work: np.ndarray
    tp_out: np.ndarray     # (max_block, channels) the estimates of the current call


def latency_for(sample_rate: float, lookahead_ms: float) -> tuple[int, int]:
    """(latency frames, attack frames B) for a lookahead in ms at a sample rate."""
    wanted = int(round(lookahead_ms * sample_rate / 1000.0))
    latency = max(wanted, TP_DELAY + HOLD_RADIUS + MIN_ATTACK - 1)
    attack = latency - TP_DELAY - HOLD_RADIUS + 1
    return latency, attack


class LimiterState:
    """Preallocated limiter state for one stream."""

    def __init__(self, sample_rate: float, channels: int, lookahead_ms: float, max_block: int):
        self.latency, self.attack = latency_for(sample_rate, lookahead_ms)
        size = 1
        while size < self.latency + 1:
            size *= 2
        self.delay = np.zeros((channels, size))
        self.dry = np.zeros((channels, size))
        window = self.attack + 2 * HOLD_RADIUS
        cap = 1
        while cap < window + 2:
            cap *= 2
        self.dq_val = np.ones(cap)
        self.dq_idx = np.zeros(cap, dtype=np.int64)
        self.box = np.ones(self.attack)
        self.scalars = np.zeros(1, dtype=SCALARS)
        self.hf_coefs = np.zeros((2, 5))
        for k, q in enumerate((0.5411961, 1.3065630)):  # 4th-order Butterworth
            design_biquad(SHAPE_HIGHPASS, sample_rate, HF_CUTOFF * sample_rate / 2, 0.0, q, self.hf_coefs[k])
        self.hf_state = np.zeros((channels, 2, 2))
        self.hf_work = np.zeros((max_block, channels))
        self.tp = TruePeakState(channels)
        self.tp_out = np.zeros((max_block, channels))
        self.arrays = LimiterArrays(self.delay, self.dry, self.dq_val, self.dq_idx, self.box, self.scalars,
                                    self.hf_coefs, self.hf_state, self.hf_work,
                                    self.tp.coefs, self.tp.hist, self.tp.prev3, self.tp.work, self.tp_out)
        _reset_flat(tuple(self.arrays))


@njit(cache=True, nogil=True)
def _at_rest(dq_val, box, st):
    """The gain computer holds unity everywhere: one deque entry of 1, the release at 1,
    the box full of ones with an exact sum. st: the SCALARS record."""
    qmask = dq_val.shape[0] - 1
    if st.tail - st.head != 1 or dq_val[st.head & qmask] != 1.0:
        return False
    if st.erel != 1.0 or st.boxsum != float(box.shape[0]):
        return False
    for k in range(box.shape[0]):
        if box[k] != 1.0:
            return False
    return True


@njit(cache=True, nogil=True)
def _peak_bound(tp_out, n, hf_prev, hf_top):
    """An upper bound of every frame's margined peak in rows 0..n-1."""
    top = 0.0
    for i in range(n):
        for c in range(tp_out.shape[1]):
            top = max(top, tp_out[i, c])
    return top + HF_MARGIN * max(hf_prev, hf_top)


@njit(cache=True, nogil=True)
def _near_nyquist(x, n, tick_pos, hf_coefs, hf_state, hf_work, st):
    """High-pass rows 0..n-1 of x into hf_work, roll the per-tick peaks at a tick's start,
    and return (the previous tick's peak, this tick's so far, this call's)."""
    for c in range(x.shape[1]):
        for i in range(n):
            hf_work[i, c] = x[i, c]
    cascade_process(hf_work, 0, n, hf_coefs, hf_state)
    # the near-Nyquist level a frame's margin covers: the peak of this tick so far and of the
    # whole previous tick (at least a tick back, more than the estimator's reach), kept on
    # the stream's tick grid so that it does not depend on the block size
    if tick_pos == 0:
        st.hf_prev = st.hf_cur
        st.hf_cur = 0.0
    top = 0.0
    for c in range(x.shape[1]):
        for i in range(n):
            v = abs(hf_work[i, c])
            top = v if v > top else top
    flush_denormals(hf_state)
    return st.hf_prev, st.hf_cur, top


@njit(cache=True, nogil=True)
def _pass_at_rest(x, out, dry_in, n, bypass0, bypass1, tick_pos, tick, latency, attack, delay, dry, dq_idx, st):
    """What the per-frame loop of ``limiter_process`` does when every r is 1 and it starts at
    rest, with the same arithmetic: the delay lines move, the gain stays, the one deque
    entry takes the newest frame index, the box position advances. Returns the gain."""
    channels = x.shape[1]
    mask = delay.shape[1] - 1
    qmask = dq_idx.shape[0] - 1
    pos = st.pos
    gain = st.boxsum * (1.0 / attack)
    if bypass0 == 0.0 and bypass1 == 0.0:
        for i in range(n):
            rd = (pos - latency) & mask
            for c in range(channels):
                delay[c, pos] = x[i, c]
                dry[c, pos] = dry_in[i, c]
                out[i, c] = gain * delay[c, rd]
            pos = (pos + 1) & mask
    else:
        inv_tick = 1.0 / tick
        for i in range(n):
            rd = (pos - latency) & mask
            b = bypass0 + (bypass1 - bypass0) * ((tick_pos + i) * inv_tick)
            for c in range(channels):
                delay[c, pos] = x[i, c]
                dry[c, pos] = dry_in[i, c]
                out[i, c] = (1.0 - b) * gain * delay[c, rd] + b * dry[c, rd]
            pos = (pos + 1) & mask
    frame = st.frame + n
    dq_idx[st.head & qmask] = frame - 1 - TP_DELAY
    st.pos = pos
    st.bpos = (st.bpos + n) % attack
    st.frame = frame
    st.gain = gain
    return gain


@njit(cache=True, nogil=True)
def _gain_computer(x, out, dry_in, n, ceiling0, ceiling1, release_coef, bypass0, bypass1, tick_pos, tick,
                   latency, hf_prev, hf_cur, lim):
    """The per-frame path: each frame's margined estimate -> r, the running minimum over the
    window, the release, the box average -> the gain; the delayed frames out. Returns the
    lowest gain."""
    channels = x.shape[1]
    delay, dry, dq_val, dq_idx, box = lim.delay, lim.dry, lim.dq_val, lim.dq_idx, lim.box
    tp_out, hf_work, st = lim.tp_out, lim.hf_work, lim.scalars[0]
    mask = delay.shape[1] - 1
    attack = box.shape[0]
    window = attack + 2 * HOLD_RADIUS
    qmask = dq_val.shape[0] - 1
    pos = st.pos
    head = st.head
    tail = st.tail
    bpos = st.bpos
    frame = st.frame
    erel = st.erel
    boxsum = st.boxsum
    lowest = 1.0
    gain = st.gain
    inv_tick = 1.0 / tick
    inv_attack = 1.0 / attack
    wet_only = bypass0 == 0.0 and bypass1 == 0.0  # the usual case: no crossfade to compute
    for i in range(n):
        frac = (tick_pos + i) * inv_tick
        ceiling = (ceiling0 + (ceiling1 - ceiling0) * frac) * SAFETY_LIN
        peak = 0.0
        for c in range(channels):
            peak = max(peak, tp_out[i, c])
            hf_cur = max(hf_cur, abs(hf_work[i, c]))
        peak += HF_MARGIN * max(hf_prev, hf_cur)
        r = 1.0
        if peak > ceiling:
            r = ceiling / peak
        # running minimum over the last `window` estimates (monotonic deque in a power-of-two ring)
        q = frame - TP_DELAY
        while tail != head and dq_val[(tail - 1) & qmask] >= r:
            tail -= 1
        dq_val[tail & qmask] = r
        dq_idx[tail & qmask] = q
        tail += 1
        while dq_idx[head & qmask] <= q - window:
            head += 1
        hold = dq_val[head & qmask]
        if hold < erel:
            erel = hold
        else:
            erel += release_coef * (hold - erel)
            if erel > REST_SNAP:
                erel = 1.0  # the release ends (instead of creeping toward 1 forever)
        boxsum += erel - box[bpos]
        box[bpos] = erel
        bpos += 1
        if bpos == attack:
            bpos = 0
            boxsum = 0.0
            for k in range(attack):
                boxsum += box[k]
        gain = boxsum * inv_attack
        if gain < lowest:
            lowest = gain
        rd = (pos - latency) & mask
        if wet_only:
            for c in range(channels):
                delay[c, pos] = x[i, c]
                dry[c, pos] = dry_in[i, c]
                out[i, c] = gain * delay[c, rd]
        else:
            b = bypass0 + (bypass1 - bypass0) * frac
            for c in range(channels):
                delay[c, pos] = x[i, c]
                dry[c, pos] = dry_in[i, c]
                out[i, c] = (1.0 - b) * gain * delay[c, rd] + b * dry[c, rd]
        pos = (pos + 1) & mask
        frame += 1
    # keep the counters small; both move by a multiple of the ring size, so slots stay put
    if head > qmask + 1:
        shift = head & ~qmask
        head -= shift
        tail -= shift
    st.pos = pos
    st.head = head
    st.tail = tail
    st.bpos = bpos
    st.frame = frame
    st.erel = erel
    st.boxsum = boxsum
    st.gain = gain
    st.hf_cur = hf_cur
    return lowest


@njit(cache=True, nogil=True)
def limiter_process(x, out, dry_in, n, ceiling0, ceiling1, release_coef, bypass0, bypass1,
                    tick_pos, tick, latency, lim, shortcuts=True):
    """Limit rows 0..n-1 of x: (frames, channels) into rows 0..n-1 of out (which may be x):
    they come out `latency` frames late, mixed with the equally delayed dry_in rows by the
    bypass weight. ceiling and bypass glide linearly across the tick. lim: LimiterArrays.
    Returns the lowest gain (linear).

    shortcuts: when the input alone proves that no estimate can reach the ceiling
    (``truepeak_quiet``), the estimator is skipped; when, besides, the gain computer is at
    rest (unity everywhere), the per-frame gain computer is skipped too. Both give the same
    samples and the same state as the full path (shortcuts=False, for tests).
    """
    # every array taken out of the tuple once
    delay, dry, dq_val, dq_idx, box, st = lim.delay, lim.dry, lim.dq_val, lim.dq_idx, lim.box, lim.scalars[0]
    tp_coefs, tp_hist, tp_prev3, tp_work, tp_out = lim.tp_coefs, lim.tp_hist, lim.tp_prev3, lim.tp_work, lim.tp_out
    hf_prev, hf_cur, top = _near_nyquist(x, n, tick_pos, lim.hf_coefs, lim.hf_state, lim.hf_work, st)
    # estimates that cannot reach the ceiling even with the largest margin of this call
    # need not be exact (the pruning keeps everything else bit for bit)
    floor = max(0.0, min(ceiling0, ceiling1) * SAFETY_LIN * REST_SLACK - HF_MARGIN * max(hf_prev, hf_cur, top))
    attack = box.shape[0]
    if shortcuts and truepeak_quiet(x[:n], tp_coefs, tp_hist, tp_prev3, tp_work, floor):
        # every estimate is at most floor, so every r below is 1: the estimates' values do not
        # matter (0 stands for them), and at rest the gain computer would not move at all
        if _at_rest(dq_val, box, st):
            st.hf_cur = max(hf_cur, top)
            return _pass_at_rest(x, out, dry_in, n, bypass0, bypass1, tick_pos, tick, latency, attack, delay, dry,
                                 dq_idx, st)
        tp_out[:n] = 0.0
    else:
        truepeak_process(x[:n], tp_coefs, tp_hist, tp_prev3, tp_work, tp_out, floor)
        if shortcuts and _at_rest(dq_val, box, st) and not (
                _peak_bound(tp_out, n, hf_prev, max(hf_cur, top)) > min(ceiling0, ceiling1) * SAFETY_LIN * REST_SLACK):
            st.hf_cur = max(hf_cur, top)
            return _pass_at_rest(x, out, dry_in, n, bypass0, bypass1, tick_pos, tick, latency, attack, delay, dry,
                                 dq_idx, st)
    return _gain_computer(x, out, dry_in, n, ceiling0, ceiling1, release_coef, bypass0, bypass1, tick_pos, tick,
                          latency, hf_prev, hf_cur, lim)


@njit(cache=True, nogil=True)
def _reset_flat(arrays):
    """``limiter_reset`` on LimiterArrays rebuilt from a plain tuple: the plain tuple is
    what the ahead-of-time build can take from Python (kernels/jit.py)."""
    limiter_reset(LimiterArrays(*arrays))


@njit(cache=True, nogil=True)
def limiter_reset(lim):
    """Empty the delay lines and the gain computer: unity gain, nothing in flight."""
    lim.delay[:] = 0.0
    lim.dry[:] = 0.0
    lim.dq_val[:] = 1.0
    lim.dq_idx[:] = 0
    lim.dq_idx[0] = -(1 << 40)  # one entry, r = 1, standing for every frame before now
    lim.box[:] = 1.0
    st = lim.scalars[0]
    st.head = 0
    st.tail = 1
    st.bpos = 0
    st.erel = 1.0
    st.boxsum = float(lim.box.shape[0])
    st.gain = 1.0
    st.hf_prev = 0.0
    st.hf_cur = 0.0
    lim.hf_state[:] = 0.0
    lim.tp_hist[:] = 0.0
    lim.tp_prev3[:] = 0.0
    lim.tp_work[:] = 0.0
    lim.tp_out[:] = 0.0
