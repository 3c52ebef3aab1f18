"""auracore profile: tempo, beats, metre, key, chords, sections and levels, element effects, the command.

Signals with exact answers, written to real files (FLAC, WAV) and read back: a drum
pattern at a known tempo and metre, harmonic chords of a known progression, noise sections
of known level and width, reverb tails of known RT60, a pad pumped by a known depth, notes
with a known ADSR and echo, a sawtooth through a swept low-pass; and one short piece
rendered from MIDI by FluidSynth with its tempo, metre, key, chords and sections known.
"""

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import butter, fftconvolve, sosfilt

from auracore.control.cli import main
from auracore.kernels.loudness import LoudnessMeter
from auracore.offline.audio_io import load, save
from auracore.offline.profile import (ProfileError, element_profile, key_and_chords, profile, rt60, sections,
                                      tempo_and_beats)
from auracore.offline.profile import elements as E
from auracore.offline.profile.features import extract

SR = 44100
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


def _kick(n, sr):
    t = np.arange(n) / sr
    f = 50.0 + 100.0 * np.exp(-t * 40.0)
    return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 18.0)


def _noise_hit(n, sr, rng, decay):
    t = np.arange(n) / sr
    return rng.standard_normal(n) * np.exp(-t * decay)


def drum_track(bpm, beats_per_bar, bars, sr=SR, seed=0):
    """(x (frames, 2), beat times, downbeat times): kick on the downbeat, snare on the other
    beats (quieter), hats on the off beats, a bass note per beat."""
    rng = np.random.default_rng(seed)
    period = 60.0 / bpm
    n_beats = beats_per_bar * bars
    x = np.zeros(int((n_beats * period + 1.0) * sr))
    beats = np.arange(n_beats) * period
    for i, b in enumerate(beats):
        s = int(round(b * sr))
        if i % beats_per_bar == 0:
            x[s:s + 8000] += 0.9 * _kick(8000, sr)
        else:
            x[s:s + 6000] += 0.25 * _noise_hit(6000, sr, rng, 30.0)
        h = int(round((b + period / 2) * sr))
        x[h:h + 2000] += 0.08 * _noise_hit(2000, sr, rng, 120.0)
        t = np.arange(int(0.8 * period * sr)) / sr
        x[s:s + t.size] += 0.15 * np.sin(2 * np.pi * 55.0 * t) * np.exp(-t * 4.0)
    x = np.stack([x, x], axis=1) * 0.5
    return x, beats, beats[::beats_per_bar]


def _f_measure(est, ref, tol=0.07):
    est, ref = np.asarray(est), np.asarray(ref)
    hit = sum(np.any(np.abs(est - r) <= tol) for r in ref)
    prec = sum(np.any(np.abs(ref - e) <= tol) for e in est) / max(est.size, 1)
    rec = hit / max(ref.size, 1)
    return 2 * prec * rec / (prec + rec) if prec + rec else 0.0


@pytest.fixture(scope="module")
def drums44(tmp_path_factory):
    x, beats, downs = drum_track(124.0, 4, 12)
    path = str(tmp_path_factory.mktemp("p") / "drums.flac")
    save(path, x, SR, subtype="PCM_24")
    return path, beats, downs


def test_tempo_beats_downbeats_4_4_from_flac(drums44):
    path, beats, downs = drums44
    x, sr = load(path)
    tb = tempo_and_beats(x, sr)
    assert abs(tb.tempo_bpm - 124.0) <= 0.01 * 124.0  # within 1 %
    assert _f_measure(tb.beats_s, beats) >= 0.95  # +-70 ms
    assert tb.time_signature == "4/4"
    assert _f_measure(tb.downbeats_s, downs) >= 0.9
    assert 0.0 < tb.tempo_confidence <= 1.0
    # the octave family is reported, and the curve stays within 1 % of the tempo
    assert any(abs(b - 62.0) < 2.0 or abs(b - 248.0) < 5.0 for b, _ in tb.tempo_candidates)
    assert all(abs(b - 124.0) <= 1.24 for t, b in tb.tempo_curve if 2.0 <= t <= 20.0)


