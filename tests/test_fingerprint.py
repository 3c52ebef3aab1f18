"""The fingerprint (64 floats), its table, `auracore normalize` and `auracore fingerprint`, and the
fingerprint-trained flaw classifier.

Tolerances: level invariance within 1e-4 relative (or 1e-5 absolute) on every column but
input_lufs, which moves by -20 LU within 0.01 LU; normalisation lands within 0.1 LU of
the target and the true peak at or under the ceiling (+0.01 dB); Parquet round trips are
exact (float32), CSV round trips within float32 rounding; retrieval is top-1 on every query.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from auracore.offline.chain import Meter
from auracore.offline.fingerprint import FEATURE_NAMES, FEATURES, FingerprintError, fingerprint, fingerprint_file
from auracore.offline.fingerprint.features import FrameStats
from auracore.offline.fingerprint.table import COLUMNS, META_NAMES, read_table, write_table

SR = 44100
AUR = [sys.executable, "-m", "auracore.control.cli"]
SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


def tone_mix(seconds=6.0, sr=SR, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    left = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 1.5 * t)) + 0.02 * rng.standard_normal(t.size)
    right = 0.15 * np.sin(2 * np.pi * 330 * t) + 0.02 * rng.standard_normal(t.size)
    return np.stack([left, right], axis=1)


def measure(path):
    x, sr = sf.read(path, dtype="float64", always_2d=True)
    m = Meter(sr, x.shape[1])
    m.process(x)
    return m.integrated_lufs, m.true_peak_dbtp


def test_sixty_four_named_documented_columns():
    assert len(FEATURE_NAMES) == 64 and len(set(FEATURE_NAMES)) == 64
    assert all(unit and len(desc) > 20 for _, unit, desc in FEATURES)
    for needed in ("spectral_centroid_mean_hz", "spectral_flatness_mean", "crest_factor_db", "rms_dbfs",
                   "peak_to_average_db", "zero_crossing_rate_mean", "onset_strength_mean", "input_lufs",
                   "loudness_range_lu"):
        assert needed in FEATURE_NAMES
    assert sum(n.startswith("mfcc_") and n.endswith("_mean") for n in FEATURE_NAMES) == 13
    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "fingerprint.md"), encoding="utf-8").read()
    assert all(f"`{n}`" in doc for n in FEATURE_NAMES)


def test_level_invariance_and_determinism():
    x = tone_mix()
    a, b = fingerprint(x, SR), fingerprint(0.1 * x, SR)
    assert a.values.dtype == np.float32 and a.values.shape == (64,)
    assert np.array_equal(a.values, fingerprint(x, SR).values)  # deterministic
    for i, name in enumerate(FEATURE_NAMES):
        if name == "input_lufs":
            assert abs((b.values[i] - a.values[i]) - (-20.0)) < 0.01
        else:
            assert abs(a.values[i] - b.values[i]) <= max(1e-5, 1e-4 * abs(a.values[i])), name


def test_block_size_does_not_change_the_frames():
    mono = tone_mix(3.0).mean(axis=1)
    out = []
    for block in (1000, 4096, mono.size):
        fs = FrameStats(SR)
        for s in range(0, mono.size, block):
            fs.process(mono[s:s + block])
        fs.finish()
        out.append(fs.values())
    for k in out[0]:
        assert out[1][k] == pytest.approx(out[0][k], rel=1e-9, abs=1e-9), k
        assert out[2][k] == pytest.approx(out[0][k], rel=1e-9, abs=1e-9), k


def test_features_measure_what_they_say():
    """A 1 kHz sine: centroid near 1 kHz, most power in the 1 kHz band, crest 3.01 dB, mono
    correlation 1; white noise: flatness far above the sine's."""
    t = np.arange(4 * SR) / SR
    sine = fingerprint(0.3 * np.sin(2 * np.pi * 1000 * t), SR)
    assert abs(sine["spectral_centroid_mean_hz"] - 1000.0) < 60.0
    assert sine["band_1k_db"] > -0.5
    assert abs(sine["crest_factor_db"] - 3.01) < 0.05
    assert sine["stereo_correlation"] == 1.0 and sine["side_mid_db"] == -60.0
    noise = fingerprint(0.1 * np.random.default_rng(1).standard_normal((4 * SR, 2)), SR)
    assert noise["spectral_flatness_mean"] > 0.3 > 10 * sine["spectral_flatness_mean"]
    assert abs(noise["stereo_correlation"]) < 0.05


