"""A clocked block loop for machines with no audio device: the file and null backends.

It runs the very same ``engine_block`` a device callback runs, on a thread of its own,
one block per block period (or as fast as it can with ``realtime=False``), pulling
blocks from a source and handing results to a sink.
"""

import threading
import time

import numpy as np

from .engine import Engine


class ClockedLoop:
    """Drive engine with blocks from source() (a (frames, channels) float32 or float64
    array, or None at the end) and give every output block, same dtype, to sink(block)."""

    def __init__(self, engine: Engine, blocksize: int, source, sink=None, realtime: bool = True):
        self.engine = engine
        self.blocksize = blocksize
        self.source = source
        self.sink = sink
        self.realtime = realtime
        self.finished = threading.Event()
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="auracore-clocked", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)

    @property
    def active(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        period = self.blocksize / self.engine.sample_rate
        deadline = time.monotonic()
        try:
            while not self._stop.is_set():
                block = self.source()
                if block is None:
                    break
                out = np.empty_like(block)
                self.engine.run_block(block, out, 0)
                if self.sink is not None:
                    self.sink(out)
                if self.realtime:
                    deadline += block.shape[0] / self.engine.sample_rate
                    delay = deadline - time.monotonic()
                    if delay > 0:
                        self._stop.wait(delay)
                    elif delay < -period:  # fell behind (a stall): restart the clock, do not race
                        deadline = time.monotonic()
        except Exception as exc:  # reported by the daemon; the loop itself stops
            self.error = exc
        finally:
            self.finished.set()


def tone_source(sample_rate: int, channels: int, blocksize: int, freq_hz: float = 997.0,
                level_dbfs: float = -20.0):
    """A source of an endless sine (the null backend's generated signal)."""
    amp = 10.0 ** (level_dbfs / 20.0)
    phase = [0.0]
    step = 2.0 * np.pi * freq_hz / sample_rate
    k = np.arange(blocksize)

    def source():
        x = amp * np.sin(phase[0] + step * k)
        phase[0] = (phase[0] + step * blocksize) % (2.0 * np.pi)
        return np.repeat(x[:, None], channels, axis=1).astype(np.float32)

    return source


def silence_source(channels: int, blocksize: int):
    """A source of endless silence."""
    block = np.zeros((blocksize, channels), dtype=np.float32)
    return lambda: block
