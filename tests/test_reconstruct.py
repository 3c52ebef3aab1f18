"""auracore reconstruct: the loop end to end on a FluidSynth render of known parts, program
choice by timbre, re-rendering only what changed, the language-model adapter against a
local server, and bad input.

Tolerances: round 1 QC at least 40 (of 100) on the 8 s piece, the best round at least round
1; a bass line rendered with GM program 33 is matched to the bass family (programs 32-39).
"""

import http.server
import importlib.util
import json
import os
import subprocess
import sys
import threading

import mido
import numpy as np
import pytest
import soundfile as sf

from auracore.models import fluid
from auracore.offline.reconstruct import LLMDecider, ReconstructError, reconstruct, timbre

# bench/reconstruct.py makes the pieces with known parts; loaded by path, not through
# sys.path (bench/profile.py would shadow the standard library's profile module)
_spec = importlib.util.spec_from_file_location(
    "auracore_bench_reconstruct", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                               "bench", "reconstruct.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

AUR = [sys.executable, "-m", "auracore.control.cli"]
pytestmark = pytest.mark.skipif(not os.path.exists(fluid.SOUNDFONT), reason="needs FluidR3_GM (scripts/install)")


@pytest.fixture(scope="module")
def piece(tmp_path_factory):
    p = bench.make_piece(2, seconds=8.0)
    path = str(tmp_path_factory.mktemp("rc") / "piece.wav")
    sf.write(path, p["mix"], bench.RATE, subtype="FLOAT")
    return path, p


@pytest.fixture(scope="module")
def run(piece, tmp_path_factory):
    path, _ = piece
    out = str(tmp_path_factory.mktemp("out") / "rebuild")
    r = subprocess.run(AUR + ["reconstruct", path, out, "--max-rounds", "3", "--json"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_every_output_is_written(run):
    out, s = run
    assert set(s) == {"output", "stems", "midi", "programs", "rounds", "report"}
    assert sf.info(s["output"]).duration == pytest.approx(8.0, abs=0.01)
    assert set(s["stems"]) == set(s["programs"]) and all(os.path.exists(p) for p in s["stems"].values())
    mid = mido.MidiFile(s["midi"])
    programs = [m.program for t in mid.tracks for m in t if m.type == "program_change"]
    assert sorted(p for n, p in s["programs"].items() if n != "drums") == sorted(programs)
    page = open(s["report"], encoding="utf-8").read()
    assert page.count("<audio") == 2 and "<svg" in page and "data:image/png;base64," in page
    own = page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in own and "https://" not in own  # opens offline: nothing fetched
    report = json.load(open(os.path.join(out, "report.json"), encoding="utf-8"))
    assert report["rounds"][0]["rendered"] and len(report["rounds"]) == len(s["rounds"])
    assert not [n for n in os.listdir(out) if n.startswith(".auracore")]


def test_programs_keep_to_the_families_the_stems_allow(run):
    """The bass stem gets a bass; vocals and other never a bass, a synth effect or a sound
    effect: not as the program, nor among the candidates a later round may move to (the
    separator puts every bass in its bass stem)."""
    out, s = run
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        choices = json.load(f)["choices"]
    assert s["programs"]["bass"] // 8 == 4
    assert all(c["program"] // 8 == 4 for c in choices["bass"]["candidates"])
    for name in ("vocals", "other"):
        tried = [s["programs"][name]] + [c["program"] for c in choices[name]["candidates"]]
        assert len(tried) > 4 and all(p // 8 not in (4, 12, 15) for p in tried), (name, tried)


def test_scores_rise_or_hold_and_only_changes_are_rendered(run):
    out, s = run
    report = json.load(open(os.path.join(out, "report.json"), encoding="utf-8"))
    scores = [r["qc_score"] for r in s["rounds"]]
    assert scores[0] >= 40.0, scores
    assert report["qc_score"] == max(scores) >= scores[0]
    assert all(len(r["dimensions"]) == 12 for r in s["rounds"])
    first = report["rounds"][0]
    assert sorted(first["rendered"]) == sorted(s["programs"])  # round 1 renders every stem
    for r in report["rounds"][1:]:
        changed = {c["stem"] for c in r["changed"] if c["kind"] in ("program", "quantise")}
        assert set(r["rendered"]) == changed, r  # later rounds: only the stems whose notes or program changed
    assert report["renders"] == sum(len(r["rendered"]) for r in report["rounds"])


def test_a_bass_line_is_matched_to_the_bass_family():
    notes = tuple((0.25 * k, 0.22, 36 + (0, 7, 5, 3)[k % 4], 100) for k in range(24))
    target = fluid.render_tracks(fluid.SOUNDFONT, [fluid.Track(33, 64, notes)], 6.0, sample_rate=44100,
                                 sample_format="float")

    def render(program):
        return fluid.render_tracks(fluid.SOUNDFONT, [fluid.Track(program, 64, notes)], 6.0, sample_rate=44100,
                                   sample_format="float")

    choice = timbre.choose(render, target, 44100)
    assert choice.family == 4, choice.to_dict()  # GM family 4: basses (32-39)



def test_repeated_notes_are_struck_again():
    """A transcription ends a repeated note where the next begins; played so, a fretless bass
    (GM 35) slides between them with no new attack. The loop leaves a release before each
    repeat (12 % of the time between the onsets, at least 30 ms), and the transcription of the
    render finds every note again (F1 over (onset within 50 ms, pitch)), 0.15 or more over
    the legato render."""
    from auracore.offline.qc import dimensions as D
    from auracore.offline.reconstruct.core import articulated
    from auracore.offline.transcribe import transcribe

    legato = tuple((0.25 + 0.5 * k, 0.5, 40 + 5 * (k // 4), 100) for k in range(16))
    played = articulated(legato)
    assert played[0] == pytest.approx((0.25, 0.44, 40, 100), abs=1e-12)  # 0.5 - 0.12 * 0.5
    assert played[3][1] == 0.5  # the last of its pitch keeps its length
    assert articulated(((0.0, 0.1, 50, 90), (0.1, 0.1, 50, 90)))[0][1] == pytest.approx(0.07, abs=1e-12)  # 30 ms
    assert articulated(((0.0, 0.2, 50, 90), (0.5, 0.2, 50, 90), (0.0, 1.0, 62, 90))) == \
        ((0.0, 0.2, 50, 90), (0.5, 0.2, 50, 90), (0.0, 1.0, 62, 90))  # no repeat overlapped: unchanged
    truth = [(s, p) for s, _, p, _ in legato]
    f1 = {}
    for name, notes in (("legato", legato), ("played", played)):
        y = fluid.render_tracks(fluid.SOUNDFONT, [fluid.Track(35, 64, notes)], 8.75, sample_rate=44100,
                                sample_format="float")
        f1[name] = D.note_f1(truth, [(n.onset_s, n.pitch) for n in transcribe(y, 44100, "bass").notes])
    assert f1["played"] >= 0.95, f1   # measured 1.00
    # what the release is for: legato measured 0.81 (0.61 before a bass was heard an octave up)
    assert f1["played"] - f1["legato"] >= 0.15, f1

def test_kits_and_bass_programs_are_found_under_effects_with_their_own_weights():
    """The drums and the bass weigh the timbre distances their own way (timbre.STEM_WEIGHTS,
    fitted on separated stems of seeds 3000-3023). On the true stems of 8 other pieces, each
    under its EQ, room, width and bus compressor, they still find every kit and every bass
    program among all the candidates (measured 8 of 8 each; WEIGHTS also 8 of 8 here: the
    two differ on separated stems, docs/reconstruct.md)."""
    hits = {"drums": 0, "bass": 0}
    for seed in range(4000, 4008):
        p = bench.make_piece(seed, seconds=8.0)
        for part in hits:
            notes = tuple(p["parts"][part]["notes"])
            a, b = timbre.excerpt_window([n[0] for n in notes], 8.0)
            shifted = tuple((s - a, d, q, v) for s, d, q, v in notes if a <= s < b)

            def render(program, shifted=shifted, part=part, a=a, b=b):
                return fluid.render_tracks(fluid.SOUNDFONT, [fluid.Track(program, 64, shifted)], b - a,
                                           drums=part == "drums", sample_rate=bench.RATE, sample_format="float")

            target = p["stems"][part][int(a * bench.RATE):int(b * bench.RATE)]
            choice = timbre.choose(render, target, bench.RATE, drums=part == "drums",
                                   families=(4,) if part == "bass" else None, weights=timbre.STEM_WEIGHTS[part])
            assert len(choice.candidates) == 8
            hits[part] += choice.program == p["parts"][part]["program"]
    assert hits == {"drums": 8, "bass": 8}, hits


def test_the_mix_takes_the_inputs_width_band_by_band():
    """A mix whose lows are wide and highs narrow, against an input the other way round
    (side/mid -20 and -3 dB against -8 and -12 dB): after match_band_width every octave band's
    side/mid ratio is within 0.5 dB of the input's (measured 0.40), qc's width dimension goes
    from under 30 to over 95 (17.6 to 98.5), and the mid channel is untouched."""
    from scipy.signal import butter, sosfilt

    from auracore.offline.qc import dimensions as D
    from auracore.offline.reconstruct.width import match_band_width

    rng = np.random.default_rng(1)
    sr, n = 44100, 44100 * 6

    def band(kind, cutoff, side_db):
        sos = butter(4, cutoff, kind, fs=sr, output="sos")
        mid, side = sosfilt(sos, rng.standard_normal(n)), sosfilt(sos, rng.standard_normal(n))
        side *= 10 ** (side_db / 20)
        return np.stack([mid + side, mid - side], axis=1) * 0.05

    ref = band("low", 300, -20) + band("high", 3000, -3)
    mix = band("low", 300, -8) + band("high", 3000, -12)
    out = match_band_width(mix, ref, sr)
    r_ref, e_ref = D.band_side_mid(ref, sr)
    r_out, _ = D.band_side_mid(out, sr)
    used = e_ref > e_ref.max() * 1e-4
    assert np.max(np.abs(10 * np.log10(r_out[used] / r_ref[used]))) < 0.5

    class Aligned:
        a, b, sample_rate = ref, mix, sr

    before = D.width(Aligned)[0]
    Aligned.b = out
    assert before < 30 and D.width(Aligned)[0] > 95, (before, D.width(Aligned)[0])
    assert np.max(np.abs((out[:, 0] + out[:, 1]) - (mix[:, 0] + mix[:, 1]))) < 1e-12
    mono = mix[:, :1]
    assert match_band_width(mono, ref, sr) is mono  # mono: nothing to do


def test_a_band_with_no_side_to_scale_is_filled_from_the_mid():
    """A mix whose lows are mono (no side under 300 Hz) against an input with side at -18 dB
    there (a room on the bass): scaling cannot reach it, so a decorrelated copy of the mid is
    added to the side in those bands, its level measured and set per band. Every octave band's
    side/mid ratio comes within 1.5 dB of the input's (measured 0.46 at most), and the mid
    channel is untouched."""
    from scipy.signal import butter, sosfilt

    from auracore.offline.qc import dimensions as D
    from auracore.offline.reconstruct.width import match_band_width

    rng = np.random.default_rng(2)
    sr, n = 44100, 44100 * 6

    def band(kind, cutoff, side_db):
        sos = butter(4, cutoff, kind, fs=sr, output="sos")
        mid = sosfilt(sos, rng.standard_normal(n))
        side = sosfilt(sos, rng.standard_normal(n)) * (10 ** (side_db / 20) if side_db is not None else 0.0)
        return np.stack([mid + side, mid - side], axis=1) * 0.05

    ref = band("low", 300, -18) + band("high", 3000, -6)
    mix = band("low", 300, None) + band("high", 3000, -12)
    out = match_band_width(mix, ref, sr)
    r_ref, e_ref = D.band_side_mid(ref, sr)
    r_mix, _ = D.band_side_mid(mix, sr)
    r_out, _ = D.band_side_mid(out, sr)
    used = e_ref > e_ref.max() * 1e-4
    low = np.array(D.WIDTH_BANDS_HZ) < 250
    assert np.all(r_mix[used & low] < 1e-4)  # nothing to scale there
    err = np.abs(10 * np.log10(r_out[used] / r_ref[used]))
    assert np.max(err) < 1.5, err
    assert np.max(np.abs((out[:, 0] + out[:, 1]) - (mix[:, 0] + mix[:, 1]))) < 1e-12


def test_each_render_rides_its_stems_short_time_level():
    """level_match sets each span's RMS to the stem's, then rides the render toward the stem's
    level in 0.2 s windows within 6 dB, then each octave band within 10 dB more: a render held
    at one level against a stem that swells by 4 dB for 3 s (and dips by 20 dB for 3 s) follows
    the swell within 1 dB and the dip to the 16 dB limit, and a window where the render is
    silent is not raised."""
    from auracore.offline.reconstruct.core import FINE_RANGE_DB, level_match
    from auracore.offline.reconstruct.ride import RANGE_DB

    sr = 22050
    rng = np.random.default_rng(3)
    render = rng.standard_normal((12 * sr, 2)).astype(np.float32) * 0.1
    render[int(10.5 * sr):] = 0.0                       # the render stops early
    shape = np.ones(12 * sr)
    shape[2 * sr:5 * sr] = 10 ** (4 / 20)
    shape[6 * sr:9 * sr] = 10 ** (-20 / 20)
    target = rng.standard_normal((12 * sr, 2)) * 0.05 * shape[:, None]
    y = level_match(render, target, sr, [(0.0, 12.0)])

    def db(a, t0, t1):
        seg = a[int(t0 * sr):int(t1 * sr)]
        return 10 * np.log10(np.mean(np.square(seg, dtype=np.float64)))

    assert abs(db(y, 2.6, 4.4) - db(target, 2.6, 4.4)) < 1.0           # the swell, followed
    assert abs(db(y, 0.2, 1.4) - db(target, 0.2, 1.4)) < 1.0           # the level around it
    # the dip (20 dB under the level around it) is followed as far as the limits allow: 16 dB
    # under the span's level, which is 0.9 dB over the level around it (the swell lifts it)
    limit = FINE_RANGE_DB + RANGE_DB
    dip = db(y, 6.6, 8.4) - db(y, 0.2, 1.4)
    assert -limit - 0.5 < dip < -limit + 2.0
    assert np.max(np.abs(y[int(10.6 * sr):])) == 0.0                   # silence stays silent


def test_the_drums_are_ridden_hit_by_hit():
    """level_match(drums=True) rides in 50 ms windows, broadband and band by band: sixteenths
    at 150 BPM struck alike in the render, every other one 8 dB softer in the stem, come out
    8 dB apart within 1 dB (measured 8.17); the pitched stems' 0.2 s rides (drums=False)
    cannot follow them (under 4 dB apart; measured 0.24)."""
    from auracore.offline.reconstruct.core import level_match

    sr = 22050
    rng = np.random.default_rng(11)
    n = 8 * sr
    t_hits = 0.1 + 0.1 * np.arange(78)   # sixteenths at 150 BPM
    burst = np.exp(-np.arange(int(0.06 * sr)) / (0.02 * sr))

    def hits(levels_db):
        x = np.zeros((n, 2))
        for t, lv in zip(t_hits, levels_db):
            i = int(t * sr)
            x[i:i + burst.size] += (0.3 * 10 ** (lv / 20) * burst)[:, None] * rng.standard_normal((burst.size, 2))
        return x

    render = hits(np.zeros(t_hits.size)).astype(np.float32)
    target = hits(np.where(np.arange(t_hits.size) % 2, -8.0, 0.0))

    def spread(y):   # mean level of the odd hits less the even ones', dB
        e = np.array([np.sum(np.square(y[int(t * sr):int(t * sr) + burst.size], dtype=np.float64)) for t in t_hits])
        return 10 * np.log10(e[1:-1:2].mean()) - 10 * np.log10(e[2:-1:2].mean())

    assert abs(spread(target) + 8.0) < 1.0
    assert abs(spread(level_match(render, target, sr, [(0.0, 8.0)], drums=True)) + 8.0) < 1.0
    assert spread(level_match(render, target, sr, [(0.0, 8.0)])) > -4.0


def test_each_octave_band_of_a_render_rides_its_stems_band_level():
    """ride.band_ride moves each octave band toward the stem's level there over 0.4 s windows,
    within RANGE_DB: a 1-2 kHz band that swells by 6 dB in the stem for 3 s is followed within
    1 dB (and left within 1 dB of the stem before it), the bands over 4 kHz 20 dB under the
    render's are followed to the limit, a render that is its own stem comes back unchanged, and where
    the render is silent it stays silent."""
    from scipy.signal import butter, sosfiltfilt

    from auracore.offline.reconstruct.ride import RANGE_DB, band_ride

    sr = 22050
    rng = np.random.default_rng(5)
    render = (0.1 * rng.standard_normal((10 * sr, 2))).astype(np.float32)
    render[9 * sr:] = 0.0
    stem = 0.1 * rng.standard_normal((10 * sr, 2))

    def band(x, lo, hi=None):
        sos = butter(6, [lo, hi] if hi else lo, "bandpass" if hi else "highpass", fs=sr, output="sos")
        return sosfiltfilt(sos, x, axis=0)

    swell = np.zeros(10 * sr)
    swell[3 * sr:6 * sr] = 10 ** (6 / 20) - 1
    stem = stem + band(stem, 1000, 2000) * swell[:, None] - (1 - 10 ** (-20 / 20)) * band(stem, 4000)
    y = band_ride(render, stem, sr)
    assert y.shape == render.shape and y.dtype == np.float32

    def level(x, t0, t1, lo, hi):   # dB of the power in lo-hi Hz over t0-t1 s
        seg = x[int(t0 * sr):int(t1 * sr)].mean(axis=1)
        spec = np.abs(np.fft.rfft(seg)) ** 2
        f = np.fft.rfftfreq(seg.size, 1 / sr)
        return 10 * np.log10(spec[(f >= lo) & (f < hi)].sum())

    assert abs(level(y, 3.6, 5.4, 1300, 1600) - level(stem, 3.6, 5.4, 1300, 1600)) < 1.0
    assert abs(level(y, 0.5, 2.5, 1300, 1600) - level(stem, 0.5, 2.5, 1300, 1600)) < 1.0
    cut = level(y, 0.5, 8.5, 6000, 10000) - level(render, 0.5, 8.5, 6000, 10000)
    assert -RANGE_DB - 1.0 < cut < -RANGE_DB + 1.0
    assert abs(level(y, 0.5, 8.5, 300, 400) - level(render, 0.5, 8.5, 300, 400)) < 1.0
    assert np.max(np.abs(y[int(9.1 * sr):])) == 0.0
    assert np.max(np.abs(band_ride(render, render, sr) - render)) < 1e-6


def test_the_top_line_is_the_notes_nothing_higher_covers():
    # a melody over held chords: C5 and D5 over a C-major triad, then E5 alone, then a
    # chord note that outlasts the melody by under 20 ms (still under it)
    chord = ((0.0, 2.0, 60, 80), (0.0, 2.0, 64, 80), (0.0, 2.0, 67, 80))
    melody = ((0.0, 1.0, 72, 100), (1.0, 1.0, 74, 100), (2.5, 0.5, 76, 100))
    tail = ((2.49, 0.52, 55, 70),)
    top, rest = bench.top_line(chord + melody + tail)
    assert set(top) == set(melody)
    assert set(rest) == set(chord + tail)
    assert bench.top_line(()) == ((), ())


def test_a_lead_over_chords_in_one_stem_gets_both_families():
    # one stem holding a flute line (GM 73, pipe) over piano chords (GM 0): chosen together,
    # each part finds its family (the chords' candidates are heard beside the lead's choice)
    seconds = 6.0
    chords = tuple((2.0 * k, 1.9, p, 75) for k in range(3) for p in ((60, 64, 67), (57, 60, 64), (55, 59, 62))[k])
    lead = tuple((0.5 * k, 0.45, (76, 79, 81, 79, 76, 74, 72, 74)[k % 8], 100) for k in range(12))

    def render(program, notes):
        return fluid.render_tracks(fluid.SOUNDFONT, [fluid.Track(program, 64, notes)], seconds, sample_rate=44100,
                                   sample_format="float")
    stem = render(0, chords) + render(73, lead)
    top, rest = bench.top_line(chords + lead)
    assert set(top) == set(lead) and set(rest) == set(chords)
    chosen = bench.choose_jointly({"chords": lambda p: render(p, rest), "lead": lambda p: render(p, top)},
                                   stem, 44100)
    assert timbre.family_of(chosen["lead"].program) == 9, chosen["lead"].to_dict()    # pipe (72-79)
    assert timbre.family_of(chosen["chords"].program) == 0, chosen["chords"].to_dict()  # piano (0-7)


class _FakeLLM(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, body))
        reply = {"choices": [{"message": {"role": "assistant", "content": json.dumps(
            {"changes": [{"kind": "reverb", "stem": None, "reason": "the room is missing"}]})}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def test_the_language_model_adapter_is_asked_and_obeyed(piece):
    _, p = piece
    server = http.server.HTTPServer(("127.0.0.1", 0), _FakeLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        decider = LLMDecider(url, model="test-model")
        r = reconstruct(p["mix"][: 5 * bench.RATE], bench.RATE, target_score=100.0, max_rounds=2, decider=decider)
    finally:
        server.shutdown()
    assert decider.requests == 1 and len(_FakeLLM.received) == 1
    path, body = _FakeLLM.received[0]
    assert path == "/v1/chat/completions" and body["model"] == "test-model"
    facts = json.loads(body["messages"][-1]["content"])
    assert set(facts["dimensions"]) == set(r.rounds[0].dimensions) and set(facts["stems"]) == set(r.programs)
    assert r.rounds[1].changed == [{"kind": "reverb", "stem": None, "reason": "the room is missing"}]
    assert r.rounds[1].rendered == []  # a room changes no notes: nothing is rendered again
    assert r.decider == "llm"


class _WorseThenRoom:
    """A decider that first swaps the loudest pitched stem to a sound effect (a change that
    lowers the score), then asks for a room; it records the programs it is shown."""

    name = "planted"

    def __init__(self):
        self.seen = []

    def decide(self, report, state, tried):
        from auracore.offline.reconstruct.decide import Change

        self.seen.append({n: p.program for n, p in state.items()})
        if len(self.seen) == 1:
            stem = max((n for n in state if not state[n].drums), key=lambda n: state[n].energy)
            state[stem].ranking = (state[stem].program, 120)  # 120: guitar fret noise
            return [Change("program", stem, "planted: a change that cannot help")]
        return [Change("reverb", None, "planted")]


def test_a_round_that_does_not_rise_is_undone(piece):
    _, p = piece
    decider = _WorseThenRoom()
    r = reconstruct(p["mix"][: 5 * bench.RATE], bench.RATE, target_score=100.0, max_rounds=3, decider=decider)
    assert len(r.rounds) == 3, [x.qc_score for x in r.rounds]
    assert r.rounds[1].qc_score < r.rounds[0].qc_score  # fret noise for a bass line scored lower
    # the next change was made on round 1's state: the programs the decider saw again are round 1's
    assert decider.seen[1] == decider.seen[0]
    assert r.rounds[2].from_round == 1 and r.rounds[1].from_round == 1
    assert r.rounds[2].rendered == []  # back to round 1's programs: cached, nothing rendered again
    assert 120 not in r.programs.values()


def test_the_command_and_the_api_share_the_default_rounds():
    """`auracore reconstruct` without --max-rounds runs the API's default (8 rounds, the loop
    ending after 3 without a rise: docs/reconstruct.md measures it against 3 and 2)."""
    import argparse
    import inspect

    from auracore.control import cmd_reconstruct
    from auracore.offline.reconstruct import core

    api_default = inspect.signature(reconstruct).parameters["max_rounds"].default
    assert cmd_reconstruct.MAX_ROUNDS == core.MAX_ROUNDS == api_default == 8
    assert core.PATIENCE == 3
    parser = cmd_reconstruct.add_parser(argparse.ArgumentParser().add_subparsers())
    assert parser.parse_args(["in.wav", "out"]).max_rounds == 8


def test_every_render_is_filtered_to_its_stem_once(piece, monkeypatch):
    """Each FluidSynth render takes the tonal balance of the stem it replaces (tone.py, tested
    against known filters in test_reconstruct_tone.py) once, when it is rendered: a render
    the loop returns to (round 1's, after a round that did not rise) is not filtered again;
    and on FluidR3's programs against the separated stems the filter moves every stem's
    long-term spectrum by more than 1 dB somewhere."""
    from auracore.offline.reconstruct import core, tone

    seen = []
    real = tone.match_tone

    def recording(y, target, sample_rate):
        seen.append(float(np.max(np.abs(tone.gain_curve_db(y, target, sample_rate)[1]))))
        return real(y, target, sample_rate)

    monkeypatch.setattr(core.tone, "match_tone", recording)
    _, p = piece
    r = reconstruct(p["mix"][: 5 * bench.RATE], bench.RATE, target_score=100.0, max_rounds=3, decider=_WorseThenRoom())
    assert r.renders == len(r.programs) + 1  # every stem, then the planted fret noise; round 3 renders nothing
    assert len(seen) == r.renders, seen
    assert min(seen) > 1.0, seen


def test_bad_input(tmp_path, piece):
    path, _ = piece
    sf.write(str(tmp_path / "silent.wav"), np.zeros((3 * 44100, 2)), 44100)
    for args, words in (([str(tmp_path / "missing.wav")], "no such file"),
                        ([str(tmp_path / "silent.wav")], "silent")):
        r = subprocess.run(AUR + ["reconstruct"] + args + [str(tmp_path / "o")], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert not os.path.exists(tmp_path / "o")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    r = subprocess.run(AUR + ["reconstruct", path, str(tmp_path / "busy")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "not empty" in r.stderr
    assert os.listdir(tmp_path / "busy") == ["keep.txt"]
    with pytest.raises(ReconstructError):
        reconstruct(np.zeros((100, 2)), 44100)
