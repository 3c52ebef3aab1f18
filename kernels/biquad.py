"""Biquad design (RBJ Audio EQ Cookbook) and cascades in transposed direct form II.

Coefficients are rows [b0, b1, b2, a1, a2] normalised so a0 = 1 (scipy's sos row is
[b0, b1, b2, 1, a1, a2]). Filter state is (channels, stages, 2) float64.
"""

import math

from numba import njit

SHAPE_PEAKING = 0
SHAPE_LOWSHELF = 1
SHAPE_HIGHSHELF = 2
SHAPE_LOWPASS = 3
SHAPE_HIGHPASS = 4


@njit(cache=True, nogil=True)
def design_biquad(shape, sample_rate, freq_hz, gain_db, q, out):
    """Write one RBJ biquad into out[0:5] as [b0, b1, b2, a1, a2] (a0 = 1).

    shape: SHAPE_* constant; freq_hz is held inside (1 Hz, 0.49 * sample_rate).
    """
    f = min(max(freq_hz, 1.0), 0.49 * sample_rate)
    w0 = 2.0 * math.pi * f / sample_rate
    cw = math.cos(w0)
    alpha = math.sin(w0) / (2.0 * q)
    a = 10.0 ** (gain_db / 40.0)
    if shape == SHAPE_PEAKING:
        b0 = 1.0 + alpha * a
        b1 = -2.0 * cw
        b2 = 1.0 - alpha * a
        a0 = 1.0 + alpha / a
        a1 = -2.0 * cw
        a2 = 1.0 - alpha / a
    elif shape == SHAPE_LOWSHELF:
        sa = 2.0 * math.sqrt(a) * alpha
        b0 = a * ((a + 1.0) - (a - 1.0) * cw + sa)
        b1 = 2.0 * a * ((a - 1.0) - (a + 1.0) * cw)
        b2 = a * ((a + 1.0) - (a - 1.0) * cw - sa)
        a0 = (a + 1.0) + (a - 1.0) * cw + sa
        a1 = -2.0 * ((a - 1.0) + (a + 1.0) * cw)
        a2 = (a + 1.0) + (a - 1.0) * cw - sa
    elif shape == SHAPE_HIGHSHELF:
        sa = 2.0 * math.sqrt(a) * alpha
        b0 = a * ((a + 1.0) + (a - 1.0) * cw + sa)
        b1 = -2.0 * a * ((a - 1.0) + (a + 1.0) * cw)
        b2 = a * ((a + 1.0) + (a - 1.0) * cw - sa)
        a0 = (a + 1.0) - (a - 1.0) * cw + sa
        a1 = 2.0 * ((a - 1.0) - (a + 1.0) * cw)
        a2 = (a + 1.0) - (a - 1.0) * cw - sa
    elif shape == SHAPE_LOWPASS:
        b0 = (1.0 - cw) / 2.0
        b1 = 1.0 - cw
        b2 = (1.0 - cw) / 2.0
        a0 = 1.0 + alpha
        a1 = -2.0 * cw
        a2 = 1.0 - alpha
    else:  # SHAPE_HIGHPASS
        b0 = (1.0 + cw) / 2.0
        b1 = -(1.0 + cw)
        b2 = (1.0 + cw) / 2.0
        a0 = 1.0 + alpha
        a1 = -2.0 * cw
        a2 = 1.0 - alpha
    out[0] = b0 / a0
    out[1] = b1 / a0
    out[2] = b2 / a0
    out[3] = a1 / a0
    out[4] = a2 / a0


@njit(cache=True, nogil=True)
def cascade_process(x, start, stop, coefs, state):
    """Filter rows start..stop-1 of x: (frames, channels) in place through every stage.

    coefs: (stages, 5); state: (channels, stages, 2), transposed direct form II. Stereo
    runs both channels' recursions side by side (twice the throughput: each recursion is
    latency-bound); the arithmetic per channel is the same either way.
    """
    channels = x.shape[1]
    for s in range(coefs.shape[0]):
        b0 = coefs[s, 0]
        b1 = coefs[s, 1]
        b2 = coefs[s, 2]
        a1 = coefs[s, 3]
        a2 = coefs[s, 4]
        if channels == 2:
            z1l = state[0, s, 0]
            z2l = state[0, s, 1]
            z1r = state[1, s, 0]
            z2r = state[1, s, 1]
            for n in range(start, stop):
                vl = x[n, 0]
                vr = x[n, 1]
                yl = b0 * vl + z1l
                yr = b0 * vr + z1r
                z1l = b1 * vl - a1 * yl + z2l
                z1r = b1 * vr - a1 * yr + z2r
                z2l = b2 * vl - a2 * yl
                z2r = b2 * vr - a2 * yr
                x[n, 0] = yl
                x[n, 1] = yr
            state[0, s, 0] = z1l
            state[0, s, 1] = z2l
            state[1, s, 0] = z1r
            state[1, s, 1] = z2r
            continue
        for c in range(channels):
            z1 = state[c, s, 0]
            z2 = state[c, s, 1]
            for n in range(start, stop):
                v = x[n, c]
                y = b0 * v + z1
                z1 = b1 * v - a1 * y + z2
                z2 = b2 * v - a2 * y
                x[n, c] = y
            state[c, s, 0] = z1
            state[c, s, 1] = z2


@njit(cache=True, nogil=True)
def flush_denormals(state):
    """Zero filter-state values below 1e-30 in magnitude (long silences would decay into
    denormals, which are two orders of magnitude slower on x86)."""
    flat = state.reshape(-1)
    for i in range(flat.size):
        if abs(flat[i]) < 1e-30:
            flat[i] = 0.0
