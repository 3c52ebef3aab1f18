"""The mastering chain: one entry point that processes one block in place.

Order: sanitise > input gain > 8-band EQ > compressor > width > loudness gain > output
gain > true-peak limiter (which delays the signal by ``latency`` frames) > bypass mix.
The live engine and the offline renderer both call ``process(block, state, params)``.

Everything runs on a global grid of ``TICK`` frames counted from the start of the stream:
parameters glide one step per tick (one-pole, the registry's smoothing time as time
constant), gains ramp linearly inside a tick, EQ coefficients are redesigned on ticks
where an EQ parameter moved, and the loudness follower steps every 100 ms. Nothing
depends on where a block starts or ends, so any block size gives the same samples.
"""

import math

import numpy as np
from numba import njit

from . import params as P
from .biquad import (SHAPE_HIGHSHELF, SHAPE_LOWSHELF, SHAPE_PEAKING, cascade_process,
                     design_biquad, flush_denormals)
from .compressor import RMS_WINDOW_MS, compressor_process, compressor_work, time_coef
from .kweighting import design_kweighting
from .limiter import LimiterState, limiter_process, limiter_reset

TICK = 128
SANE_LIMIT = 1.0e4          # +80 dBFS: anything beyond is treated as garbage, like NaN/Inf
LOUDNESS_STEP_S = 0.1
LOUDNESS_BLOCK_STEPS = 4      # 400 ms gating blocks, as in BS.1770
LOUDNESS_TRACK_S = 3.0        # memory of the loudness follower
LOUDNESS_GLIDE_S = 1.5        # time constant of the applied gain
LOUDNESS_RANGE_DB = 12.0
ABS_GATE_LUFS = -70.0
REL_GATE_LU = -10.0
ABS_GATE_ENERGY = 10.0 ** ((ABS_GATE_LUFS + 0.691) / 10.0)
REL_GATE_RATIO = 10.0 ** (REL_GATE_LU / 10.0)
INV_TICK = 1.0 / TICK

def sanitised(x: np.ndarray) -> tuple[np.ndarray, int]:
    """(x with NaN, Inf and absurd values (beyond SANE_LIMIT) replaced by 0, how many were):
    the chain's own input rule, for the offline measurements. x itself is never changed."""
    bad = ~(np.abs(x) <= SANE_LIMIT)
    count = int(np.count_nonzero(bad))
    return (np.where(bad, 0.0, x), count) if count else (x, 0)


# float scalar slots
S_LOUD_E = 0          # gated, exponentially weighted K-weighted energy (0 = nothing yet)
S_LOUD_ACC = 1        # energy accumulated in the current 100 ms step
S_LOUD_DB = 2         # applied loudness gain at the current tick
S_LOUD_PREV_DB = 3    # ... at the previous tick
S_LOUD_WANT_DB = 4    # what the follower asks for
S_COMP_GR_DB = 5      # lowest compressor gain since last read
S_LIM_GR_LIN = 6      # lowest limiter gain since last read
N_S = 7
# integer slots
C_TICK_POS = 0
C_FRAMES = 1
C_SANITISED = 2
C_STEP_POS = 3
C_RING_POS = 4
C_RING_FILL = 5
C_EQ_FRESH = 6        # 1 until the first design
N_C = 7


# positions in ChainState.arrays
A_PS = 0
A_PS_PREV = 1
A_S = 10
A_C = 11
A_LIM_DELAY = 15      # the limiter's delay line (the frames in flight)


