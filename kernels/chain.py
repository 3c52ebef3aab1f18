"""The mastering chain: one entry point that processes one block in place.

Order: sanitise > input gain > 8-band EQ > compressor > width > loudness gain > output
gain > true-peak limiter (which delays the signal by ``latency`` frames) > bypass mix.
The live engine and the offline renderer both call ``process(block, state, params)``.

``process(..., part=PART_FRONT)`` runs only sanitise > input gain > EQ > compressor (the
block comes out undelayed) and ``part=PART_BACK`` the rest from width on, on the front's
output: front then back on two states with the same parameters gives the whole chain's
samples bit for bit while the bypass is 0 (the back's dry signal is the front's output), so
an offline renderer can run the front once and the back for several output gains.

Everything runs on a global grid of ``TICK`` frames counted from the start of the stream:
parameters glide one step per tick (one-pole, the registry's smoothing time as time
constant), gains ramp linearly inside a tick, EQ coefficients are redesigned on ticks
where an EQ parameter moved, and the loudness follower steps every 100 ms. Nothing
depends on where a block starts or ends, so any block size gives the same samples.
"""

import math
from typing import NamedTuple

import numpy as np
from .jit import njit

from . import params as P
from .biquad import (SHAPE_HIGHSHELF, SHAPE_LOWSHELF, SHAPE_PEAKING, cascade_process,
                     design_biquad, flush_denormals)
from .compressor import RMS_WINDOW_MS, compressor_process, compressor_state, compressor_work, time_coef
from .kweighting import design_kweighting
from .limiter import LimiterArrays, LimiterState, limiter_process, limiter_reset
from .sane import SANE_LIMIT

TICK = 128
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
PART_ALL, PART_FRONT, PART_BACK = 0, 1, 2   # what ``process`` runs: the whole chain or a half

# the chain's scalar state: one record (a one-element structured array, which Numba reads
# and writes by field name)
SCALARS = np.dtype([
    ("loud_e", "f8"),        # gated, exponentially weighted K-weighted energy (0 = nothing yet)
    ("loud_acc", "f8"),      # energy accumulated in the current 100 ms step
    ("loud_db", "f8"),       # applied loudness gain at the current tick
    ("loud_prev_db", "f8"),  # ... at the previous tick
    ("loud_want_db", "f8"),  # what the follower asks for
    ("comp_gr_db", "f8"),    # lowest compressor gain since last read
    ("lim_gr_lin", "f8"),    # lowest limiter gain since last read
    ("tick_pos", "i8"),      # position in the current tick
    ("frames", "i8"),        # frames processed
    ("sanitised", "i8"),     # input samples replaced by 0 (NaN, Inf, absurd)
    ("step_pos", "i8"),      # frames into the follower's current 100 ms step
    ("ring_pos", "i8"),      # the follower's step ring: next slot ...
    ("ring_fill", "i8"),     # ... and how many are filled
    ("eq_fresh", "i8"),      # 1 until the first EQ design (or after a reset)
])


