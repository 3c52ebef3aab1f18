"""Separate a file into stem files: streaming read, chunked separation, atomic writes.

Memory stays flat for any length: the input is read in blocks, separated chunk by chunk
(core.ChunkedSeparation) and every stem is written as it comes, to a temporary file beside
its destination; all of them are renamed into place only when the whole input went
through. A failed or interrupted run leaves nothing behind (and removes OUTDIR when it
made it). Existing stem files are refused unless ``force``.
"""

import os
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field

import numpy as np

from auracore.errors import AudioFileError
from auracore.stopping import holding_stops, raise_if_stopped

from ..audio_io import (Quantizer, atomic_output, check_output_path, make_output_folder, open_input, read_blocks,
                        resolve_subtype)
from .core import STEMS4, ChunkedSeparation, check_stems, energy_shares, load_separator

FORMATS = ("wav", "flac")
BLOCK = 1 << 16


@dataclass
class SeparateResult:
    """What ``separate_file`` did (the command's --json)."""

    input: str
    outdir: str
    stems: dict
    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    elapsed_s: float
    realtime_factor: float
    model: str
    fallback: str | None
    energy_share: dict
    sanitised_samples: int = 0
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def stem_paths(outdir: str, stems, fmt: str) -> dict:
    return {s: os.path.join(outdir, f"{s}.{fmt}") for s in stems}


def separate_file(in_path: str, outdir: str, stems=STEMS4, fmt: str = "wav", model=None, force: bool = False,
                  subtype: str | None = None, threads: int | None = None, progress_factory=None, log=None,
                  before_commit=None) -> SeparateResult:
    """Separate in_path into OUTDIR/<stem>.<fmt>, one file per stem at the input's rate,
    channel count and length. model: None (the shipped model, or the DSP fallback with a
    note when its files are missing or bad), "dsp" or a model folder. log(line) gets the
    fallback note. before_commit: called with the stop signals held, just before the stems
    are renamed into place (the command line's ``stopping.finish``: a stop from then on is
    too late to undo them). Raises AudioFileError (input, output) or SeparationError (stems)."""
    if fmt not in FORMATS:
        raise AudioFileError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    stems = check_stems(stems)
    resolve_subtype("FLAC" if fmt == "flac" else "WAV", subtype)
    with open_input(in_path) as f:  # check the input before anything is made
        rate, channels, total = f.samplerate, f.channels, f.frames
    made_dir = make_output_folder(outdir, "the stems")
    try:
        paths = stem_paths(outdir, stems, fmt)
        existing = [p for p in paths.values() if os.path.lexists(p)]
        if existing and not force:
            raise AudioFileError(f"{existing[0]}: exists; nothing was written (use --force to overwrite"
                                 + (f" {len(existing)} stem files)" if len(existing) > 1 else " it)"))
        for p in paths.values():
            check_output_path(p, inputs=(in_path,))
        sep, note = load_separator(model, threads=threads)
        if note and log:
            log(note)
        result = _run(in_path, paths, sep, note, stems, rate, channels, total, fmt, subtype, progress_factory,
                      before_commit)
    except BaseException:
        if made_dir:
            try:
                os.rmdir(outdir)
            except OSError:
                pass
        raise
    result.outdir = outdir
    return result


def _run(in_path, paths, sep, note, stems, rate, channels, total, fmt, subtype, progress_factory, before_commit=None):
    started = time.perf_counter()
    run = ChunkedSeparation(sep, rate, channels, stems)
    energy = {s: 0.0 for s in stems}
    sanitised = 0
    frames = 0
    written = 0
    bar = progress_factory(total, "separate") if progress_factory else None
    wav_sub = subtype
    hold = ExitStack()
    try:
        with hold, ExitStack() as stack:
            outs = {s: stack.enter_context(atomic_output(p, rate, channels, wav_sub, inputs=(in_path,)))
                    for s, p in paths.items()}
            quant = {s: Quantizer(resolve_subtype("FLAC" if fmt == "flac" else "WAV", subtype), seed=0x5EED + i)
                     for i, s in enumerate(stems)}

            def write(pairs):
                nonlocal written
                for xb, sb in pairs:
                    for s, v in sb.items():
                        energy[s] += float(np.sum(v * v))
                        outs[s].write(quant[s].apply(v)[0])
                    written += xb.shape[0]

            with open_input(in_path) as f:
                for block in read_blocks(f, BLOCK, in_path):
                    bad = ~np.isfinite(block)
                    if bad.any():
                        sanitised += int(bad.sum())
                        block = np.where(bad, 0.0, block)
                    frames += block.shape[0]
                    write(run.feed(block))
                    if bar is not None:
                        bar.update(block.shape[0])
                if frames < f.frames:
                    raise AudioFileError(f"{in_path}: only {frames} of {f.frames} frames could be read; "
                                         "the file is truncated")
            write(run.finish())
            if written != frames:
                raise AudioFileError(f"{in_path}: internal length mismatch ({written} of {frames} frames)")
            # the stems are renamed into place as the stack closes: all of them with the stops held
            # (a stop between two renames once left some; the fuzz suite), and after
            # before_commit a stop is too late to undo them
            hold.enter_context(holding_stops())
            raise_if_stopped()
            if before_commit is not None:
                before_commit()
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - started
    duration = frames / rate
    warnings = []
    if sanitised:
        warnings.append(f"{sanitised} NaN/Inf input samples were replaced by 0")
    if getattr(sep, "name", "") == "dsp" and ({"piano", "guitar"} & set(stems)):
        warnings.append("the DSP fallback cannot tell piano or guitar apart: those stems are silent")
    return SeparateResult(
        input=in_path, outdir="", stems=dict(paths), sample_rate=rate, channels=channels, frames=frames,
        duration_s=round(duration, 6), elapsed_s=round(elapsed, 3),
        realtime_factor=round(duration / max(elapsed, 1e-9), 1), model=sep.name, fallback=note,
        energy_share={s: round(v, 6) for s, v in energy_shares(energy).items()}, sanitised_samples=sanitised,
        warnings=warnings)
