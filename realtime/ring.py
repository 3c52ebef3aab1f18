"""The analysis ring: single producer (the audio callback), single consumer (inference).

Preallocated power-of-two float32 storage of (mid, side) frames, a write index owned by the
callback and a read index owned by the reader, both ever-increasing. Mid is the channel
mean; side is (left - right) / 2 for a stereo stream and 0 otherwise, so a reader can hear
the input's width (the models' width estimate) as well as its mono sum. The writer never
waits: it always writes, overwriting the oldest frames when the reader is behind; the
reader notices the overrun, skips to the oldest frames still intact and counts the
frames it lost (a copy that was overwritten while it was being read is discarded).
"""

import numpy as np
from numba import njit

from .atomics import load_acquire, store_release

I_WRITE = 0
I_READ = 1
I_DROPPED = 2


class AnalysisRing:
    """Storage and indices: data (capacity, 2) float32 (mid, side), idx (3,) int64."""

    def __init__(self, capacity_frames: int = 1 << 16):
        if capacity_frames & (capacity_frames - 1):
            raise ValueError("the ring capacity must be a power of two")
        self.data = np.zeros((capacity_frames, 2), dtype=np.float32)
        self.idx = np.zeros(3, dtype=np.int64)
        self._no_side = np.zeros(0, dtype=np.float32)

    def read(self, out: np.ndarray, side: np.ndarray | None = None) -> bool:
        """Fill out: (n,) float32 with the next n mid frames (and side, when given: (n,)
        float32, with their side frames) if that many are there."""
        if side is not None and side.shape != out.shape:
            raise ValueError(f"side must be shaped like out {out.shape}, got {side.shape}")
        return ring_read(self.data, self.idx, out, self._no_side if side is None else side)

    @property
    def dropped(self) -> int:
        return int(self.idx[I_DROPPED])

    @property
    def available(self) -> int:
        return int(self.idx[I_WRITE] - self.idx[I_READ])


@njit(cache=True, nogil=True)
def ring_write(data, idx, x):
    """Writer side: append x: (frames, channels) as (mid, side) frames: the channel mean, and
    (x[:, 0] - x[:, 1]) / 2 for two channels (0 otherwise)."""
    mask = data.shape[0] - 1
    w = idx[I_WRITE]
    frames, channels = x.shape
    scale = 1.0 / channels
    for n in range(frames):
        acc = 0.0
        for c in range(channels):
            acc += x[n, c]
        k = (w + n) & mask
        data[k, 0] = acc * scale
        data[k, 1] = 0.5 * (x[n, 0] - x[n, 1]) if channels == 2 else 0.0
    store_release(idx, I_WRITE, w + frames)


@njit(cache=True, nogil=True)
def ring_read(data, idx, out, side):
    """Reader side: copy the next out.shape[0] mid frames into out (and their side frames
    into side when it has as many places; pass an empty array to skip them); False if not
    enough yet."""
    cap = data.shape[0]
    mask = cap - 1
    n = out.shape[0]
    r = idx[I_READ]
    while True:
        w = load_acquire(idx, I_WRITE)
        if w - r > cap:
            idx[I_DROPPED] += w - cap - r
            r = w - cap
        if w - r < n:
            idx[I_READ] = r
            return False
        with_side = side.shape[0] == n
        for k in range(n):
            out[k] = data[(r + k) & mask, 0]
            if with_side:
                side[k] = data[(r + k) & mask, 1]
        if load_acquire(idx, I_WRITE) - r <= cap:
            store_release(idx, I_READ, r + n)
            return True
        # the writer lapped us during the copy: what we copied may be torn; go again