class ChainState:
    """All state of one chain instance, preallocated: (sample_rate, channels 1 or 2).

    params: the parameter vector the stream starts with (default: the registry's
    defaults); the glides start there, so a stream does not open with a glide.
    """

    def __init__(self, sample_rate: float, channels: int, lookahead_ms: float = 1.5, params=None):
        if channels not in (1, 2):
            raise ValueError(f"the chain takes 1 or 2 channels, not {channels}")
        self.sample_rate = float(sample_rate)
        self.channels = channels
        self.limiter = LimiterState(sample_rate, channels, lookahead_ms, TICK)
        self.latency = self.limiter.latency
        ticks_per_s = sample_rate / TICK
        glide_s = P.smoothing_ms_vector() / 1000.0
        self.ps_coef = np.where(glide_s > 0, 1.0 - np.exp(-1.0 / (np.maximum(glide_s, 1e-9) * ticks_per_s)), 1.0)
        self.ps = P.default_vector() if params is None else np.array(params, dtype=np.float64)
        self.ps_prev = self.ps.copy()
        self.eq_coefs = np.zeros((P.EQ_BANDS, 5))
        self.eq_state = np.zeros((channels, P.EQ_BANDS, 2))
        self.comp = np.zeros(2)
        self.comp_work = compressor_work()
        self.kw_coefs = design_kweighting(sample_rate)
        self.kw_state = np.zeros((channels, 2, 2))
        self.loud_ring = np.zeros(LOUDNESS_BLOCK_STEPS)
        self.s = np.zeros(N_S)
        self.s[S_LIM_GR_LIN] = 1.0
        self.c = np.zeros(N_C, dtype=np.int64)
        self.c[C_EQ_FRESH] = 1
        self.dry = np.zeros((TICK, channels))
        self.work = np.zeros((TICK, channels))
        self.kw_work = np.zeros((TICK, channels))

    @property
    def arrays(self):
        """The state as a tuple of arrays, in ``chain_kernel``'s argument order (positions
        A_* below name the ones other kernels read)."""
        return (self.ps, self.ps_prev, self.ps_coef, self.eq_coefs, self.eq_state, self.comp,
                self.kw_coefs, self.kw_state, self.kw_work, self.loud_ring, self.s, self.c, self.dry, self.work,
                self.comp_work) + self.limiter.arrays

    @property
    def sanitised_samples(self) -> int:
        """NaN, Inf or absurd (> +80 dBFS) input samples replaced by 0 so far."""
        return int(self.c[C_SANITISED])

    @property
    def loudness_gain_db(self) -> float:
        """The gain the loudness follower applies now (dB)."""
        return float(self.s[S_LOUD_DB])

    def take_gain_reduction(self) -> tuple[float, float]:
        """(compressor, limiter) largest gain reduction in dB (<= 0) since the last call."""
        comp_db = float(self.s[S_COMP_GR_DB])
        lim = float(self.s[S_LIM_GR_LIN])
        self.s[S_COMP_GR_DB] = 0.0
        self.s[S_LIM_GR_LIN] = 1.0
        return comp_db, 20.0 * math.log10(max(lim, 1e-12))


def process(block: np.ndarray, state: ChainState, params: np.ndarray) -> None:
    """Process block: (frames, channels) float32 or float64 in place.

    params: (N_PARAMS,) float64 target vector (see kernels/params.py). The output is the
    input delayed by state.latency frames, processed.
    """
    chain_kernel(block, params, state.sample_rate, state.latency, *state.arrays)


@njit(cache=True, nogil=True, inline="always")
def _db2lin(db):
    return 10.0 ** (db / 20.0)


@njit(cache=True, nogil=True)
def _control_tick(params, sample_rate, ps, ps_prev, ps_coef, eq_coefs, eq_state, kw_state, s, c):
    """Once per tick: glide the parameters, redesign the EQ if it moved, step the
    loudness gain toward what the follower asks."""
    moved = c[C_EQ_FRESH] == 1
    for k in range(ps.shape[0]):
        ps_prev[k] = ps[k]
        target = params[k]
        v = ps[k] + ps_coef[k] * (target - ps[k])
        if abs(target - v) < 1e-9:
            v = target
        ps[k] = v
        if v != ps_prev[k] and k >= P.P_EQ_GAIN and k < P.P_EQ_GAIN + 3 * P.EQ_BANDS:
            moved = True
    if moved:
        for b in range(P.EQ_BANDS):
            shape = SHAPE_PEAKING
            if b == 0:
                shape = SHAPE_LOWSHELF
            elif b == P.EQ_BANDS - 1:
                shape = SHAPE_HIGHSHELF
            k = P.P_EQ_GAIN + 3 * b
            design_biquad(shape, sample_rate, ps[k + 1], ps[k], ps[k + 2], eq_coefs[b])
        c[C_EQ_FRESH] = 0
    flush_denormals(eq_state)
    flush_denormals(kw_state)
    s[S_LOUD_PREV_DB] = s[S_LOUD_DB]
    want = s[S_LOUD_WANT_DB] if ps[P.P_LOUD_AUTO] >= 0.5 else 0.0
    coef = 1.0 - math.exp(-TICK / (LOUDNESS_GLIDE_S * sample_rate))
    v = s[S_LOUD_DB] + coef * (want - s[S_LOUD_DB])
    if abs(want - v) < 1e-9:
        v = want
    s[S_LOUD_DB] = v


