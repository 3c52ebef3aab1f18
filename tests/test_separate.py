"""Stem separation: add-back, chunk seams, rates and mono, model faults, files and bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from auracore.models.separation import features as F
from auracore.offline.separate import (STEMS4, STEMS6, ChunkedSeparation, SeparationError, load_separator,
                                       separate, separate_detail)
from auracore.offline.separate.core import MANIFEST_FILE, MODEL_FILE, default_model_dir
from auracore.offline.separate.dsp import DspSeparator

AURACORE = [sys.executable, "-m", "auracore.control.cli"]


def run_cli(*args, timeout=300):
    return subprocess.run(AURACORE + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def music(sr, seconds, channels=2, seed=0):
    """Drums-ish clicks, a bass line, a centred melody and a panned pad: (frames, channels)."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    bass = 0.3 * np.sin(2 * np.pi * (55 * (1 + (np.floor(t * 2) % 4 == 2) * 0.5)) * t)
    melody = 0.2 * np.sin(2 * np.pi * 440 * 2 ** (np.floor(t * 4) % 5 / 12) * t)
    pad = 0.1 * np.sin(2 * np.pi * 330 * t)
    hits = np.zeros(n)
    hits[(np.arange(0, seconds, 0.25) * sr).astype(int)] = 1.0
    drums = np.convolve(hits, rng.standard_normal(int(0.03 * sr)) * np.exp(-np.arange(int(0.03 * sr)) / (0.005 * sr)))[:n]
    left = bass + melody + 0.9 * pad + 0.3 * drums
    right = bass + melody + 0.3 * pad + 0.3 * drums
    x = np.stack([left, right], axis=1)
    return x[:, :1] if channels == 1 else x


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The shipped model when present; else an untrained network exported here (torch)."""
    d = default_model_dir()
    if os.path.isfile(os.path.join(d, MODEL_FILE)):
        return d
    torch = pytest.importorskip("torch")
    from auracore.models.separation import export
    from auracore.models.separation.net import SepNet

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("sepmodel")
    export.export(SepNet().eval(), str(out))
    return str(out)


def rel_error_db(stems, x):
    err = sum(stems.values()) - x
    return 10 * np.log10(max(np.sum(err ** 2), 1e-300) / np.sum(x ** 2))


@pytest.mark.parametrize("which", ["dsp", "model"])
@pytest.mark.parametrize("stems", [STEMS4, STEMS6, ("vocals", "other")])
def test_stems_add_back_to_the_input(which, stems, model_dir):
    x = music(44100, 6.0)
    out = separate(x, 44100, stems=stems, model="dsp" if which == "dsp" else model_dir)
    assert tuple(out) == stems
    assert rel_error_db(out, x) < -60
    for v in out.values():
        assert v.shape == x.shape and v.dtype == np.float64 and np.all(np.isfinite(v))


def test_the_model_is_what_ran_and_gives_real_stems(model_dir):
    x = music(44100, 4.0)
    out, name, note = separate_detail(x, 44100, model=model_dir)
    assert name.startswith("onnx:") and note is None
    energies = [np.sum(v ** 2) for v in out.values()]
    assert sum(e > 1e-6 * np.sum(x ** 2) for e in energies) >= 2  # not everything in one stem


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 96000, 192000])
@pytest.mark.parametrize("channels", [1, 2])
def test_rates_and_channels(rate, channels, model_dir):
    x = music(rate, 2.5, channels=channels, seed=rate)
    out = separate(x, rate, model=model_dir)
    for v in out.values():
        assert v.shape == x.shape
    assert rel_error_db(out, x) < -60
    # a mono file's stems are mono; 1-D in gives 1-D out
    if channels == 1:
        flat = separate(x[:, 0], rate, model="dsp")
        assert all(v.shape == (x.shape[0],) for v in flat.values())
        assert rel_error_db(flat, x[:, 0]) < -60


def _sdr_db(ref, est):
    return 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - est) ** 2))


def test_the_wiener_filter_splits_by_stereo_position():
    """Two noises whose spectra overlap, one panned left and one right, under masks that
    know only roughly which is louder where (the ideal ratio blurred with noise, one mask
    for both channels): the filter gives each more SDR than the masks (measured +1.29 dB,
    asserted +1.0) and than the same filter without its stereo model, the masks raised
    to its power (+2.16 dB, asserted +1.5); the two still add back (-100 dB)."""
    from scipy.signal import lfilter

    from auracore.offline.separate.wiener import POWER, wiener

    rng = np.random.default_rng(3)
    n = 44100 * 3
    a = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n)) * 0.03   # dark noise
    b = rng.standard_normal(n) * 0.05                                 # white noise
    srcs = [np.stack([a, 0.3 * a], 1), np.stack([0.3 * b, b], 1)]
    x = srcs[0] + srcs[1]
    spec = F.stft(x)
    mag = [np.abs(F.stft(s_)).mean(axis=0) for s_ in srcs]
    ideal = mag[0] / (mag[0] + mag[1] + 1e-12)
    m0 = np.clip(ideal + 0.25 * rng.uniform(-1, 1, ideal.shape), 0.02, 0.98).astype(np.float32)
    masks = np.stack([np.stack([m0, m0]), np.stack([1 - m0, 1 - m0])])
    by_mask = F.istft(masks * spec[None], n)
    by_filter = F.istft(wiener(spec, masks), n)
    soft = masks ** POWER / np.sum(masks ** POWER, axis=0)
    by_soft = F.istft(soft * spec[None], n)
    for k in range(2):
        got = _sdr_db(srcs[k], by_filter[k])
        assert got >= _sdr_db(srcs[k], by_mask[k]) + 1.0
        assert got >= _sdr_db(srcs[k], by_soft[k]) + 1.5
    assert rel_error_db({"a": by_filter[0], "b": by_filter[1]}, x) < -100


def test_the_wiener_filter_keeps_a_dual_mono_input_dual_mono():
    """A dual-mono input under masks that differ between the channels (as a network's
    may): each stem stays dual mono (channels within -80 dB of each other) and no stem
    is louder than the mixture, and they add back (-80 dB; measured -94)."""
    from auracore.offline.separate.wiener import wiener

    rng = np.random.default_rng(4)
    n = 44100 * 2
    mono = rng.standard_normal(n) * 0.1
    x = np.stack([mono, mono], 1)
    spec = F.stft(x)
    m = rng.uniform(0.02, 1.0, (4, 2) + spec.shape[1:]).astype(np.float32)
    masks = m / m.sum(axis=0, keepdims=True)
    out = F.istft(wiener(spec, masks), n)
    for k in range(4):
        assert 10 * np.log10(np.sum((out[k, :, 0] - out[k, :, 1]) ** 2) / np.sum(x ** 2)) < -80
        assert np.max(np.abs(out[k])) <= np.max(np.abs(x))
    assert rel_error_db({str(k): out[k] for k in range(4)}, x) < -80


def test_stems_are_low_passed_consistently_above_the_model_band():
    """At 96 kHz, what lies above the model's 22 kHz goes to other, and the sum still holds."""
    sr = 96000
    t = np.arange(int(sr * 2)) / sr
    x = np.stack([0.2 * np.sin(2 * np.pi * 30000 * t), 0.2 * np.sin(2 * np.pi * 30000 * t)], axis=1)
    out = separate(x, sr, model="dsp")
    assert np.sum(out["other"] ** 2) > 0.99 * np.sum(x ** 2)
    assert rel_error_db(out, x) < -60


