"""Tests of the whole chain: smooth parameter changes, sanitising, block-size and dtype
independence, mono, sample rates, the loudness follower and denormal safety."""

import time

import numpy as np
import pyloudnorm as pyln
import pytest
import scipy.signal as ss
from conftest import aligned, music_like, neutral_params, param_vector, render, settled_chain, sine, tone_amplitude

from auracore.kernels import chain
from auracore.kernels.biquad import SHAPE_PEAKING, design_biquad
from auracore.kernels.limiter import latency_for

FS = 48000

# Every stage doing something: EQ on all bands, 3:1 compression, wide stereo, auto loudness.
ACTIVE = {
    "input.gain_db": 2.0, "eq.1.gain_db": 3.0, "eq.2.gain_db": -2.0, "eq.3.gain_db": 4.0,
    "eq.4.gain_db": -3.0, "eq.5.gain_db": 2.5, "eq.6.gain_db": -1.5, "eq.7.gain_db": 3.5,
    "eq.8.gain_db": 2.0, "eq.4.q": 2.0, "comp.threshold_db": -20.0, "comp.ratio": 3.0,
    "comp.attack_ms": 5.0, "comp.release_ms": 80.0, "comp.makeup_db": 2.0, "width.amount": 1.4,
    "loudness.auto": 1.0, "loudness.target_lufs": -12.0, "output.gain_db": 1.0,
    "limiter.ceiling_dbtp": -1.0, "limiter.release_ms": 50.0,
}
# What changes at frame SWITCH in the block-size test (a multiple of every block size used).
CHANGED = {"eq.3.gain_db": -6.0, "eq.5.freq_hz": 3300.0, "comp.threshold_db": -26.0, "comp.rms": 1.0,
           "width.amount": 0.6, "output.gain_db": 4.0, "limiter.ceiling_dbtp": -0.3}
SWITCH = 65536


def jump_output(x, pid, before, after, at, glide=True):
    """Run x through a neutral chain settled with pid=before, switching to pid=after at
    frame `at`; returns the aligned output."""
    p0 = neutral_params({pid: before})
    p1 = neutral_params({pid: after})
    st = settled_chain(FS, x.shape[1], p0)
    if not glide:
        st.ps_coef[:] = 1.0  # jump to the target on the next tick
    y = np.concatenate([x, np.zeros((st.latency, x.shape[1]))])
    chain.process(y[:at], st, p0)
    for i in range(at, len(y), 1000):
        chain.process(y[i:i + 1000], st, p1)
    return aligned(y, st, len(x))


def peaking_gain(fs, centre_hz, gain_db, q, at_hz):
    c = np.zeros(5)
    design_biquad(SHAPE_PEAKING, float(fs), centre_hz, gain_db, q, c)
    _, h = ss.freqz(c[:3], [1.0, c[3], c[4]], worN=[at_hz], fs=fs)
    return abs(h[0])


JUMPS = [
    # (param, before, after, sine Hz, right channel factor, final gain on the left, bound)
    ("output.gain_db", 0.0, 12.0, 100.0, 1.0, 10.0 ** (12.0 / 20.0), 1.05),
    ("input.gain_db", 0.0, 12.0, 100.0, 1.0, 10.0 ** (12.0 / 20.0), 1.05),
    ("eq.4.gain_db", 0.0, 12.0, 100.0, 1.0, peaking_gain(FS, 1000.0, 12.0, 1.0, 100.0), 2.0),
    ("eq.4.gain_db", 0.0, 12.0, 1000.0, 1.0, 10.0 ** (12.0 / 20.0), 1.05),
    ("width.amount", 1.0, 0.0, 100.0, 0.0, 0.5, 1.05),  # L = sine, R = 0: L falls to mid = sine/2
]


@pytest.mark.parametrize("pid,before,after,freq_hz,right,gain_lin,bound", JUMPS)
def test_parameter_jump_has_no_discontinuity(pid, before, after, freq_hz, right, gain_lin, bound):
    """Around a jump, the largest sample-to-sample step of the output stays within `bound`
    times that of the unprocessed sine scaled by the larger of the gains before and after."""
    amp = 10.0 ** (-30.0 / 20.0)
    x = sine(FS, 1.0, freq_hz, amp)
    x[:, 1] *= right
    at = FS // 2 + 37
    y = jump_output(x, pid, before, after, at)
    around = slice(at - 2000, at + int(0.3 * FS))
    step_in = np.abs(np.diff(x[around, 0])).max() * max(1.0, gain_lin)
    step_out = np.abs(np.diff(y[around, 0])).max()
    assert step_out <= bound * step_in, (
        f"{pid} {before} -> {after} on {freq_hz} Hz: largest output step {step_out:.3g} is "
        f"{step_out / step_in:.3f}x the scaled input's (bound {bound}x)")
    # the change did happen: 0.3 s later (15 glide time constants) the gain is the target's
    got = tone_amplitude(y[at + int(0.3 * FS):, 0], FS, freq_hz) / amp
    assert abs(20 * np.log10(got / gain_lin)) <= 0.01, f"gain after the jump {got:.4f}, wanted {gain_lin:.4f}"


