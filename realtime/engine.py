"""The live engine: the state the audio callback shares with Python threads, and the one
function that turns an input block into an output block.

``engine_block`` is what every backend runs per block: the PortAudio callback (as a Numba
cfunc that never takes the GIL), the paced file backend and the null backend. It drains
the control mailbox, takes the newest model targets, blends them by ``ai.amount``, runs
the chain, checks the result, meters it, feeds the analysis ring and records its own
timing. It never allocates, locks, waits or raises: a non-finite result (a fault) is
answered with the sanitised dry input, counted, and the chain is reset.
"""

import time
from typing import NamedTuple

import numpy as np
from numba import njit

from auracore.kernels import jit
from auracore.kernels import params as P
from auracore.kernels.blend import blend_targets
from auracore.kernels.chain import SANE_LIMIT, ChainArrays, ChainState, LimiterArrays, chain_kernel, chain_reset
from auracore.kernels.loudness import LoudnessMeter, MeterArrays, meter_process, meter_reset

from .atomics import fence_release
from .clock import monotonic_ns
from .mailbox import ControlMailbox, TargetMailbox, mailbox_drain, targets_take
from .ring import AnalysisRing, ring_write

# the live engine runs on Numba's dispatch and its cfunc callback, as compiled here: no
# per-block lookup of an ahead-of-time export (kernels/jit.py) in the audio thread
jit.materialize()

# the engine's status: one float64 record the callback writes and readers copy or read by
# field name (``Engine.stats``)
STATUS = np.dtype([(name, "f8") for name in (
    "callbacks",
    "frames",
    "input_underflow",
    "input_overflow",
    "output_underflow",
    "output_overflow",
    "faults",
    "inject_fault",       # set to 1 by a test or the control surface: poison the chain once
    "control_applied",
    "target_updates",
    "last_us",
    "max_us",
    "sanitised",
    "comp_gr_db",         # lowest in the window the callback is filling (callback-owned)
    "limiter_gr_db",
    "loudness_gain_db",
    "wait_us_max",        # Python callback only: time between the block's start and the callback's start
    "reset_meter",        # set to 1 by the control surface: the callback resets integrated/LRA/maxima
    # gain-reduction windows, handed over without losing a block (see take_gain_reduction):
    "gr_asked",           # the reader's request count
    "gr_answered",        # the request the callback answered last (published after the values)
    "gr_comp_taken",      # the answered window: lowest compressor gain, dB
    "gr_lim_taken",       # ... and limiter gain, dB
)])


class EngineArrays(NamedTuple):
    """Everything ``engine_block`` reads and writes besides the audio, by name."""
    status: np.ndarray          # (1,) STATUS
    durations: np.ndarray       # (DURATIONS,) recent callback durations, s ...
    duration_idx: np.ndarray    # ... and how many were written
    params: np.ndarray          # the user's parameter vector (the control mailbox writes it)
    effective: np.ndarray       # what the chain is given: params blended with the models' targets
    ai_targets: np.ndarray      # the models' newest targets ...
    ai_mask: np.ndarray         # ... and which parameters they steer
    tgt_data: np.ndarray        # the target mailbox (seqlock): data ...
    tgt_seq: np.ndarray         # ... sequence
    tgt_scratch: np.ndarray     # ... a copy being read
    tgt_last: np.ndarray        # ... the sequence taken last
    ctl_buf: np.ndarray         # the control mailbox: ring ...
    ctl_idx: np.ndarray         # ... indices
    ring_data: np.ndarray       # the input, for the models
    ring_idx: np.ndarray
    out_ring_data: np.ndarray   # the output, for spectrum displays
    out_ring_idx: np.ndarray
    sample_rate: float
    latency: int
    chain: ChainArrays
    meter: MeterArrays


# PortAudio's status flags
PA_INPUT_UNDERFLOW = 1
PA_INPUT_OVERFLOW = 2
PA_OUTPUT_UNDERFLOW = 4
PA_OUTPUT_OVERFLOW = 8

DURATIONS = 8192

