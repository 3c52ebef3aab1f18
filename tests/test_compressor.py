"""Tests of the compressor kernel: the steady-state static curve and the attack and release
time constants, measured on its output."""

import numpy as np
import pytest

from auracore.kernels.compressor import RMS_WINDOW_MS, compressor_process, compressor_state, compressor_work, time_coef

FS = 48000.0
TICK = 128


def curve_db(level_db, threshold_db, ratio, knee_db):
    """The static curve as the static_gain_db docstring states it (written out again here,
    independently of the kernel)."""
    over = level_db - threshold_db
    if knee_db > 0 and abs(over) <= knee_db / 2:
        return (1 / ratio - 1) * (over + knee_db / 2) ** 2 / (2 * knee_db)
    return (1 / ratio - 1) * over if over > 0 else 0.0


def compress(x, threshold_db, ratio, knee_db, attack_ms, release_ms, rms=False, makeup_db=0.0,
             block=TICK):
    """x: (frames, channels) through compressor_process in tick-sized calls; returns a copy."""
    y = np.array(x, dtype=np.float64)
    st = compressor_state()
    work = compressor_work()
    a = time_coef(attack_ms, FS)
    r = time_coef(release_ms, FS)
    rc = time_coef(RMS_WINDOW_MS, FS)
    for i in range(0, len(y), block):
        compressor_process(y, i, min(i + block, len(y)), threshold_db, ratio, knee_db, a, r, rms, rc,
                           makeup_db, makeup_db, 0, block, st, work)
    return y


def square(level_db, frames, period=96, channels=2):
    """A square wave of peak (and RMS) level level_db: |x| is constant."""
    s = np.where((np.arange(frames) // (period // 2)) % 2 == 0, 1.0, -1.0) * 10.0 ** (level_db / 20.0)
    out = np.repeat(s[:, None], channels, axis=1)
    out[:, 1] *= 0.5  # the quieter channel must follow the louder one (linked detector)
    return out


@pytest.mark.parametrize("rms", [False, True])
@pytest.mark.parametrize("threshold_db,ratio,knee_db", [
    (-18.0, 2.0, 6.0), (-18.0, 4.0, 0.0), (-30.0, 20.0, 12.0), (-10.0, 1.5, 24.0), (-24.0, 8.0, 3.0)])
def test_static_curve(threshold_db, ratio, knee_db, rms):
    frames = int(0.25 * FS)
    for level_db in np.arange(threshold_db - 20.0, min(threshold_db + 24.0, 6.0), 0.75):
        x = square(level_db, frames)
        y = compress(x, threshold_db, ratio, knee_db, attack_ms=1.0, release_ms=5.0, rms=rms, makeup_db=1.5)
        tail = slice(frames - 2000, frames)  # settled: hundreds of time constants in
        got = 20.0 * np.log10(np.abs(y[tail, 0]) / np.abs(x[tail, 0])) - 1.5
        # both channels get the same gain
        assert np.allclose(y[tail, 1] / x[tail, 1], y[tail, 0] / x[tail, 0], rtol=1e-12)
        # peak: the louder channel; RMS: the mean square over both channels (1 and 1/4)
        detected_db = level_db + (10.0 * np.log10(0.625) if rms else 0.0)
        want = curve_db(detected_db, threshold_db, ratio, knee_db)
        err = np.abs(got - want).max()
        assert err <= 0.1, (f"level {detected_db:.2f} dB, thr {threshold_db}, ratio {ratio}, knee {knee_db}, "
                            f"rms {rms}: gain {got.mean():.4f} dB, formula {want:.4f} dB (+-0.1 dB)")


def gain_trace_db(x, y):
    return 20.0 * np.log10(np.abs(y[:, 0]) / np.abs(x[:, 0]))


def crossing_time_ms(trace_db, start, level_db, falling):
    """Time (ms, interpolated) from frame `start` until trace_db first crosses level_db."""
    seg = trace_db[start:]
    hit = np.nonzero(seg <= level_db if falling else seg >= level_db)[0]
    assert hit.size, "the gain never got there"
    k = hit[0]
    if k == 0:
        return 0.0
    frac = (level_db - seg[k - 1]) / (seg[k] - seg[k - 1])
    # the gain after input frame n is reached at time n + 1 (the step lands at frame 0)
    return (k + frac) / FS * 1000.0


@pytest.mark.parametrize("attack_ms,release_ms", [(10.0, 150.0), (1.0, 50.0), (30.0, 500.0), (0.5, 20.0)])
def test_attack_and_release_time_constants(attack_ms, release_ms):
    threshold_db, ratio, knee_db = -20.0, 4.0, 0.0
    quiet_db, loud_db = -40.0, -4.0
    target_db = curve_db(loud_db, threshold_db, ratio, knee_db)  # -12 dB
    pre = int(0.05 * FS)
    loud = int((10 * attack_ms + 50.0) / 1000.0 * FS)
    post = int((10 * release_ms + 50.0) / 1000.0 * FS)
    levels = np.concatenate([np.full(pre, quiet_db), np.full(loud, loud_db), np.full(post, quiet_db)])
    x = square(0.0, len(levels), period=2) * (10.0 ** (levels / 20.0))[:, None]
    y = compress(x, threshold_db, ratio, knee_db, attack_ms, release_ms)
    g = gain_trace_db(x, y)
    assert abs(g[pre - 1]) < 1e-9 and abs(g[pre + loud - 1] - target_db) < 0.01
    t_attack = crossing_time_ms(g, pre, (1 - np.exp(-1)) * target_db, falling=True)
    t_release = crossing_time_ms(g, pre + loud, np.exp(-1) * target_db, falling=False)
    assert abs(t_attack - attack_ms) <= 0.1 * attack_ms, (
        f"attack {attack_ms} ms: 63% of the {target_db:.1f} dB change took {t_attack:.3f} ms (+-10%)")
    assert abs(t_release - release_ms) <= 0.1 * release_ms, (
        f"release {release_ms} ms: 63% of the recovery took {t_release:.3f} ms (+-10%)")