def test_unglided_eq_jump_breaks_the_bound():
    """The 2x bound above has teeth: the same EQ move applied at once (no glide) breaks it."""
    amp = 10.0 ** (-30.0 / 20.0)
    x = sine(FS, 1.0, 100.0, amp)
    at = FS // 2 + 37
    y = jump_output(x, "eq.4.gain_db", 0.0, 12.0, at, glide=False)
    around = slice(at - 2000, at + int(0.3 * FS))
    gain = peaking_gain(FS, 1000.0, 12.0, 1.0, 100.0)
    ratio = np.abs(np.diff(y[around, 0])).max() / (np.abs(np.diff(x[around, 0])).max() * max(1.0, gain))
    assert ratio > 2.0, f"an unglided 12 dB EQ jump steps only {ratio:.2f}x"


def test_nan_inf_are_sanitised_and_counted():
    x = music_like(FS, 1.0, seed=2)
    bad = {(100, 0): np.nan, (101, 1): np.nan, (5000, 0): np.inf, (5000, 1): -np.inf,
           (20000, 1): np.inf, (30001, 0): -np.inf, (30002, 0): 2.0e4, (40000, 1): -1.0e5}
    dirty = x.copy()
    for (i, c), v in bad.items():
        dirty[i, c] = v
    dirty[45000:45300] = np.nan  # a whole stretch of garbage: 600 samples
    dirty[46000, 0] = 5000.0  # +74 dBFS: loud but a number; it passes as is
    clean = dirty.copy()
    clean[~(np.abs(clean) <= chain.SANE_LIMIT)] = 0.0
    params = param_vector(ACTIVE)
    st = chain.ChainState(FS, 2)
    y = render(dirty, st, params, blocks=(1000, 17, 4096))
    assert np.all(np.isfinite(y)), "non-finite output"
    assert st.sanitised_samples == len(bad) + 600, f"counted {st.sanitised_samples}, wanted {len(bad) + 600}"
    # a sanitised sample is exactly a zero: the rest of the stream is untouched by it
    ref_state = chain.ChainState(FS, 2)
    want = render(clean, ref_state, params, blocks=(1000, 17, 4096))
    assert np.array_equal(y, want), "garbage left a trace beyond being replaced by 0"
    assert ref_state.sanitised_samples == 0


def _render_segments(x, blocks):
    """x through a fresh chain with ACTIVE params up to SWITCH, then ACTIVE + CHANGED."""
    p0 = param_vector(ACTIVE)
    p1 = param_vector({**ACTIVE, **CHANGED})
    st = chain.ChainState(FS, 2)
    y = x.copy()
    sizes = list(blocks)
    k = 0
    for lo, hi, p in ((0, SWITCH, p0), (SWITCH, len(y), p1)):
        i = lo
        while i < hi:
            n = min(sizes[k % len(sizes)], hi - i)
            chain.process(y[i:i + n], st, p)
            i += n
            k += 1
    return y, st


def test_block_size_independence():
    x = music_like(FS, 3.0, seed=4)
    irregular = list(np.random.default_rng(9).integers(1, 3000, 97)) + [1, 2, 127, 128, 129]
    outputs = {}
    for name, blocks in (("64", [64]), ("1024", [1024]), ("4096", [4096]), ("irregular", irregular)):
        y, st = _render_segments(x, blocks)
        outputs[name] = y
        assert st.loudness_gain_db > 1.0, "auto loudness did not engage"
    comp_db, lim_db = st.take_gain_reduction()
    assert comp_db < -1.0 and lim_db < -0.1, f"comp {comp_db:.2f} dB, limiter {lim_db:.2f} dB: not all stages active"
    for name, y in outputs.items():
        diff = np.abs(y - outputs["1024"]).max()
        assert np.array_equal(y, outputs["1024"]), f"blocks of {name} differ from 1024 by up to {diff:.3g}"