@njit(cache=True, nogil=True)
def _loudness_follow(x, start, stop, sample_rate, target_lufs, kw_coefs, kw_state, kw_work, ring, s, c):
    """Feed rows start..stop-1 (the signal entering the loudness stage) to the follower:
    K-weighted energy per 100 ms step; 400 ms blocks whose every step is above -70 LUFS
    and within 10 LU of the running level feed an exponentially weighted mean
    (LOUDNESS_TRACK_S); silence, and the edges of silence, leave it, and so the gain,
    where it was."""
    channels = x.shape[1]
    step_len = int(round(LOUDNESS_STEP_S * sample_rate))
    acc = s[S_LOUD_ACC]
    pos = c[C_STEP_POS]
    n_rows = stop - start
    for n in range(n_rows):
        for ch in range(channels):
            kw_work[n, ch] = x[start + n, ch]
    cascade_process(kw_work, 0, n_rows, kw_coefs, kw_state)
    for n in range(n_rows):
        for ch in range(channels):
            acc += kw_work[n, ch] * kw_work[n, ch]
        pos += 1
        if pos == step_len:
            ring[c[C_RING_POS]] = acc / step_len
            c[C_RING_POS] = (c[C_RING_POS] + 1) % ring.shape[0]
            if c[C_RING_FILL] < ring.shape[0]:
                c[C_RING_FILL] += 1
            acc = 0.0
            pos = 0
            if c[C_RING_FILL] == ring.shape[0]:
                # a 400 ms block counts only if each of its 100 ms steps is active: above the
                # absolute gate and within REL_GATE_LU of the running level. A block that
                # straddles the start or the end of a passage (partly silent) would
                # otherwise pass the block gates and drag the level, and so the gain.
                z = 0.0
                quiet = ring[0]
                for k in range(ring.shape[0]):
                    z += ring[k]
                    quiet = min(quiet, ring[k])
                z /= ring.shape[0]
                e = s[S_LOUD_E]
                floor = ABS_GATE_ENERGY if e == 0.0 else max(ABS_GATE_ENERGY, e * REL_GATE_RATIO)
                if quiet > floor:
                    if e == 0.0:
                        s[S_LOUD_E] = z
                    else:
                        alpha = 1.0 - math.exp(-LOUDNESS_STEP_S / LOUDNESS_TRACK_S)
                        s[S_LOUD_E] = e + alpha * (z - e)
                if s[S_LOUD_E] > 0.0:
                    level = -0.691 + 10.0 * math.log10(s[S_LOUD_E])
                    want = target_lufs - level
                    s[S_LOUD_WANT_DB] = min(max(want, -LOUDNESS_RANGE_DB), LOUDNESS_RANGE_DB)
    s[S_LOUD_ACC] = acc
    c[C_STEP_POS] = pos


@njit(cache=True, nogil=True)
def _width(w, n, w0, w1, tick_pos):
    """Side gain on rows 0..n-1 of the stereo work buffer, gliding w0 -> w1 across the tick."""
    for i in range(n):
        width = w0 + (w1 - w0) * (tick_pos + i) * INV_TICK
        mid = 0.5 * (w[i, 0] + w[i, 1])
        side = 0.5 * (w[i, 0] - w[i, 1]) * width
        w[i, 0] = mid + side
        w[i, 1] = mid - side


@njit(cache=True, nogil=True)
def _loudness_forget(kw_state, ring, s, c):
    """With loudness.auto off the follower rests (no work); switched on again it measures
    afresh from the next tick rather than resuming from stale blocks."""
    kw_state[:] = 0.0
    ring[:] = 0.0
    s[S_LOUD_E] = 0.0
    s[S_LOUD_ACC] = 0.0
    s[S_LOUD_WANT_DB] = 0.0
    c[C_STEP_POS] = 0
    c[C_RING_POS] = 0
    c[C_RING_FILL] = 0


