"""The chain's input rule, which the offline measurements share: NaN, Inf and absurd
samples (beyond +80 dBFS) count as 0. A module of its own, with numpy alone, so a measurement
(analyze) does not import the whole chain's kernels for it (18 ms of start-up)."""

import numpy as np

SANE_LIMIT = 1.0e4          # +80 dBFS: anything beyond is treated as garbage, like NaN/Inf


def sanitised(x: np.ndarray) -> tuple[np.ndarray, int]:
    """(x with NaN, Inf and absurd values (beyond SANE_LIMIT) replaced by 0, how many were):
    the chain's own input rule, for the offline measurements. x itself is never changed."""
    y, count, _ = sanitised_peak(x)
    return y, count


def sanitised_peak(x: np.ndarray) -> tuple[np.ndarray, int, float]:
    """``sanitised``, and the largest magnitude of what it returns (0.0 for no samples). A
    clean block (the usual case) costs two passes and no copy: a NaN anywhere makes the
    extremes NaN, and that fails the test as an absurd value does."""
    if x.size == 0:
        return x, 0, 0.0
    top = max(x.max(), -x.min())
    if top <= SANE_LIMIT:
        return x, 0, float(top)
    bad = ~(np.abs(x) <= SANE_LIMIT)
    count = int(np.count_nonzero(bad))
    y = np.where(bad, 0.0, x)
    return y, count, float(np.max(np.abs(y)))