def test_bad_signals_raise_one_clear_error():
    with pytest.raises(FingerprintError, match="silent"):
        fingerprint(np.zeros((SR, 2)), SR)
    with pytest.raises(FingerprintError, match="NaN"):
        fingerprint(np.full((SR, 2), np.nan), SR)
    with pytest.raises(FingerprintError, match="sample rate"):
        fingerprint(tone_mix(1.0), 100)
    with pytest.raises(FingerprintError):
        fingerprint(np.zeros((0, 2)), SR)


def _piece(program, seed, seconds=10.0):
    """A piece rendered through FluidSynth: a seeded melody and chords on one GM program."""
    from auracore.models.sources import render_midi

    rng = np.random.default_rng(seed)
    root = 48 + int(rng.integers(0, 12))
    scale = [0, 2, 4, 5, 7, 9, 11]
    notes, t = [], 0.0
    step = float(rng.choice([0.25, 0.4, 0.6]))
    while t < seconds - 0.5:
        pitch = root + 12 + scale[int(rng.integers(0, 7))]
        notes.append((t, step * 0.9, pitch, int(rng.integers(70, 110))))
        if rng.random() < 0.3:
            notes += [(t, step * 1.8, root + d, 60) for d in (0, 4, 7)]
        t += step
    return render_midi([(0, program, 64, notes)], seconds)