class ChainArrays(NamedTuple):
    """All of one chain's state as the kernels take it: arrays by name."""
    ps: np.ndarray          # the gliding parameters at this tick ...
    ps_prev: np.ndarray     # ... and at the previous one
    ps_coef: np.ndarray     # per parameter glide coefficient per tick
    eq_coefs: np.ndarray    # (EQ_BANDS, 5) biquads
    eq_state: np.ndarray    # (channels, EQ_BANDS, 2)
    comp: np.ndarray        # (1,) kernels.compressor.STATE
    comp_work: np.ndarray   # the compressor's scratch
    kw_coefs: np.ndarray    # the loudness follower's K-weighting ...
    kw_state: np.ndarray
    kw_work: np.ndarray
    loud_ring: np.ndarray   # ... and its ring of 100 ms step energies
    scalars: np.ndarray     # (1,) SCALARS
    dry: np.ndarray         # (TICK, channels) the sanitised input of the tick (bypass)
    work: np.ndarray        # (TICK, channels) float64 work buffer
    lim: LimiterArrays      # the limiter's


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
        self.scalars = np.zeros(1, dtype=SCALARS)
        self.scalars["lim_gr_lin"] = 1.0
        self.scalars["eq_fresh"] = 1
        self.arrays = ChainArrays(
            ps=self.ps, ps_prev=self.ps_prev, ps_coef=self.ps_coef, eq_coefs=np.zeros((P.EQ_BANDS, 5)),
            eq_state=np.zeros((channels, P.EQ_BANDS, 2)), comp=compressor_state(), comp_work=compressor_work(),
            kw_coefs=design_kweighting(sample_rate), kw_state=np.zeros((channels, 2, 2)),
            kw_work=np.zeros((TICK, channels)), loud_ring=np.zeros(LOUDNESS_BLOCK_STEPS), scalars=self.scalars,
            dry=np.zeros((TICK, channels)), work=np.zeros((TICK, channels)), lim=self.limiter.arrays)
        # the same arrays as plain tuples, for the quick call from Python (see _process_flat)
        self.flat = (tuple(self.arrays[:-1]), tuple(self.arrays.lim))

    @property
    def sanitised_samples(self) -> int:
        """NaN, Inf or absurd (> +80 dBFS) input samples replaced by 0 so far."""
        return int(self.scalars[0]["sanitised"])

    @property
    def loudness_gain_db(self) -> float:
        """The gain the loudness follower applies now (dB)."""
        return float(self.scalars[0]["loud_db"])

    def take_gain_reduction(self) -> tuple[float, float]:
        """(compressor, limiter) largest gain reduction in dB (<= 0) since the last call."""
        sc = self.scalars[0]
        comp_db = float(sc["comp_gr_db"])
        lim = float(sc["lim_gr_lin"])
        sc["comp_gr_db"] = 0.0
        sc["lim_gr_lin"] = 1.0
        return comp_db, 20.0 * math.log10(max(lim, 1e-12))


def process(block: np.ndarray, state: ChainState, params: np.ndarray, part: int = PART_ALL) -> None:
    """Process block: (frames, channels) float32 or float64 in place.

    params: (N_PARAMS,) float64 target vector (see kernels/params.py). The output is the
    input delayed by state.latency frames, processed. part: PART_ALL, or PART_FRONT /
    PART_BACK for one half (see the module docstring; each half on a state of its own).
    """
    if part == PART_ALL:
        _process_flat(block, params, state.sample_rate, state.latency, *state.flat)
    else:
        _process_part(block, params, state.sample_rate, state.latency, part, *state.flat)


@njit(cache=True, nogil=True)
def _process_flat(x, params, sample_rate, latency, head, lim):
    """``chain_kernel`` on ChainArrays rebuilt from plain tuples (``ChainState.flat``): Numba
    types a plain tuple of arrays in its C fast path, a NamedTuple in Python (2 us more per
    call, 4 % of a 1024-frame block's time)."""
    chain_kernel(x, params, sample_rate, latency, ChainArrays(*head, LimiterArrays(*lim)))


@njit(cache=True, nogil=True)
def _process_part(x, params, sample_rate, latency, part, head, lim):
    """``chain_part`` on plain tuples, as ``_process_flat``."""
    chain_part(x, params, sample_rate, latency, ChainArrays(*head, LimiterArrays(*lim)), part)


@njit(cache=True, nogil=True, inline="always")
def _db2lin(db):
    return 10.0 ** (db / 20.0)


@njit(cache=True, nogil=True)
def _control_tick(params, sample_rate, ps, ps_prev, ps_coef, eq_coefs, eq_state, kw_state, sc):
    """Once per tick: glide the parameters, redesign the EQ if it moved, step the
    loudness gain toward what the follower asks. sc: the SCALARS record."""
    moved = sc.eq_fresh == 1
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
        sc.eq_fresh = 0
    flush_denormals(eq_state)
    flush_denormals(kw_state)
    sc.loud_prev_db = sc.loud_db
    want = sc.loud_want_db if ps[P.P_LOUD_AUTO] >= 0.5 else 0.0
    coef = 1.0 - math.exp(-TICK / (LOUDNESS_GLIDE_S * sample_rate))
    v = sc.loud_db + coef * (want - sc.loud_db)
    if abs(want - v) < 1e-9:
        v = want
    sc.loud_db = v


