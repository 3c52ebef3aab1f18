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

import numpy as np
from numba import njit

from auracore.kernels import params as P
from auracore.kernels.blend import blend_targets
from auracore.kernels.chain import (A_C, A_LIM_DELAY, A_PS, A_PS_PREV, A_S, C_SANITISED, S_COMP_GR_DB, S_LIM_GR_LIN,
                                    S_LOUD_DB, SANE_LIMIT, ChainState, chain_kernel, chain_reset)
from auracore.kernels.loudness import LoudnessMeter, meter_process, meter_reset

from .atomics import fence_release
from .clock import monotonic_ns
from .mailbox import ControlMailbox, TargetMailbox, mailbox_drain, targets_take
from .ring import AnalysisRing, ring_write

# status slots (float64 record the callback writes and readers copy)
ST_CALLBACKS = 0
ST_FRAMES = 1
ST_INPUT_UNDERFLOW = 2
ST_INPUT_OVERFLOW = 3
ST_OUTPUT_UNDERFLOW = 4
ST_OUTPUT_OVERFLOW = 5
ST_FAULTS = 6
ST_INJECT_FAULT = 7        # set to 1 by a test or the control surface: poison the chain once
ST_CONTROL_APPLIED = 8
ST_TARGET_UPDATES = 9
ST_LAST_US = 10
ST_MAX_US = 11
ST_SANITISED = 12
ST_COMP_GR_DB = 13         # lowest in the window the callback is filling (callback-owned)
ST_LIMITER_GR_DB = 14
ST_LOUDNESS_GAIN_DB = 15
ST_WAIT_US_MAX = 16        # Python callback only: time between the block's start and the callback's start
ST_RESET_METER = 17        # set to 1 by the control surface: the callback resets integrated/LRA/maxima
# gain-reduction windows, handed over without losing a block (see take_gain_reduction):
ST_GR_ASKED = 18           # the reader's request count
ST_GR_ANSWERED = 19        # the request the callback answered last (published after the values)
ST_GR_COMP_TAKEN = 20      # the answered window: lowest compressor gain, dB
ST_GR_LIM_TAKEN = 21       # ... and limiter gain, dB
N_STATUS = 22

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
        self.status = np.zeros(N_STATUS)
        self.durations = np.zeros(DURATIONS)
        self.duration_idx = np.zeros(1, dtype=np.int64)
        self.started = time.monotonic()

    @property
    def latency(self) -> int:
        """Frames from input to output inside the engine (the limiter's lookahead)."""
        return self.chain.latency

    def kernel_args(self) -> tuple:
        """engine_block's arguments after (inp, out, flags), in order."""
        return (self.status, self.durations, self.duration_idx, self.params, self.effective,
                self.ai_targets, self.ai_mask, self.targets.data, self.targets.seq, self.target_scratch,
                self.target_seq, self.control.buf, self.control.idx, self.ring.data, self.ring.idx,
                self.out_ring.data, self.out_ring.idx,
                float(self.sample_rate), self.chain.latency, self.chain.arrays, self.meter.arrays)

    def run_block(self, inp: np.ndarray, out: np.ndarray, flags: int = 0) -> None:
        """Process one block from Python (file and null backends, tests): inp, out
        (frames, channels) float32."""
        engine_block(inp, out, flags, *self.kernel_args())

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
        st = self.status
        if st[ST_GR_ANSWERED] != st[ST_GR_ASKED]:
            return 0.0, 0.0  # the last request is still open: no block since
        comp_db, lim_db = float(st[ST_GR_COMP_TAKEN]), float(st[ST_GR_LIM_TAKEN])
        st[ST_GR_ASKED] = st[ST_GR_ASKED] + 1.0
        return comp_db, lim_db

    def xruns(self) -> int:
        """Input and output underflows and overflows PortAudio has flagged, in all."""
        st = self.status
        return int(st[ST_INPUT_UNDERFLOW] + st[ST_INPUT_OVERFLOW] + st[ST_OUTPUT_UNDERFLOW] + st[ST_OUTPUT_OVERFLOW])

    def request_meter_reset(self) -> None:
        """Ask the callback to reset integrated loudness, LRA, maxima and peaks (next block)."""
        self.status[ST_RESET_METER] = 1.0

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
def engine_block(inp, out, flags, status, durations, duration_idx, params, effective, ai_targets,
                 ai_mask, tgt_data, tgt_seq, tgt_scratch, tgt_last, ctl_buf, ctl_idx, ring_data, ring_idx,
                 out_ring_data, out_ring_idx, sample_rate, latency, chain_arrays, meter_arrays):
    """One block: inp, out (frames, channels) float32 (they may be the same array)."""
    t0 = monotonic_ns()
    frames = inp.shape[0]
    if flags & PA_INPUT_UNDERFLOW:
        status[ST_INPUT_UNDERFLOW] += 1
    if flags & PA_INPUT_OVERFLOW:
        status[ST_INPUT_OVERFLOW] += 1
    if flags & PA_OUTPUT_UNDERFLOW:
        status[ST_OUTPUT_UNDERFLOW] += 1
    if flags & PA_OUTPUT_OVERFLOW:
        status[ST_OUTPUT_OVERFLOW] += 1
    status[ST_CONTROL_APPLIED] += mailbox_drain(ctl_buf, ctl_idx, params)
    if targets_take(tgt_data, tgt_seq, tgt_scratch, ai_targets, tgt_last):
        status[ST_TARGET_UPDATES] += 1
    blend_targets(params, ai_targets, ai_mask, effective)
    ring_write(ring_data, ring_idx, inp)
    for n in range(frames):
        for c in range(inp.shape[1]):
            out[n, c] = inp[n, c]
    if status[ST_INJECT_FAULT] != 0.0:
        status[ST_INJECT_FAULT] = 0.0
        chain_arrays[A_LIM_DELAY][:] = np.nan  # NaN in the signal path: the frames in flight turn NaN
    chain_kernel(out, effective, sample_rate, latency, *chain_arrays)
    bad = False
    for n in range(frames):
        for c in range(out.shape[1]):
            if not np.isfinite(out[n, c]):
                bad = True
    if bad:
        status[ST_FAULTS] += 1
        chain_reset(out, effective, sample_rate, latency, *chain_arrays)
        chain_arrays[A_PS][:] = effective  # restart the glides from the current parameters
        chain_arrays[A_PS_PREV][:] = effective
        _sanitised_copy(inp, out)
    if status[ST_RESET_METER] != 0.0:  # only the callback writes the meter: reset it here
        status[ST_RESET_METER] = 0.0
        meter_reset(*meter_arrays)
    meter_process(out, *meter_arrays)
    ring_write(out_ring_data, out_ring_idx, out)
    chain_s = chain_arrays[A_S]
    status[ST_SANITISED] = chain_arrays[A_C][C_SANITISED]
    if status[ST_GR_ASKED] != status[ST_GR_ANSWERED]:
        # the reader asked: hand over the window so far and start a new one with this block
        status[ST_GR_COMP_TAKEN] = status[ST_COMP_GR_DB]
        status[ST_GR_LIM_TAKEN] = status[ST_LIMITER_GR_DB]
        status[ST_COMP_GR_DB] = 0.0
        status[ST_LIMITER_GR_DB] = 0.0
        fence_release()
        status[ST_GR_ANSWERED] = status[ST_GR_ASKED]
    if chain_s[S_COMP_GR_DB] < status[ST_COMP_GR_DB]:
        status[ST_COMP_GR_DB] = chain_s[S_COMP_GR_DB]
    chain_s[S_COMP_GR_DB] = 0.0
    lim_db = 20.0 * np.log10(max(chain_s[S_LIM_GR_LIN], 1e-12))
    if lim_db < status[ST_LIMITER_GR_DB]:
        status[ST_LIMITER_GR_DB] = lim_db
    chain_s[S_LIM_GR_LIN] = 1.0
    status[ST_LOUDNESS_GAIN_DB] = chain_s[S_LOUD_DB]
    status[ST_CALLBACKS] += 1
    status[ST_FRAMES] += frames
    dt = (monotonic_ns() - t0) * 1e-9
    status[ST_LAST_US] = dt * 1e6
    if dt * 1e6 > status[ST_MAX_US]:
        status[ST_MAX_US] = dt * 1e6
    i = duration_idx[0]
    durations[i % durations.shape[0]] = dt
    duration_idx[0] = i + 1