def test_three_four_metre_and_tempo():
    x, beats, downs = drum_track(96.0, 3, 14, seed=1)
    tb = tempo_and_beats(x, SR)
    assert abs(tb.tempo_bpm - 96.0) <= 0.96
    assert tb.time_signature == "3/4"
    assert _f_measure(tb.downbeats_s, downs) >= 0.9


def backbeat_track(bpm, bars, sr=SR, seed=4):
    """A fast rock pattern: kick on beats 1 and 3, snare on 2 and 4, hats on the eighths, a
    bass note on every beat. Read at half speed, the snare falls between the beats and the
    bass strikes as hard between them as on them."""
    rng = np.random.default_rng(seed)
    period = 60.0 / bpm
    n_beats = 4 * bars
    x = np.zeros(int((n_beats * period + 1.0) * sr))
    for i in range(n_beats):
        s = int(round(i * period * sr))
        if i % 2 == 0:
            x[s:s + 8000] += 0.9 * _kick(8000, sr)
        else:
            x[s:s + 6000] += 0.5 * _noise_hit(6000, sr, rng, 30.0)
        for h in (s, int(round((i + 0.5) * period * sr))):
            x[h:h + 2000] += 0.08 * _noise_hit(2000, sr, rng, 120.0)
        t = np.arange(int(0.8 * period * sr)) / sr
        x[s:s + t.size] += 0.3 * np.sin(2 * np.pi * 55.0 * t) * np.exp(-t * 4.0)
    return np.stack([x, x], axis=1) * 0.5


@pytest.mark.parametrize("bpm", [152.0, 168.0])
def test_fast_backbeat_is_not_read_at_half_tempo(bpm):
    """The octave decision: a fast backbeat pattern is read at its own tempo (within 1 %),
    not at half (the classic error of a tempo prior centred near 100 BPM)."""
    tb = tempo_and_beats(backbeat_track(bpm, 16), SR)
    assert abs(tb.tempo_bpm - bpm) <= 0.01 * bpm


def test_tempo_step_shows_in_the_curve():
    a, _, _ = drum_track(100.0, 4, 8, seed=2)
    b, _, _ = drum_track(125.0, 4, 10, seed=3)
    cut = int(round(32 * 0.6 * SR))
    x = np.concatenate((a[:cut], b))
    tb = tempo_and_beats(x, SR)
    curve = dict(tb.tempo_curve)
    early = [v for t, v in curve.items() if 3.0 <= t <= 15.0]
    late = [v for t, v in curve.items() if 25.0 <= t <= 38.0]
    assert abs(np.median(early) - 100.0) <= 2.0
    assert abs(np.median(late) - 125.0) <= 2.5


