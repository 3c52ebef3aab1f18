"""Tests of `auracore analyze`: synthetic files with exact answers, the streaming state, the CLI."""

import json
import math
import re
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from auracore.control.cli import build_parser
from auracore.kernels.loudness import LoudnessMeter
from auracore.offline.analyze import (CLIP_MIN_RUN, BLOCK_FRAMES, EnvelopeDecimator, RunCounter,
                                      analyze_file, json_safe, quality_score, quality_terms)
from auracore.offline.audio_io import AudioFileError

SR = 48000
CLIP_LIN = 10.0 ** (-0.01 / 20.0)


def _write(path: Path, x: np.ndarray, sr: int = SR, subtype: str = "FLOAT") -> str:
    sf.write(str(path), x, sr, subtype=subtype)
    return str(path)


def _sine(freq_hz: float, amp: float, seconds: float, sr: int = SR, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return amp * np.sin(2.0 * np.pi * freq_hz * t + phase)


def _programme(seconds: float, seed: int = 7) -> np.ndarray:
    """Stereo noise whose level steps every second (so LRA and gating have work), peak < 0.5."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    levels_db = rng.uniform(-30.0, -12.0, size=int(math.ceil(seconds)))
    gain = np.repeat(10.0 ** (levels_db / 20.0), SR)[:n]
    noise = rng.standard_normal((n, 2)) * gain[:, None]
    noise[:, 1] = 0.7 * noise[:, 0] + 0.3 * noise[:, 1]
    return np.clip(noise, -0.5, 0.5)


def _strict_json(text: str):
    def reject(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=reject)


# ---------------------------------------------------------------- exact answers

def test_sine_minus_20_dbfs(tmp_path):
    x = _sine(1000.0, 0.1, 5.0)
    m = analyze_file(_write(tmp_path / "sine.wav", np.stack([x, x], axis=1))).metrics
    assert m["sample_peak_dbfs"] == pytest.approx(-20.0, abs=0.01)
    assert m["sample_peak_dbfs_per_channel"] == pytest.approx([-20.0, -20.0], abs=0.01)
    assert m["true_peak_dbtp"] == pytest.approx(-20.0, abs=0.05)
    assert m["crest_factor_db"] == pytest.approx(3.01, abs=0.05)
    assert m["rms_dbfs"] == pytest.approx(-23.01, abs=0.01)
    assert m["stereo_correlation"] == pytest.approx(1.0, abs=1e-6)
    assert m["stereo_width"] == pytest.approx(0.0, abs=1e-6)
    assert m["dc_offset"] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert m["clipping_events"] == 0
    assert m["true_peak_overs"] == 0
    assert m["duration_s"] == pytest.approx(5.0)
    assert (m["sample_rate"], m["channels"]) == (SR, 2)
    bands = m["band_levels_db"]
    assert max(bands, key=bands.get) == "1000"
    assert bands["1000"] == pytest.approx(0.0, abs=0.01)  # nearly all the power
    assert bands["500"] < -60.0 and bands["2000"] < -60.0
    # plr is true peak minus integrated loudness, as documented
    assert m["plr_db"] == pytest.approx(m["true_peak_dbtp"] - m["integrated_lufs"], abs=1e-9)


def test_anti_phase(tmp_path):
    x = _sine(440.0, 0.25, 2.0)
    m = analyze_file(_write(tmp_path / "anti.wav", np.stack([x, -x], axis=1))).metrics
    assert m["stereo_correlation"] == pytest.approx(-1.0, abs=1e-6)
    assert m["stereo_width"] is None  # no mid energy at all
    assert m["quality_terms"]["stereo"]["penalty"] == pytest.approx(20.0, abs=1e-6)


def test_uncorrelated_noise_width_near_one(tmp_path):
    rng = np.random.default_rng(3)
    m = analyze_file(_write(tmp_path / "wide.wav", 0.1 * rng.standard_normal((SR * 2, 2)))).metrics
    assert m["stereo_correlation"] == pytest.approx(0.0, abs=0.01)
    assert m["stereo_width"] == pytest.approx(1.0, abs=0.02)


def test_mono_has_no_stereo_figures(tmp_path):
    m = analyze_file(_write(tmp_path / "mono.wav", _sine(1000.0, 0.1, 1.0))).metrics
    assert m["channels"] == 1
    assert m["stereo_correlation"] is None and m["stereo_width"] is None
    assert m["quality_terms"]["stereo"]["penalty"] == 0.0


def test_dc_offset(tmp_path):
    x = _sine(200.0, 0.2, 2.0)
    m = analyze_file(_write(tmp_path / "dc.wav", np.stack([x + 0.1, x - 0.05], axis=1))).metrics
    assert m["dc_offset"] == pytest.approx([0.1, -0.05], abs=1e-4)
    # |DC| 0.1 is -20 dBFS: 0.5 * (60 - 20) = 20, held at the maximum of 10
    assert m["quality_terms"]["dc_offset"]["penalty"] == 10.0


def _clip_signal() -> tuple[np.ndarray, int]:
    """Mono noise at 0.05 with known runs at full scale; returns (signal, expected count)."""
    rng = np.random.default_rng(11)
    x = 0.05 * rng.standard_normal(3 * BLOCK_FRAMES)
    x[1000:1003] = 1.0                      # 3 samples: counts
    x[5000:5005] = -1.0                     # 5 samples, negative: counts
    x[9000:9002] = 1.0                      # 2 samples: does not count
    x[12000:12003] = 0.999                  # just above -0.01 dBFS (0.99885): counts
    x[15000:15003] = 0.998                  # just below: does not count
    x[BLOCK_FRAMES - 2:BLOCK_FRAMES + 2] = 1.0          # 4 samples across a block boundary: counts
    x[2 * BLOCK_FRAMES - 1:2 * BLOCK_FRAMES + 1] = 1.0  # 2 across a boundary: does not count
    x[-3:] = -1.0                           # 3 samples ending the file: counts
    return x, 5


def test_clipping_runs_across_block_boundaries(tmp_path):
    x, expected = _clip_signal()
    path = _write(tmp_path / "clip.wav", np.stack([x, 0.5 * x], axis=1))
    m = analyze_file(path, blocksize=BLOCK_FRAMES).metrics
    assert m["clipping_events_per_channel"] == [expected, 0]
    assert m["clipping_events"] == expected


def test_run_counter_is_independent_of_block_size():
    x, expected = _clip_signal()
    mag = np.abs(x)[None, :]
    rng = np.random.default_rng(5)
    for _ in range(5):
        counter = RunCounter(1, CLIP_LIN, CLIP_MIN_RUN)
        cuts = np.sort(rng.choice(np.arange(1, x.size), size=200, replace=False))
        for part in np.split(mag, cuts, axis=1):
            counter.process(part)
        assert counter.finish().tolist() == [expected]
    # single-frame blocks: every run spans boundaries
    counter = RunCounter(1, CLIP_LIN, CLIP_MIN_RUN)
    for i in range(10990, 15010):
        counter.process(mag[:, i:i + 1])
    assert counter.finish().tolist() == [1]  # only the 0.999 run lies in this stretch


def test_true_peak_between_samples(tmp_path):
    # fs/4 at 45 degrees: every sample sits at 0.707 of a full-scale peak; 10 ms fades
    # keep the burst's own edges from overshooting
    burst = _sine(SR / 4.0, 1.0, 0.5, phase=np.pi / 4.0)
    fade = np.sin(np.linspace(0.0, np.pi / 2.0, SR // 100)) ** 2
    burst[:fade.size] *= fade
    burst[-fade.size:] *= fade[::-1]
    x = np.zeros(3 * SR)
    x[SR:SR + burst.size] = burst
    result = analyze_file(_write(tmp_path / "isp.wav", x))
    m = result.metrics
    assert m["sample_peak_dbfs"] == pytest.approx(-3.01, abs=0.01)
    assert m["true_peak_dbtp"] == pytest.approx(0.0, abs=0.1)
    assert m["clipping_events"] == 0
    # one run of overs (consecutive 10 ms hops) from the fade-in to the fade-out
    assert m["true_peak_overs"] == 1
    p = result.plot
    over_ends_s = p.step_times_s[p.step_true_peak_dbtp >= -1.0]
    assert over_ends_s.min() == pytest.approx(1.1) and over_ends_s.max() == pytest.approx(1.5)
    assert p.envelope_hi[:, 0].max() == pytest.approx(math.sqrt(0.5), abs=1e-3)
    # without the plot (analyze --json, the API) the meter skips the hops under -1 dBTP: the
    # same metrics to the bit, the overs included
    fast = analyze_file(_write(tmp_path / "isp.wav", x), exact_series=False).metrics
    assert json.dumps(json_safe(fast), sort_keys=True) == json.dumps(json_safe(m), sort_keys=True)


def test_integrated_loudness_agrees_with_the_meter(tmp_path):
    x = _programme(12.0)
    path = _write(tmp_path / "prog.wav", x)
    m = analyze_file(path).metrics
    whole, _ = sf.read(path, dtype="float64", always_2d=True)
    meter = LoudnessMeter(SR, 2)
    meter.process(whole)
    r = meter.readings()
    assert math.isfinite(m["integrated_lufs"])
    assert m["integrated_lufs"] == pytest.approx(r["integrated_lufs"], abs=1e-6)
    assert m["loudness_range_lu"] == pytest.approx(r["loudness_range_lu"], abs=1e-6)
    assert m["short_term_max_lufs"] == pytest.approx(r["short_term_max_lufs"], abs=1e-6)
    assert m["true_peak_dbtp_per_channel"] == pytest.approx(r["true_peak_dbtp"], abs=1e-9)


def test_plot_series_follow_the_meter(tmp_path):
    x = _sine(1000.0, 0.1, 4.0)
    result = analyze_file(_write(tmp_path / "s.wav", np.stack([x, x], axis=1)))
    p, m = result.plot, result.metrics
    assert np.isnan(p.momentary_lufs[:3]).all()  # no full 400 ms window yet
    assert np.nanmax(p.momentary_lufs) == pytest.approx(m["momentary_max_lufs"], abs=0.01)
    assert np.nanmax(p.short_term_lufs) == pytest.approx(m["short_term_max_lufs"], abs=0.01)
    assert p.step_times_s[-1] == pytest.approx(4.0)
    assert np.isnan(p.short_term_lufs[:29]).all() and np.isfinite(p.short_term_lufs[29:]).all()


def test_figures_do_not_depend_on_block_size(tmp_path):
    x, _ = _clip_signal()
    path = _write(tmp_path / "b.wav", np.stack([x, _programme(x.size / SR)[:, 0]], axis=1))
    a = json_safe(analyze_file(path, blocksize=BLOCK_FRAMES).metrics)
    b = json_safe(analyze_file(path, blocksize=4099).metrics)
    flat_a, flat_b = _flatten(a), _flatten(b)
    assert flat_a.keys() == flat_b.keys()
    for key, va in flat_a.items():
        if isinstance(va, float):
            assert flat_b[key] == pytest.approx(va, rel=1e-9, abs=1e-9), key
        else:
            assert flat_b[key] == va, key


def _flatten(d, prefix=""):
    out = {}
    for k, v in (d.items() if isinstance(d, dict) else enumerate(d)):
        if isinstance(v, (dict, list)):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_memory_stays_flat_with_file_length(tmp_path):
    rng = np.random.default_rng(4)
    peaks_mb = []
    for seconds in (10, 60):
        path = _write(tmp_path / f"n{seconds}.wav", 0.1 * rng.standard_normal((SR * seconds, 2)),
                      subtype="PCM_16")
        runs = []
        for _ in range(2):   # the lower of two peaks: the blocks in flight move with the threads' timing
            tracemalloc.start()
            try:
                analyze_file(path)
                runs.append(tracemalloc.get_traced_memory()[1] / 1e6)
            finally:
                tracemalloc.stop()
        peaks_mb.append(min(runs))
    whole_60s_mb = SR * 60 * 2 * 8 / 1e6  # 46 MB as float64
    assert peaks_mb[1] < whole_60s_mb / 4
    # flat: 50 s more audio (38 MB as float64) adds no more than the blocks in flight, whose
    # count moves with the threads' timing (a block and its channel-major copy: 1.05 MB;
    # a run in CI had one more in flight for 60 s than for 10 s, and one on 2026-12-07,
    # with a single peak per length, 2.13 MB more: hence the lower of two runs)
    block_pair_mb = 2 * BLOCK_FRAMES * 2 * 8 / 1e6
    assert peaks_mb[1] - peaks_mb[0] < 2 * block_pair_mb, peaks_mb


def test_envelope_decimator_doubles_and_stays_exact():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 10007))
    env = EnvelopeDecimator(1, frames_hint=0, columns=10)  # a wrong hint: forces doubling
    for part in np.array_split(x, 37, axis=1):
        env.process(part)
    lo, hi, width = env.finish()
    assert lo.shape[0] <= 20 and width > 1
    assert lo.shape[0] == math.ceil(x.shape[1] / width)
    for j in range(lo.shape[0]):
        seg = x[0, j * width:(j + 1) * width]
        assert (lo[j, 0], hi[j, 0]) == (seg.min(), seg.max())


def test_silence_is_null_in_json(tmp_path):
    m = analyze_file(_write(tmp_path / "silent.wav", np.zeros((SR, 2)))).metrics
    safe = json_safe(m)
    text = json.dumps(safe, allow_nan=False)
    back = _strict_json(text)
    for key in ("integrated_lufs", "sample_peak_dbfs", "true_peak_dbtp", "plr_db",
                "crest_factor_db", "stereo_correlation", "stereo_width"):
        assert back[key] is None, key
    assert back["quality_terms"]["loudness"]["penalty"] == 30.0


def test_surround_51_weights_ignore_lfe(tmp_path):
    x = np.zeros((2 * SR, 6))
    x[:, 3] = _sine(60.0, 0.5, 2.0)  # LFE only: weight 0 in BS.1770
    m = analyze_file(_write(tmp_path / "lfe.wav", x)).metrics
    assert m["channels"] == 6
    assert m["integrated_lufs"] == -math.inf
    assert m["sample_peak_dbfs"] == pytest.approx(-6.02, abs=0.01)


def test_too_many_channels(tmp_path):
    path = _write(tmp_path / "nine.wav", np.zeros((1000, 9)))
    with pytest.raises(AudioFileError, match="9 channels; analyze takes 1 to 8"):
        analyze_file(path)


# ---------------------------------------------------------------- quality score

def test_quality_terms_follow_the_documented_rules():
    metrics = {"integrated_lufs": -20.0, "true_peak_dbtp": 0.5, "clipping_events": 3,
               "dc_offset": [0.0, -10.0 ** (-50.0 / 20.0)], "plr_db": 5.0,
               "loudness_range_lu": 1.0, "stereo_correlation": -0.5}
    terms = quality_terms(metrics, target_lufs=-14.0)
    expected = {"loudness": 12.0,   # 2 x 6 LU
                "true_peak": 15.0,  # 10 x 1.5 dB above -1 dBTP
                "clipping": 6.0,    # 2 x 3 events
                "dc_offset": 5.0,   # 0.5 x (60 - 50) dB
                "plr": 6.0,         # 2 x (8 - 5) dB
                "lra": 4.0,         # 2 x (3 - 1) LU
                "stereo": 10.0}     # 20 x 0.5
    assert {k: t["penalty"] for k, t in terms.items()} == pytest.approx(expected, abs=1e-9)
    assert quality_score(terms) == pytest.approx(100.0 - sum(expected.values()))
    # caps
    worst = {"integrated_lufs": -math.inf, "true_peak_dbtp": 6.0, "clipping_events": 500,
             "dc_offset": [0.5], "plr_db": -3.0, "loudness_range_lu": 0.0,
             "stereo_correlation": -1.0}
    caps = {k: t["penalty"] for k, t in quality_terms(worst).items()}
    assert caps == {"loudness": 30.0, "true_peak": 20.0, "clipping": 20.0, "dc_offset": 10.0,
                    "plr": 10.0, "lra": 6.0, "stereo": 20.0}
    assert quality_score(quality_terms(worst)) == 0.0


def test_quality_lower_for_clipped_dc_file(tmp_path):
    x = _programme(6.0, seed=3)
    clean = analyze_file(_write(tmp_path / "clean.wav", x)).metrics
    bad = x * 4.0 + 0.05
    bad = np.clip(bad, -1.0, 1.0)
    faulty = analyze_file(_write(tmp_path / "faulty.wav", bad)).metrics
    assert faulty["clipping_events"] > 0 and clean["clipping_events"] == 0
    assert faulty["quality_score"] < clean["quality_score"]
    t = faulty["quality_terms"]
    assert t["clipping"]["penalty"] == min(20.0, 2.0 * faulty["clipping_events"])
    assert t["dc_offset"]["penalty"] == pytest.approx(
        min(10.0, 0.5 * (20.0 * math.log10(max(map(abs, faulty["dc_offset"]))) + 60.0)), abs=0.01)
    assert clean["quality_terms"]["clipping"]["penalty"] == 0.0
    assert clean["quality_terms"]["dc_offset"]["penalty"] == 0.0
    for m in (clean, faulty):
        assert m["quality_score"] == pytest.approx(
            max(0.0, 100.0 - sum(v["penalty"] for v in m["quality_terms"].values())), abs=0.05)


# ---------------------------------------------------------------- the command line

def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).parent / "auracore"), "analyze", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_cli_json_one_file(tmp_path):
    x = _sine(1000.0, 0.1, 2.0)
    path = _write(tmp_path / "one.wav", np.stack([x, x], axis=1))
    proc = _cli(path, "--json", "--target-lufs", "-16")
    assert proc.returncode == 0, proc.stderr
    m = _strict_json(proc.stdout)
    assert isinstance(m, dict)
    for key in ("integrated_lufs", "loudness_range_lu", "true_peak_dbtp", "true_peak_dbtp_per_channel",
                "sample_peak_dbfs", "momentary_max_lufs", "short_term_max_lufs", "plr_db",
                "crest_factor_db", "stereo_correlation", "stereo_width", "dc_offset",
                "clipping_events", "band_levels_db", "duration_s", "sample_rate", "channels",
                "path", "quality_score", "quality_terms"):
        assert key in m, key
    assert m["target_lufs"] == -16.0
    assert m["sample_peak_dbfs"] == pytest.approx(-20.0, abs=0.01)
    assert proc.stderr == ""


def test_cli_folder_with_a_corrupt_file(tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    _write(folder / "a_good.wav", np.stack([_sine(500.0, 0.3, 1.0)] * 2, axis=1))
    (folder / "b_corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(200))
    (folder / "notes.txt").write_text("not audio")
    out = tmp_path / "fig.png"
    proc = _cli(str(folder), "--json", "--plot", str(out))
    assert proc.returncode == 1
    results = _strict_json(proc.stdout)
    assert [Path(r["path"]).name for r in results] == ["a_good.wav"]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # no progress bar when stderr is not a terminal
    assert lines[0].startswith(f"auracore analyze: {folder / 'b_corrupt.wav'}: ")
    assert "Traceback" not in proc.stderr
    # a folder means several files: numbered plots, the failed file's number unused
    assert (tmp_path / "fig-1.png").stat().st_size > 0
    assert not (tmp_path / "fig-2.png").exists() and not out.exists()


def test_cli_missing_file(tmp_path):
    proc = _cli(str(tmp_path / "nothere.wav"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"auracore analyze: {tmp_path / 'nothere.wav'}: no such file"
    assert proc.stdout == ""


def test_cli_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = _cli(str(tmp_path / "empty"))
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "no audio files" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_table_and_plot(tmp_path):
    x = _programme(5.0)
    x[SR:SR + 100] = np.clip(x[SR:SR + 100] * 10.0, -1.0, 1.0)  # overs to mark
    path = _write(tmp_path / "song.wav", x)
    out = tmp_path / "song.png"
    proc = _cli(path, "--plot", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == path
    value_ends = set()
    for label, unit in (("integrated loudness", "LUFS"), ("true peak", "dBTP"),
                        ("sample rate", "Hz"), ("crest factor", "dB"), ("quality score", "/ 100")):
        row = next(line for line in lines if line.startswith(f"  {label} "))
        match = re.match(rf"  {re.escape(label)} +(-?[\d.]+)  {re.escape(unit)}", row)
        assert match, row
        value_ends.add(match.end(1))
    assert len(value_ends) == 1  # values right-aligned in one column
    assert out.stat().st_size > 30_000  # three panels of real content
    assert _png_size(out) == (1200, 900)


def test_usage_errors_exit_2(tmp_path):
    parser = build_parser()
    for argv in (["analyze"], ["analyze", "x.wav", "--plot", "x.jpg"],
                 ["analyze", "x.wav", "--plot", str(tmp_path / "no" / "x.png")],
                 ["analyze", "x.wav", "--target-lufs", "nan"]):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(argv)
        assert exc.value.code == 2, argv


def test_the_single_precision_fft_loads_and_matches_numpy_without_importing_scipy_fft():
    """analyze's spectrum transforms through scipy's pocketfft extension, loaded by itself:
    it must load here (else the spectrum silently runs 3x slower on numpy), agree with numpy's
    float64 FFT to single precision, and leave scipy.fft unimported (0.2 s of start-up)."""
    code = ("import sys, numpy as np; from auracore.offline.fft32 import rfft32; "
            "x = np.random.default_rng(0).standard_normal((3, 8192)); "
            "a = np.fft.rfft(x, axis=1); b = rfft32(x.astype(np.float32)); "
            "print(b.dtype, float(np.max(np.abs(a - b)) / np.max(np.abs(a))), 'scipy.fft' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    dtype, err, imported = r.stdout.split()
    assert dtype == "complex64" and float(err) < 1e-6 and imported == "False", r.stdout + r.stderr


@pytest.mark.parametrize("samples, count, peak", [
    ([0.1, -0.25], 0, 0.25), ([float("nan"), 0.5], 1, 0.5), ([float("inf"), -0.3], 1, 0.3),
    ([-float("inf"), float("nan")], 2, 0.0), ([2e4, -0.1], 1, 0.1), ([1e4, -1e4], 0, 1e4), ([], 0, 0.0)])
def test_sanitised_peak_counts_the_bad_samples_and_reads_the_peak_of_the_rest(samples, count, peak):
    """The input rule's fast path (two passes over a clean block) and its slow path agree:
    NaN, Inf and values beyond SANE_LIMIT (1e4) become 0 and are counted; the peak is the
    largest magnitude left, exactly."""
    from auracore.kernels.sane import sanitised_peak

    x = np.array(samples, dtype=np.float64).reshape(-1, 1)
    y, n, top = sanitised_peak(x)
    assert n == count and top == peak
    assert np.all(np.isfinite(y)) and np.max(np.abs(y), initial=0.0) == peak
    if count == 0:
        assert y is x  # a clean block is not copied
