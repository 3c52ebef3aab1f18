"""Offline render: stream a file through the mastering chain, block by block, to a new file.

The output is the live engine's output with the limiter's latency removed (the first
``latency`` frames are dropped and the tail is flushed with zeros), so it lines up with
the input sample for sample and has the same length. Memory stays flat: the file is
read, processed and written in blocks.
"""

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from auracore.kernels import params as P
from auracore.kernels.blend import blend_targets
from auracore.kernels.chain import ChainState, process
from auracore.kernels.loudness import LoudnessMeter
from auracore.realtime.latency import LatencyTrim, tail_blocks

from .analyze import finite_or_none
from .pipeline import pipelined
from .audio_io import (AudioFileError, Quantizer, atomic_output, check_output_path, open_input, output_format,
                       read_blocks, resolve_subtype)

TWO_PASS_TOLERANCE_LU = 0.03
TWO_PASS_MAX_PASSES = 6
READ_FRAMES = 1 << 16
F32_MAX = float(np.finfo(np.float32).max)


@dataclass
class RenderResult:
    """What a render measured: loudness in LUFS, peaks in dBTP, times in seconds."""

    input: str
    output: str
    sample_rate: int
    channels: int
    duration_s: float
    input_integrated_lufs: float | None
    input_true_peak_dbtp: float | None
    output_integrated_lufs: float | None
    output_true_peak_dbtp: float | None
    output_loudness_range_lu: float | None
    latency_samples: int
    sanitised_samples: int
    elapsed_s: float
    realtime_factor: float
    two_pass_gain_db: float | None = None
    measure_passes: int = 0
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class _AiSteering:
    """render --ai: the models hear the input in 1024-frame blocks (mono, with the side of a
    stereo file beside it) and their targets take effect from the next 1024-frame boundary,
    so the result depends on the stream only (not on --blocksize), and it is the same every
    run."""

    def __init__(self, steering, params: np.ndarray):
        self.steering = steering
        self.params = params
        self.block = steering.runner.block
        self.buf = np.zeros(self.block, dtype=np.float32)
        self.side = np.zeros(self.block, dtype=np.float32)   # (left - right) / 2 of a stereo file
        self.fill = 0
        self.targets = params.copy()
        self.mask = np.zeros_like(params)
        self.mask[steering.indices] = 1.0
        self.effective = params.copy()
        blend_targets(params, self.targets, self.mask, self.effective)

    def segments(self, block: np.ndarray):
        """Split block at analysis-block boundaries: yields pieces to process with
        self.effective, feeding the models as it goes."""
        start = 0
        while start < block.shape[0]:
            n = min(self.block - self.fill, block.shape[0] - start)
            piece = block[start:start + n]
            # before the chain changes the piece in place; held within float32's range (a
            # file of huge float samples would overflow the models' float32 buffer)
            mono = np.clip(piece.mean(axis=1), -F32_MAX, F32_MAX)
            stereo = piece.shape[1] == 2
            if stereo:
                side = np.clip(0.5 * (piece[:, 0] - piece[:, 1]), -F32_MAX, F32_MAX)
            yield piece
            self.buf[self.fill:self.fill + n] = mono
            if stereo:
                self.side[self.fill:self.fill + n] = side
            self.fill += n
            start += n
            if self.fill == self.block:
                self.fill = 0
                self.steering.target_lufs = float(self.params[P.P_LOUD_TARGET])
                self.steering.push(self.buf, self.side if stereo else None)
                self.steering.write_targets(self.targets)
                blend_targets(self.params, self.targets, self.mask, self.effective)


def _run(path: str, params: np.ndarray, blocksize: int, sink, progress,
         steering=None) -> tuple[ChainState, int, LoudnessMeter]:
    """Stream the file at path through a fresh chain; sink(block) gets the aligned output.
    steering: a models.runtime.Steering for render --ai, or None.

    Returns (chain state, frames, input meter).
    """
    with open_input(path) as f:
        state = ChainState(f.samplerate, f.channels, params=params)
        in_meter = LoudnessMeter(f.samplerate, f.channels)
        ai = _AiSteering(steering, params) if steering is not None else None
        trim = LatencyTrim(state.latency, sink)
        frames = 0

        def measured(chunk):  # the input meter sees the chunk before the chain works on it in place
            in_meter.process(chunk)
            return chunk

        def chained(chunk):
            if ai is None:  # the same samples for any block size: one call per chunk (12900 calls
                process(chunk, state, params)  # of 1024 frames for 5 minutes cost 0.2 s of CPU)
                return chunk
            for start in range(0, chunk.shape[0], blocksize):  # the models steer block by block
                for piece in ai.segments(chunk[start:start + blocksize]):
                    process(piece, state, ai.effective)
            return chunk

        # read in large chunks (libsndfile's per-call cost), each chained whole (in blocksize
        # blocks when the models steer); reading and the input meter, the chain, and the sink
        # each on a thread of their own
        for chunk in pipelined(read_blocks(f, max(blocksize, READ_FRAMES), path), measured, chained):
            frames += chunk.shape[0]
            if progress is not None:
                progress.update(chunk.shape[0])
            trim(chunk)
        # flush the limiter's lookahead: its last `latency` frames are still inside
        for part in tail_blocks(state.latency, blocksize, f.channels):
            process(part, state, params if ai is None else ai.effective)
            trim(part)
        if frames < f.frames:
            raise AudioFileError(f"{path}: only {frames} of {f.frames} frames could be read; the file is truncated")
    return state, frames, in_meter


def _measure(path: str, params: np.ndarray, blocksize: int, progress, make_steering) -> float:
    """Integrated loudness (LUFS) of the chain's output for these parameters, nothing written."""
    with open_input(path) as f:
        meter = LoudnessMeter(f.samplerate, f.channels, true_peak=False)
    _run(path, params, blocksize, meter.process, progress, make_steering())
    return meter.integrated_lufs