@njit(cache=True, nogil=True)
def _loudness_follow(x, start, stop, sample_rate, target_lufs, kw_coefs, kw_state, kw_work, ring, sc):
    """Feed rows start..stop-1 (the signal entering the loudness stage) to the follower:
    K-weighted energy per 100 ms step; 400 ms blocks whose every step is above -70 LUFS
    and within 10 LU of the running level feed an exponentially weighted mean
    (LOUDNESS_TRACK_S); silence, and the edges of silence, leave it, and so the gain,
    where it was. sc: the SCALARS record."""
    channels = x.shape[1]
    step_len = int(round(LOUDNESS_STEP_S * sample_rate))
    acc = sc.loud_acc
    pos = sc.step_pos
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
            ring[sc.ring_pos] = acc / step_len
            sc.ring_pos = (sc.ring_pos + 1) % ring.shape[0]
            if sc.ring_fill < ring.shape[0]:
                sc.ring_fill += 1
            acc = 0.0
            pos = 0
            if sc.ring_fill == ring.shape[0]:
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
                e = sc.loud_e
                floor = ABS_GATE_ENERGY if e == 0.0 else max(ABS_GATE_ENERGY, e * REL_GATE_RATIO)
                if quiet > floor:
                    if e == 0.0:
                        sc.loud_e = z
                    else:
                        alpha = 1.0 - math.exp(-LOUDNESS_STEP_S / LOUDNESS_TRACK_S)
                        sc.loud_e = e + alpha * (z - e)
                if sc.loud_e > 0.0:
                    level = -0.691 + 10.0 * math.log10(sc.loud_e)
                    want = target_lufs - level
                    sc.loud_want_db = min(max(want, -LOUDNESS_RANGE_DB), LOUDNESS_RANGE_DB)
    sc.loud_acc = acc
    sc.step_pos = pos


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
def _loudness_forget(kw_state, ring, sc):
    """With loudness.auto off the follower rests (no work); switched on again it measures
    afresh from the next tick rather than resuming from stale blocks."""
    kw_state[:] = 0.0
    ring[:] = 0.0
    sc.loud_e = 0.0
    sc.loud_acc = 0.0
    sc.loud_want_db = 0.0
    sc.step_pos = 0
    sc.ring_pos = 0
    sc.ring_fill = 0


@njit(cache=True, nogil=True)
def _input_stage(x, start, n, tick_pos, ps, ps_prev, dry, w):
    """Sanitise rows start..start+n-1 of x into dry and, times the gliding input gain, into
    the work buffer w. Returns how many samples were replaced by 0."""
    channels = x.shape[1]
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
    return bad


@njit(cache=True, nogil=True)
def chain_kernel(x, params, sample_rate, latency, st):
    """The whole chain over x: (frames, channels) in place; see ``process``. st:
    ChainArrays. Each tick is processed in the float64 work buffer, so float32 and float64
    blocks give the same samples up to the final rounding."""
    chain_part(x, params, sample_rate, latency, st, PART_ALL)


@njit(cache=True, nogil=True)
def _back_input(x, start, n, dry, w):
    """The back half's input: rows start..start+n-1 of x (the front's output) as they are."""
    for i in range(n):
        for ch in range(x.shape[1]):
            v = float(x[start + i, ch])
            dry[i, ch] = v
            w[i, ch] = v


