"""A finite stream of blocks through the live engine on the clocked loop (the file backend's core).

The same ``engine_block`` a device callback runs, fed by the clocked loop from an iterator
of blocks and then the latency tail, its output trimmed of the engine's latency and handed
to a sink: for the same parameters the result is sample for sample what ``auracore
render`` gives. Where the blocks come from and where they go (files, written atomically)
is the caller's business (control/filebackend.py).
"""

from .clocked import ClockedLoop
from .engine import Engine
from .latency import LatencyTrim, tail_blocks


class BlockStream:
    """blocks: an iterator of (frames, channels) float arrays (it may raise to stop the stream
    with an error); sink(block) gets the aligned output. ``complete`` turns true once every
    block and the tail went through."""

    def __init__(self, engine: Engine, blocks, sink, blocksize: int, realtime: bool = True):
        self.engine = engine
        self.frames_in = 0
        self.complete = False
        self._blocks = iter(blocks)
        self._tail = tail_blocks(engine.latency, blocksize, engine.channels)
        self.loop = ClockedLoop(engine, blocksize, self._source, LatencyTrim(engine.latency, sink),
                                realtime=realtime)

    def _source(self):
        block = next(self._blocks, None)
        if block is not None:
            self.frames_in += block.shape[0]
            return block  # float64, as render reads it: the same samples out
        block = next(self._tail, None)  # flush the lookahead with silence
        if block is None:
            self.complete = True
        return block