class Engine:
    """All live state for one stream: (sample_rate, channels 1 or 2), initial parameters."""

    def __init__(self, sample_rate: int, channels: int, params: np.ndarray | None = None,
                 ring_frames: int = 1 << 16):
        self.sample_rate = int(sample_rate)
        self.channels = channels
        self.params = (P.default_vector() if params is None else np.asarray(params, dtype=np.float64)).copy()
        self.chain = ChainState(sample_rate, channels, params=self.params)
        self.meter = LoudnessMeter(sample_rate, channels)
        self.effective = self.params.copy()
        self.control = ControlMailbox()
        self.targets = TargetMailbox(P.N_PARAMS)
        self.ai_targets = self.params.copy()
        self.ai_mask = np.zeros(P.N_PARAMS)
        self.target_scratch = np.zeros(P.N_PARAMS)
        self.target_seq = np.zeros(1, dtype=np.int64)
        self.ring = AnalysisRing(ring_frames)          # the input, for the models
        self.out_ring = AnalysisRing(ring_frames)      # the output, for spectrum displays
        self.status = np.zeros(1, dtype=STATUS)
        self.stats = self.status[0]  # the record, read and written by field name
        self.durations = np.zeros(DURATIONS)
        self.duration_idx = np.zeros(1, dtype=np.int64)
        self.started = time.monotonic()
        self._flat = None  # kernel_arrays() as plain tuples, made on the first run_block

    @property
    def latency(self) -> int:
        """Frames from input to output inside the engine (the limiter's lookahead)."""
        return self.chain.latency

    def kernel_arrays(self) -> EngineArrays:
        """engine_block's state argument."""
        return EngineArrays(
            status=self.status, durations=self.durations, duration_idx=self.duration_idx, params=self.params,
            effective=self.effective, ai_targets=self.ai_targets, ai_mask=self.ai_mask,
            tgt_data=self.targets.data, tgt_seq=self.targets.seq, tgt_scratch=self.target_scratch,
            tgt_last=self.target_seq, ctl_buf=self.control.buf, ctl_idx=self.control.idx,
            ring_data=self.ring.data, ring_idx=self.ring.idx, out_ring_data=self.out_ring.data,
            out_ring_idx=self.out_ring.idx, sample_rate=float(self.sample_rate), latency=self.chain.latency,
            chain=self.chain.arrays, meter=self.meter.arrays)

    def run_block(self, inp: np.ndarray, out: np.ndarray, flags: int = 0) -> None:
        """Process one block from Python (file and null backends, tests): inp, out
        (frames, channels) float32."""
        if self._flat is None:
            e = self.kernel_arrays()
            self._flat = (tuple(e[:-2]), tuple(e.chain[:-1]), tuple(e.chain.lim), tuple(e.meter))
        _engine_block_flat(inp, out, flags, *self._flat)

    def callback_times_us(self) -> np.ndarray:
        """The recent callback durations in microseconds (up to DURATIONS of them)."""
        n = int(min(self.duration_idx[0], DURATIONS))
        return self.durations[:n].copy() * 1e6

    def take_gain_reduction(self) -> tuple[float, float]:
        """(compressor, limiter) lowest gain in dB (<= 0) over the window the callback handed
        over since the previous call, and a request for the next window. The callback swaps
        windows at a block boundary, so every block counts in exactly one window (a
        read-and-clear from this side could lose a block the callback wrote in between).
        From one reader thread only. (0, 0) when no block has run since the last call."""
        st = self.stats
        if st["gr_answered"] != st["gr_asked"]:
            return 0.0, 0.0  # the last request is still open: no block since
        comp_db, lim_db = float(st["gr_comp_taken"]), float(st["gr_lim_taken"])
        st["gr_asked"] = st["gr_asked"] + 1.0
        return comp_db, lim_db

    def xruns(self) -> int:
        """Input and output underflows and overflows PortAudio has flagged, in all."""
        st = self.stats
        return int(st["input_underflow"] + st["input_overflow"] + st["output_underflow"] + st["output_overflow"])

    def request_meter_reset(self) -> None:
        """Ask the callback to reset integrated loudness, LRA, maxima and peaks (next block)."""
        self.stats["reset_meter"] = 1.0

    def uptime_s(self) -> float:
        return time.monotonic() - self.started


