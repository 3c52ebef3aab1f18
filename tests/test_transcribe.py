"""Transcription to MIDI: notes, velocities, bends, drums, streaming, the MIDI file and the command.

Fixtures are MIDI rendered here through FluidSynth (FluidR3_GM, reverb and chorus off) by the
bench's reference maker, so every note is known exactly; scores are mir_eval's (50 ms onsets).
"""

import importlib.util
import json
import os
import subprocess
import sys
import tracemalloc

import mido
import numpy as np
import pretty_midi
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from auracore.errors import ParamError
from auracore.offline.transcribe import Note, Notes, TempoMap, Track, Transcriber, transcribe, transcribe_stems
from auracore.offline.transcribe.pitched import StreamResampler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("bench_transcribe", os.path.join(ROOT, "bench", "transcribe.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

pytestmark = pytest.mark.skipif(not os.path.isfile(bench.SOUNDFONT), reason="needs fluidsynth and FluidR3_GM")


def render(tmp_path, pm, name="clip.wav"):
    path = str(tmp_path / name)
    bench.render(pm, path)
    x, sr = sf.read(path, always_2d=True)
    return path, x, sr


def melody(notes, program=0, bends=()):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=program)
    for pitch, start, end, vel in notes:
        inst.notes.append(pretty_midi.Note(vel, pitch, start, end))
    inst.pitch_bends.extend(pretty_midi.PitchBend(v, t) for t, v in bends)
    pm.instruments.append(inst)
    return pm


def f1(ref, est, offsets=False):
    s = bench.note_scores(ref, [(n.onset_s, n.offset_s, n.pitch) for n in est])
    return bench.prf(s["offset_matches" if offsets else "onset_matches"], s["ref"], s["est"])[2]


@pytest.fixture(scope="module")
def mono_clip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mono")
    pm = bench.random_midi("mono", 4242, 8.0, 0)
    path, x, sr = render(tmp, pm)
    return path, x, sr, bench.reference_notes(pm)


def test_piano_melody_notes_and_onset_times(mono_clip):
    _, x, sr, ref = mono_clip
    notes = transcribe(x, sr, stem_type="pitched")
    assert f1(ref, notes.notes) >= 0.9  # onset-only note F1, 50 ms
    errors = [min((n.onset_s - on for n in notes.notes if n.pitch == p), key=abs) for on, _, p in ref
              if any(n.pitch == p for n in notes.notes)]
    assert abs(np.median(errors)) < 0.015  # the frame grid's time offset is calibrated: median within 15 ms
    assert all(1 <= n.velocity <= 127 for n in notes.notes)


def test_same_notes_for_any_block_size_and_resampler_joins_exactly(mono_clip):
    _, x, sr, _ = mono_clip
    a = transcribe(x, sr, stem_type="pitched", block_frames=1000).notes
    b = transcribe(x, sr, stem_type="pitched", block_frames=1 << 17).notes
    assert a == b
    y = x.mean(axis=1)
    r = StreamResampler(sr, 22050)
    parts = [r.process(y[i:i + 777]) for i in range(0, len(y), 777)] + [r.finish()]
    streamed = np.concatenate(parts)
    whole = resample_poly(y, 22050 // 50, sr // 50)
    assert len(streamed) == len(whole)
    assert np.max(np.abs(streamed - whole)) < 1e-9


def test_last_note_of_a_file_is_kept(tmp_path):
    # the file stops 0.4 s into a held note: the note must be there, ending at the file's end
    pm = melody([(60, 0.3, 1.0, 100), (67, 1.2, 1.9, 100), (72, 2.1, 4.0, 100)], program=0)
    _, x, sr = render(tmp_path, pm)
    cut = x[:int(2.5 * sr)]
    notes = transcribe(cut, sr, stem_type="pitched").notes
    last = max(notes, key=lambda n: n.onset_s)
    assert last.pitch == 72
    assert abs(last.onset_s - 2.1) < 0.03
    assert abs(last.offset_s - 2.5) < 0.03  # closed at the end of the audio, within 30 ms


def test_a_note_at_time_zero_makes_a_valid_midi_file(tmp_path):
    pm = melody([(67, 0.0, 0.6, 100), (64, 0.8, 1.4, 100)], program=0)
    _, x, sr = render(tmp_path, pm)
    notes = transcribe(x, sr, stem_type="pitched", beats_s=[0.0, 0.5, 1.0, 1.5], tempo_bpm=120.0)
    first = min(notes.notes, key=lambda n: n.onset_s)
    assert first.pitch == 67 and 0.0 <= first.onset_s < 0.02
    path = str(tmp_path / "zero.mid")
    notes.to_midi().save(path)
    assert min(n.start for n in pretty_midi.PrettyMIDI(path).instruments[0].notes) < 0.02


def test_memory_is_flat_for_long_input(mono_clip):
    _, x, sr, _ = mono_clip
    def peak_bytes(repeats):
        long = np.tile(x, (repeats, 1))
        t = Transcriber(sr, "pitched")
        tracemalloc.start()
        for i in range(0, len(long), 65536):
            t.process(long[i:i + 65536])
        t.finish()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak
    short, longer = peak_bytes(3), peak_bytes(8)  # ~30 s and ~80 s of audio (past the first batches)
    assert longer - short < 2e6, (short, longer)  # within 2 MB: no growth beyond the notes themselves


def test_velocities_follow_note_dynamics(tmp_path):
    vels = [30, 60, 90, 120]
    pm = melody([(64, 0.5 + i * 0.8, 1.0 + i * 0.8, v) for i, v in enumerate(vels)], program=73)
    _, x, sr = render(tmp_path, pm)
    notes = [n for n in transcribe(x, sr, stem_type="pitched").notes if n.pitch == 64]
    est = [n.velocity for n in sorted(notes, key=lambda n: n.onset_s)]
    assert len(est) == 4
    assert est == sorted(est)
    ratio = est[3] / est[0]
    assert 2.8 <= ratio <= 5.2  # true ratio 4: within 30 %
    assert all(abs(e - v) <= 25 for e, v in zip(est, vels))  # absolute: the loud notes sit near 112


def test_pitch_bend_glide_is_one_note_with_its_bend_curve(tmp_path):
    bends = [(1.0 + i * 0.01, int(4096 * min(1.0, i / 20))) for i in range(50)] + [(2.6, 0)]
    pm = melody([(69, 0.5, 2.5, 90)], program=73, bends=bends)
    _, x, sr = render(tmp_path, pm)
    notes = transcribe(x, sr, stem_type="pitched", program=73)
    assert len(notes.notes) == 1
    n = notes.notes[0]
    assert n.pitch == 69
    held = [s for t, s in n.bends if 1.4 <= t <= 2.3]
    assert held and all(abs(s - 1.0) < 0.15 for s in held)  # +1 semitone within 0.15
    before = [s for t, s in n.bends if t < 0.95]
    assert all(abs(s) < 0.15 for s in before)
    path = str(tmp_path / "bend.mid")
    notes.to_midi().save(path)
    wheel = [m.pitch for m in mido.MidiFile(path).tracks[1] if m.type == "pitchwheel"]
    assert max(wheel) == pytest.approx(4096, abs=600)  # +1 semitone on a 2-semitone wheel


def test_drums_onsets_and_kit_pieces(tmp_path):
    """FluidR3's standard kit, 8 seeded grooves of 10 s pooled (one seed holds about 20
    snares, so one miss moves its F1 by 0.05): onsets F1 >= 0.85, kick and snare F1 >= 0.8
    (measured 2026-12-06, means over the seeds: onsets 0.98, kick 0.95, snare 0.90)."""
    totals = {"onsets": [0, 0, 0], "kick": [0, 0, 0], "snare": [0, 0, 0]}
    for seed in range(70, 78):
        pm = bench.random_midi("drums", seed, 10.0, 0)
        path, x, sr = render(tmp_path, pm, f"drums{seed}.wav")
        notes = transcribe(x, sr, stem_type="drums")
        sc = bench.drum_scores(bench.reference_notes(pm, drums=True),
                               [(n.onset_s, n.offset_s, n.pitch) for n in notes.notes])
        for key, got in (("onsets", (sc["onset_matches"], sc["ref_onsets"], sc["est_onsets"])),
                         ("kick", (sc["kick"]["matches"], sc["kick"]["ref"], sc["kick"]["est"])),
                         ("snare", (sc["snare"]["matches"], sc["snare"]["ref"], sc["snare"]["est"]))):
            totals[key] = [a + b for a, b in zip(totals[key], got)]
    assert bench.prf(*totals["onsets"])[2] >= 0.85
    for cls in ("kick", "snare"):
        assert bench.prf(*totals[cls])[2] >= 0.8, (cls, totals[cls])
    assert notes.tracks[0].is_drums
    mid = str(tmp_path / "d.mid")
    notes.to_midi().save(mid)
    channels = {m.channel for m in mido.MidiFile(mid).tracks[1] if m.type == "note_on"}
    assert channels == {9}  # channel 10
    # auto tells a drum stem from a melody
    assert transcribe(x, sr).tracks[0].stem_type == "drums"


def _groove(seed: int, seconds: float = 8.0) -> list:
    rng = np.random.default_rng(seed)
    step = 60.0 / rng.uniform(90, 140) / 2
    notes, t, k = [], 0.25, 0
    while t < seconds - 0.5:
        if k % 8 in (0, 5):
            notes.append((t, 0.1, 36, int(rng.integers(90, 121))))
        if k % 8 in (2, 6):
            notes.append((t, 0.1, 38, int(rng.integers(90, 121))))
        notes.append((t, 0.1, 42, int(rng.integers(60, 101))))
        t += step
        k += 1
    return notes


@pytest.mark.parametrize("font, kit, single, floor", [
    ("FluidR3_GM.sf2", 24, False, 0.9),            # electronic: its kick peaks where the standard snare does
    ("FluidR3_GM.sf2", 25, False, 0.9),            # TR-808
    ("Red_Zeppelin_4_LV2.sf2", 0, True, 0.7),      # an acoustic kit no template was measured on
])
def test_kicks_and_snares_of_other_kits(font, kit, single, floor):
    """Kick and snare F1 on kits other than the standard one (measured 2026-12-06: 1.0 / 1.0
    on the electronic and TR-808 kits, 0.84 / 0.82 on AVL's Red Zeppelin kit; with the
    standard kit's templates alone they were 0.0 / 0.0, 0.0 / 1.0 and 0.0 / 0.74)."""
    path = os.path.join("/usr/share/sounds/sf2", font)
    if not os.path.exists(path):
        pytest.skip(f"needs {path}")
    from auracore.models import fluid

    notes = _groove(kit + 7)
    x = fluid.render_tracks(path, [fluid.Track(kit, 64, tuple(notes))], 8.0, drums=True, single_kit=single,
                            sample_format="float")
    est = [(n.onset_s, n.offset_s, n.pitch) for n in transcribe(x, 44100, stem_type="drums").notes]
    sc = bench.drum_scores([(n[0], n[0] + 0.1, n[2]) for n in notes], est)
    for cls in ("kick", "snare"):
        assert bench.prf(sc[cls]["matches"], sc[cls]["ref"], sc[cls]["est"])[2] >= floor, (cls, sc[cls])


def test_auto_keeps_pitched_material_pitched(mono_clip):
    _, x, sr, _ = mono_clip
    assert transcribe(x, sr).tracks[0].stem_type == "pitched"


def test_midi_file_tempo_map_keeps_real_times(tmp_path):
    beats = [0.5 + 0.45 * i for i in range(8)] + [4.1 + 0.55 * i for i in range(8)]
    ref = [Note(0.61, 0.95, 60, 90), Note(2.0, 3.3, 64, 70), Note(4.87, 6.0, 67, 100), Note(7.9, 8.2, 72, 50)]
    # the first downbeat is the third beat: the lead-in is padded so that it starts bar 2
    notes = Notes((Track("lead", "pitched", 40, tuple(ref)),), TempoMap.from_beats(beats, 120.0, 3, beats[2]), 9.0, 44100)
    path = str(tmp_path / "t.mid")
    notes.to_midi().save(path)
    mid = mido.MidiFile(path)
    assert mid.type == 1 and len(mid.tracks) == 2
    tempos = [m.tempo for m in mid.tracks[0] if m.type == "set_tempo"]
    assert 450000 in tempos and 550000 in tempos  # 0.45 s and 0.55 s beats
    sig = [m for m in mid.tracks[0] if m.type == "time_signature"][0]
    assert (sig.numerator, sig.denominator) == (3, 4)
    pm = pretty_midi.PrettyMIDI(path)
    got = sorted((n.start, n.end, n.pitch, n.velocity) for n in pm.instruments[0].notes)
    assert pm.instruments[0].program == 40
    for (s, e, p, v), n in zip(got, ref):
        assert abs(s - n.onset_s) < 0.002 and abs(e - n.offset_s) < 0.002  # within 2 ms (tick rounding)
        assert (p, v) == (n.pitch, n.velocity)
    # the beats fall on whole beats of the grid, the first downbeat on a bar line
    beat_times = pm.get_beats()
    assert min(abs(beat_times - 4.1)) < 0.002
    assert min(abs(pm.get_downbeats() - beats[2])) < 0.002


def test_silence_gives_an_empty_valid_transcription():
    notes = transcribe(np.zeros((44100, 2)), 44100)
    assert notes.notes == () and any("silent" in w for w in notes.warnings)
    assert len(notes.to_midi().tracks) == 2


def test_bad_options_are_one_line_errors():
    with pytest.raises(ParamError):
        transcribe(np.zeros(100), 44100, stem_type="guitar")
    with pytest.raises(ParamError):
        transcribe(np.zeros(100), 44100, onset_threshold=1.5)
    with pytest.raises(ParamError):
        transcribe(np.zeros(100), 44100, min_hz=500, max_hz=200)


def test_stems_become_tracks_with_their_programs(tmp_path, mono_clip):
    _, x, sr, ref = mono_clip
    drum_pm = bench.random_midi("drums", 78, 8.0, 0)
    _, d, sr2 = render(tmp_path, drum_pm, "d.wav")
    n = min(len(x), len(d))
    notes = transcribe_stems({"drums": d[:n], "bass": np.zeros((n, 2)), "other": x[:n]}, sr)
    kinds = {t.name: (t.stem_type, t.program) for t in notes.tracks}
    assert kinds == {"drums": ("drums", 0), "bass": ("bass", 33), "other": ("pitched", 0)}
    other = next(t for t in notes.tracks if t.name == "other")
    assert f1([r for r in ref if r[0] < n / sr - 0.2], [o for o in other.notes if o.onset_s < n / sr - 0.2]) >= 0.9


def _cli(*args):
    env = dict(os.environ, AURACORE_DEBUG="")
    exe = os.path.join(os.path.dirname(sys.executable), "auracore")  # the console script
    return subprocess.run([exe, "transcribe", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)


def test_command_writes_midi_and_json(tmp_path, mono_clip):
    path, _, _, ref = mono_clip
    out = str(tmp_path / "out.mid")
    done = _cli(path, out, "--stem-type", "pitched", "--program", "24", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["tracks"][0]["program"] == 24
    from auracore.offline.profile import tempo_and_beats  # the tempo map is the profile's
    tb = tempo_and_beats(sf.read(path, always_2d=True)[0], 44100)
    assert summary["tempo"]["tempo_bpm"] == pytest.approx(tb.tempo_bpm, abs=1e-3)
    assert summary["tempo"]["beat_count"] == len(tb.beats_s)
    pm = pretty_midi.PrettyMIDI(out)
    est = [Note(n.start, n.end, n.pitch, n.velocity) for n in pm.instruments[0].notes]
    assert f1(ref, est) >= 0.9
    assert pm.instruments[0].program == 24


def test_command_silent_bad_and_refused_inputs(tmp_path):
    silent = str(tmp_path / "silent.flac")
    sf.write(silent, np.zeros((22050, 1)), 22050)
    out = str(tmp_path / "s.mid")
    done = _cli(silent, out)
    assert done.returncode == 0 and "warning" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert len(mido.MidiFile(out).tracks) == 2
    empty = str(tmp_path / "empty.wav")
    sf.write(empty, np.zeros((0, 2)), 44100)
    done = _cli(empty, str(tmp_path / "e.mid"))
    assert done.returncode == 0 and "no audio" in done.stderr
    junk = str(tmp_path / "junk.wav")
    with open(junk, "wb") as f:
        f.write(b"not audio at all" * 10)
    done = _cli(junk, str(tmp_path / "j.mid"))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not os.path.exists(tmp_path / "j.mid")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".auracore-")]
    same = str(tmp_path / "same.mid")
    with open(same, "wb") as f:
        f.write(b"MThd")
    done = _cli(same, same)
    assert done.returncode == 1 and open(same, "rb").read() == b"MThd"
    assert _cli(silent, str(tmp_path / "x.wav")).returncode == 2  # the output must be a .mid


def test_the_lowest_line_keeps_the_lowest_note_of_each_chord():
    """lowest_line: of notes struck within 50 ms of a group's first onset, the lowest, timed at
    that first onset (what QC and reconstruct read as the bass line); a note 60 ms later starts
    a group of its own."""
    from auracore.offline.transcribe import Note, lowest_line

    notes = [Note(0.00, 0.5, 60, 90), Note(0.02, 0.4, 43, 80), Note(0.04, 0.5, 55, 70),
             Note(0.50, 0.9, 48, 90), Note(0.56, 0.9, 36, 90)]
    line = lowest_line(notes)
    assert [(n.onset_s, n.pitch) for n in line] == [(0.0, 43), (0.5, 48), (0.56, 36)]
    assert line[0].offset_s == pytest.approx(0.4) and line[0].velocity == 80


def test_a_low_bass_line_is_heard_an_octave_up(tmp_path):
    """Eighths from E1 (41 Hz) to A2 on four GM basses (fingered, synth, picked, acoustic):
    stem type bass, heard at double speed, finds them with mean onset F1 0.78 or more (0.83
    measured: 0.74 / 1.00 / 0.62 / 0.94) and 0.1 over the same model at the real speed
    limited to the same range (0.63: 0.61 / 0.84 / 0.42 / 0.67); times and pitches come back
    at the real speed (the last note found near 7.75 s), without the model's frame lag
    stretched with them: the median signed onset error, averaged over the four basses, within
    5 ms (-1.3 ms measured; -10.3 ms when the lag was doubled with the times)."""
    pitches = [28, 28, 31, 33, 35, 35, 36, 38, 40, 40, 43, 45, 33, 33, 29, 30]
    ours, plain, lag = [], [], []
    for program in (33, 38, 34, 32):
        pm = melody([(pitches[k % 16], 0.25 * k, 0.25 * k + 0.22, 100) for k in range(32)], program=program)
        _, x, sr = render(tmp_path, pm, f"bass{program}.wav")
        ref = bench.reference_notes(pm)
        notes = transcribe(x, sr, "bass").notes
        ours.append(f1(ref, notes))
        plain.append(f1(ref, transcribe(x, sr, "pitched", max_hz=400.0).notes))
        assert 7.5 < max(n.onset_s for n in notes) < 8.1  # at the real speed (halved, it would end at 4 s)
        found = np.array([n.onset_s for n in notes])
        errors = [found[np.argmin(np.abs(found - 0.25 * k))] - 0.25 * k for k in range(32)]
        lag.append(np.median([e for e in errors if abs(e) < 0.08]))
    assert np.mean(ours) >= 0.78, (ours, plain)
    assert np.mean(ours) >= np.mean(plain) + 0.1, (ours, plain)
    assert abs(np.mean(lag)) < 0.005, lag
