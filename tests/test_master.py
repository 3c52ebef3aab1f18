"""`auracore master --reference`: the match (tonal balance, loudness, width, ceiling), amount, presets, files, errors."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pedalboard as pb
import pytest
import soundfile as sf
import pyebur128
from conftest import db, true_peak_16x

from auracore.offline.params import load_preset
from auracore.errors import AudioFileError, ParamError
from auracore.offline.demo import demo_track
from auracore.offline.master import master, master_file

FS = 48000
AURACORE = [sys.executable, "-m", "auracore.control.cli"]
THIRDS_HZ = [1000.0 * 2.0 ** (k / 3.0) for k in range(-12, 11)]   # 63 Hz .. 10 kHz


def ebur128_lufs(x, fs):
    """Integrated loudness (LUFS) by libebur128."""
    mode = pyebur128.MeasurementMode
    st = pyebur128.R128State(x.shape[1], fs, mode.MODE_I)
    st.add_frames(np.ascontiguousarray(x, dtype=np.float64).ravel(), x.shape[0])
    return pyebur128.get_loudness_global(st)


def run_cli(*args):
    return subprocess.run(AURACORE + [str(a) for a in args], capture_output=True, text=True, timeout=300)


def side_mid_db(x):
    m, s = x[:, 0] + x[:, 1], x[:, 0] - x[:, 1]
    return 10 * math.log10(np.sum(s ** 2) / np.sum(m ** 2))


def third_octave_db(x, fs):
    """1/3-octave band levels (dB) relative to the integrated loudness: Welch, both channels."""
    from scipy.signal import welch

    f, p = welch(x, fs, nperseg=8192, axis=0)
    p = p.sum(axis=1)
    bands = np.array([10 * np.log10(p[(f >= c * 2 ** (-1 / 6)) & (f < c * 2 ** (1 / 6))].sum()) for c in THIRDS_HZ])
    return bands - ebur128_lufs(x, fs)


def process_known(x, fs, width=0.6, gain_db=5.0):
    """The reference's known processing: a bright tilt, a mid dip, a bass lift, width, level."""
    board = pb.Pedalboard([pb.LowShelfFilter(cutoff_frequency_hz=120, gain_db=4.0),
                           pb.PeakFilter(cutoff_frequency_hz=900, gain_db=-5.0, q=1.0),
                           pb.HighShelfFilter(cutoff_frequency_hz=6000, gain_db=6.0),
                           pb.Gain(gain_db=gain_db)])
    y = board(x.T.astype(np.float32), fs).T.astype(np.float64)
    mid, side = 0.5 * (y[:, 0] + y[:, 1]), 0.5 * (y[:, 0] - y[:, 1]) * width
    return np.stack([mid + side, mid - side], axis=1)


@pytest.fixture(scope="module")
def pair():
    x = demo_track(FS, 12.0, seed=11)
    ref = process_known(demo_track(FS, 12.0, seed=12), FS)
    scale = 10 ** (-1.0 / 20) / true_peak_16x(ref).max()   # a mastered reference: peaks at -1 dBTP
    return x, ref * scale, process_known(x, FS) * scale, master(x, ref * scale, FS)


def test_the_match_recovers_the_known_processing(pair):
    """Tonal balance within 1 dB (mean over 1/3-octave bands 63 Hz-10 kHz) of the input put
    through the reference's own settings, loudness within 0.1 LU of the reference (libebur128),
    side/mid ratio within 0.3 dB."""
    x, ref, ideal, m = pair
    err = np.abs(third_octave_db(m.audio, FS) - third_octave_db(ideal, FS))
    before = np.abs(third_octave_db(x, FS) - third_octave_db(ideal, FS))
    assert np.mean(err) < 1.0, err
    assert np.mean(before) > 2.5  # the processing was there to be found
    assert abs(ebur128_lufs(m.audio, FS) - ebur128_lufs(ref, FS)) < 0.1
    assert abs(side_mid_db(m.audio) - side_mid_db(ref)) < 0.3
    assert m.audio.shape == x.shape
    # what it set, in the registry's units: a bright tilt, a narrower image
    assert m.params["eq.8.gain_db"] > 2.0
    assert 0.45 < m.params["width.amount"] < 0.75