def test_features_do_not_depend_on_block_size(drums44):
    x, sr = load(drums44[0])
    f1 = extract(x[:SR * 6], sr, block_frames=65536)
    f2 = extract(x[:SR * 6], sr, block_frames=1000)
    np.testing.assert_allclose(f1.onset, f2.onset, atol=1e-9)
    np.testing.assert_allclose(f1.chroma, f2.chroma, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(f1.levels, f2.levels, rtol=1e-12, atol=1e-15)


def _tone(freq, n, sr, harmonics=5):
    t = np.arange(n) / sr
    return sum(np.sin(2 * np.pi * freq * k * t) * 0.6 ** (k - 1) for k in range(1, harmonics + 1))


def _midi_hz(m):
    return 440.0 * 2 ** ((m - 69) / 12)


def chord_track(progression, bar_s, sr=SR, repeats=2):
    """Harmonic-tone chords, one per bar (each chord (root midi, intervals)), with a low root."""
    n = int(bar_s * sr)
    env = np.minimum(1.0, np.arange(n) / (0.01 * sr)) * np.minimum(1.0, (n - np.arange(n)) / (0.02 * sr))
    parts = []
    for _ in range(repeats):
        for root, ivs in progression:
            y = _tone(_midi_hz(root - 12), n, sr) * 0.6
            for iv in ivs:
                y = y + _tone(_midi_hz(root + iv), n, sr) * 0.4
            parts.append(y * env)
    x = np.concatenate(parts) * 0.1
    return np.stack([x, x], axis=1)


def test_key_and_chords_of_a_known_progression(tmp_path):
    # C major: C, G7, A minor, F maj7, D minor 7, G, C, E minor, bar = 2 s
    prog = [(60, (0, 4, 7)), (67, (0, 4, 7, 10)), (69, (0, 3, 7)), (65, (0, 4, 7, 11)),
            (62, (0, 3, 7, 10)), (67, (0, 4, 7)), (60, (0, 4, 7)), (64, (0, 3, 7))]
    labels = ["C:maj", "G:7", "A:min", "F:maj7", "D:min7", "G:maj", "C:maj", "E:min"]
    x = chord_track(prog, 2.0)
    path = str(tmp_path / "chords.wav")
    save(path, x, SR)
    y, sr = load(path)
    beats = np.arange(0.0, y.shape[0] / sr - 0.25, 0.5)  # four beats per 2 s bar
    kc = key_and_chords(y, sr, beats_s=beats)
    assert kc.key == "C major"
    assert kc.key_runner_up != "C major" and 0.0 < kc.key_confidence <= 1.0
    # the label at the middle of every bar
    right = 0
    for i in range(16):
        mid = 2.0 * i + 1.0
        got = [c for a, b, c in kc.chords if a <= mid < b]
        right += bool(got) and got[0] == labels[i % 8]
    assert right >= 14  # 14 of 16 bars, root and quality


def test_section_levels_against_the_loudness_meter():
    rng = np.random.default_rng(5)
    n = 20 * SR
    quiet = rng.standard_normal((n, 2)) * 0.02                      # uncorrelated: width 1
    # mono in both: width 0; low-passed (one pole at about 1 kHz) so that the section reader,
    # which ignores level, has a change of timbre to find (white noise in both halves gave
    # it nothing but chance)
    from scipy.signal import lfilter

    pole = math.exp(-2 * math.pi * 1000.0 / SR)
    mono = lfilter([1.0 - pole], [1.0, -pole], rng.standard_normal(n))
    loud = np.repeat((mono * 0.1 / mono.std())[:, None], 2, axis=1)
    x = np.concatenate((quiet, loud))
    beats = np.arange(0.0, 40.0, 0.5)
    from auracore.offline.profile.tempo import TempoBeats

    st = sections(x, SR, tempo=TempoBeats(tempo_bpm=120.0, tempo_confidence=1.0, beats_s=tuple(beats),
                                          downbeats_s=tuple(beats[::4])))
    assert len(st.sections) == 2
    a, b = st.sections
    assert abs(a.end_s - 20.0) <= 0.5 and a.label != b.label
    for sec, seg in ((a, quiet), (b, loud)):
        lo, hi = int(round(sec.start_s * SR)), int(round(sec.end_s * SR))
        m = LoudnessMeter(SR, 2, true_peak=False)
        m.process(np.ascontiguousarray(x[lo:hi]))
        assert abs(sec.integrated_lufs - m.integrated_lufs) <= 0.2  # LU; blocks over the edge are left out
        seg_x = x[lo:hi]
        rms_db = 10 * math.log10((seg_x ** 2).mean())
        assert abs(sec.rms_dbfs - rms_db) <= 0.05
        assert abs(sec.crest_db - (20 * math.log10(np.abs(seg_x).max()) - rms_db)) <= 0.05
    assert abs(a.width - 1.0) <= 0.05 and b.width <= 1e-6
    assert len(st.energy_curve) >= 70


def reverb_tails(rt, sr=SR, seed=0, bursts=4):
    rng = np.random.default_rng(seed)
    gap = int(sr * (rt * 1.6 + 0.4))
    dry = np.zeros(gap * bursts)
    for k in range(bursts):
        m = int(0.05 * sr)
        dry[k * gap:k * gap + m] = rng.standard_normal(m) * np.hanning(m)
    t = np.arange(int(sr * rt * 1.6)) / sr
    ir = rng.standard_normal(t.size) * 10.0 ** (-3.0 * t / rt)
    wet = fftconvolve(dry, ir)[:dry.size]
    return (0.3 * wet / np.abs(wet).max())[:, None]


@pytest.mark.parametrize("rt", [0.4, 1.5])
def test_rt60_of_synthetic_tails(rt, tmp_path):
    path = str(tmp_path / "tail.wav")
    save(path, reverb_tails(rt), SR, subtype="FLOAT")
    x, sr = load(path)
    est = rt60(x, sr)
    assert est is not None and abs(est - rt) <= 0.05 * rt  # within 5 %


def test_sidechain_depth_and_rate():
    bpm, depth_db = 125.0, 8.0
    n = 16 * SR
    t = np.arange(n) / SR
    pad = sum(_tone(_midi_hz(m), n, SR) for m in (57, 60, 64)) * 0.05
    period = 60.0 / bpm
    ph = (t % period) / period
    g_db = np.where(ph < 0.6, -depth_db * (1 - np.clip(ph / 0.6, 0, 1)) ** 2, 0.0) * np.clip((t % period) / 0.005, 0, 1)
    x = (pad * 10 ** (g_db / 20))[:, None]
    from auracore.offline.profile.tempo import TempoBeats

    tb = TempoBeats(tempo_bpm=bpm, tempo_confidence=1.0, beats_s=tuple(np.arange(0.0, 16.0, period)))
    e = element_profile(x, SR, tb)
    assert abs(e.sidechain_depth_db - depth_db) <= 1.0
    assert abs(e.sidechain_rate_hz - bpm / 60.0) <= 0.02 * bpm / 60.0


def adsr_notes(attack_s, decay_s, sustain_db, release_s, hold_s, gap_s, count, sr=SR):
    s_lin = 10 ** (sustain_db / 20)
    env = np.concatenate((np.linspace(0, 1, int(attack_s * sr), endpoint=False),
                          np.linspace(1, s_lin, int(decay_s * sr), endpoint=False),
                          np.full(int(hold_s * sr), s_lin),
                          np.linspace(s_lin, 0, int(release_s * sr)),
                          np.zeros(int(gap_s * sr))))
    tone = _tone(330.0, env.size, sr, harmonics=3)
    return np.tile(tone * env, count)[:, None] * 0.3


def test_adsr_of_synthetic_notes():
    x = adsr_notes(0.02, 0.1, -6.0, 0.2, 0.3, 0.3, 8)
    a = E.adsr(*_env_and_notes(x))
    assert a["notes"] == 8
    assert abs(a["attack_s"] - 0.02) <= 0.006
    assert abs(a["decay_s"] - 0.1) <= 0.02
    assert abs(a["sustain_db"] + 6.0) <= 0.5
    assert abs(a["release_s"] - 0.2) <= 0.03


def _env_and_notes(x):
    env, fs = E.envelope(x, SR)
    return env, fs, E.onsets(E._db(env), fs)


def test_delay_time_of_an_echo():
    rng = np.random.default_rng(9)
    dry = np.zeros(20 * SR)
    t = 0.3
    while t < 19.0:  # plucks at irregular times
        s = int(t * SR)
        n = int(0.15 * SR)
        dry[s:s + n] += _tone(float(rng.uniform(200, 600)), n, SR) * np.exp(-np.arange(n) / SR * 25) * rng.uniform(0.5, 1)
        t += float(rng.uniform(0.7, 1.3))
    d = int(0.33 * SR)
    wet = dry.copy()
    wet[d:] += 0.35 * dry[:-d]
    env, fs, notes = _env_and_notes(wet[:, None])
    got = E.delay_time(E._db(env), fs, notes)
    assert got is not None and abs(got - 0.33) <= 0.01
    env, fs, notes = _env_and_notes(dry[:, None])
    assert E.delay_time(E._db(env), fs, notes) is None


def test_filter_cutoff_follows_a_sweep():
    n = 8 * SR
    t = np.arange(n) / SR
    saw = 2 * ((110.0 * t) % 1.0) - 1.0
    out = np.zeros(n)
    block = 2048
    cut_at = lambda tt: 400.0 * 2 ** (3.0 * tt / 8.0)  # 400 Hz -> 3.2 kHz, 3 octaves in 8 s
    zi = None
    from scipy.signal import sosfilt_zi

    for s in range(0, n, block):
        sos = butter(4, cut_at(t[s]), fs=SR, output="sos")
        if zi is None:
            zi = sosfilt_zi(sos) * 0.0
        out[s:s + block], zi = sosfilt(sos, saw[s:s + block], zi=zi)
    fc = E.filter_cutoff((0.3 * out)[:, None], SR)
    assert len(fc) >= 50
    err = [abs(math.log2(f / cut_at(tt))) for tt, f in fc if 0.5 <= tt <= 7.5]
    assert np.median(err) <= 0.34  # a third of an octave
    est = np.log2([f for _, f in fc])
    assert abs((np.percentile(est, 95) - np.percentile(est, 5)) - 3.0 * 0.9) <= 0.6


@pytest.fixture(scope="module")
def rendered_piece(tmp_path_factory):
    if not (shutil.which("fluidsynth") and os.path.exists(SF2)):
        pytest.skip("FluidSynth or FluidR3_GM missing (scripts/install --dev installs them)")
    # bench/profile.py, the piece generator, by its path: the name "profile" is the standard
    # library's profiler, which may be imported already
    import importlib.util

    spec = importlib.util.spec_from_file_location("auracore_bench_profile", os.path.join(ROOT, "bench", "profile.py"))
    bench_profile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_profile)
    piece = bench_profile.make_piece(8, bars_per_section=4)  # 3/4, D minor, plan A B C B A
    d = tmp_path_factory.mktemp("piece")
    mid, wav = str(d / "piece.mid"), str(d / "piece.wav")
    bench_profile.write_midi(piece["notes"], mid)
    bench_profile.render(mid, wav)
    return piece, wav


