"""Mastering by reference on files, streamed: measure the input and the reference in blocks (at once, on two
threads), then render in blocks; the render that checks the level on the whole input is kept as the result
when the level needs no correction."""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from auracore.errors import AudioFileError
from auracore.offline.audio_io import (Quantizer, atomic_file, open_input, open_output, output_format,
                                       read_blocks, resolve_subtype)
from auracore.offline.pipeline import pipelined

from .core import (BLOCK_FRAMES, MATCH_ALL, Mastered, OutputTally, Renderer, _result, check_amount, check_match,
                   make_plan, same_plan)
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

    bar = progress_factory(_frames(in_path) + _frames(reference_path), "measure") if progress_factory else None
    try:
        # both measured at once: decoding, the FFTs and the meter release the GIL, so the
        # reference costs next to nothing beside the input on two cores
        with ThreadPoolExecutor(2, thread_name_prefix="auracore-measure") as pool:
            ref_job = pool.submit(_measure_file, reference_path, False, bar)
            inp = _measure_file(in_path, True, bar)
            ref = ref_job.result()
    finally:
        if bar is not None:
            bar.close()
    subtype = resolve_subtype(output_format(out_path), subtype)
    with atomic_file(out_path, inputs=(in_path, reference_path)) as tmp:
        rendered = {}   # the plan whose output tmp holds, and that output's measurer

        def render(p, label, tally=None):
            """p rendered into tmp (quantised, measured); tally(y) sees the float output."""
            bar = progress_factory(_frames(in_path), label) if progress_factory else None
            quantizer = Quantizer(subtype)
            out_m = Measurer(inp.sample_rate, inp.channels, spectra=False)
            try:
                with open_input(in_path) as f, open_output(tmp, out_path, f.samplerate, f.channels, subtype) as out:
                    r = None if amount == 0.0 else Renderer(p, f.samplerate, f.channels)

                    def tallied(y):
                        if tally is not None:
                            tally(y)
                        return y

                    def quantized(y):  # (data to write, its value as float), None for no frames
                        return quantizer.apply(y) if y.shape[0] else None

                    def measured(pair):
                        if pair is None:
                            return None
                        out_m.process(pair[1])
                        return pair[0]

                    # reading, the FIRs, the chain, the tally, dither and the output meter each on a
                    # thread of their own; this one writes
                    stages = ((tallied,) if r is None else (r.filtered, r.chained, tallied)) + (quantized, measured)
                    for block, data in pipelined(_numbered(read_blocks(f, BLOCK_FRAMES, in_path)), *map(_keep_size, stages)):
                        if data is not None:
                            out.write(data)
                        if bar is not None:
                            bar.update(block)
                    if r is not None:
                        data = measured(quantized(tallied(r.finish())))
                        if data is not None:
                            out.write(data)
            finally:
                if bar is not None:
                    bar.close()
            rendered.update(plan=p, measurer=out_m)

        def whole_lufs(p):
            # the level check is a full render: when the plan needs no correction (the usual
            # case) its output is the result, and no second pass runs
            tally = OutputTally(inp.sample_rate, inp.channels)
            render(p, "render", tally)
            return tally.result()

        plan = make_plan(inp, ref, amount, match, whole_lufs)
        if not same_plan(rendered.get("plan"), plan):
            render(plan, "render (level corrected)" if rendered else "render")
        out = rendered["measurer"].finish()
    return _result(None, inp.sample_rate, amount, match, plan, inp, ref, out)


def _numbered(blocks):
    """(frames read, block) for each block: the progress counts input frames."""
    for block in blocks:
        yield block.shape[0], block


def _keep_size(fn):
    """fn over the block of a (frames read, block) pair."""
    return lambda item: (item[0], fn(item[1]))
