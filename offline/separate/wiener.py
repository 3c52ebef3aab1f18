"""A multichannel Wiener filter after the masks: the stems' stereo images sharpen the split.

The network's masks are real gains on each channel's magnitude: where two stems share a
bin, they split it by level alone, whatever the phase between the channels says. This filter (the one Open-Unmix and early
Demucs run after their networks; Duong, Vincent and Gribonval 2010, norbert's single EM
step) can. Each stem j gets a power spectral density v_j(t, f), from the masked mixture,
and a spatial covariance R_j(f), a 2x2 Hermitian matrix over the chunk (how the stem's
energy is shared and correlated between the channels, bin by bin). Each stem's estimate is
then

    Y_j(t, f) = v_j R_j (sum_k v_k R_k)^-1 X(t, f)

with X the mixture's two channels. The gains sum to the identity, so the stems still add
back to the mixture; what the filter leaves (the regularisation) is shared out by the
masks, so the sum is exact.

v_j is the mean over channels of |M_j X|^``POWER`` with ``POWER`` 0.65 rather than the
textbook 2: on the held-out renders the squared magnitudes sharpen the masks and lose
(models/separation/MODEL_CARD.md, under Status, has the figures). With one channel the filter is the
masks raised to ``POWER`` and normalised to sum to one.
"""

import numpy as np

POWER = 0.65
LOAD = 1e-3  # diagonal loading of the mixture's model, relative to its trace
EPS = 1e-12


def wiener(spec: np.ndarray, masks: np.ndarray, want=None, power: float = POWER) -> np.ndarray:
    """spec (C, T, F) complex mixture STFT, masks (S, C, T, F) summing to one over S ->
    (len(want), C, T, F) complex64 STFTs of the stems listed in want (indices; default
    all). All the stems together sum to spec. C is 1 or 2."""
    spec = spec.astype(np.complex64, copy=False)
    masks = masks.astype(np.float32, copy=False)
    want = list(range(masks.shape[0])) if want is None else list(want)
    if spec.shape[0] == 1:
        w = masks ** power
        w /= np.maximum(w.sum(axis=0, keepdims=True), EPS)
        return w[want] * spec[None]
    x_l, x_r = spec[0], spec[1]
    pow_l, pow_r = x_l.real ** 2 + x_l.imag ** 2, x_r.real ** 2 + x_r.imag ** 2
    # power spectral densities, (S, T, F)
    v = 0.5 * ((masks[:, 0] ** 2 * pow_l) ** (0.5 * power) + (masks[:, 1] ** 2 * pow_r) ** (0.5 * power))
    # spatial covariances over the chunk, (S, F), normalised to a trace of 2:
    # R_j = [[r_ll, r_lr], [conj r_lr, r_rr]], the mixture's covariance where the stem's mask
    # (the mean of its two channels') is high. With a mask per channel instead, two stems
    # whose channel masks disagree with the mixture (a dual-mono input the masks call
    # panned) got nearly parallel covariances, and splitting the mixture between them gave
    # stems far louder than the mixture, in opposite phase; with the one mask every
    # covariance of a dual-mono input points the mixture's way (measured: 0.01-0.02 dB less
    # on the held-out and out-of-domain renders)
    m2 = (0.5 * (masks[:, 0] + masks[:, 1])) ** 2
    p_l = np.einsum("stf,tf->sf", m2, pow_l)
    p_r = np.einsum("stf,tf->sf", m2, pow_r)
    p_lr = np.einsum("stf,tf->sf", m2.astype(np.complex64), x_l * np.conj(x_r))
    norm = 0.5 * (p_l + p_r) + EPS
    r_ll, r_rr, r_lr = p_l / norm, p_r / norm, p_lr / norm
    # the mixture's model C = sum_j v_j R_j + load I, and Z = C^-1 X in closed form. When
    # every stem sits in the same place (dual mono, or all in the centre) C has rank one;
    # the loading keeps the inverse finite and accurate in float32
    c_ll = np.einsum("stf,sf->tf", v, r_ll)
    c_rr = np.einsum("stf,sf->tf", v, r_rr)
    c_lr = np.einsum("stf,sf->tf", v.astype(np.complex64), r_lr)
    load = LOAD * 0.5 * (c_ll + c_rr) + EPS
    c_ll += load
    c_rr += load
    det = np.maximum(c_ll * c_rr - (c_lr.real ** 2 + c_lr.imag ** 2), EPS * EPS)
    z_l = (c_rr * x_l - c_lr * x_r) / det
    z_r = (c_ll * x_r - np.conj(c_lr) * x_l) / det
    # sum_j v_j R_j Z = X - load Z: what the filter leaves, load Z, is shared out by the masks
    out = np.empty((len(want), 2) + spec.shape[1:], dtype=np.complex64)
    for i, j in enumerate(want):
        out[i, 0] = v[j] * (r_ll[j] * z_l + r_lr[j] * z_r) + masks[j, 0] * load * z_l
        out[i, 1] = v[j] * (np.conj(r_lr[j]) * z_l + r_rr[j] * z_r) + masks[j, 1] * load * z_r
    return out
