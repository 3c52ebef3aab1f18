"""Feed-forward compressor: soft-knee static curve, peak or RMS detection, stereo-linked."""

import math

from numba import njit

RMS_WINDOW_MS = 10.0
DB_PER_LN = 20.0 / math.log(10.0)
LN_PER_DB = 1.0 / DB_PER_LN
# a gain reduction this small (dB) is treated as none: released detectors come to rest
# (and skip their exponential) instead of creeping toward 0 for seconds
GR_REST_DB = 1e-6


@njit(cache=True, nogil=True, inline="always")
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


@njit(cache=True, nogil=True)
def compressor_process(x, start, stop, threshold_db, ratio, knee_db, attack_coef, release_coef,
                       rms, rms_coef, makeup0_db, makeup1_db, tick_pos, tick, st):
    """Compress rows start..stop-1 of x: (frames, channels) in place, channels linked.

    Ballistics act on the gain in dB (attack when it falls, release when it rises).
    makeup glides linearly from makeup0_db to makeup1_db across a tick of `tick` samples,
    tick_pos being the position of row `start` in it. st: [mean square, gain dB].
    Returns the smallest gain (dB) applied in the range, for the meters.
    """
    channels = x.shape[1]
    ms = st[0]
    gr = st[1]
    lowest = 0.0
    # levels below the knee's foot leave the static curve at 0 dB: skip the logarithm there
    floor_lin = math.exp((threshold_db - 0.5 * knee_db) / DB_PER_LN)
    inv_tick = 1.0 / tick
    steady_makeup = makeup0_db == makeup1_db
    makeup_lin = math.exp(makeup0_db * LN_PER_DB)
    for n in range(start, stop):
        if rms:
            acc = 0.0
            for c in range(channels):
                acc += x[n, c] * x[n, c]
            ms += rms_coef * (acc / channels - ms)
            level = math.sqrt(ms)
        else:
            level = 0.0
            for c in range(channels):
                a = abs(x[n, c])
                if a > level:
                    level = a
        target = 0.0
        if level > floor_lin:
            target = static_gain_db(DB_PER_LN * math.log(level), threshold_db, ratio, knee_db)
        if target < gr:
            gr += attack_coef * (target - gr)
        else:
            gr += release_coef * (target - gr)
        if gr < lowest:
            lowest = gr
        if gr > -GR_REST_DB:
            gr = 0.0
        if gr == 0.0 and steady_makeup:
            g = makeup_lin
        else:
            frac = (tick_pos + n - start) * inv_tick
            g = math.exp((gr + makeup0_db + (makeup1_db - makeup0_db) * frac) * LN_PER_DB)
        for c in range(channels):
            x[n, c] *= g
    if abs(ms) < 1e-30:
        ms = 0.0
    st[0] = ms
    st[1] = gr
    return lowest