def test_float32_and_float64_agree():
    x32 = music_like(FS, 2.0, seed=6).astype(np.float32)
    params = param_vector(ACTIVE)
    st32 = chain.ChainState(FS, 2)
    st64 = chain.ChainState(FS, 2)
    y32 = render(x32.astype(np.float64), st32, params, dtype=np.float32)
    y64 = render(x32.astype(np.float64), st64, params, dtype=np.float64)
    assert y32.dtype == np.float32
    err = np.abs(y32.astype(np.float64) - y64).max()
    assert err <= 1e-6, f"float32 and float64 blocks differ by {err:.3g} (limit 1e-6)"


def test_mono_matches_dual_mono_stereo():
    mono = music_like(FS, 2.0, seed=8)[:, :1].copy()
    params = param_vector({**ACTIVE, "loudness.auto": 0.0})
    st1 = chain.ChainState(FS, 1)
    st2 = chain.ChainState(FS, 2)
    assert st1.latency == st2.latency
    y1 = render(mono, st1, params)
    y2 = render(np.repeat(mono, 2, axis=1), st2, params)
    assert y1.shape[1] == 1 and np.all(np.isfinite(y1))
    assert st1.take_gain_reduction()[0] < -1.0, "the compressor did not act on mono"
    err = np.abs(y1[:, 0] - y2[:, 0]).max()
    assert err <= 1e-12, f"mono and dual-mono stereo differ by {err:.3g} (limit 1e-12)"
    assert np.array_equal(y2[:, 0], y2[:, 1])


@pytest.mark.parametrize("fs", [44100, 48000, 96000])
def test_sample_rates(fs):
    x = music_like(fs, 1.5, seed=10)
    params = param_vector({**ACTIVE, "output.gain_db": 6.0})
    st = chain.ChainState(fs, 2)
    assert st.latency == latency_for(fs, 1.5)[0]
    y = render(x, st, params)
    assert np.all(np.isfinite(y))
    comp_db, lim_db = st.take_gain_reduction()
    assert comp_db < -1.0 and lim_db < -0.5, f"comp {comp_db:.2f} dB, limiter {lim_db:.2f} dB at {fs} Hz"
    # the limiter's estimate bounds every sample, so no sample may pass the ceiling
    peak = np.abs(y).max()
    assert 20 * np.log10(peak) <= -1.0, f"sample peak {20 * np.log10(peak):.4f} dBFS over -1 dBTP at {fs} Hz"


def _multisine(seconds, lufs):
    """A steady stereo three-tone signal at exactly `lufs` (pyloudnorm, BS.1770)."""
    n = np.arange(int(seconds * FS))
    s = sum(np.sin(2 * np.pi * f / FS * n + k) for k, f in enumerate((220.0, 1000.0, 3150.0)))
    x = np.column_stack([s, 0.8 * s])
    level = pyln.Meter(FS).integrated_loudness(x[: 5 * FS])
    return x * 10.0 ** ((lufs - level) / 20.0)


