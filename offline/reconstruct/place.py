"""A stem's stereo placement: its render's left and right balanced as the stem's are.

Every part is rendered in the centre (GM pan 64), where the original's may sit to one side
(a guitar panned left, chords to the right). ``place`` gives the render the stem's share of
energy in each channel, as a balance knob would, keeping the render's total energy: the
channels' gains g_L, g_R satisfy g_L^2 e_L = s E and g_R^2 e_R = (1 - s) E, with e the
render's channel energies, E their sum and s the stem's left share, each within
+-``MAX_GAIN_DB``. The width in each octave band is the mix's concern (width.py). Mono: nothing
to do.
"""

import numpy as np

MAX_GAIN_DB = 12.0


def place(render: np.ndarray, stem: np.ndarray) -> np.ndarray:
    """render (frames, 2) with its channels scaled so that its left/right energy shares are
    stem's (frames, 2); its total energy kept. Returned as is when either is mono or silent."""
    if render.ndim != 2 or render.shape[1] != 2 or stem.ndim != 2 or stem.shape[1] != 2:
        return render
    e = np.einsum("ij,ij->j", render, render, dtype=np.float64)
    t = np.einsum("ij,ij->j", stem, stem, dtype=np.float64)
    if e.min() <= 0.0 or t.sum() <= 0.0:
        return render
    share = t / t.sum()
    g = np.sqrt(share * e.sum() / e)
    lim = 10.0 ** (MAX_GAIN_DB / 20.0)
    g = np.clip(g, 1.0 / lim, lim)
    return np.multiply(render, g[None, :].astype(render.dtype), dtype=render.dtype)
