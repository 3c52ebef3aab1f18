"""The daemon's file backend: a file streamed through the live engine at real-time pace.

The same engine_block a device callback runs, fed from IN by the clocked loop, its
output trimmed of the engine's latency and written to OUT atomically: for the same
parameters the result is sample for sample what ``auracore render`` writes. OUT appears
only when the whole of IN has gone through; a stream stopped before (a signal, an error)
leaves nothing behind. OUT is never IN, by any name.
"""

import numpy as np
import soundfile as sf

from auracore.errors import AudioFileError

from auracore.realtime.clocked import ClockedLoop
from auracore.realtime.engine import Engine

from .audio_io import (Quantizer, atomic_output, check_output_path, open_input, output_format, read_blocks,
                       resolve_subtype)
from .render import LatencyTrim


class FileStream:
    """Open IN, build the loop; use as a context manager around start()/wait()."""

    def __init__(self, engine_factory, in_path: str, out_path: str, blocksize: int,
                 subtype: str | None = None, realtime: bool = True):
        check_output_path(out_path, inputs=(in_path,))  # before any work: refuse IN, folders, no permission
        self.in_path = in_path
        self._in = open_input(in_path)
        self.sample_rate = self._in.samplerate
        self.channels = self._in.channels
        self.engine: Engine = engine_factory(self.sample_rate, self.channels)
        self.out_path = out_path
        self.subtype = subtype
        self.frames_in = 0
        self._blocks = read_blocks(self._in, blocksize)
        self._tail = self.engine.latency
        self._blocksize = blocksize
        self._quantizer = Quantizer(resolve_subtype(output_format(out_path), subtype))
        self.complete = False  # the whole input and the latency tail went through
        self._ctx = None
        self.loop = ClockedLoop(self.engine, blocksize, self._source, self._sink, realtime=realtime)

    def _source(self):
        block = next(self._blocks, None)
        if block is not None:
            self.frames_in += block.shape[0]
            return block  # float64, as render reads it: the same samples out
        if self.frames_in < self._in.frames:
            raise AudioFileError(f"{self.in_path}: only {self.frames_in} of {self._in.frames} frames could be read; "
                                 "the file is truncated")
        if self._tail > 0:  # flush the lookahead with silence
            n = min(self._tail, self._blocksize)
            self._tail -= n
            return np.zeros((n, self.channels))
        self.complete = True
        return None

    def _sink(self, block):
        self._trim(block)

    def __enter__(self):
        try:
            self._ctx = atomic_output(self.out_path, self.sample_rate, self.channels, self.subtype,
                                      inputs=(self.in_path,))
            out = self._ctx.__enter__()
        except BaseException:
            self._in.close()
            raise
        quantizer = self._quantizer

        def write(block):
            try:
                out.write(quantizer.apply(block)[0])
            except (sf.LibsndfileError, OSError) as exc:
                raise AudioFileError(f"{self.out_path}: writing failed ({exc}; is the disk full?)") from None

        self._trim = LatencyTrim(self.engine.latency, write)
        return self

    def __exit__(self, *exc):
        """Stop the loop; rename OUT into place only if the stream is complete and no
        exception is passing, else remove it."""
        self.loop.stop()
        self._in.close()
        if exc[0] is None and not (self.complete and self.loop.error is None):
            exc = (Incomplete, Incomplete(), None)
        ctx, self._ctx = self._ctx, None
        return ctx.__exit__(*exc) if ctx is not None else False


class Incomplete(Exception):
    """The stream stopped before the end of its input: its output is discarded."""