def test_true_peak_stays_under_the_ceiling_with_a_hot_reference():
    """A reference mastered loud (about -11 LUFS, clipped at 0 dBFS): the output reaches its
    loudness within 0.2 LU and its true peak (16x oversampled) stays at or under -1 dBTP."""
    x = demo_track(FS, 10.0, seed=21)
    hot = np.clip(demo_track(FS, 10.0, seed=22) * 10 ** (9 / 20), -1.0, 1.0)
    m = master(x, hot, FS)
    assert m.params["limiter.ceiling_dbtp"] == -1.0
    assert db(true_peak_16x(m.audio).max()) <= -1.0 + 0.02
    assert ebur128_lufs(hot, FS) > -12.0
    assert abs(ebur128_lufs(m.audio, FS) - ebur128_lufs(hot, FS)) < 0.2


def test_amount_scales_the_match(pair):
    """amount 0 is the input itself; 0.5 is half of every change in dB."""
    x, ref, _, full = pair
    none = master(x, ref, FS, amount=0.0)
    assert np.array_equal(none.audio, x)
    half = master(x, ref, FS, amount=0.5)
    for b in range(1, 9):
        assert half.params[f"eq.{b}.gain_db"] == pytest.approx(full.params[f"eq.{b}.gain_db"] / 2, abs=0.011)
    half_way_db = (side_mid_db(x) + side_mid_db(ref)) / 2
    assert abs(side_mid_db(half.audio) - half_way_db) < 0.1
    mid_lufs = (full.input_integrated_lufs + full.reference_integrated_lufs) / 2
    assert abs(half.output_integrated_lufs - mid_lufs) < 0.1


def test_match_subset_leaves_the_rest_alone(pair):
    """match=loudness only: no EQ, width 1, ratio 1, and the reference's loudness."""
    x, ref, _, _ = pair
    m = master(x, ref, FS, match=("loudness",))
    assert all(m.params[f"eq.{b}.gain_db"] == 0.0 for b in range(1, 9))
    assert m.params["width.amount"] == 1.0 and m.params["comp.ratio"] == 1.0
    assert m.matching_curve is None
    assert abs(ebur128_lufs(m.audio, FS) - m.reference_integrated_lufs) < 0.1
    assert abs(side_mid_db(m.audio) - side_mid_db(x)) < 0.05


def test_bad_arguments_are_refused():
    x = demo_track(FS, 3.0)
    with pytest.raises(ParamError):
        master(x, x, FS, amount=1.5)
    with pytest.raises(ParamError):
        master(x, x, FS, match=("eq", "reverb"))
    with pytest.raises(AudioFileError):
        master(np.zeros((FS, 2)), x, FS)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("master")
    x = demo_track(44100, 8.0, seed=31)
    mono = d / "mono.wav"
    sf.write(mono, x.mean(axis=1), 44100, subtype="PCM_24")
    stereo = d / "in.flac"
    sf.write(stereo, x, 44100, subtype="PCM_24")
    ref = d / "ref.wav"
    sf.write(ref, process_known(demo_track(48000, 8.0, seed=32), 48000) * 0.5, 48000, subtype="FLOAT")
    return d, mono, stereo, ref


def test_cli_mono_in_mono_out_at_its_own_rate(files):
    d, mono, _, ref = files
    out = d / "mono-out.wav"
    r = run_cli("master", mono, out, "--reference", ref, "--json")
    assert r.returncode == 0, r.stderr
    info = sf.info(out)
    assert info.channels == 1 and info.samplerate == 44100 and info.frames == sf.info(mono).frames
    s = json.loads(r.stdout)
    for key in ("output", "reference", "params", "input_integrated_lufs", "input_true_peak_dbtp",
                "reference_integrated_lufs", "reference_true_peak_dbtp", "output_integrated_lufs",
                "output_true_peak_dbtp"):
        assert key in s
    y, _ = sf.read(out, always_2d=True)
    assert abs(ebur128_lufs(y, 44100) - s["reference_integrated_lufs"]) < 0.2
    assert s["output_true_peak_dbtp"] <= s["params"]["limiter.ceiling_dbtp"] + 0.02


