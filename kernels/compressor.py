"""Feed-forward compressor: soft-knee static curve, peak or RMS detection, stereo-linked."""

import math

import numpy as np
from .jit import njit

from .vecmath import vexp, vlog

RMS_WINDOW_MS = 10.0
DB_PER_LN = 20.0 / math.log(10.0)
LN_PER_DB = 1.0 / DB_PER_LN
# a gain reduction this small (dB) at a tick's end is treated as none: released detectors
# come to rest at exactly 0 dB instead of creeping toward it for seconds
GR_REST_DB = 1e-6


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def static_gain_db(level_db, threshold_db, ratio, knee_db):
    """Gain (<= 0 dB) the static curve applies to a detector level in dB.

    Below the knee: 0. Inside it (|level - threshold| <= knee/2):
    (1/ratio - 1) * (level - threshold + knee/2)^2 / (2 knee). Above it:
    (1/ratio - 1) * (level - threshold).
    """
    over = level_db - threshold_db
    slope = 1.0 / ratio - 1.0
    if knee_db > 0.0 and 2.0 * abs(over) <= knee_db:
        t = over + 0.5 * knee_db
        return slope * t * t / (2.0 * knee_db)
    if over > 0.0:
        return slope * over
    return 0.0


@njit(cache=True, nogil=True)
def time_coef(time_ms, sample_rate):
    """One-pole coefficient reaching 63% of a step in time_ms."""
    return 1.0 - math.exp(-1000.0 / (max(time_ms, 1e-3) * sample_rate))


WORK_FRAMES = 128


# the detector's state: one record (a one-element structured array)
STATE = np.dtype([("ms", "f8"),   # the RMS detector's mean square
                  ("gr", "f8")])  # the gain the ballistics reached (dB)


def compressor_state():
    """A fresh detector state for ``compressor_process``: (1,) STATE."""
    return np.zeros(1, dtype=STATE)


def compressor_work():
    """Scratch for ``compressor_process``: (2, WORK_FRAMES) float64."""
    return np.zeros((2, WORK_FRAMES))


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def compressor_process(x, start, stop, threshold_db, ratio, knee_db, attack_coef, release_coef,
                       rms, rms_coef, makeup0_db, makeup1_db, tick_pos, tick, st, work):
    """Compress rows start..stop-1 of x: (frames, channels) in place, channels linked.

    Ballistics act on the gain in dB (attack when it falls, release when it rises).
    makeup glides linearly from makeup0_db to makeup1_db across a tick of `tick` samples,
    tick_pos being the position of row `start` in it. st: ``compressor_state()``;
    work: scratch from ``compressor_work``. Returns the smallest gain (dB) applied in the
    range, for the meters.

    Per chunk of rows, three passes: the static curve's target for every row (vectorised:
    the detector level's logarithm through ``vecmath.vlog``), the ballistics (the one
    serial recursion), and the gain applied (vectorised ``vecmath.vexp``).
    """
    channels = x.shape[1]
    target = work[0]
    gain_db = work[1]
    ms = st[0].ms
    gr = st[0].gr
    lowest = 0.0
    # levels below the knee's foot leave the static curve at 0 dB
    floor_lin = math.exp((threshold_db - 0.5 * knee_db) / DB_PER_LN)
    inv_tick = 1.0 / tick
    for lo in range(start, stop, WORK_FRAMES):
        n = min(WORK_FRAMES, stop - lo)
        # 1. detector level and the static curve's target (dB)
        if rms:
            for i in range(n):
                acc = 0.0
                for c in range(channels):
                    acc += x[lo + i, c] * x[lo + i, c]
                ms += rms_coef * (acc / channels - ms)
                target[i] = ms
            half_floor = floor_lin * floor_lin
            for i in range(n):
                v = target[i]
                t = static_gain_db(0.5 * DB_PER_LN * vlog(v), threshold_db, ratio, knee_db)
                target[i] = t if v > half_floor else 0.0
        else:
            for i in range(n):
                level = abs(x[lo + i, 0])
                for c in range(1, channels):
                    v = abs(x[lo + i, c])
                    level = v if v > level else level
                target[i] = level
            for i in range(n):
                v = target[i]
                t = static_gain_db(DB_PER_LN * vlog(v), threshold_db, ratio, knee_db)
                target[i] = t if v > floor_lin else 0.0
        # 2. ballistics. A release within GR_REST_DB of 0 dB comes to rest at 0 on each
        # tick's last frame (there, not on every frame: off the recursion's critical path)
        edge = tick - 1 - (tick_pos + lo - start) % tick   # this chunk's first tick end
        i0 = 0
        while i0 < n:
            i1 = min(n, edge + 1)
            for i in range(i0, i1):
                t = target[i]
                gr += (attack_coef if t < gr else release_coef) * (t - gr)
                gain_db[i] = gr
                lowest = min(lowest, gr)
            if i1 == edge + 1:
                if gr > -GR_REST_DB:
                    gr = 0.0
                    gain_db[edge] = 0.0
                edge += tick
            i0 = i1
        # 3. the gain, makeup gliding across the tick
        dm = makeup1_db - makeup0_db
        for i in range(n):
            frac = (tick_pos + lo - start + i) * inv_tick
            gain_db[i] = vexp((gain_db[i] + makeup0_db + dm * frac) * LN_PER_DB)
        for i in range(n):
            for c in range(channels):
                x[lo + i, c] *= gain_db[i]
    if abs(ms) < 1e-30:
        ms = 0.0
    st[0].ms = ms
    st[0].gr = gr
    return lowest
