"""Tests of the true-peak limiter through the chain (every other stage neutral): adversarial
inputs stay under the ceiling by two independent meters, and quiet signals pass untouched."""

import numpy as np
import pytest
from conftest import (LIBEBUR128_SLACK_DB, REF_SLACK_DB, aligned, db, music_like, neutral_params, render,
                      settled_chain, true_peak_16x, true_peak_ebur128)

from auracore.kernels.limiter import LimiterState, _at_rest, latency_for, limiter_process

SECONDS = 0.5


def fade(n, frames):
    """A raised-cosine fade-in and -out of n frames over `frames`: (frames,)."""
    w = np.ones(frames)
    ramp = np.sin(np.linspace(0.0, np.pi / 2, n)) ** 2
    w[:n] = ramp
    w[-n:] = ramp[::-1]
    return w


def full_scale_square(freq_hz):
    def make(fs):
        n = np.arange(int(SECONDS * fs))
        s = np.where(np.sin(2 * np.pi * freq_hz / fs * n + 0.1) >= 0, 1.0, -1.0)
        return np.column_stack([s, -s])
    return make


def square_near_nyquist(fs):
    return full_scale_square(0.45 * fs)(fs)


def quarter_rate_sine_45(fs):
    """fs/4 at 45 degrees, samples at +-1.0 (0 dBFS): its true peak is +3.01 dBTP."""
    n = np.arange(int(SECONDS * fs))
    s = np.sqrt(2.0) * np.sin(np.pi / 2 * n + np.pi / 4)
    return np.column_stack([s, s])


def clipped_master(fs):
    """A music-like master boosted 12 dB and hard-clipped at 0 dBFS."""
    return np.clip(music_like(fs, SECONDS, seed=11, peak_dbfs=-3.0 + 12.0), -1.0, 1.0)