@njit(cache=True, nogil=True)
def _sanitised_copy(inp, out):
    """out = inp with NaN, Inf and absurd values replaced by 0, as the chain sanitises."""
    for n in range(inp.shape[0]):
        for c in range(inp.shape[1]):
            v = inp[n, c]
            out[n, c] = v if abs(v) <= SANE_LIMIT else 0.0


@njit(cache=True, nogil=True)
def engine_block(inp, out, flags, e):
    """One block: inp, out (frames, channels) float32 (they may be the same array); e:
    EngineArrays."""
    t0 = monotonic_ns()
    st = e.status[0]
    chain = e.chain
    frames = inp.shape[0]
    if flags & PA_INPUT_UNDERFLOW:
        st.input_underflow += 1
    if flags & PA_INPUT_OVERFLOW:
        st.input_overflow += 1
    if flags & PA_OUTPUT_UNDERFLOW:
        st.output_underflow += 1
    if flags & PA_OUTPUT_OVERFLOW:
        st.output_overflow += 1
    st.control_applied += mailbox_drain(e.ctl_buf, e.ctl_idx, e.params)
    if targets_take(e.tgt_data, e.tgt_seq, e.tgt_scratch, e.ai_targets, e.tgt_last):
        st.target_updates += 1
    blend_targets(e.params, e.ai_targets, e.ai_mask, e.effective)
    ring_write(e.ring_data, e.ring_idx, inp)
    for n in range(frames):
        for c in range(inp.shape[1]):
            out[n, c] = inp[n, c]
    if st.inject_fault != 0.0:
        st.inject_fault = 0.0
        chain.lim.delay[:] = np.nan  # NaN in the signal path: the frames in flight turn NaN
    chain_kernel(out, e.effective, e.sample_rate, e.latency, chain)
    bad = False
    for n in range(frames):
        for c in range(out.shape[1]):
            if not np.isfinite(out[n, c]):
                bad = True
    if bad:
        st.faults += 1
        chain_reset(chain)
        chain.ps[:] = e.effective  # restart the glides from the current parameters
        chain.ps_prev[:] = e.effective
        _sanitised_copy(inp, out)
    if st.reset_meter != 0.0:  # only the callback writes the meter: reset it here
        st.reset_meter = 0.0
        meter_reset(e.meter)
    meter_process(out, e.meter)
    ring_write(e.out_ring_data, e.out_ring_idx, out)
    cs = chain.scalars[0]
    st.sanitised = cs.sanitised
    if st.gr_asked != st.gr_answered:
        # the reader asked: hand over the window so far and start a new one with this block
        st.gr_comp_taken = st.comp_gr_db
        st.gr_lim_taken = st.limiter_gr_db
        st.comp_gr_db = 0.0
        st.limiter_gr_db = 0.0
        fence_release()
        st.gr_answered = st.gr_asked
    if cs.comp_gr_db < st.comp_gr_db:
        st.comp_gr_db = cs.comp_gr_db
    cs.comp_gr_db = 0.0
    lim_db = 20.0 * np.log10(max(cs.lim_gr_lin, 1e-12))
    if lim_db < st.limiter_gr_db:
        st.limiter_gr_db = lim_db
    cs.lim_gr_lin = 1.0
    st.loudness_gain_db = cs.loud_db
    st.callbacks += 1
    st.frames += frames
    dt = (monotonic_ns() - t0) * 1e-9
    st.last_us = dt * 1e6
    if dt * 1e6 > st.max_us:
        st.max_us = dt * 1e6
    i = e.duration_idx[0]
    e.durations[i % e.durations.shape[0]] = dt
    e.duration_idx[0] = i + 1


@njit(cache=True, nogil=True)
def _engine_block_flat(inp, out, flags, head, chain_head, chain_lim, meter):
    """``engine_block`` on EngineArrays rebuilt from plain tuples: Numba types a plain tuple
    of arrays in its C fast path, a NamedTuple in Python (2 us more per call)."""
    engine_block(inp, out, flags, EngineArrays(*head, ChainArrays(*chain_head, LimiterArrays(*chain_lim)),
                                               MeterArrays(*meter)))
