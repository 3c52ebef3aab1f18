"""Latency alignment of a finite stream: drop the engine's first frames, flush its tail.

The chain delays its output by ``latency`` frames (the limiter's lookahead). A stream with
a start and an end (a file, an array) is brought back into line with its input by
dropping the first ``latency`` output frames and feeding ``latency`` frames of silence at
the end, so the output has the input's length, sample for sample aligned.
"""

import numpy as np


class LatencyTrim:
    """Pass blocks on to sink without their first `latency` frames in all."""

    def __init__(self, latency: int, sink):
        self.skip = latency
        self.sink = sink

    def __call__(self, block: np.ndarray) -> None:
        if self.skip:
            drop = min(self.skip, block.shape[0])
            self.skip -= drop
            block = block[drop:]
        if block.shape[0]:
            self.sink(block)


def tail_blocks(latency: int, blocksize: int, channels: int, dtype=np.float64):
    """The silence that flushes the last `latency` frames out: blocks of at most blocksize."""
    for start in range(0, latency, blocksize):
        yield np.zeros((min(blocksize, latency - start), channels), dtype=dtype)