def test_preset_reproduces_the_match_in_render(files):
    """--save-preset writes what load_preset reads; with no offline stage (no EQ matched),
    `render --preset` gives the master's output sample for sample (FLOAT files)."""
    d, _, stereo, ref = files
    out, preset, rendered = d / "m.wav", d / "p.toml", d / "r.wav"
    r = run_cli("master", stereo, out, "--reference", ref, "--match", "loudness,dynamics,width",
                "--save-preset", preset, "--subtype", "FLOAT", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["matching_curve"] is None
    values = load_preset(str(preset))
    assert values == pytest.approx(s["params"], abs=1e-9)
    r = run_cli("render", stereo, rendered, "--preset", preset, "--subtype", "FLOAT")
    assert r.returncode == 0, r.stderr
    a, _ = sf.read(out)
    b, _ = sf.read(rendered)
    assert np.max(np.abs(a - b)) < 1e-6


def test_file_and_array_paths_agree(files):
    """master_file (streamed in blocks) and master (arrays) give the same audio within PCM_24 dither."""
    d, _, stereo, ref = files
    out = d / "stream.wav"
    res = master_file(str(stereo), str(out), str(ref), subtype="FLOAT")
    assert res.audio is None
    x, fs = sf.read(stereo, always_2d=True)
    r, rfs = sf.read(ref, always_2d=True)
    arr = master(x, r, fs, reference_rate=rfs)
    y, _ = sf.read(out, always_2d=True)
    assert np.max(np.abs(y - arr.audio)) < 1e-6
    assert res.params == arr.params


def test_cli_errors_are_one_line_and_leave_nothing(files, tmp_path):
    d, _, stereo, ref = files
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((44100, 2)), 44100)
    before = set(os.listdir(tmp_path))
    for args in ((silent, tmp_path / "o.wav", "--reference", ref),
                 (stereo, tmp_path / "o.wav", "--reference", tmp_path / "missing.wav"),
                 (stereo, stereo, "--reference", ref),
                 (stereo, tmp_path / "o.wav", "--reference", ref, "--save-preset", stereo.with_suffix(".toml"),
                  "--match", "eq,colour")):
        r = run_cli("master", *args)
        assert r.returncode in (1, 2), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr
    assert set(os.listdir(tmp_path)) == before
    assert sf.info(stereo).frames == 8 * 44100


def test_the_matching_fir_streams_the_exact_convolution_in_single_precision():
    """MatchFilter (single-precision transforms, overlap added in double) against a double
    convolution of mid and side, for stereo and mono, fed in blocks of awkward sizes:
    within -120 dB rms of the signal (measured -134), delayed by exactly (taps - 1) / 2."""
    from scipy.signal import fftconvolve

    from auracore.offline.master.fir import MatchFilter, design_fir, fir_taps

    rng = np.random.default_rng(3)
    x = 0.1 * rng.standard_normal((3 * FS, 2))
    grid = np.geomspace(20.0, 20000.0, 240)
    taps = fir_taps(FS)
    mid_fir = design_fir(grid, 4.0 * np.sin(np.log(grid)), FS, taps)
    side_fir = design_fir(grid, -3.0 * np.cos(np.log(grid)), FS, taps)
    for channels in (2, 1):
        f = MatchFilter(mid_fir, side_fir, channels)
        assert f.delay == (taps - 1) // 2
        xs = x[:, :channels]
        parts, start = [], 0
        for size in (1, 1000, 37_000, 65_536, 200_000):
            parts.append(f.process(xs[start:start + size]))
            start += size
        parts.append(f.process(xs[start:]))
        parts.append(f.process(np.zeros((f.delay, channels))))
        y = np.concatenate(parts)[f.delay:]
        if channels == 2:
            mid = fftconvolve(0.5 * (xs[:, 0] + xs[:, 1]), mid_fir)[f.delay:f.delay + len(xs)]
            side = fftconvolve(0.5 * (xs[:, 0] - xs[:, 1]), side_fir)[f.delay:f.delay + len(xs)]
            ref = np.stack([mid + side, mid - side], axis=1)
        else:
            ref = fftconvolve(xs[:, 0], mid_fir)[f.delay:f.delay + len(xs)][:, None]
        assert y.shape == ref.shape
        assert db(np.sqrt(np.mean((y - ref) ** 2) / np.mean(ref ** 2))) < -120.0


