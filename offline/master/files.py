"""Mastering by reference on files, streamed: measure the input and the reference in blocks (at once, on two
threads), then render in blocks; the render that checks the level on the whole input is kept as the result
when the level needs no correction."""

import os
from concurrent.futures import ThreadPoolExecutor

from auracore.errors import AudioFileError
from auracore.offline.audio_io import (Quantizer, atomic_file, open_input, open_output, output_format,
                                       read_blocks, resolve_subtype)
from auracore.offline.pipeline import pipelined

from .core import (BLOCK_FRAMES, MATCH_ALL, Mastered, Renderer, _result, check_amount, check_match, make_plan,
                   same_plan)
from .measure import Measurement, Measurer


def _same(a: str, b: str) -> bool:
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def _measure_file(path: str, keep_excerpt: bool, bar) -> Measurement:
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
        rendered = {}   # the plan whose output tmp holds, and that output's measurement

        def render(p, label):
            bar = progress_factory(_frames(in_path), label) if progress_factory else None
            try:
                out = _render_into(tmp, out_path, in_path, None if amount == 0.0 else p, subtype, bar)
            finally:
                if bar is not None:
                    bar.close()
            rendered.update(plan=p, measured=out)
            return out

        def whole_lufs(p):
            # the level check is a full render into tmp: when the plan needs no correction (the
            # usual case) its output is the result, and no second pass runs
            out = render(p, "render")
            return out.integrated_lufs, out.side_mid_ratio

        plan = make_plan(inp, ref, amount, match, whole_lufs)
        if not same_plan(rendered.get("plan"), plan):
            render(plan, "render (level corrected)" if rendered else "render")
    return _result(None, inp.sample_rate, amount, match, plan, inp, ref, rendered["measured"])


def _render_into(tmp: str, out_path: str, in_path: str, plan, subtype, bar) -> Measurement:
    """in_path through plan's FIRs and chain (None: unchanged) into tmp, dithered to subtype
    in out_path's format; returns the written output's measurement. Reading, the FIRs, the
    chain, dither and the output meter each run on a thread of their own; this one writes."""
    with open_input(in_path) as f, open_output(tmp, out_path, f.samplerate, f.channels, subtype) as out:
        quantizer = Quantizer(subtype)
        meter = Measurer(f.samplerate, f.channels, spectra=False)
        r = None if plan is None else Renderer(plan, f.samplerate, f.channels)

        def counted(block):
            if bar is not None:
                bar.update(block.shape[0])
            return block

        def quantized(y):  # (data to write, its value as float), None for no frames
            return quantizer.apply(y) if y.shape[0] else None

        def measured(pair):
            if pair is not None:
                meter.process(pair[1])
                return pair[0]
            return None

        stages = (counted,) + (() if r is None else (r.filtered, r.chained)) + (quantized, measured)
        for data in pipelined(read_blocks(f, BLOCK_FRAMES, in_path), *stages):
            if data is not None:
                out.write(data)
        if r is not None:
            data = measured(quantized(r.finish()))
            if data is not None:
                out.write(data)
    return meter.finish()