def test_rendered_piece_profile(rendered_piece):
    piece, wav = rendered_piece
    x, sr = load(wav)
    p = profile(x, sr)
    assert abs(p.tempo_bpm - piece["tempo_bpm"]) <= 0.04 * piece["tempo_bpm"]
    assert p.time_signature == piece["time_signature"]
    assert p.key == piece["key"]
    assert _f_measure(p.beats_s, piece["beats_s"]) >= 0.9
    # chord root right for at least 80 % of the bars (at the bar's middle)
    names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    right = 0
    for a, b, lab in piece["chords"]:
        got = [c for s, e, c in p.chords if s <= (a + b) / 2 < e]
        right += bool(got) and got[0] != "N" and names.index(got[0].split(":")[0]) == names.index(lab.split(":")[0])
    assert right >= 0.8 * len(piece["chords"])
    # boundaries within 3 s (HR3 recall and precision both at least 0.7)
    ref = [a for a, _, _ in piece["sections"]][1:]
    est = [s.start_s for s in p.sections][1:]
    rec = np.mean([any(abs(e - r) <= 3.0 for e in est) for r in ref])
    prec = np.mean([any(abs(e - r) <= 3.0 for r in ref) for e in est]) if est else 0.0
    assert rec >= 0.7 and prec >= 0.7
    # integrated loudness of the whole equals the meter's
    m = LoudnessMeter(sr, x.shape[1], true_peak=False)
    m.process(x)
    assert abs(p.integrated_lufs - m.integrated_lufs) <= 1e-6


