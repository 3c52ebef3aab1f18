"""The chain and the meter on arrays: ``Chain`` and ``Meter``, the Python API's engine.

``Chain`` runs the very kernels ``auracore render`` and the live daemon run
(``kernels.chain.process``), so for the same input and parameters it gives the same
samples; ``Meter`` is the EBU R128 meter (``kernels.loudness.LoudnessMeter``) they use.
"""

import numpy as np

from auracore.errors import AudioArrayError
from auracore.kernels.chain import ChainState, process
from auracore.kernels.loudness import LoudnessMeter
from auracore.realtime.latency import LatencyTrim, tail_blocks

from .audio_io import MAX_RATE_HZ, MIN_RATE_HZ
from .params import Params

BLOCK_FRAMES = 1024


def as_audio(x, channels: int, what: str = "audio") -> np.ndarray:
    """x as a (frames, channels) float64 copy; (frames,) is taken as mono. AudioArrayError
    for another shape, a channel count that differs, or a dtype that is not float."""
    a = np.asarray(x)
    if a.dtype.kind != "f":
        raise AudioArrayError(f"{what}: float samples in [-1, 1] expected, not dtype {a.dtype}")
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] != channels:
        raise AudioArrayError(f"{what}: shape {np.shape(x)}; expected (frames, {channels})")
    return np.array(a, dtype=np.float64)


def check_rate(sample_rate) -> int:
    """The sample rate as an int; AudioArrayError outside 8-192 kHz."""
    if not (isinstance(sample_rate, (int, float, np.integer, np.floating)) and float(sample_rate).is_integer()
            and MIN_RATE_HZ <= sample_rate <= MAX_RATE_HZ):
        raise AudioArrayError(f"sample rate {sample_rate!r}: use a whole number of Hz from {MIN_RATE_HZ} to {MAX_RATE_HZ}")
    return int(sample_rate)


def _params(params) -> Params:
    if params is None:
        return Params()
    if isinstance(params, Params):
        return params.copy()
    if isinstance(params, dict):
        return Params(params)
    if isinstance(params, str):
        return Params.preset(params)
    return Params.from_vector(params)


class Chain:
    """The mastering chain for one stream: params (a Params, a preset name, {id: value} or
    None for the defaults), sample_rate in Hz, channels 1 or 2.

    ``chain(x)`` masters a whole array x: (frames, channels) or (frames,) float32/float64
    from a fresh state and returns it aligned with the input, same length and dtype (what
    ``auracore render`` writes). ``chain.process(block)`` streams: each call returns the
    block's output, delayed by ``chain.latency`` frames. Setting ``chain.params`` mid-stream
    glides to the new values exactly as the live daemon does (20 ms one-poles on a
    128-frame grid), whatever the block sizes.
    """

    def __init__(self, params=None, sample_rate: int = 48000, channels: int = 2):
        if channels not in (1, 2):
            raise AudioArrayError(f"the chain takes 1 or 2 channels, not {channels}")
        self.sample_rate = check_rate(sample_rate)
        self.channels = channels
        self._params = _params(params)
        self._vector = self._params.vector
        self._state = ChainState(self.sample_rate, channels, params=self._vector)

    @property
    def latency(self) -> int:
        """Frames by which process() output lags its input (the limiter's lookahead)."""
        return self._state.latency

    @property
    def params(self) -> Params:
        """The parameters the chain glides toward (a copy; assign to change them)."""
        return self._params.copy()

    @params.setter
    def params(self, value) -> None:
        self._params = _params(value)
        self._vector[:] = self._params.vector  # the kernel reads this vector: the glides start at the next tick

    @property
    def sanitised_samples(self) -> int:
        """NaN, Inf or absurd input samples replaced by 0 since the last reset."""
        return self._state.sanitised_samples

    def reset(self) -> None:
        """Start a new stream: every filter, detector and glide from rest at the current params."""
        self._state = ChainState(self.sample_rate, self.channels, params=self._vector)

    def process(self, block) -> np.ndarray:
        """One block of the stream (any length): the processed block, same shape and dtype,
        delayed by ``latency`` frames."""
        x = as_audio(block, self.channels, "block")
        process(x, self._state, self._vector)
        return x.astype(np.asarray(block).dtype, copy=False).reshape(np.shape(block))

    def __call__(self, x) -> np.ndarray:
        """x mastered as a stream of its own, aligned with x (latency removed), same shape and dtype."""
        self.reset()
        a = as_audio(x, self.channels)
        parts = []
        trim = LatencyTrim(self.latency, parts.append)
        for start in range(0, a.shape[0], BLOCK_FRAMES):
            block = a[start:start + BLOCK_FRAMES]
            process(block, self._state, self._vector)
            trim(block)
        for tail in tail_blocks(self.latency, BLOCK_FRAMES, self.channels):
            process(tail, self._state, self._vector)
            trim(tail)
        out = np.concatenate(parts, axis=0) if parts else np.zeros((0, self.channels))
        return out.astype(np.asarray(x).dtype, copy=False).reshape(np.shape(x))


class Meter:
    """EBU R128 / BS.1770-4 loudness, loudness range and 4x true peak, fed block by block:
    sample_rate in Hz, channels 1 to 8 (5.1 weighs LFE 0 and surrounds 1.41). Readings in
    LUFS, LU, dBTP and dBFS; -inf while nothing was measured (silence)."""

    def __init__(self, sample_rate: int, channels: int):
        if not 1 <= channels <= 8:
            raise AudioArrayError(f"the meter takes 1 to 8 channels, not {channels}")
        self.sample_rate = check_rate(sample_rate)
        self.channels = channels
        self._meter = LoudnessMeter(self.sample_rate, channels)

    def process(self, block) -> None:
        """Feed block: (frames, channels) or (frames,) float."""
        self._meter.process(as_audio(block, self.channels, "block"))

    @property
    def integrated_lufs(self) -> float:
        return self._meter.integrated_lufs

    @property
    def loudness_range_lu(self) -> float:
        return self._meter.loudness_range_lu

    @property
    def momentary_lufs(self) -> float:
        """The last 400 ms."""
        return self._meter.momentary_lufs

    @property
    def short_term_lufs(self) -> float:
        """The last 3 s."""
        return self._meter.short_term_lufs

    @property
    def true_peak_dbtp(self) -> float:
        """The largest true peak over all channels so far."""
        return float(np.max(self._meter.true_peak_dbtp))

    @property
    def true_peak_dbtp_per_channel(self) -> list[float]:
        return [float(v) for v in self._meter.true_peak_dbtp]

    @property
    def sample_peak_dbfs(self) -> float:
        return float(np.max(self._meter.sample_peak_dbfs))

    def readings(self) -> dict:
        """Every reading as plain floats (lists per channel)."""
        return self._meter.readings()