@njit(cache=True, nogil=True)
def chain_part(x, params, sample_rate, latency, st, part):
    """``chain_kernel``, or with part PART_FRONT / PART_BACK one half of it (see the module
    docstring)."""
    frames, channels = x.shape
    # every array taken out of the tuple once, outside the loop
    ps, ps_prev, ps_coef, w, dry, sc = st.ps, st.ps_prev, st.ps_coef, st.work, st.dry, st.scalars[0]
    eq_coefs, eq_state, comp, comp_work = st.eq_coefs, st.eq_state, st.comp, st.comp_work
    kw_coefs, kw_state, kw_work, loud_ring, lim = st.kw_coefs, st.kw_state, st.kw_work, st.loud_ring, st.lim
    rms_coef = time_coef(RMS_WINDOW_MS, sample_rate)
    start = 0
    while start < frames:
        tick_pos = sc.tick_pos
        if tick_pos == 0:
            _control_tick(params, sample_rate, ps, ps_prev, ps_coef, eq_coefs, eq_state, kw_state, sc)
        stop = min(frames, start + TICK - tick_pos)
        n = stop - start
        if part == PART_BACK:
            _back_input(x, start, n, dry, w)
        else:
            sc.sanitised += _input_stage(x, start, n, tick_pos, ps, ps_prev, dry, w)
            cascade_process(w, 0, n, eq_coefs, eq_state)
            if ps[P.P_COMP_RATIO] > 1.0:
                low = compressor_process(
                    w, 0, n, ps[P.P_COMP_THRESHOLD], ps[P.P_COMP_RATIO], ps[P.P_COMP_KNEE],
                    time_coef(ps[P.P_COMP_ATTACK], sample_rate), time_coef(ps[P.P_COMP_RELEASE], sample_rate),
                    ps[P.P_COMP_RMS] >= 0.5, rms_coef, ps_prev[P.P_COMP_MAKEUP], ps[P.P_COMP_MAKEUP],
                    tick_pos, TICK, comp, comp_work)
                if low < sc.comp_gr_db:
                    sc.comp_gr_db = low
            else:
                # ratio 1 is a plain makeup gain; the detector state rests
                comp[0].gr = 0.0
                m0 = _db2lin(ps_prev[P.P_COMP_MAKEUP])
                m1 = _db2lin(ps[P.P_COMP_MAKEUP])
                for i in range(n):
                    g = m0 + (m1 - m0) * (tick_pos + i) * INV_TICK
                    for ch in range(channels):
                        w[i, ch] *= g
        if part == PART_FRONT:  # the front half's output, undelayed
            for i in range(n):
                for ch in range(channels):
                    x[start + i, ch] = w[i, ch]
        else:
            low = _back_tick(x, start, stop, tick_pos, sample_rate, latency, ps, ps_prev, w, dry, kw_coefs, kw_state,
                             kw_work, loud_ring, lim, sc)
            if low < sc.lim_gr_lin:
                sc.lim_gr_lin = low
        sc.tick_pos = (tick_pos + n) % TICK
        sc.frames += n
        start = stop


@njit(cache=True, nogil=True, inline="always")
def _back_tick(x, start, stop, tick_pos, sample_rate, latency, ps, ps_prev, w, dry, kw_coefs, kw_state, kw_work,
               loud_ring, lim, sc):
    """The back half on one tick's rows of the work buffer w (width, loudness follower,
    output gain, limiter into rows start..stop-1 of x); returns the limiter's lowest gain."""
    n = stop - start
    channels = x.shape[1]
    follow = ps[P.P_LOUD_AUTO] >= 0.5
    w0 = ps_prev[P.P_WIDTH]
    w1 = ps[P.P_WIDTH]
    if follow:  # the follower measures after width, before the gain it steers
        if channels == 2:
            _width(w, n, w0, w1, tick_pos)
        _loudness_follow(w, 0, n, sample_rate, ps[P.P_LOUD_TARGET], kw_coefs, kw_state, kw_work, loud_ring, sc)
    elif sc.ring_fill or sc.loud_e != 0.0:
        _loudness_forget(kw_state, loud_ring, sc)
    o0 = _db2lin(sc.loud_prev_db + ps_prev[P.P_OUTPUT_GAIN])
    o1 = _db2lin(sc.loud_db + ps[P.P_OUTPUT_GAIN])
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
    return limiter_process(
        w, x[start:stop], dry, n, _db2lin(ps_prev[P.P_CEILING]), _db2lin(ps[P.P_CEILING]),
        time_coef(ps[P.P_LIM_RELEASE], sample_rate), ps_prev[P.P_BYPASS], ps[P.P_BYPASS],
        tick_pos, TICK, latency, lim)


@njit(cache=True, nogil=True)
def chain_reset(st):
    """Clear every signal-carrying state after a fault (a NaN that got into a filter): the
    chain restarts silent and clean. Parameters, the tick grid and counters stay."""
    st.eq_state[:] = 0.0
    st.comp[0].ms = 0.0
    st.comp[0].gr = 0.0
    st.kw_work[:] = 0.0
    st.dry[:] = 0.0
    st.work[:] = 0.0
    sc = st.scalars[0]
    sc.loud_db = 0.0
    sc.loud_prev_db = 0.0
    sc.comp_gr_db = 0.0
    sc.lim_gr_lin = 1.0
    _loudness_forget(st.kw_state, st.loud_ring, sc)  # the follower's energy, ring and request
    sc.eq_fresh = 1
    limiter_reset(st.lim)