def spikes(fs):
    """Single-sample spikes (+1, -2, +1 then -1 in a row) over a quiet sine and in silence."""
    frames = int(SECONDS * fs)
    n = np.arange(frames)
    x = np.zeros((frames, 2))
    x[: frames // 2] = 0.1 * np.sin(2 * np.pi * 441.0 / fs * n[: frames // 2])[:, None]
    for k in (1000, frames // 2 + 1000):
        x[k, 0] += 1.0
        x[k + 3000, 1] -= 2.0
        x[k + 6000, :] = (1.0, -1.0)
        x[k + 6001, :] = (-1.0, 1.0)
    return x


SIGNALS = {
    "square_50Hz": full_scale_square(50.0),
    "square_997Hz": full_scale_square(997.0),
    "square_5kHz": full_scale_square(5000.0),
    "square_0.45fs": square_near_nyquist,
    "sine_fs/4_45deg": quarter_rate_sine_45,
    "clipped_master": clipped_master,
    "spikes": spikes,
}


# Signals with strong content near Nyquist (the Gibbs ripple of naive squares, single-sample
# spikes, hard clipping's harmonics): the limiter adds a margin for what its estimator cannot
# see there, so these land further under the ceiling than music does. How far under the
# ceiling "limits rather than mutes" allows, in dB (measured: squares and spikes 0.2-1.5 dB,
# the clipped master 0.02-0.3 dB):
ROOM_DB = {"square_50Hz": 2.0, "square_997Hz": 2.0, "square_5kHz": 2.0, "square_0.45fs": 2.0, "spikes": 2.0,
           "clipped_master": 0.5}


def limited(name, fs, ceiling_dbtp):
    x = SIGNALS[name](fs)
    params = neutral_params({"limiter.ceiling_dbtp": ceiling_dbtp})
    st = settled_chain(fs, 2, params)
    return x, render(x, st, params, blocks=1024)


@pytest.mark.parametrize("ceiling_dbtp", [-1.0, -0.3])
@pytest.mark.parametrize("fs", [44100, 48000])
@pytest.mark.parametrize("name", list(SIGNALS))
def test_true_peak_stays_under_ceiling(name, fs, ceiling_dbtp):
    x, y = limited(name, fs, ceiling_dbtp)
    assert np.all(np.isfinite(y))
    ref = db(true_peak_16x(y).max())
    ebu = db(true_peak_ebur128(y, fs).max())
    assert ref <= ceiling_dbtp + REF_SLACK_DB, (
        f"{name} at {fs} Hz: 16x reference reads {ref:.4f} dBTP, {ref - ceiling_dbtp:+.4f} dB over the "
        f"{ceiling_dbtp} dBTP ceiling (allowed +{REF_SLACK_DB} dB)")
    assert ebu <= ceiling_dbtp + LIBEBUR128_SLACK_DB, (
        f"{name} at {fs} Hz: libebur128 reads {ebu:.4f} dBTP, {ebu - ceiling_dbtp:+.4f} dB over the "
        f"{ceiling_dbtp} dBTP ceiling (allowed +{LIBEBUR128_SLACK_DB} dB)")
    # and it limits rather than mutes: the loudest peak lands near the ceiling
    room = ROOM_DB.get(name, 0.1)
    assert ref >= ceiling_dbtp - room, f"{name}: output true peak {ref:.3f} dBTP, > {room} dB under the ceiling"


@pytest.mark.parametrize("fs", [44100, 48000, 96000])
@pytest.mark.parametrize("lookahead_ms", [1.5, 5.0])
def test_quiet_signal_passes_with_unity_gain_after_latency(fs, lookahead_ms):
    x = music_like(fs, 1.0, seed=3, peak_dbfs=-6.0)
    assert db(true_peak_16x(x).max()) < -3.0  # well under the ceiling
    params = neutral_params({"limiter.ceiling_dbtp": -1.0})
    st = settled_chain(fs, 2, params, lookahead_ms=lookahead_ms)
    assert st.latency == latency_for(fs, lookahead_ms)[0]
    assert st.latency >= round(lookahead_ms * fs / 1000.0)
    y = render(x, st, params, blocks=1000)
    assert np.array_equal(y[:st.latency], np.zeros((st.latency, 2))), "output before the latency is not silent"
    err = np.abs(aligned(y, st, len(x)) - x).max()
    assert err <= 1e-12, f"quiet signal changed by {err:.3g} after {st.latency} frames of latency (limit 1e-12)"
    assert np.abs(y[st.latency + len(x):]).max() == 0.0


@pytest.mark.parametrize("fs", [44100, 48000])
def test_reference_meter_reads_known_peaks(fs):
    """The 16x reference's own error on sines of known peak (what REF_SLACK_DB covers)."""
    frames = int(0.1 * fs)
    n = np.arange(frames)
    w = fade(1000, frames)
    worst = 0.0
    for freq_hz in np.linspace(20.0, 0.46 * fs, 40):
        for phase in (0.0, 0.7, 1.9):
            x = 0.5 * np.sin(2 * np.pi * freq_hz / fs * n + phase) * w
            err = db(true_peak_16x(x[:, None])[0] / 0.5)
            worst = max(worst, abs(err))
    assert worst <= REF_SLACK_DB, f"16x reference misreads sines by up to {worst:.5f} dB"


@pytest.mark.parametrize("fs", [44100, 48000])
def test_libebur128_own_reading_error(fs):
    """libebur128's overread on sines of known peak: what LIBEBUR128_SLACK_DB must cover."""
    frames = int(0.25 * fs)
    n = np.arange(frames)
    w = fade(1000, frames)
    worst = 0.0
    for freq_hz in np.arange(20.0, 0.5 * fs, 250.0):
        for phase in np.linspace(0.0, np.pi / 2, 5):
            x = 0.5 * np.sin(2 * np.pi * freq_hz / fs * n + phase) * w
            worst = max(worst, db(true_peak_ebur128(x[:, None], fs)[0] / 0.5))
    assert worst <= LIBEBUR128_SLACK_DB, f"libebur128 overreads sines by {worst:.4f} dB"


@pytest.mark.parametrize("blocks", [[128], [37, 91, 128, 5, 64]])
def test_shortcuts_give_the_same_samples_as_the_full_path(blocks):
    """The quiet and at-rest shortcuts against the full per-frame path (shortcuts=False):
    identical samples (0.0 difference) through loud passages, releases and rests, a gliding
    ceiling and a bypass crossfade, in tick-sized and in split calls. The shortcuts must
    have had their chance: calls that start and end at rest (else this test proves nothing)."""
    fs = 48000
    tick = 128
    rng = np.random.default_rng(5)
    x = music_like(fs, 4.0, seed=21, peak_dbfs=-3.0)
    x *= np.repeat(rng.uniform(0.2, 4.0, 8), len(x) // 8 + 1)[:len(x), None]  # loud and quiet spans
    release = 1.0 - np.exp(-1000.0 / (20.0 * fs))

    def run(shortcuts):
        st = LimiterState(fs, 2, 1.5, tick)
        y = np.zeros_like(x)
        pos = k = quick = 0
        while pos < len(x):
            tp = pos % tick
            n = min(blocks[k % len(blocks)], tick - tp, len(x) - pos)
            k += 1
            t = pos // tick
            c0 = 10.0 ** ((-1.0 - 0.5 * (t % 9 == 4)) / 20.0)  # a ceiling glide now and then
            b0 = 0.4 if t % 60 == 30 else 0.0                    # and a bypass crossfade
            rest = _at_rest(st.dq_val, st.box, st.scalars[0])
            low = limiter_process(x[pos:pos + n], y[pos:pos + n], x[pos:pos + n], n, c0, 10.0 ** (-1.0 / 20.0),
                                  release, b0, 0.0, tp, tick, st.latency, st.arrays, shortcuts)
            quick += rest and _at_rest(st.dq_val, st.box, st.scalars[0]) and low == st.scalars[0]["gain"]
            pos += n
        return y, quick / k

    full, _ = run(False)
    fast, share = run(True)
    assert np.abs(full).max() > 0.5
    assert share > 0.2, f"only {share:.0%} of the calls were at rest"
    assert np.array_equal(full, fast), f"shortcuts differ from the full path by {np.abs(full - fast).max():.3g}"
