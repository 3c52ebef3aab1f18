"""Loudness normalisation of files in two passes, true-peak safe: a pure gain, or the chain's limiter, or a refusal."""

import math
from dataclasses import asdict, dataclass

from auracore.errors import AuraCoreError
from auracore.offline.audio_io import (Quantizer, atomic_output, check_output_path, open_input, output_format,
                                       read_blocks, resolve_subtype)

BLOCK_FRAMES = 1 << 16
ON_PEAK = ("limit", "refuse")
MIN_LUFS, MAX_LUFS = -40.0, -5.0   # the range of loudness.target_lufs, which the limit path uses
MIN_CEILING, MAX_CEILING = -20.0, 0.0


class NormalizeError(AuraCoreError, ValueError):
    """A file that cannot be normalised as asked (silent, or over the ceiling with on_peak=refuse)."""


@dataclass(frozen=True)
class Normalized:
    """What normalize did to one file: loudness (LUFS) and true peak (dBTP) before and after."""

    path: str
    output: str
    input_lufs: float
    input_true_peak_dbtp: float
    gain_db: float
    limited: bool
    output_lufs: float
    output_true_peak_dbtp: float
    target_lufs: float
    ceiling_dbtp: float

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _measure(path: str):
    from auracore.offline.chain import Meter

    with open_input(path) as f:
        m = Meter(f.samplerate, f.channels)
        got = 0
        for b in read_blocks(f, BLOCK_FRAMES, path):
            m.process(b)
            got += b.shape[0]
        if got < f.frames:
            raise NormalizeError(f"{path}: only {got} of {f.frames} frames could be read; the file is truncated")
    return m.integrated_lufs, m.true_peak_dbtp


def check_target(lufs: float, ceiling: float) -> None:
    if not (isinstance(lufs, (int, float)) and MIN_LUFS <= lufs <= MAX_LUFS):
        raise NormalizeError(f"target {lufs!r} LUFS: use {MIN_LUFS:g} to {MAX_LUFS:g}")
    if not (isinstance(ceiling, (int, float)) and MIN_CEILING <= ceiling <= MAX_CEILING):
        raise NormalizeError(f"ceiling {ceiling!r} dBTP: use {MIN_CEILING:g} to {MAX_CEILING:g}")


def normalize_file(in_path: str, out_path: str, lufs: float = -18.0, ceiling: float = -1.0,
                   on_peak: str = "limit", subtype: str | None = None) -> Normalized:
    """Normalise in_path to lufs (LUFS) into out_path, its true peak at or under ceiling
    (dBTP). Pass 1 measures the loudness and true peak; when the gain keeps the true peak
    under the ceiling, pass 2 applies that gain alone. Otherwise on_peak="limit" renders
    through the chain's neutral preset with its true-peak limiter at the ceiling, the output
    gain set in two passes so the result lands on lufs (render --two-pass), and
    on_peak="refuse" raises NormalizeError and writes nothing. The output is written
    atomically and is never an input. subtype: PCM_16, PCM_24 or FLOAT (TPDF dither when
    cutting word length). Raises AudioFileError or NormalizeError."""
    check_target(lufs, ceiling)
    if on_peak not in ON_PEAK:
        raise NormalizeError(f"on_peak {on_peak!r}: use limit or refuse")
    check_output_path(out_path, inputs=(in_path,))
    lufs_in, tp_in = _measure(in_path)
    if not math.isfinite(lufs_in):
        raise NormalizeError(f"{in_path}: the file is silent (no gated loudness): there is nothing to normalise")
    gain_db = lufs - lufs_in
    limited = tp_in + gain_db > ceiling
    if limited and on_peak == "refuse":
        raise NormalizeError(f"{in_path}: at {lufs:g} LUFS (a gain of {gain_db:+.2f} dB) the true peak would reach "
                             f"{tp_in + gain_db:+.2f} dBTP, over the {ceiling:g} dBTP ceiling; refused "
                             f"(--on-peak limit limits it, or choose a lower target)")
    if limited:
        from auracore.offline.params import Params
        from auracore.offline.render import render_file

        params = Params.preset("neutral").set("limiter.ceiling_dbtp", ceiling).set("loudness.target_lufs", lufs)
        r = render_file(in_path, out_path, params, blocksize=BLOCK_FRAMES, subtype=subtype, two_pass=True)
        return Normalized(in_path, out_path, lufs_in, tp_in, float(r.two_pass_gain_db or 0.0), True,
                          float(r.output_integrated_lufs), float(r.output_true_peak_dbtp), lufs, ceiling)
    from auracore.offline.chain import Meter

    gain = 10.0 ** (gain_db / 20.0)
    quantizer = Quantizer(resolve_subtype(output_format(out_path), subtype))
    with open_input(in_path) as f, atomic_output(out_path, f.samplerate, f.channels, subtype, inputs=(in_path,)) as out:
        m = Meter(f.samplerate, f.channels)
        for b in read_blocks(f, BLOCK_FRAMES, in_path):
            data, value = quantizer.apply(b * gain)
            m.process(value)
            out.write(data)
    return Normalized(in_path, out_path, lufs_in, tp_in, gain_db, False, m.integrated_lufs, m.true_peak_dbtp,
                      lufs, ceiling)