def _two_pass_gain(in_path: str, params: np.ndarray, blocksize: int, bar, make_steering) -> tuple[float, int, list]:
    """Measure the chain's output and correct output.gain_db until the integrated loudness
    lands on loudness.target_lufs (TWO_PASS_TOLERANCE_LU); params has loudness.auto off.
    Returns (gain_db to add to output.gain_db, measuring passes, warnings)."""
    target = params[P.P_LOUD_TARGET]
    base = params[P.P_OUTPUT_GAIN]
    most = P.lookup("output.gain_db").maximum
    gain_db, warnings, error = 0.0, [], 0.0
    for passes in range(1, TWO_PASS_MAX_PASSES + 1):
        params[P.P_OUTPUT_GAIN] = base + gain_db
        b = bar(f"measure {passes}")
        try:
            measured = _measure(in_path, params, blocksize, b, make_steering)
        finally:
            if b:
                b.close()
        if not math.isfinite(measured):
            warnings.append("the input is silent: --two-pass left the gain alone")
            return 0.0, passes, warnings
        error = target - measured
        if abs(error) <= TWO_PASS_TOLERANCE_LU:
            return gain_db, passes, warnings
        gain_db += error
        if base + gain_db > most:
            gain_db = most - base
            warnings.append("the target needs more gain than output.gain_db allows")
    warnings.append(f"--two-pass stopped {abs(error):.2f} LU from the target: the limiter "
                    "is taking the loudness (lower the target or raise the ceiling)")
    return gain_db, TWO_PASS_MAX_PASSES, warnings


def render_file(in_path: str, out_path: str, params, blocksize: int = 1024,
                subtype: str | None = None, two_pass: bool = False, progress_factory=None,
                ai_runner=None) -> RenderResult:
    """Render in_path to out_path through the chain with params (an auracore.Params, or
    the registry's (N_PARAMS,) vector).

    blocksize: frames per block of the models' steering (ai_runner) and of the last flush;
    the output does not depend on it, and without the models the chain takes each read
    chunk (64k frames or blocksize) in one call. subtype: PCM_16,
    PCM_24 or FLOAT (TPDF dither when cutting word length). two_pass: measure first, then
    set the output gain so that the result lands on loudness.target_lufs within 0.1 LU
    (the live loudness follower is switched off; the limiter still holds the ceiling).
    progress_factory(total_frames, label) returns an object with update(n) and close(),
    or None for silence. ai_runner: a models.runtime.ModelRunner to steer the chain with
    (ai.enabled and ai.amount in params decide how much), run synchronously per block.
    Raises AudioFileError for unreadable input or unwritable output.
    """
    if blocksize < 1 or blocksize > 1 << 20:
        raise AudioFileError(f"block size {blocksize}: use 1 to 1048576 frames")
    check_output_path(out_path, inputs=(in_path,))  # before any work: never the input, by any name
    with open_input(in_path) as f:
        sample_rate, channels, total = f.samplerate, f.channels, f.frames

    def bar(label):
        return progress_factory(total, label) if progress_factory else None

    vector = np.array(params, dtype=np.float64)
    if ai_runner is not None:
        from auracore.models.runtime import Steering

        def make_steering():
            return Steering(ai_runner)
    else:
        def make_steering():
            return None
    started = time.perf_counter()
    gain_db, passes, warnings = None, 0, []
    if two_pass:
        vector[P.P_LOUD_AUTO] = 0.0
        gain_db, passes, warnings = _two_pass_gain(in_path, vector.copy(), blocksize, bar, make_steering)
        vector[P.P_OUTPUT_GAIN] += gain_db
    state, frames, in_meter, out_meter = _write(in_path, out_path, vector, blocksize, subtype, sample_rate,
                                                channels, bar("render"), make_steering())
    elapsed = time.perf_counter() - started
    duration = frames / sample_rate
    return RenderResult(
        input=in_path, output=out_path, sample_rate=sample_rate, channels=channels,
        duration_s=round(duration, 6),
        input_integrated_lufs=finite_or_none(in_meter.integrated_lufs, 3),
        input_true_peak_dbtp=finite_or_none(float(np.max(in_meter.true_peak_dbtp)), 3),
        output_integrated_lufs=finite_or_none(out_meter.integrated_lufs, 3),
        output_true_peak_dbtp=finite_or_none(float(np.max(out_meter.true_peak_dbtp)), 3),
        output_loudness_range_lu=finite_or_none(out_meter.loudness_range_lu, 3),
        latency_samples=state.latency, sanitised_samples=state.sanitised_samples,
        elapsed_s=round(elapsed, 3), realtime_factor=round(duration / max(elapsed, 1e-9), 1),
        two_pass_gain_db=None if gain_db is None else round(gain_db, 3),
        measure_passes=passes, warnings=warnings)


def _write(in_path, out_path, vector, blocksize, subtype, sample_rate, channels, bar, steering):
    """The writing pass: the chain's output quantised and metered into out_path, atomically.
    Returns (chain state, frames, input meter, output meter)."""
    out_meter = LoudnessMeter(sample_rate, channels)
    quantizer = Quantizer(resolve_subtype(output_format(out_path), subtype))
    try:
        with atomic_output(out_path, sample_rate, channels, subtype, inputs=(in_path,)) as out:
            def sink(block):
                data, value = quantizer.apply(block)
                out_meter.process(value)
                out.write(data)

            state, frames, in_meter = _run(in_path, vector, blocksize, sink, bar, steering)
    finally:
        if bar:
            bar.close()
    return state, frames, in_meter, out_meter