def _cli(args, capsys):
    code = main(["profile"] + args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_plot_and_stems(drums44, tmp_path, capsys):
    path = drums44[0]
    png = str(tmp_path / "p.png")
    stems = tmp_path / "stems"
    stems.mkdir()
    x, sr = load(path)
    save(str(stems / "drums.wav"), x, sr)
    save(str(stems / "pad.flac"), reverb_tails(0.8)[: x.shape[0]], sr)
    code, out, err = _cli([path, "--json", "--plot", png, "--stems", str(stems)], capsys)
    assert code == 0, err
    d = json.loads(out)
    for key in ("tempo_bpm", "tempo_confidence", "tempo_curve", "beats_s", "downbeats_s", "time_signature", "key",
                "key_confidence", "key_runner_up", "chords", "sections", "energy_curve", "elements"):
        assert key in d
    assert abs(d["tempo_bpm"] - 124.0) <= 1.24
    for s in d["sections"]:
        assert set(s) >= {"start_s", "end_s", "label", "integrated_lufs", "rms_dbfs", "crest_db", "width"}
    assert set(d["elements"]) == {"drums", "pad"}
    assert set(d["elements"]["pad"]) >= {"adsr", "rt60_s", "delay_s", "sidechain_depth_db", "sidechain_rate_hz"}
    assert abs(d["elements"]["pad"]["rt60_s"] - 0.8) <= 0.08
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # the function gives what the command prints
    ref = profile(x, sr).to_dict()
    assert ref["beats_s"] == d["beats_s"] and ref["sections"] == d["sections"]
    code, out, err = _cli([path], capsys)
    assert code == 0 and "tempo" in out and "BPM" in out


def test_cli_bad_input_one_line_nothing_left(tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 100)
    png = tmp_path / "out.png"
    code, out, err = _cli([str(bad), "--plot", str(png)], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "bad.wav" in err
    assert not png.exists() and bad.read_bytes() == b"not audio at all" * 100
    code, out, err = _cli([str(tmp_path / "missing.flac")], capsys)
    assert code == 1 and "no such file" in err
    good = str(tmp_path / "good.wav")
    save(good, drum_track(120.0, 4, 3)[0], SR)
    stems = tmp_path / "stems"
    stems.mkdir()
    save(str(stems / "a.wav"), np.zeros((48000, 1)) + 0.01, 48000)
    code, out, err = _cli([good, "--stems", str(stems)], capsys)
    assert code == 1 and "48000" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as e:  # a usage error, as every command's: one line, exit 2
        main(["profile", good, "--plot", str(tmp_path / "x.jpg")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "PNG" in err


def test_step_rejects_bad_arrays():
    with pytest.raises(ProfileError):
        profile(np.full((1000, 2), np.nan), SR)
    with pytest.raises(ProfileError):
        profile(np.zeros((1000, 2)), 1000)
    with pytest.raises(ProfileError):
        profile(np.zeros((0, 2)), SR)


def test_silence_gives_nulls_not_errors():
    d = profile(np.zeros((5 * SR, 2)), SR).to_dict()
    assert d["tempo_bpm"] is None and d["beats_s"] == [] and d["integrated_lufs"] is None
    json.dumps(d, allow_nan=False)


def test_absurd_stem_samples_count_as_silence():
    """A stem holding absurd samples (1e300, far beyond +80 dBFS) is read as the chain reads
    them, as 0: no overflow, and the element equals that of the stem with them zeroed."""
    import warnings

    rate = 22050
    t = np.arange(4 * rate) / rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0))[:, None]
    bad = x.copy()
    bad[rate:rate + 100] = 1e300
    clean = x.copy()
    clean[rate:rate + 100] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = profile(x, rate, stems={"s": bad}).elements["s"].to_dict()
    want = profile(x, rate, stems={"s": clean}).elements["s"].to_dict()
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)