@njit(cache=True, nogil=True)
def chain_kernel(x, params, sample_rate, latency, ps, ps_prev, ps_coef, eq_coefs, eq_state, comp,
                 kw_coefs, kw_state, kw_work, loud_ring, s, c, dry, w, comp_work,
                 delay, dry_delay, dq_val, dq_idx, box, lim_ints, lim_floats,
                 hf_coefs, hf_state, hf_work, tp_coefs, tp_hist, tp_prev3, tp_work, tp_out):
    """The whole chain over x: (frames, channels) in place; see ``process``. Each tick is
    processed in the float64 work buffer w, so float32 and float64 blocks give the same
    samples up to the final rounding."""
    frames, channels = x.shape
    rms_coef = time_coef(RMS_WINDOW_MS, sample_rate)
    start = 0
    while start < frames:
        tick_pos = c[C_TICK_POS]
        if tick_pos == 0:
            _control_tick(params, sample_rate, ps, ps_prev, ps_coef, eq_coefs, eq_state, kw_state, s, c)
        stop = min(frames, start + TICK - tick_pos)
        n = stop - start
        # sanitise, keep the dry input, input gain
        g0 = _db2lin(ps_prev[P.P_INPUT_GAIN])
        g1 = _db2lin(ps[P.P_INPUT_GAIN])
        bad = 0
        for i in range(n):
            g = g0 + (g1 - g0) * (tick_pos + i) * INV_TICK
            for ch in range(channels):
                v = float(x[start + i, ch])
                if not (abs(v) <= SANE_LIMIT):
                    v = 0.0
                    bad += 1
                dry[i, ch] = v
                w[i, ch] = v * g
        c[C_SANITISED] += bad
        cascade_process(w, 0, n, eq_coefs, eq_state)
        if ps[P.P_COMP_RATIO] > 1.0:
            low = compressor_process(
                w, 0, n, ps[P.P_COMP_THRESHOLD], ps[P.P_COMP_RATIO], ps[P.P_COMP_KNEE],
                time_coef(ps[P.P_COMP_ATTACK], sample_rate), time_coef(ps[P.P_COMP_RELEASE], sample_rate),
                ps[P.P_COMP_RMS] >= 0.5, rms_coef, ps_prev[P.P_COMP_MAKEUP], ps[P.P_COMP_MAKEUP],
                tick_pos, TICK, comp, comp_work)
            if low < s[S_COMP_GR_DB]:
                s[S_COMP_GR_DB] = low
        else:
            # ratio 1 is a plain makeup gain; the detector state rests
            comp[1] = 0.0
            m0 = _db2lin(ps_prev[P.P_COMP_MAKEUP])
            m1 = _db2lin(ps[P.P_COMP_MAKEUP])
            for i in range(n):
                g = m0 + (m1 - m0) * (tick_pos + i) * INV_TICK
                for ch in range(channels):
                    w[i, ch] *= g
        follow = ps[P.P_LOUD_AUTO] >= 0.5
        w0 = ps_prev[P.P_WIDTH]
        w1 = ps[P.P_WIDTH]
        if follow:  # the follower measures after width, before the gain it steers
            if channels == 2:
                _width(w, n, w0, w1, tick_pos)
            _loudness_follow(w, 0, n, sample_rate, ps[P.P_LOUD_TARGET], kw_coefs, kw_state, kw_work, loud_ring, s, c)
        elif c[C_RING_FILL] or s[S_LOUD_E] != 0.0:
            _loudness_forget(kw_state, loud_ring, s, c)
        o0 = _db2lin(s[S_LOUD_PREV_DB] + ps_prev[P.P_OUTPUT_GAIN])
        o1 = _db2lin(s[S_LOUD_DB] + ps[P.P_OUTPUT_GAIN])
        if channels == 2 and not follow:  # width and gain in one pass
            for i in range(n):
                frac = (tick_pos + i) * INV_TICK
                g = o0 + (o1 - o0) * frac
                width = w0 + (w1 - w0) * frac
                mid = 0.5 * g * (w[i, 0] + w[i, 1])
                side = 0.5 * g * (w[i, 0] - w[i, 1]) * width
                w[i, 0] = mid + side
                w[i, 1] = mid - side
        else:
            for i in range(n):
                g = o0 + (o1 - o0) * (tick_pos + i) * INV_TICK
                for ch in range(channels):
                    w[i, ch] *= g
        low = limiter_process(
            w, x[start:stop], dry, n, _db2lin(ps_prev[P.P_CEILING]), _db2lin(ps[P.P_CEILING]),
            time_coef(ps[P.P_LIM_RELEASE], sample_rate), ps_prev[P.P_BYPASS], ps[P.P_BYPASS],
            tick_pos, TICK, latency, delay, dry_delay, dq_val, dq_idx, box, lim_ints, lim_floats,
            hf_coefs, hf_state, hf_work, tp_coefs, tp_hist, tp_prev3, tp_work, tp_out)
        if low < s[S_LIM_GR_LIN]:
            s[S_LIM_GR_LIN] = low
        c[C_TICK_POS] = (tick_pos + n) % TICK
        c[C_FRAMES] += n
        start = stop


@njit(cache=True, nogil=True)
def chain_reset(x, params, sample_rate, latency, ps, ps_prev, ps_coef, eq_coefs, eq_state, comp,
                kw_coefs, kw_state, kw_work, loud_ring, s, c, dry, w, comp_work,
                delay, dry_delay, dq_val, dq_idx, box, lim_ints, lim_floats,
                hf_coefs, hf_state, hf_work, tp_coefs, tp_hist, tp_prev3, tp_work, tp_out):
    """Clear every signal-carrying state after a fault (a NaN that got into a filter): the
    chain restarts silent and clean. The same arguments as ``chain_kernel`` (x unused), so a
    caller can pass ``state.arrays`` to both. Parameters, the tick grid and counters stay."""
    eq_state[:] = 0.0
    comp[:] = 0.0
    kw_work[:] = 0.0
    dry[:] = 0.0
    w[:] = 0.0
    for k in range(s.shape[0]):
        s[k] = 0.0
    s[S_LIM_GR_LIN] = 1.0
    _loudness_forget(kw_state, loud_ring, s, c)
    c[C_EQ_FRESH] = 1
    limiter_reset(delay, dry_delay, dq_val, dq_idx, box, lim_ints, lim_floats, hf_state, tp_hist, tp_prev3, tp_work,
                  tp_out)