@pytest.mark.skipif(not os.path.exists(SF2), reason="needs FluidR3_GM (scripts/install)")
def test_excerpts_of_one_piece_are_nearest_each_other():
    """Retrieval on rendered material: 4 pieces (piano, strings, flute, organ), two disjoint
    excerpts each; every excerpt's nearest neighbour (z-scored Euclidean distance over the
    64 columns but input_lufs) is the other excerpt of its own piece."""
    from auracore.models.sources import SAMPLE_RATE

    feats, owner = [], []
    for k, (program, seed) in enumerate(((0, 1), (48, 2), (73, 3), (19, 4))):
        x = _piece(program, seed)
        for a, b in ((0.5, 4.5), (5.5, 9.5)):
            feats.append(fingerprint(x[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)], SAMPLE_RATE).values.astype(np.float64))
            owner.append(k)
    f = np.array(feats)
    keep = [i for i, n in enumerate(FEATURE_NAMES) if n != "input_lufs"]
    f = f[:, keep]
    z = (f - f.mean(axis=0)) / (f.std(axis=0) + 1e-9)
    d = np.linalg.norm(z[:, None, :] - z[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    assert [owner[int(j)] for j in np.argmin(d, axis=1)] == owner


def _rows(n=3):
    rows = []
    for i in range(n):
        fp = fingerprint(tone_mix(2.0, seed=i), SR)
        r = {"path": f"dir/f{i}.wav", "region_index": -1, "start_s": 0.0, "end_s": 2.0, "duration_s": 2.0,
             "sample_rate": SR, "channels": 2, "class": fp.content_class}
        r.update(zip(FEATURE_NAMES, (float(v) for v in fp.values)))
        rows.append(r)
    return rows


@pytest.mark.parametrize("ext", [".parquet", ".csv"])
def test_table_round_trip(tmp_path, ext):
    rows = _rows()
    path = str(tmp_path / f"fp{ext}")
    meta = write_table(path, rows)
    back = read_table(path)
    assert [list(r) for r in back] == [list(COLUMNS)] * len(rows)
    for r, b in zip(rows, back):
        for n in META_NAMES:
            assert b[n] == r[n]
        got = np.array([b[n] for n in FEATURE_NAMES], dtype=np.float32)
        want = np.array([r[n] for n in FEATURE_NAMES], dtype=np.float32)
        assert np.array_equal(got, want)
    m = json.load(open(meta, encoding="utf-8"))
    assert [f["name"] for f in m["features"]] == list(FEATURE_NAMES)
    assert all(f["unit"] for f in m["features"]) and m["reference_lufs"] == -18.0
    assert sorted(os.listdir(tmp_path)) == sorted([f"fp{ext}", "feature_metadata.json"])


def test_normalize_lands_on_the_target_and_holds_the_ceiling(tmp_path):
    quiet = tone_mix(8.0) * 0.2                           # about -26 LUFS, a gain is enough
    spiky = tone_mix(8.0, seed=3) * 0.1
    spiky[:: SR // 2] = 0.95                              # peaks: the gain alone would pass 0 dBTP
    for name, x in (("quiet.wav", quiet), ("spiky.flac", spiky)):
        sf.write(str(tmp_path / name), x, SR, subtype="PCM_24")
    before = {n: open(tmp_path / n, "rb").read() for n in ("quiet.wav", "spiky.flac")}
    out = tmp_path / "out"
    r = subprocess.run(AUR + ["normalize", str(tmp_path / "quiet.wav"), str(tmp_path / "spiky.flac"),
                              "--out", str(out), "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    log = json.loads(r.stdout)
    assert json.load(open(out / "normalize-log.json")) == log
    by = {os.path.basename(e["path"]): e for e in log}
    assert by["quiet.wav"]["limited"] is False and by["spiky.flac"]["limited"] is True
    for name in ("quiet.wav", "spiky.flac"):
        lufs, tp = measure(str(out / name))
        assert abs(lufs - (-18.0)) <= 0.1, name
        assert tp <= -1.0 + 0.01, name
        assert abs(by[name]["output_lufs"] - lufs) < 0.02
        assert open(tmp_path / name, "rb").read() == before[name]  # inputs untouched
    # refuse: one line, exit 1, nothing written for that file
    r = subprocess.run(AUR + ["normalize", str(tmp_path / "spiky.flac"), "--out", str(tmp_path / "o2"),
                              "--on-peak", "refuse"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "over the -1 dBTP ceiling" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists(tmp_path / "o2")  # every file refused: no folder, no log
    # never over an input
    r = subprocess.run(AUR + ["normalize", str(tmp_path / "quiet.wav"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert open(tmp_path / "quiet.wav", "rb").read() == before["quiet.wav"]


def test_fingerprint_command(tmp_path):
    x = np.concatenate([tone_mix(3.0), np.zeros((SR, 2)), tone_mix(2.0, seed=5)])
    sf.write(str(tmp_path / "a.wav"), x, SR, subtype="PCM_16")
    sf.write(str(tmp_path / "b.flac"), 0.5 * tone_mix(2.0, seed=7), SR)
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    out = str(tmp_path / "t" / "fp.parquet")
    os.mkdir(tmp_path / "t")
    r = subprocess.run(AUR + ["fingerprint", str(tmp_path / "a.wav"), str(tmp_path / "b.flac"), str(tmp_path / "bad.wav"),
                              "--out", out, "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "bad.wav" in r.stderr and "Traceback" not in r.stderr
    s = json.loads(r.stdout)
    assert s["rows"] == 2 and s["files"] == 3 and s["failed"][0]["path"].endswith("bad.wav")
    rows = read_table(out)
    assert [os.path.basename(r["path"]) for r in rows] == ["a.wav", "b.flac"]
    assert rows[0]["duration_s"] == pytest.approx(6.0, abs=1e-3)
    assert np.array_equal(np.float32([rows[1][n] for n in FEATURE_NAMES]),
                          fingerprint_file(str(tmp_path / "b.flac")).values)
    # per region: the silence in a.wav splits it into two rows, edges within 50 ms
    out2 = str(tmp_path / "t" / "regions.csv")
    r = subprocess.run(AUR + ["fingerprint", str(tmp_path / "a.wav"), "--out", out2, "--regions"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = read_table(out2)
    assert [r["region_index"] for r in rows] == [0, 1]
    assert abs(rows[0]["end_s"] - 3.0) <= 0.05 and abs(rows[1]["start_s"] - 4.0) <= 0.05
    r = subprocess.run(AUR + ["fingerprint", str(tmp_path / "a.wav"), "--out", str(tmp_path / "x.txt")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and ".parquet or .csv" in r.stderr


def test_batch_fingerprint_equals_the_single_command(tmp_path):
    """`batch fingerprint` on a LocalCluster (one worker process): one table whose rows equal
    the single command's, a missing file reported, exit 1."""
    for i in range(2):
        sf.write(str(tmp_path / f"f{i}.wav"), tone_mix(2.0, seed=10 + i), SR, subtype="FLOAT")
    ins = [str(tmp_path / "f0.wav"), str(tmp_path / "f1.wav")]
    r = subprocess.run(AUR + ["batch", "fingerprint"] + ins + [str(tmp_path / "nope.wav"), "--out", str(tmp_path / "b"),
                              "--workers", "1", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    s = json.loads(r.stdout)
    assert s["rows"] == 2 and s["failed"] == 1
    single = str(tmp_path / "single.parquet")
    assert subprocess.run(AUR + ["fingerprint"] + ins + ["--out", single], capture_output=True, timeout=300).returncode == 0
    assert read_table(s["table"]) == read_table(single)


def test_tiny_training_exports_an_onnx_that_matches_sklearn(tmp_path):
    """`auracore train fingerprint`'s pieces at toy size: a labelled table (six single-flaw
    copies per piece), a 10-tree forest, its ONNX export on ONNX Runtime equal to
    scikit-learn's probabilities within 1e-5, and the metrics of both sets."""
    pytest.importorskip("sklearn")
    pytest.importorskip("skl2onnx")
    import pyarrow.parquet as pq

    from auracore.models.fingerprint import FLAW_CLASSES, FlawModel
    from auracore.offline.fingerprint import train

    table = train.build_table(str(tmp_path), {"band": 3, "speech": 1}, seed=3, jobs=1, log=lambda m: None)
    rows = pq.read_table(table).to_pylist()
    assert len(rows) % len(FLAW_CLASSES) == 0 and len(rows) >= 3 * len(FLAW_CLASSES)
    assert sorted({r["label"] for r in rows}) == sorted(FLAW_CLASSES)
    metrics = train.train_and_export(table, str(tmp_path / "w"), trees=10, log=lambda m: None)
    assert metrics["onnx_max_abs_prob_diff"] < 1e-5
    assert set(metrics["sets"]) == {"held_out", "out_of_domain"}
    assert metrics["onnx_bytes"] < 1_000_000
    labels, prob = FlawModel(str(tmp_path / "w")).predict(np.array([[r[n] for n in FEATURE_NAMES] for r in rows[:6]]))
    assert prob.shape == (6, len(FLAW_CLASSES)) and np.allclose(prob.sum(axis=1), 1.0, atol=1e-5)
    assert all(lab in FLAW_CLASSES for lab in labels)
    # the shipped model loads (its checksum holds) and answers in the same form
    labels, prob = FlawModel().predict(fingerprint(tone_mix(2.0), SR).values)
    assert prob.shape == (1, len(FLAW_CLASSES)) and abs(prob.sum() - 1.0) < 1e-5
    # a tampered file is refused with one line
    with open(tmp_path / "w" / "flaws.onnx", "ab") as f:
        f.write(b"x")
    from auracore.errors import ModelError
    with pytest.raises(ModelError, match="checksum"):
        FlawModel(str(tmp_path / "w"))