def _chunked(sep, x, sr, **kw):
    run = ChunkedSeparation(sep, sr, x.shape[1], STEMS4, **kw)
    parts = {s: [] for s in STEMS4}
    for i in range(0, x.shape[0], 10000):
        for _, sb in run.feed(x[i:i + 10000]):
            for s, v in sb.items():
                parts[s].append(v)
    for _, sb in run.finish():
        for s, v in sb.items():
            parts[s].append(v)
    return {s: np.concatenate(v) for s, v in parts.items()}


@pytest.mark.parametrize("which", ["dsp", "model"])
@pytest.mark.parametrize("rate", [44100, 48000])
def test_no_seam_at_chunk_boundaries(which, rate, model_dir):
    """A stationary tone across many chunk boundaries: each stem's short-time level stays
    flat through every crossfade, and the chunked result matches one long chunk."""
    sep = DspSeparator() if which == "dsp" else load_separator(model_dir)[0]
    n = int(rate * 12.0)
    t = np.arange(n) / rate
    tone = 0.25 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1760 * t + 1.0)
    x = np.stack([tone, 0.8 * tone], axis=1)
    chunk, overlap = 2.0, 0.5
    got = _chunked(sep, x, rate, chunk_s=chunk, overlap_s=overlap, margin_s=0.25)
    whole = _chunked(sep, x, rate, chunk_s=20.0, overlap_s=overlap, margin_s=0.25)
    win = int(0.02 * rate)
    lo, hi = int(1.0 * rate), n - int(1.0 * rate)  # away from the file's own start and end
    for s in STEMS4:
        e_total = np.sum(x[lo:hi] ** 2)
        if np.sum(whole[s][lo:hi] ** 2) < 1e-4 * e_total:
            assert np.sum(got[s][lo:hi] ** 2) < 1e-3 * e_total, s
            continue
        env = np.sqrt(np.mean(got[s][lo:hi][: (hi - lo) // win * win].reshape(-1, win, 2) ** 2, axis=(1, 2)))
        ref = np.median(env)
        assert np.max(np.abs(20 * np.log10(env / ref))) < 0.5, s
        diff = got[s][lo:hi] - whole[s][lo:hi]
        assert 10 * np.log10(np.sum(diff ** 2) / np.sum(whole[s][lo:hi] ** 2)) < -30, s


def test_any_length_and_block_size(model_dir):
    sep = load_separator(model_dir)[0]
    for n in (1, 7, 2047, 30000):
        x = np.random.default_rng(n).standard_normal((n, 2)) * 0.1
        got = _chunked(sep, x, 44100, chunk_s=0.3, overlap_s=0.1, margin_s=0.05)
        assert all(v.shape == x.shape for v in got.values())
        assert rel_error_db(got, x) < -60


def test_planted_model_faults_fall_back_to_dsp_with_one_line(model_dir, tmp_path, capsys):
    x = music(44100, 1.0)
    faults = {}
    for name in ("missing", "corrupt", "manifest", "checksum"):
        d = tmp_path / name
        shutil.copytree(model_dir, d)
        faults[name] = d
    os.unlink(faults["missing"] / MODEL_FILE)
    data = bytearray((faults["corrupt"] / MODEL_FILE).read_bytes())
    data[100:400] = b"\x00" * 300
    (faults["corrupt"] / MODEL_FILE).write_bytes(bytes(data))
    m = json.loads((faults["corrupt"] / MANIFEST_FILE).read_text())
    import hashlib

    m["sha256"] = hashlib.sha256(bytes(data)).hexdigest()  # a file that checks out but does not load
    (faults["corrupt"] / MANIFEST_FILE).write_text(json.dumps(m))
    (faults["manifest"] / MANIFEST_FILE).write_text("{not json")
    with open(faults["checksum"] / MODEL_FILE, "ab") as f:
        f.write(b"\x00")
    for name, d in faults.items():
        out, used, note = separate_detail(x, 44100, model=str(d))
        err = capsys.readouterr().err
        assert used == "dsp" and note and "using the DSP fallback" in note, name
        assert err.count("\n") == 1 and "using the DSP fallback" in err, (name, err)
        assert rel_error_db(out, x) < -60


def test_bad_arguments():
    x = np.zeros((1000, 2))
    with pytest.raises(SeparationError):
        separate(x, 44100, stems=("kazoo",), model="dsp")
    with pytest.raises(SeparationError):
        separate(x, 4000, model="dsp")
    with pytest.raises(SeparationError):
        separate(np.zeros((100, 3)), 44100, model="dsp")
    with pytest.raises(SeparationError):
        separate(np.full((100, 2), np.nan), 44100, model="dsp")
    with pytest.raises(SeparationError):
        separate(np.zeros((0, 2)), 44100, model="dsp")


# ---------------------------------------------------------------- the command

@pytest.fixture()
def song(tmp_path):
    p = tmp_path / "song.wav"
    sf.write(p, music(48000, 3.0), 48000, subtype="FLOAT")
    return p


def test_cli_writes_stems_that_add_back(song, tmp_path, model_dir):
    out = tmp_path / "stems"
    r = run_cli("separate", song, out, "--json", "--subtype", "FLOAT", "--model", model_dir)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert list(info["stems"]) == list(STEMS4)
    assert info["model"].startswith("onnx:") and info["fallback"] is None
    assert info["duration_s"] == pytest.approx(3.0) and info["realtime_factor"] > 0
    assert sum(info["energy_share"].values()) == pytest.approx(1.0, abs=1e-4)
    x, fs = sf.read(song, always_2d=True)
    total = 0
    for s, path in info["stems"].items():
        y, fs2 = sf.read(path, always_2d=True)
        assert fs2 == fs and y.shape == x.shape
        total = total + y
    assert 10 * np.log10(np.sum((total - x) ** 2) / np.sum(x ** 2)) < -60
    assert sorted(os.listdir(out)) == sorted(f"{s}.wav" for s in STEMS4)


def test_cli_six_flac_mono(tmp_path):
    mono = tmp_path / "mono.flac"
    sf.write(mono, music(22050, 2.0, channels=1), 22050, subtype="PCM_24")
    out = tmp_path / "six"
    r = run_cli("separate", mono, out, "--six", "--format", "flac", "--model", "dsp", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert list(info["stems"]) == list(STEMS6) and info["model"] == "dsp"
    for path in info["stems"].values():
        y, fs = sf.read(path, always_2d=True)
        assert fs == 22050 and y.shape == (44100, 1)
    assert "cannot tell piano or guitar" in r.stderr


def test_cli_bad_model_falls_back_with_one_line(song, tmp_path):
    bad = tmp_path / "nomodel"
    bad.mkdir()
    r = run_cli("separate", song, tmp_path / "o", "--model", bad)
    assert r.returncode == 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "using the DSP fallback" in lines[0] and lines[0].startswith("auracore separate:")


def test_cli_keeps_existing_files_without_force(song, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "bass.wav").write_bytes(b"mine")
    r = run_cli("separate", song, out, "--model", "dsp")
    assert r.returncode == 1 and "exists" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(out)) == ["bass.wav"] and (out / "bass.wav").read_bytes() == b"mine"
    r = run_cli("separate", song, out, "--model", "dsp", "--force")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == sorted(f"{s}.wav" for s in STEMS4)


def test_the_stems_are_committed_together_after_the_last_check(song, tmp_path):
    """before_commit (the command line's stopping.finish) runs once, with every stem still a
    temporary file; a stop raised there leaves nothing, not even the folder it made."""
    from auracore.offline.separate.files import separate_file

    out = tmp_path / "o"
    seen = []

    def check():
        seen.append(sorted(os.listdir(out)))

    separate_file(str(song), str(out), model="dsp", before_commit=check)
    assert len(seen) == 1 and not any(n.endswith(".wav") and not n.startswith(".") for n in seen[0]), seen
    assert sorted(os.listdir(out)) == sorted(f"{s}.wav" for s in STEMS4)

    def stop():
        raise KeyboardInterrupt

    other = tmp_path / "p"
    with pytest.raises(KeyboardInterrupt):
        separate_file(str(song), str(other), model="dsp", before_commit=stop)
    assert not other.exists()


def test_cli_bad_input_leaves_nothing(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really audio" * 10)
    low = tmp_path / "low.wav"
    sf.write(low, np.zeros((4000, 2)), 4000)
    three = tmp_path / "three.wav"
    sf.write(three, np.zeros((4000, 3)), 44100)
    cases = [(tmp_path / "missing.wav", "no such file"), (garbage, "not a readable audio file"),
             (low, "outside 8000-192000"), (three, "3 channels"), (tmp_path, "folder")]
    for path, words in cases:
        out = tmp_path / "never"
        r = run_cli("separate", path, out, "--model", "dsp")
        assert r.returncode == 1, (path, r.stderr)
        assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not out.exists()


def test_cli_truncated_input_leaves_nothing(tmp_path):
    full = tmp_path / "full.flac"
    sf.write(full, music(44100, 20.0) + 0.01 * np.random.default_rng(1).standard_normal((882000, 2)), 44100,
             subtype="PCM_16")
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out = tmp_path / "o"
    out.mkdir()
    r = run_cli("separate", cut, out, "--model", "dsp")
    assert r.returncode == 1 and "truncated" in r.stderr, r.stderr
    assert os.listdir(out) == []


def test_cli_usage_errors(song, tmp_path):
    r = run_cli("separate", song, tmp_path / "o", "--stems", "drums,kazoo")
    assert r.returncode == 2 and "kazoo" in r.stderr
    r = run_cli("separate", song, tmp_path / "o", "--format", "mp3")
    assert r.returncode == 2


def test_cli_sigterm_leaves_nothing(tmp_path):
    long = tmp_path / "long.wav"
    sf.write(long, music(44100, 120.0), 44100, subtype="PCM_16")
    out = tmp_path / "o"
    p = subprocess.Popen(AURACORE + ["separate", str(long), str(out), "--model", "dsp"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out.exists() and len(os.listdir(out)) >= len(STEMS4)):
        time.sleep(0.05)
    time.sleep(0.3)  # every stem is being written
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert not out.exists() or os.listdir(out) == []