@pytest.mark.parametrize("channels", [1, 2])
def test_the_level_is_solved_exactly_on_the_front_halfs_output(channels):
    """The output gain and the width are solved on the front half's output u before the
    limiter: the loudness FrontStats predicts for g * (M + w S, M - w S) equals libebur128's
    on that very signal within 0.02 LU for any g and w, and the side/mid ratio within 0.01 dB."""
    from auracore.offline.master.level import FrontStats

    u = demo_track(FS, 20.0, seed=41)[:, :channels] * 0.7
    stats = FrontStats(FS, channels, u.shape[0])
    for i in range(0, u.shape[0], 7000):
        stats.process(u[i:i + 7000])
    front = stats.finish()
    for g_db, w in ((0.0, 1.0), (-7.5, 0.4), (5.0, 1.8)):
        g = 10 ** (g_db / 20)
        if channels == 2:
            mid, side = 0.5 * (u[:, 0] + u[:, 1]), 0.5 * w * (u[:, 0] - u[:, 1])
            y = g * np.stack([mid + side, mid - side], axis=1)
            assert abs(10 * math.log10(front.side_mid_ratio(w)) - side_mid_db(y)) < 0.01
        else:
            y = g * u
            assert front.side_mid_ratio(w) is None
        assert abs(front.loudness(g_db, w) - ebur128_lufs(y, FS)) < 0.02, (g_db, w)


def test_a_long_file_lands_on_the_reference_loudness_in_one_render(tmp_path):
    """On an input longer than the limiter's excerpt (60 s, 16 chunks of 3 s), the written
    output reaches the reference's integrated loudness within 0.05 LU (libebur128) and its
    side/mid ratio within 0.05 dB; the level found on the excerpt needs no second back pass."""
    inp, ref, out = tmp_path / "in.wav", tmp_path / "ref.wav", tmp_path / "out.wav"
    sf.write(inp, demo_track(44100, 60.0, seed=51), 44100, subtype="FLOAT")
    r = process_known(demo_track(44100, 20.0, seed=52), 44100)
    sf.write(ref, r * (10 ** (-1 / 20) / true_peak_16x(r).max()), 44100, subtype="FLOAT")
    m = master_file(str(inp), str(out), str(ref), subtype="FLOAT")
    y, _ = sf.read(out, always_2d=True)
    rr, _ = sf.read(ref, always_2d=True)
    assert abs(ebur128_lufs(y, 44100) - ebur128_lufs(rr, 44100)) < 0.05
    assert abs(side_mid_db(y) - side_mid_db(rr)) < 0.05
    assert m.details["whole_passes"] == 1
    assert m.details["limiter_loss_lu"] < 0.0   # the limiter was at work


def test_a_gain_past_the_output_gains_range_goes_to_the_makeup():
    """A quiet input (-62 LUFS) matched to a loud reference (-9 LUFS): the input gain stops at
    +24 dB and the output gain at +24 dB, so the rest goes to the compressor's makeup (the
    front half runs again with it) and the limiter takes much (its share found by the secant
    on the excerpt): the output still lands within 0.1 LU of the reference (libebur128)."""
    x = demo_track(FS, 10.0, seed=3)
    x = x * 10 ** ((-62 - ebur128_lufs(x, FS)) / 20)
    ref = demo_track(FS, 10.0, seed=4)
    ref = ref * 10 ** ((-9 - ebur128_lufs(ref, FS)) / 20)
    m = master(x, ref, FS)
    assert m.params["input.gain_db"] == 24.0 and m.params["output.gain_db"] == 24.0
    assert m.params["comp.makeup_db"] > 5.0
    assert abs(ebur128_lufs(m.audio, FS) - ebur128_lufs(ref, FS)) < 0.1
