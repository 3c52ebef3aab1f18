"""The fingerprint step: two passes over a signal (loudness, then features), arrays or files in blocks."""

import math

import numpy as np

from auracore.errors import AudioFileError

from .features import (FEATURE_NAMES, REFERENCE_LUFS, Fingerprint, FingerprintError, FrameStats, WholeStats,
                       excerpt_frames, excerpt_starts, model_view, _runner)

BLOCK_FRAMES = 1 << 16
MAX_CHANNELS = 8


def _check(x: np.ndarray) -> None:
    if not np.all(np.isfinite(x)):
        raise FingerprintError("the signal holds NaN or infinite samples")
    if x.size and float(np.max(np.abs(x))) > 1e4:
        raise FingerprintError("the signal holds absurd samples (beyond +80 dBFS)")


def _compute(blocks, excerpt, sample_rate: int, channels: int, frames: int) -> Fingerprint:
    """blocks(): a fresh iterator over (n, channels) float64 blocks of the whole signal (called
    twice); excerpt(start, n): (n', channels) frames from start."""
    from auracore.offline.chain import Meter

    if frames < 1:
        raise FingerprintError("the signal is empty")
    meter = Meter(sample_rate, channels)
    for b in blocks():
        _check(b)
        meter.process(b)
    lufs, lra, tp = meter.integrated_lufs, meter.loudness_range_lu, meter.true_peak_dbtp
    if not math.isfinite(lufs):
        raise FingerprintError("the signal is silent (no gated loudness): nothing to fingerprint")
    gain_db = REFERENCE_LUFS - lufs
    gain = 10.0 ** (gain_db / 20.0)
    fs, ws = FrameStats(sample_rate), WholeStats(channels if channels == 2 else 1)
    for b in blocks():
        y = b * gain
        fs.process(y.mean(axis=1))
        ws.process(y if channels == 2 else y.mean(axis=1, keepdims=True) if channels > 2 else y)
    fs.finish()
    values = fs.values()
    values.update(ws.values(tp + gain_db if channels <= 2 else tp + gain_db))
    values["input_lufs"] = lufs
    values["loudness_range_lu"] = lra if math.isfinite(lra) else 0.0
    model_gain = 10.0 ** ((_runner().reference_lufs - lufs) / 20.0)
    n_ex = excerpt_frames(sample_rate)
    excerpts = [excerpt(s, n_ex).mean(axis=1) * model_gain for s in excerpt_starts(frames, n_ex)]
    mv = model_view(excerpts, sample_rate)
    content_class = mv.pop("_class")
    values.update(mv)
    vec = np.array([values[n] for n in FEATURE_NAMES], dtype=np.float64)
    if not np.all(np.isfinite(vec)):
        bad = [n for n, v in zip(FEATURE_NAMES, vec) if not math.isfinite(v)]
        raise FingerprintError(f"the fingerprint came out undefined in {', '.join(bad)}")
    return Fingerprint(values=vec.astype(np.float32), input_lufs=float(lufs), duration_s=frames / sample_rate,
                       sample_rate=int(sample_rate), channels=int(channels), content_class=content_class)


def as_signal(x) -> np.ndarray:
    """x as (frames, channels) float64; FingerprintError for anything else."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise FingerprintError("the signal is not an array of numbers") from None
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or not 1 <= a.shape[1] <= MAX_CHANNELS:
        raise FingerprintError(f"a signal is (frames,) or (frames, 1..{MAX_CHANNELS}), not {a.shape}")
    return a


def check_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or not 8000 <= sample_rate <= 384000:
        raise FingerprintError(f"sample rate {sample_rate!r}: a whole number of Hz from 8000 to 384000")
    return int(sample_rate)


def fingerprint(x, sample_rate: int) -> Fingerprint:
    """The 64-float fingerprint of x: (frames, channels) or (frames,) float at sample_rate Hz
    (see ``FEATURES``). Deterministic; level-invariant except ``input_lufs``. Raises
    FingerprintError for a silent, empty or non-finite signal."""
    a = as_signal(x)
    sr = check_rate(sample_rate)

    def blocks():
        for s in range(0, a.shape[0], BLOCK_FRAMES):
            yield a[s:s + BLOCK_FRAMES]

    return _compute(blocks, lambda s, n: a[s:s + n], sr, a.shape[1], a.shape[0])


def fingerprint_file(path: str) -> Fingerprint:
    """The fingerprint of an audio file, read twice in blocks (memory stays flat). Raises
    AudioFileError (unreadable, truncated) or FingerprintError."""
    from auracore.offline.audio_io import open_input, read_blocks

    with open_input(path, max_channels=MAX_CHANNELS) as f:
        sr, ch, frames = f.samplerate, f.channels, f.frames

        def blocks():
            f.seek(0)
            got = 0
            for b in read_blocks(f, BLOCK_FRAMES, path):
                got += b.shape[0]
                yield b
            if got < frames:
                raise AudioFileError(f"{path}: only {got} of {frames} frames could be read; the file is truncated")

        def excerpt(start, n):
            f.seek(start)
            return f.read(n, dtype="float64", always_2d=True)

        try:
            return _compute(blocks, excerpt, sr, ch, frames)
        except FingerprintError as exc:
            raise FingerprintError(f"{path}: {exc}") from None
