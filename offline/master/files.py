"""Mastering by reference on files, streamed: measure the input and the reference in blocks, then render in blocks."""

import os

import numpy as np

from auracore.errors import AudioFileError
from auracore.offline.audio_io import (Quantizer, atomic_output, open_input, output_format, read_blocks,
                                       resolve_subtype)

from .core import BLOCK_FRAMES, MATCH_ALL, Mastered, OutputTally, Renderer, _result, check_amount, check_match, make_plan
from .measure import Measurer


def _same(a: str, b: str) -> bool:
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def _measure_file(path: str, keep_excerpt: bool, bar) -> "Measurement":
    with open_input(path) as f:
        m = Measurer(f.samplerate, f.channels, f.frames, keep_excerpt)
        frames = 0
        for block in read_blocks(f, BLOCK_FRAMES, path):
            m.process(block)
            frames += block.shape[0]
            if bar is not None:
                bar.update(block.shape[0])
        if frames < f.frames:
            raise AudioFileError(f"{path}: only {frames} of {f.frames} frames could be read; the file is truncated")
    return m.finish()


def _frames(path: str) -> int:
    with open_input(path) as f:
        return f.frames


def master_file(in_path: str, out_path: str, reference_path: str, amount: float = 1.0, match=MATCH_ALL,
                subtype: str | None = None, progress_factory=None) -> Mastered:
    """Master in_path to sound like reference_path, into out_path (format by extension;
    subtype PCM_16, PCM_24 or FLOAT). Memory stays flat: both files are read in blocks, and
    the output is written in blocks, atomically, never over an input. The result's audio is
    None. progress_factory(total_frames, label) -> bar with update(n)/close(), or None.
    Raises AudioFileError (unreadable or silent input or reference, unwritable output) or
    ParamError (amount, match)."""
    amount = check_amount(amount)
    match = check_match(match)
    for other, what in ((in_path, "input"), (reference_path, "reference")):
        if _same(other, out_path):
            raise AudioFileError(f"{out_path}: refusing to overwrite the {what}; choose another output path")

    def run(path, label, fn):
        bar = progress_factory(_frames(path), label) if progress_factory else None
        try:
            return fn(bar)
        finally:
            if bar is not None:
                bar.close()

    inp = run(in_path, "measure input", lambda bar: _measure_file(in_path, True, bar))
    ref = run(reference_path, "measure reference", lambda bar: _measure_file(reference_path, False, bar))

    def whole_lufs(p):
        def check(bar):
            with open_input(in_path) as f:
                tally = OutputTally(f.samplerate, f.channels)
                r = Renderer(p, f.samplerate, f.channels)
                for block in read_blocks(f, BLOCK_FRAMES, in_path):
                    tally(r.process(block))
                    if bar is not None:
                        bar.update(block.shape[0])
                tally(r.finish())
            return tally.result()
        return run(in_path, "check level", check)

    plan = make_plan(inp, ref, amount, match, whole_lufs)
    quantizer = Quantizer(resolve_subtype(output_format(out_path), subtype))
    out_m = Measurer(inp.sample_rate, inp.channels, spectra=False)

    def render(bar):
        with open_input(in_path) as f, atomic_output(out_path, f.samplerate, f.channels, subtype,
                                                     inputs=(in_path, reference_path)) as out:
            r = None if amount == 0.0 else Renderer(plan, f.samplerate, f.channels)

            def sink(y):
                if y.shape[0]:
                    data, value = quantizer.apply(y)
                    out_m.process(value)
                    out.write(data)

            for block in read_blocks(f, BLOCK_FRAMES, in_path):
                sink(block if r is None else r.process(block))
                if bar is not None:
                    bar.update(block.shape[0])
            if r is not None:
                sink(r.finish())

    run(in_path, "render", render)
    return _result(None, inp.sample_rate, amount, match, plan, inp, ref, out_m.finish())
