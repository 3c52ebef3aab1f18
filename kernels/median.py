"""Running median along one axis of a 2-D array, edges extended ("nearest"), as
``scipy.ndimage.median_filter`` with a (k, 1) or (1, k) size computes it, value for value.

A sorted window of k values slides along each line: one value leaves and one enters per step
(binary search and a shift of at most k), so the cost is O(k) per sample instead of a fresh
selection. The HPSS separator (offline/separate/dsp.py) runs two of them per spectrogram.
"""

import numpy as np
from .jit import njit


@njit(cache=True, nogil=True, inline="always")
def _slide(win, k, old, new):
    """Replace old (present in the sorted window) by new, keeping win (k,) sorted."""
    if old == new:
        return
    lo = np.searchsorted(win, old)
    for j in range(lo, k - 1):
        win[j] = win[j + 1]
    pos = np.searchsorted(win[:k - 1], new)
    for j in range(k - 1, pos, -1):
        win[j] = win[j - 1]
    win[pos] = new


@njit(cache=True, nogil=True)
def running_median(x, k, axis):
    """x: (rows, cols) float; k: odd window length; axis 0 (along rows, down each column) or
    1 (along each row). Returns a new array of x's shape and dtype."""
    rows, cols = x.shape
    half = k // 2
    out = np.empty_like(x)
    if axis == 1:
        win = np.empty(k, dtype=x.dtype)
        for r in range(rows):
            for j in range(k):
                win[j] = x[r, min(max(j - half, 0), cols - 1)]
            win.sort()
            out[r, 0] = win[half]
            for i in range(1, cols):
                _slide(win, k, x[r, min(max(i - 1 - half, 0), cols - 1)], x[r, min(i + half, cols - 1)])
                out[r, i] = win[half]
    else:
        # one sorted window per column, all moved a row at a time (rows are contiguous)
        wins = np.empty((cols, k), dtype=x.dtype)
        for c in range(cols):
            for j in range(k):
                wins[c, j] = x[min(max(j - half, 0), rows - 1), c]
            wins[c].sort()
            out[0, c] = wins[c, half]
        for i in range(1, rows):
            ro = min(max(i - 1 - half, 0), rows - 1)
            rn = min(i + half, rows - 1)
            for c in range(cols):
                _slide(wins[c], k, x[ro, c], x[rn, c])
                out[i, c] = wins[c, half]
    return out