def _auto_loudness_run(input_lufs, seconds=20.0, silence=10.0):
    x = _multisine(seconds, input_lufs)
    params = neutral_params({"loudness.auto": 1.0, "loudness.target_lufs": -14.0})
    st = settled_chain(FS, 2, params)
    y = np.concatenate([x, np.zeros((int(silence * FS), 2))])
    gains = []
    for i in range(0, len(y), 1024):
        chain.process(y[i:i + 1024], st, params)
        gains.append(st.loudness_gain_db)
    gains = np.array(gains)
    at_end = gains[len(x) // 1024 - 1]
    out = y[st.latency + len(x) - 5 * FS: st.latency + len(x)]
    return gains, at_end, pyln.Meter(FS).integrated_loudness(out)


def test_auto_loudness_caps_at_12_db_and_holds_through_silence():
    gains, at_end, out_lufs = _auto_loudness_run(-30.0)
    assert gains.max() <= 12.0 + 1e-9, f"auto loudness gain reached {gains.max():.6f} dB (cap 12 dB)"
    one_s = FS // 1024
    assert 0.0 < gains[one_s] < gains[3 * one_s] < gains[6 * one_s], "gain does not rise toward the target"
    assert abs(at_end - 12.0) <= 0.05, f"gain {at_end:.4f} dB after 20 s, wanted the 12 dB cap (+-0.05)"
    assert abs(out_lufs - -18.0) <= 0.1, f"output {out_lufs:.3f} LUFS, wanted -30 + 12 = -18 (+-0.1 LU)"
    drift = np.abs(gains[len(gains) - 10 * FS // 1024:] - at_end).max()
    assert drift <= 0.1, f"gain moved {drift:.3f} dB during 10 s of silence (limit 0.1 dB)"


def test_auto_loudness_reaches_target():
    gains, at_end, out_lufs = _auto_loudness_run(-20.0, silence=0.0)
    assert abs(out_lufs - -14.0) <= 0.1, f"output {out_lufs:.3f} LUFS, target -14 (+-0.1 LU)"
    assert abs(at_end - 6.0) <= 0.1, f"gain {at_end:.4f} dB, wanted 6 dB (+-0.1)"


def test_auto_loudness_holds_unclamped_gain_through_silence():
    gains, at_end, _ = _auto_loudness_run(-20.0)
    drift = np.abs(gains[len(gains) - 10 * FS // 1024:] - at_end).max()
    assert drift <= 0.1, f"gain moved {drift:.3f} dB (from {at_end:.4f} dB) during 10 s of silence (limit 0.1 dB)"


def test_silence_after_a_burst_is_not_slow():
    """Denormal safety: decaying filter and detector states must not slow the silence (on
    CPUs where subnormal arithmetic is slow), nor hold subnormal values at all."""
    params = param_vector({**ACTIVE, "loudness.auto": 0.0})
    rng = np.random.default_rng(12)
    seconds = 8.0  # long enough for undamped IIR states to decay into the subnormal range
    noise = rng.standard_normal((int(seconds * FS), 2)) * 0.3
    burst = rng.standard_normal((FS, 2)) * 0.9
    tiny = np.finfo(np.float64).tiny

    def per_sample(signal):
        best = np.inf
        for _ in range(3):
            st = chain.ChainState(FS, 2)
            chain.process(burst.copy(), st, params)
            y = signal.copy()
            t = time.perf_counter()
            for i in range(0, len(y), 1024):
                chain.process(y[i:i + 1024], st, params)
            best = min(best, (time.perf_counter() - t) / len(y))
        return best

    t_noise = per_sample(noise)
    t_silence = per_sample(np.zeros_like(noise))
    st = chain.ChainState(FS, 2)
    chain.process(burst.copy(), st, params)
    silence = np.zeros_like(noise)
    for i in range(0, len(silence), 1024):
        chain.process(silence[i:i + 1024], st, params)
        for a in [*st.arrays[:-1], *st.arrays.lim]:
            if a.dtype == np.float64:
                assert not np.any((a != 0) & (np.abs(a) < tiny)), f"subnormal value in the chain state at frame {i}"
    assert t_silence <= 3.0 * t_noise, (
        f"silence after a burst: {t_silence * 1e9:.1f} ns/frame vs noise {t_noise * 1e9:.1f} ns/frame (limit 3x)")


def test_state_is_named_and_the_scalars_are_one_record():
    """The kernels reach the chain's state by name: ChainArrays holds the arrays the state
    object owns (the same objects), and its scalars are one record that the Python side
    reads by field."""
    st = chain.ChainState(48000, 2)
    a = st.arrays
    assert a.ps is st.ps and a.ps_prev is st.ps_prev and a.scalars is st.scalars
    assert a.lim.delay is st.limiter.delay and a.lim.scalars is st.limiter.scalars
    x = np.zeros((1000, 2))
    x[10, 0] = np.nan
    chain.process(x, st, st.ps.copy())
    assert st.scalars[0]["frames"] == 1000 and st.scalars[0]["tick_pos"] == 1000 % chain.TICK
    assert st.sanitised_samples == 1


@pytest.mark.parametrize("channels", [1, 2])
def test_front_then_back_is_the_whole_chain_bit_for_bit(channels):
    """Mastering runs the chain in two halves (PART_FRONT up to the compressor, PART_BACK from
    the width on) so it can try several output gains on one front pass: with loudness
    following, width and limiting all active (bypass 0), the halves on two states give the
    whole chain's samples exactly (difference 0.0), in blocks of any size."""
    x = music_like(FS, 4.0, seed=5)[:, :channels] * 2.0
    p = param_vector(ACTIVE)
    whole = x.copy()
    chain.process(whole, chain.ChainState(FS, channels, params=p), p)
    front, back = chain.ChainState(FS, channels, params=p), chain.ChainState(FS, channels, params=p)
    u = x.copy()
    for i in range(0, u.shape[0], 1000):
        chain.process(u[i:i + 1000], front, p, chain.PART_FRONT)
    for i in range(0, u.shape[0], 4096):
        chain.process(u[i:i + 4096], back, p, chain.PART_BACK)
    assert np.max(np.abs(u - whole)) == 0.0
    assert np.max(np.abs(whole[front.latency:])) > 0.1   # the chain did produce signal
