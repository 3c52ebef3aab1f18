"""Mailboxes into the audio callback: control changes (a queue) and model targets (latest wins).

ControlMailbox: Python threads (OSC, WebSocket, the CLI) post (parameter index, value)
pairs; the callback drains them at the start of each block. Posts from several threads
are serialised by a lock on the posting side only: the callback never takes it. Pairs
posted in one call become visible together (one index store), so a bundle lands on one
block boundary.

TargetMailbox: the inference thread publishes a whole target vector; the callback takes
the newest complete one. A sequence counter (odd while writing) tells the callback when
a copy may be torn, in which case it keeps the targets it had: neither side waits.
"""

import threading

import numpy as np
from numba import njit

from .atomics import fence_acquire, load_acquire, store_release

I_WRITE = 0
I_READ = 1
I_REJECTED = 2


class ControlMailbox:
    """Queue of (index, value) pairs: buf (capacity, 2) float64, idx (3,) int64."""

    def __init__(self, capacity: int = 4096):
        self.buf = np.zeros((capacity, 2))
        self.idx = np.zeros(3, dtype=np.int64)
        self._lock = threading.Lock()

    def post(self, pairs) -> bool:
        """Queue [(index, value), ...] to land together; False (and counted) if full."""
        arr = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
        with self._lock:
            ok = mailbox_post(self.buf, self.idx, arr)
        return ok

    @property
    def rejected(self) -> int:
        return int(self.idx[I_REJECTED])


@njit(cache=True, nogil=True)
def mailbox_post(buf, idx, pairs):
    cap = buf.shape[0]
    w = idx[I_WRITE]
    r = load_acquire(idx, I_READ)
    n = pairs.shape[0]
    if w + n - r > cap:
        idx[I_REJECTED] += 1
        return False
    for k in range(n):
        buf[(w + k) % cap, 0] = pairs[k, 0]
        buf[(w + k) % cap, 1] = pairs[k, 1]
    store_release(idx, I_WRITE, w + n)
    return True


@njit(cache=True, nogil=True)
def mailbox_drain(buf, idx, params):
    """Callback side: apply every queued pair to params; returns how many."""
    cap = buf.shape[0]
    w = load_acquire(idx, I_WRITE)
    r = idx[I_READ]
    n = w - r
    for k in range(r, w):
        i = int(buf[k % cap, 0])
        if 0 <= i < params.shape[0]:
            params[i] = buf[k % cap, 1]
    store_release(idx, I_READ, w)
    return n


class TargetMailbox:
    """Latest-wins vector: data (n,) float64 and seq (1,) int64."""

    def __init__(self, size: int):
        self.data = np.zeros(size)
        self.seq = np.zeros(1, dtype=np.int64)

    def publish(self, vec: np.ndarray) -> None:
        targets_publish(self.data, self.seq, np.asarray(vec, dtype=np.float64))


@njit(cache=True, nogil=True)
def targets_publish(data, seq, vec):
    s = seq[0]
    store_release(seq, 0, s + 1)
    for k in range(data.shape[0]):
        data[k] = vec[k]
    store_release(seq, 0, s + 2)


@njit(cache=True, nogil=True)
def targets_take(data, seq, scratch, out, last_seq):
    """Callback side: copy the newest complete vector into out if it is newer than
    last_seq[0]; returns True when out changed. A torn copy stays in scratch."""
    s1 = load_acquire(seq, 0)
    if s1 == last_seq[0] or s1 & 1:
        return False
    for k in range(data.shape[0]):
        scratch[k] = data[k]
    fence_acquire()
    if load_acquire(seq, 0) != s1:
        return False
    for k in range(data.shape[0]):
        out[k] = scratch[k]
    last_seq[0] = s1
    return True
