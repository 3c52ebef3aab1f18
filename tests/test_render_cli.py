"""`auracore render` end to end: formats, rates, alignment, two-pass, dither, bad input."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyebur128
import pytest
import soundfile as sf

from auracore.offline.params import build_vector
from auracore.kernels.chain import ChainState, process
from auracore.offline.demo import demo_track

AURACORE = [sys.executable, "-m", "auracore.control.cli"]


def run_cli(*args, timeout=300):
    return subprocess.run(AURACORE + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def ebur128(x, fs):
    """Integrated LUFS and max true peak dBTP of x: (frames, channels) by libebur128."""
    mode = pyebur128.MeasurementMode
    st = pyebur128.R128State(x.shape[1], fs, mode.MODE_I | mode.MODE_TRUE_PEAK)
    flat = np.ascontiguousarray(x, dtype=np.float64).ravel()
    st.add_frames(flat, x.shape[0])
    tp = max(pyebur128.get_true_peak(st, c) for c in range(x.shape[1]))
    return pyebur128.get_loudness_global(st), 20 * np.log10(tp)


@pytest.fixture(scope="module")
def demo_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "demo.wav"
    sf.write(path, demo_track(48000, 8.0), 48000, subtype="PCM_24")
    return path


def test_render_matches_the_chain_sample_for_sample(demo_wav, tmp_path):
    """The file holds exactly what process() gives in 1024-frame blocks, latency removed."""
    out = tmp_path / "out.wav"
    r = run_cli("render", demo_wav, out, "--preset", "streaming", "--subtype", "FLOAT")
    assert r.returncode == 0, r.stderr
    x, fs = sf.read(demo_wav, always_2d=True)
    params = build_vector("streaming", {})
    state = ChainState(fs, 2, params=params)
    padded = np.concatenate([x, np.zeros((state.latency, 2))])
    for i in range(0, len(padded), 1024):
        process(padded[i:i + 1024], state, params)
    expected = padded[state.latency:]
    got, _ = sf.read(out, always_2d=True)
    assert got.shape == x.shape
    # FLOAT files hold float32: the only difference allowed is that rounding (< 2^-24 of full scale)
    assert np.max(np.abs(got - expected)) < 1.2e-7


@pytest.mark.parametrize("blocksize", [64, 4096, 1000])
def test_render_is_block_size_independent(demo_wav, tmp_path, blocksize):
    ref = tmp_path / "ref.wav"
    out = tmp_path / "out.wav"
    assert run_cli("render", demo_wav, ref, "--preset", "club", "--subtype", "FLOAT").returncode == 0
    assert run_cli("render", demo_wav, out, "--preset", "club", "--subtype", "FLOAT",
                   "--blocksize", blocksize).returncode == 0
    a, _ = sf.read(ref)
    b, _ = sf.read(out)
    assert np.array_equal(a, b), f"max difference {np.max(np.abs(a - b))}"


def test_json_summary_and_limits(demo_wav, tmp_path):
    out = tmp_path / "out.flac"
    r = run_cli("render", demo_wav, out, "--preset", "streaming", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    for key in ("input_integrated_lufs", "output_integrated_lufs", "output_true_peak_dbtp",
                "input_true_peak_dbtp", "duration_s", "realtime_factor"):
        assert key in summary
    assert summary["duration_s"] == pytest.approx(8.0, abs=1e-6)
    y, fs = sf.read(out, always_2d=True)
    lufs, tp = ebur128(y, fs)
    assert summary["output_integrated_lufs"] == pytest.approx(lufs, abs=0.05), "summary LUFS vs libebur128"
    assert tp <= -1.0 + 0.05, f"libebur128 reads {tp:.3f} dBTP over the -1 dBTP ceiling"


@pytest.mark.parametrize("preset,target,ceiling", [("streaming", -14.0, -1.0), ("broadcast", -23.0, -1.0),
                                                    ("podcast", -16.0, -1.0)])
def test_two_pass_lands_on_target(demo_wav, tmp_path, preset, target, ceiling):
    out = tmp_path / "out.wav"
    r = run_cli("render", demo_wav, out, "--preset", preset, "--two-pass", "--subtype", "FLOAT", "--json")
    assert r.returncode == 0, r.stderr
    y, fs = sf.read(out, always_2d=True)
    lufs, tp = ebur128(y, fs)
    assert abs(lufs - target) <= 0.1, f"{preset}: libebur128 reads {lufs:.3f} LUFS, target {target}"
    assert tp <= ceiling + 0.05, f"{preset}: true peak {tp:.3f} dBTP over {ceiling}"


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("flac", "PCM_24"), ("ogg", "VORBIS"),
                                          ("aiff", "PCM_16"), ("mp3", "MPEG_LAYER_III")])
def test_reads_every_format(tmp_path, ext, subtype):
    src = tmp_path / f"in.{ext}"
    x = demo_track(44100, 3.0)
    sf.write(src, x, 44100, subtype=subtype)
    out = tmp_path / "out.wav"
    r = run_cli("render", src, out, "--preset", "neutral", "--json")
    assert r.returncode == 0, r.stderr
    y, fs = sf.read(out)
    assert fs == 44100
    frames_in = sf.info(src).frames
    assert y.shape[0] == frames_in


@pytest.mark.parametrize("rate,channels", [(8000, 1), (44100, 2), (96000, 2), (192000, 1)])
def test_rates_and_mono(tmp_path, rate, channels):
    src = tmp_path / "in.wav"
    x = demo_track(rate, 2.0)[:, :channels]
    sf.write(src, x, rate, subtype="FLOAT")
    out = tmp_path / "out.wav"
    r = run_cli("render", src, out, "--preset", "neutral", "--subtype", "FLOAT")
    assert r.returncode == 0, r.stderr
    y, fs = sf.read(out, always_2d=True)
    assert fs == rate and y.shape == (x.shape[0], channels)
    # neutral: only the -1 dBTP safety limiter; the demo peaks at -3 dBFS, so -1 dBTP
    # limiting is rare and the output tracks the input closely
    assert np.max(np.abs(y - x)) < 0.2


def test_tpdf_dither_on_16_bit(tmp_path):
    """PCM_16 output = float output + TPDF dither + rounding to nearest: error std 0.5 LSB
    (1/6 + 1/12 LSB^2), no bias, never more than 1.5 LSB."""
    src = tmp_path / "in.wav"
    rng = np.random.default_rng(3)
    sf.write(src, 0.05 * rng.standard_normal((48000 * 4, 2)), 48000, subtype="FLOAT")
    a, b = tmp_path / "f.wav", tmp_path / "i.wav"
    assert run_cli("render", src, a, "--preset", "neutral", "--subtype", "FLOAT").returncode == 0
    assert run_cli("render", src, b, "--preset", "neutral", "--subtype", "PCM_16").returncode == 0
    fa, _ = sf.read(a)
    fb, _ = sf.read(b)
    err = (fb - fa) / 2.0 ** -15
    assert 0.46 < np.std(err) < 0.54, f"error std {np.std(err):.3f} LSB"
    assert np.max(np.abs(err)) <= 1.5 + 1e-3
    assert abs(np.mean(err)) < 0.01, f"bias {np.mean(err):.4f} LSB"


def test_dither_is_tpdf_white_and_the_same_however_the_stream_is_split():
    """The quantizer's dither (counter-based, kernels/quantize.py): triangular on (-1, 1) LSB
    (variance 1/6 within 1 %, each tenth of the range within 0.005 of its triangular share),
    white (neighbouring samples and the two channels correlate under 0.01), and a stream
    dithered in blocks of odd sizes is the same, sample for sample, as in one block."""
    from auracore.kernels.quantize import tpdf_noise
    from auracore.offline.audio_io import Quantizer

    noise = np.empty((1 << 19, 2))
    tpdf_noise(0x5EED, 0, noise)
    assert abs(np.var(noise) - 1 / 6) < 1 / 600
    assert np.max(np.abs(noise)) < 1.0
    counts, edges = np.histogram(noise, bins=10, range=(-1, 1))
    lo, hi = np.abs(edges[:-1]), np.abs(edges[1:])
    share = np.abs(hi * (2 - hi) - lo * (2 - lo)) / 2   # the triangle's mass on each bin
    assert np.max(np.abs(counts / noise.size - share)) < 0.005
    flat = noise.ravel()
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01
    assert abs(np.corrcoef(noise[:, 0], noise[:, 1])[0, 1]) < 0.01

    x = 0.1 * np.random.default_rng(5).standard_normal((50000, 2))
    whole = Quantizer("PCM_16").apply(x)
    split = Quantizer("PCM_16")
    parts = [split.apply(x[i:i + 777]) for i in range(0, x.shape[0], 777)]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), whole[0])
    # the written value is the float plus this very dither, rounded to the 16-bit step
    drawn = np.empty(x.shape)
    tpdf_noise(0x5EED, 0, drawn)
    expect = np.clip(np.rint(x * 32768.0 + drawn), -32768, 32767)
    assert np.array_equal(whole[0], expect.astype(np.int16))
    assert np.array_equal(whole[1], expect / 32768.0)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_wav_writer_writes_libsndfiles_file_byte_for_byte(tmp_path, channels, subtype):
    """16- and 24-bit WAV is written by audio_io.PcmWav, not libsndfile: the same bytes as
    libsndfile writes from the same integers (header, samples, the pad byte after odd data),
    for empty, odd and long streams written in blocks."""
    from auracore.offline.audio_io import PcmWav, Quantizer

    rng = np.random.default_rng(11)
    for frames in (0, 1, 7, 70001):
        x = 0.4 * rng.standard_normal((frames, channels))
        ours, theirs = tmp_path / "ours.wav", tmp_path / "theirs.wav"
        q1, q2 = Quantizer(subtype), Quantizer(subtype)
        with PcmWav(str(ours), 44100, channels, subtype) as out:
            for i in range(0, frames, 4096):
                out.write(q1.apply(x[i:i + 4096])[0])
        with sf.SoundFile(theirs, "w", 44100, channels, subtype=subtype, format="WAV") as out:
            for i in range(0, frames, 4096):
                out.write(q2.apply(x[i:i + 4096])[0])
        assert ours.read_bytes() == theirs.read_bytes(), (frames, channels, subtype)
        back, rate = sf.read(ours, always_2d=True)
        assert rate == 44100 and back.shape == (frames, channels)


def test_wav_writer_refuses_past_the_riff_limit_and_wrong_integers(tmp_path, monkeypatch):
    """A RIFF file holds at most 4 GiB of samples: past it PcmWav raises one clear line (the
    limit lowered here to 1000 bytes, as a 4 GiB stream is no test); a float block where it
    takes integers is refused, not converted."""
    from auracore.errors import AudioFileError
    from auracore.offline.audio_io import PcmWav

    monkeypatch.setattr(PcmWav, "LIMIT", 1000)
    with PcmWav(str(tmp_path / "big.wav"), 48000, 2, "PCM_24") as out:
        out.write(np.zeros((166, 2), dtype=np.int32))          # 996 bytes: within
        with pytest.raises(AudioFileError, match="at most 4 GiB; write FLAC"):
            out.write(np.zeros((1, 2), dtype=np.int32))
        with pytest.raises(ValueError, match="int32"):
            out.write(np.zeros((4, 2)))
    data, rate = sf.read(tmp_path / "big.wav")
    assert rate == 48000 and data.shape == (166, 2)


def _assert_clean_failure(r, words):
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert words in lines[0], lines[0]


def test_bad_inputs_give_one_line_and_touch_nothing(demo_wav, tmp_path):
    before = digest(demo_wav)
    out = tmp_path / "out.wav"
    _assert_clean_failure(run_cli("render", tmp_path / "nope.wav", out), "no such file")
    text = tmp_path / "notes.wav"
    text.write_text("these are not samples\n" * 100)
    _assert_clean_failure(run_cli("render", text, out), "not a readable audio file")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(open(demo_wav, "rb").read()[:30])
    _assert_clean_failure(run_cli("render", cut, out), "cut.wav")
    _assert_clean_failure(run_cli("render", demo_wav, out, "--preset", "loud"), "unknown preset 'loud'")
    _assert_clean_failure(run_cli("render", demo_wav, out, "--set", "eq.9.gain_db=1"), "unknown parameter id")
    _assert_clean_failure(run_cli("render", demo_wav, out, "--set", "eq.3.gain_db=40"), "out of range")
    _assert_clean_failure(run_cli("render", demo_wav, out, "--set", "comp.ratio=lots"), "not a number")
    _assert_clean_failure(run_cli("render", demo_wav, demo_wav), "refusing to overwrite the input")
    _assert_clean_failure(run_cli("render", demo_wav, tmp_path / "out.xyz"), "unknown output type")
    six = tmp_path / "six.wav"
    sf.write(six, np.zeros((4800, 6)), 48000)
    _assert_clean_failure(run_cli("render", six, out), "6 channels")
    assert digest(demo_wav) == before
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".auracore-")]


def test_truncated_data_still_renders_what_is_there(demo_wav, tmp_path):
    """A WAV cut mid-data: libsndfile reads the frames present; render keeps them all."""
    cut = tmp_path / "cut.wav"
    data = open(demo_wav, "rb").read()
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.wav"
    r = run_cli("render", cut, out, "--json")
    if r.returncode == 0:
        assert sf.info(out).frames == sf.info(cut).frames
    else:
        _assert_clean_failure(r, "cut.wav")
        assert not out.exists()


def test_ctrl_c_leaves_nothing_behind(tmp_path):
    src = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(src, "w", 48000, 2, subtype="PCM_16") as f:
        for _ in range(600):  # 10 minutes
            f.write(0.1 * rng.standard_normal((48000, 2)))
    out = tmp_path / "out.wav"
    proc = subprocess.Popen(AURACORE + ["render", str(src), str(out), "--preset", "streaming"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not [p for p in os.listdir(tmp_path) if p.startswith(".auracore-")]:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".auracore-")]


def test_memory_stays_flat(tmp_path):
    """Peak RSS rendering 10 minutes is within 40 MB of rendering 30 seconds."""
    rng = np.random.default_rng(1)
    sizes = {}
    for seconds in (30, 600):
        src = tmp_path / f"in{seconds}.wav"
        with sf.SoundFile(src, "w", 48000, 2, subtype="PCM_16") as f:
            for _ in range(seconds):
                f.write(0.1 * rng.standard_normal((48000, 2)))
        code = ("import resource,sys;from auracore.control.cli import main;"
                f"rc=main(['render',{str(src)!r},{str(tmp_path / 'o.wav')!r}]);"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        sizes[seconds] = int(r.stdout.strip().splitlines()[-1]) / 1024
    assert sizes[600] - sizes[30] < 40, f"peak RSS {sizes} MB"


def test_each_command_names_the_module_that_adds_it():
    """cli.COMMAND_MODULE (a command line imports only its command's module) says exactly
    which module adds each command, and a narrowed parser parses as the full one does."""
    import argparse
    import importlib

    from auracore.control import cli

    added = {}
    for name in cli.COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        module = importlib.import_module(f"auracore.control.{name}")
        (getattr(module, "add_parsers", None) or module.add_parser)(sub)
        added.update({command: name for command in sub.choices})
    assert added == cli.COMMAND_MODULE
    argv = ["render", "in.wav", "out.wav", "--preset", "club", "--set", "eq.3.gain_db=2"]
    narrow, full = cli.build_parser("render").parse_args(argv), cli.build_parser().parse_args(argv)
    assert {k: v for k, v in vars(narrow).items() if k != "func"} == {k: v for k, v in vars(full).items() if k != "func"}


def test_a_render_imports_no_scipy_linalg(tmp_path):
    """The program answers Numba's BLAS check without importing scipy.linalg (control/entry.py:
    0.15-0.2 s of every command's start-up). Fails if Numba renames what that replaces, or
    if the render path starts importing scipy.linalg itself. (That the render's samples
    equal the API's chain is test_api.py's test_chain_equals_render_sample_for_sample.)"""
    src = tmp_path / "in.wav"
    sf.write(src, 0.2 * np.random.default_rng(3).standard_normal((48000, 2)), 48000, subtype="FLOAT")
    out = tmp_path / "o.wav"
    code = ("import sys;from auracore.control.entry import main;"
            f"rc=main(['render',{str(src)!r},{str(out)!r},'--preset','streaming']);"
            "print(rc, 'scipy.linalg' in sys.modules, 'numba' in sys.modules)")
    # on Numba's JIT: the ahead-of-time build (kernels/jit.py) would not load Numba at all
    env = {**os.environ, "AURACORE_NO_AOT": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.stdout.split()[-3:] == ["0", "False", "True"], r.stdout + r.stderr
    assert sf.info(str(out)).frames == 48000


@pytest.mark.parametrize("user, expected", [(None, 1), ("2", 2)])
def test_the_commands_run_blas_on_one_thread_unless_told(user, expected):
    """The program sets OPENBLAS_NUM_THREADS=1 before numpy loads (control/entry.py: BLAS's
    spinning workers slowed separate and transcribe), and a count the user set wins."""
    code = ("import sys;from auracore.control.entry import main;rc=main(['presets']);"
            "import threadpoolctl;"
            "print('BLAS', [i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'])")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if user:
        env["OPENBLAS_NUM_THREADS"] = user
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("BLAS")][-1]
    counts = json.loads(line[5:])
    assert counts and all(c == expected for c in counts), r.stdout + r.stderr


def test_huge_float_samples_with_the_ai_say_nothing_on_stderr(tmp_path):
    """A DOUBLE file of 1e300 samples through render --ai: exit 0 and no warning (the
    models' float32 buffer had overflowed with a RuntimeWarning; the fuzz suite found it)."""
    src = str(tmp_path / "huge.wav")
    sf.write(src, np.full((4800, 2), 1e300), 48000, subtype="DOUBLE")
    r = subprocess.run([sys.executable, "-W", "default"] + AURACORE[1:] + [
        "render", src, str(tmp_path / "out.wav"), "--set", "loudness.auto=1", "--ai", "--json"],
        capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr, r.stderr


@pytest.mark.parametrize("ext, subtype", [
    ("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "PCM_32"), ("wav", "FLOAT"), ("wav", "DOUBLE"),
    ("wav", "PCM_U8"), ("wav", "ULAW"), ("flac", "PCM_24"), ("aiff", "PCM_S8"), ("ogg", "VORBIS")])
def test_blocks_read_are_the_float64_read_to_the_bit(tmp_path, ext, subtype):
    """read_blocks reads the encodings that single precision holds exactly as float32 and
    widens them (2.5x faster); every block must still be libsndfile's float64 read, bit for
    bit, full scale, NaN and infinities included, whatever the block size."""
    from auracore.offline.audio_io import read_blocks

    x = np.clip(np.random.default_rng(5).standard_normal((20011, 2)) * 0.3, -1.0, 1.0)
    x[7] = [1.0, -1.0]
    if subtype in ("FLOAT", "DOUBLE"):
        x[11] = [np.nan, np.inf]
        x[12] = [-np.inf, 3.0e30]
    path = str(tmp_path / f"x.{ext}")
    sf.write(path, x, 44100, subtype=subtype)
    expected, _ = sf.read(path, dtype="float64", always_2d=True)
    with sf.SoundFile(path) as f:
        blocks = list(read_blocks(f, 4099))
    assert all(b.dtype == np.float64 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), expected)
