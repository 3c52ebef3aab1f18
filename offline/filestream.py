"""The daemon's file backend: a file streamed through the live engine at real-time pace.

The same engine_block a device callback runs, fed from IN by the clocked loop, its
output trimmed of the engine's latency and written to OUT atomically: for the same
parameters the result is sample for sample what ``auracore render`` writes. Stopping
early (SIGINT/SIGTERM) finalises OUT with what was processed so far.
"""

import numpy as np

from auracore.realtime.clocked import ClockedLoop
from auracore.realtime.engine import Engine

from .audio_io import Quantizer, atomic_output, open_input, output_format, read_blocks, resolve_subtype
from .render import LatencyTrim


class FileStream:
    """Open IN, build the loop; use as a context manager around start()/wait()."""

    def __init__(self, engine_factory, in_path: str, out_path: str, blocksize: int,
                 subtype: str | None = None, realtime: bool = True):
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
        self._writer = None
        self.loop = ClockedLoop(self.engine, blocksize, self._source, self._sink, realtime=realtime)

    def _source(self):
        block = next(self._blocks, None)
        if block is not None:
            self.frames_in += block.shape[0]
            return block  # float64, as render reads it: the same samples out
        if self._tail > 0:  # flush the lookahead with silence
            n = min(self._tail, self._blocksize)
            self._tail -= n
            return np.zeros((n, self.channels))
        return None

    def _sink(self, block):
        self._trim(block)

    def __enter__(self):
        self._ctx = atomic_output(self.out_path, self.sample_rate, self.channels, self.subtype)
        out = self._ctx.__enter__()
        quantizer = self._quantizer
        self._trim = LatencyTrim(self.engine.latency, lambda b: out.write(quantizer.apply(b)[0]))
        return self

    def __exit__(self, *exc):
        self.loop.stop()
        self._in.close()
        return self._ctx.__exit__(*exc)
