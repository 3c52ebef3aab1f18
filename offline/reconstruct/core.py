"""The reconstruction loop: take a track apart, re-synthesise each stem, mix, master by reference, score, iterate.

1. Deconstruct: stems (``auracore.offline.separate``), notes per stem (``transcribe``), the
   profile (tempo, beats, sections, RT60).
2. Re-synthesise: each stem's GM program is chosen by timbre (``timbre.choose``: family
   first, then the program; drums choose a kit), and its notes are rendered through FluidSynth
   (models/fluid.py, FluidR3 GM) at the input's rate, then filtered to the tonal balance of
   the stem it replaces, section by section (``tone.match_tone_spans``).
3. Mix: each rendered stem at the original stem's level section by section (the profile's
   sections; after a ``level`` change, in 2 s windows), ridden toward its short-time level
   and then band by band (``ride.band_ride``), balanced left/right as the stem
   (``place.place``), summed, and the sum ridden band by band
   toward the input; then mastered by reference to
   the input (``auracore.offline.master``) and scored against it (``auracore.offline.qc``).
4. Iterate: a decider (decide.py) reads the report and changes a stem's program, adds a
   room, quantises notes or refines the levels; only what changed is rendered again (renders
   are cached by stem, program and quantisation). A round that scores no higher than the
   best so far is undone: the next change starts from the best round's state. It stops at
   the target score, after max_rounds, or after ``PATIENCE`` rounds in a row without a rise;
   the best round is the result.
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np

from auracore.errors import AuraCoreError

from . import timbre, timing, tone
from .place import place
from .ride import band_ride
from .decide import RuleDecider
from .width import match_band_width

STEMS = ("drums", "bass", "vocals", "other")
STEM_TYPES = {"drums": "drums", "bass": "bass", "vocals": "pitched", "other": "pitched"}
# what the separator's labels already say: the bass stem is played by a bass (GM family 4),
# and so the other pitched stems are not (the separator was trained to put every GM bass
# program in its bass stem). Synth effects (family 12: rain, soundtrack, crystal,
# atmosphere, ...) and sound effects (15) are patches for effects, not a part's instrument:
# candidates for no stem (docs/reconstruct.md#measured has what this changed)
_MELODIC_FAMILIES = tuple(f for f in range(16) if f not in (4, 12, 15))
STEM_FAMILIES = {"bass": (4,), "vocals": _MELODIC_FAMILIES, "other": _MELODIC_FAMILIES}
LEVEL_WINDOW_S = 2.0
# the level ride's window and the pitched stems' band ride's (0.4 s, the momentary
# loudness's, until 2026-12-07: 0.2 s raised round 1 by 0.4 / 0.9, docs/reconstruct.md) ...
FINE_WINDOW_S = 0.2
FINE_RANGE_DB = 6.0          # ... and how far the level ride may move from the span's level
# the drums are ridden hit by hit: 50 ms windows (a hit's length), within 10 dB (what a
# drum transcription's velocities miss; docs/reconstruct.md: round 1 +0.6 / +1.0 QC), and
# band by band in the same windows (a hit's colour: round 1 +0.4 / +0.9)
DRUM_WINDOW_S = 0.05
DRUM_RANGE_DB = 10.0
# the mix's band ride toward the input, within this many dB (docs/reconstruct.md: round 1
# +0.4 / +0.7 QC)
MIX_RIDE_RANGE_DB = 6.0
# the pitched stems (vocals, other; and the bass, whose notes the bass line replaces unless it is
# empty) are transcribed with this onset threshold (the transcriber's default is 0.7): a separated
# stem's onsets come out weaker than a clean part's, and at 0.7 the chords struck once a bar were
# often missed (docs/reconstruct.md: best round +0.8 on 24 pieces)
PITCHED_ONSET_THRESHOLD = 0.6
PLACE = True  # each render balanced left/right as its stem is (place.py)
ONSET_LAG = True  # move each pitched part's notes back by its program's onset lag (timing.py)
MAX_GAIN_DB = 24.0
RAMP_S = 0.02
DEFAULT_RT60_S = 1.0
REVERB_WET = 0.25
MIN_SECONDS = 2.0
# rounds in a row that may score no higher than the best before the loop stops; a round that
# does not rise is undone (the next change starts from the best round's state). 3 with 8
# rounds by default: QC +1.4 / +2.1 on bench/reconstruct.py's two sets against 2 with 3
# rounds, at 1.1-1.3x the input's duration instead of 0.8x (docs/reconstruct.md)
PATIENCE = 3
MAX_ROUNDS = 8
MIN_NOTE_S = 0.02
# the release left before a repeated note of the same pitch: a share of the time between the
# two onsets, at least REARTICULATE_MIN_S (``articulated``)
REARTICULATE = 0.12
REARTICULATE_MIN_S = 0.03


class ReconstructError(AuraCoreError, ValueError):
    """Audio the reconstruction cannot take (shape, rate, silence, too short)."""


@dataclass
class Part:
    """The state of one stem in the loop."""

    name: str
    drums: bool
    notes: tuple                 # ((start_s, duration_s, pitch, velocity), ...)
    energy: float                # the original stem's energy share
    ranking: tuple = ()          # candidate programs, best first
    program: int = 0
    quantise: bool = False
    choice: object = None
    lag: float = 0.0             # the onset lag (s) the transcriber reads the first program chosen with

    def timed_notes(self) -> tuple:
        """The notes as they are rendered: moved back by the onset lag (timing.py)."""
        return timing.shifted(self.notes, self.lag)

    def next_program(self):
        """The next candidate after the current program in the ranking, or None."""
        ranks = list(self.ranking)
        if self.program not in ranks:
            return ranks[0] if ranks else None
        i = ranks.index(self.program)
        return ranks[i + 1] if i + 1 < len(ranks) else None

    def summary(self) -> dict:
        return {"program": self.program, "drums": self.drums, "notes": len(self.notes),
                "energy_share": round(self.energy, 4), "quantised": self.quantise,
                "next_candidate": self.next_program()}


@dataclass(frozen=True)
class Round:
    """One round: its QC score and dimensions, what was changed before it (on the state of
    round ``from_round``: the best so far), the stems rendered for it."""

    index: int
    qc_score: float
    dimensions: dict
    weakest: list
    changed: list
    rendered: list
    from_round: int = 0

    def to_dict(self) -> dict:
        return {"round": self.index, "qc_score": self.qc_score, "dimensions": self.dimensions,
                "weakest": self.weakest, "changed": self.changed, "rendered": self.rendered,
                "from_round": self.from_round}


@dataclass(frozen=True)
class Reconstruction:
    """The result: the mastered rebuild (audio), its stems before mastering (float32), the programs, the
    notes (a ``transcribe.Notes`` with the chosen programs), every round, the best round."""

    audio: np.ndarray
    sample_rate: int
    stems: dict
    programs: dict
    notes: object
    rounds: tuple
    best_round: int
    renders: int
    decider: str
    choices: dict = field(default_factory=dict)
    profile: dict = field(default_factory=dict)

    @property
    def qc_score(self) -> float:
        return self.rounds[self.best_round - 1].qc_score

    def to_dict(self) -> dict:
        return {"sample_rate": self.sample_rate, "programs": dict(self.programs), "qc_score": self.qc_score,
                "best_round": self.best_round, "rounds": [r.to_dict() for r in self.rounds],
                "renders": self.renders, "decider": self.decider, "choices": self.choices, "profile": self.profile}


def _as_audio(x, sample_rate) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] not in (1, 2):
        raise ReconstructError(f"audio must be (frames,) or (frames, 1 or 2), got shape {a.shape}")
    if not isinstance(sample_rate, (int, np.integer)) or not 22050 <= sample_rate <= 96000:
        raise ReconstructError(f"sample rate {sample_rate!r}: reconstruct takes 22050 to 96000 Hz")
    if a.shape[0] < MIN_SECONDS * sample_rate:
        raise ReconstructError(f"the input is {a.shape[0] / sample_rate:.2f} s; reconstruct needs {MIN_SECONDS:g} s or more")
    if not np.all(np.isfinite(a)):
        raise ReconstructError("the input holds NaN or infinite samples")
    from auracore.offline.chain import Meter

    m = Meter(int(sample_rate), a.shape[1])
    m.process(a)
    if not math.isfinite(m.integrated_lufs):
        raise ReconstructError("the input is silent (no gated loudness): there is nothing to rebuild")
    return a


def _rms(x) -> float:
    return math.sqrt(float(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _energy(x) -> float:
    return float(np.sum(np.square(x), dtype=np.float64))


def _spans(duration_s: float, sections, window_s: float | None) -> list:
    if window_s:
        edges = list(np.arange(0.0, duration_s, window_s)) + [duration_s]
    else:
        edges = sorted({0.0, duration_s, *[s for s, _ in sections if 0.0 < s < duration_s]})
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b - a > 1e-3]


def level_match(render: np.ndarray, target: np.ndarray, sample_rate: int, spans: list,
                drums: bool = False) -> np.ndarray:
    """render scaled span by span so its RMS equals target's there (gains within +-24 dB,
    20 ms linear ramps between spans), then ridden toward target's short-time level
    (``_fine_gain``: FINE_WINDOW_S windows, within +-FINE_RANGE_DB), as float32. The ride is
    what a mix engineer's fader does: the transcription keeps the notes, not how each swells
    and fades (docs/reconstruct.md: round 1 +2.8 / +2.2 QC, the energy curve +13 / +11).
    Last, each octave band is ridden the same way (``ride.band_ride``): how the notes' colour
    moves. drums: both rides read DRUM_WINDOW_S windows (the level ride within
    +-DRUM_RANGE_DB), hit by hit."""
    n = render.shape[0]
    points_t, points_g = [], []
    for a, b in spans:
        i0, i1 = int(a * sample_rate), min(int(b * sample_rate), n)
        r, t = _rms(render[i0:i1]), _rms(target[i0:i1])
        g = 0.0 if t == 0.0 else (t / r if r > 0 else 1.0)
        g = float(np.clip(g, 10 ** (-MAX_GAIN_DB / 20), 10 ** (MAX_GAIN_DB / 20))) if g > 0 else 0.0
        points_t += [i0 + RAMP_S * sample_rate / 2, i1 - RAMP_S * sample_rate / 2]
        points_g += [g, g]
    gain = np.interp(np.arange(n), points_t, points_g).astype(np.float32)
    window_s, range_db = (DRUM_WINDOW_S, DRUM_RANGE_DB) if drums else (FINE_WINDOW_S, FINE_RANGE_DB)
    gain *= _fine_gain(np.multiply(render, gain[:, None], dtype=np.float32), target, sample_rate, window_s, range_db)
    return band_ride(np.multiply(render, gain[:, None], dtype=np.float32), target, sample_rate, window_s=window_s)


def _fine_gain(render: np.ndarray, target: np.ndarray, sample_rate: int, window_s: float,
               range_db: float) -> np.ndarray:
    """A gain (n,) that moves render's short-time RMS (windows of window_s, half overlapping)
    toward target's, within +-range_db, smoothed over three windows; windows where the
    render is near silent are left alone."""
    n = render.shape[0]
    hop = max(1, int(window_s * sample_rate / 2))
    starts = np.arange(0, max(n - hop, 1), hop)
    pr = np.array([float(np.mean(np.square(render[i:i + 2 * hop], dtype=np.float64))) for i in starts])
    pt = np.array([float(np.mean(np.square(target[i:i + 2 * hop], dtype=np.float64))) for i in starts])
    floor = 1e-6 * max(float(pr.max()), 1e-30)
    db = np.where((pr > floor) & (pt > 0), 10.0 * np.log10(np.maximum(pt, 1e-30) / np.maximum(pr, 1e-30)), 0.0)
    db = np.clip(db, -range_db, range_db)
    if db.size >= 3:
        db = np.convolve(np.pad(db, 1, mode="edge"), np.ones(3) / 3.0, mode="valid")
    centres = starts + hop
    return (10.0 ** (np.interp(np.arange(n), centres, db) / 20.0)).astype(np.float32)


def quantised(notes: tuple, beats_s) -> tuple:
    """Note onsets snapped to the nearest sixteenth of the beat grid (durations kept)."""
    beats = np.asarray(list(beats_s), dtype=np.float64)
    if beats.size < 2:
        return notes
    grid = np.concatenate([np.linspace(a, b, 4, endpoint=False) for a, b in zip(beats[:-1], beats[1:])] + [beats[-1:]])
    out = []
    for start, dur, pitch, vel in notes:
        j = int(np.argmin(np.abs(grid - start)))
        out.append((float(grid[j]) if abs(grid[j] - start) < 0.1 else start, dur, pitch, vel))
    return tuple(out)


def room(x: np.ndarray, sample_rate: int, rt60_s: float, wet: float = REVERB_WET, seed: int = 0) -> np.ndarray:
    """x with a decaying-noise room of rt60_s (s) mixed in at wet (energy share), same length and dtype."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    n = int(min(max(rt60_s, 0.1), 4.0) * sample_rate)
    t = np.arange(n) / sample_rate
    ir = rng.standard_normal((n, x.shape[1])) * (10 ** (-3 * t / rt60_s))[:, None]
    wet_sig = np.stack([fftconvolve(x[:, c], ir[:, c])[:x.shape[0]] for c in range(x.shape[1])], axis=1)
    e_dry, e_wet = float(np.sum(x ** 2)), float(np.sum(wet_sig ** 2))
    if e_wet <= 0 or e_dry <= 0:
        return x
    return (math.sqrt(1 - wet) * x + math.sqrt(wet) * wet_sig * math.sqrt(e_dry / e_wet)).astype(x.dtype, copy=False)


class Synth:
    """Renders a stem's notes with a program through FluidSynth, then through ``tone`` (the
    tone match to its stem; float32), cached by (stem, program, quantised): a stem is
    rendered again only when one of those changed. Per stem, only the latest render and the
    one in ``pinned`` (the best round's, which the loop returns to when a round does not
    rise) are kept."""

    def __init__(self, sample_rate: int, duration_s: float, tone=None):
        self.sample_rate = sample_rate
        self.duration_s = duration_s
        self.tone = tone or (lambda name, y: y)   # tone(stem name, render) -> the render EQ'd to its stem
        self.cache = {}
        self.pinned = set()
        self.renders = 0

    def render(self, part: Part, notes: tuple, channels: int) -> np.ndarray:
        key = (part.name, part.program, part.quantise)
        if key not in self.cache:
            from auracore.models import fluid

            self.renders += 1
            y = fluid.render_tracks(fluid.SOUNDFONT, [fluid.Track(part.program, 64, notes)], self.duration_s,
                                    drums=part.drums, sample_rate=self.sample_rate, sample_format="float")
            for old in [k for k in self.cache if k[0] == part.name and k not in self.pinned]:
                del self.cache[old]
            y = y if channels == 2 else y.mean(axis=1, keepdims=True)
            self.cache[key] = self.tone(part.name, y).astype(np.float32, copy=False)
        return self.cache[key]


def part_notes(notes) -> tuple:
    """Transcribed Notes as a part holds them: ((start_s, duration_s, pitch, velocity), ...),
    every note at least 20 ms long, articulated (``articulated``)."""
    return articulated(tuple((n.onset_s, max(n.offset_s - n.onset_s, MIN_NOTE_S), n.pitch, n.velocity) for n in notes))


def articulated(notes: tuple) -> tuple:
    """Each note ended before the next onset of its pitch, by REARTICULATE of the time between
    the two onsets (at least REARTICULATE_MIN_S), and never under MIN_NOTE_S: a transcription
    ends a repeated note where the next begins, and a synth then plays the two legato, with no
    release between them, where the original was struck twice (docs/reconstruct.md)."""
    order = sorted(range(len(notes)), key=lambda i: notes[i][0])
    out = list(notes)
    following = {}  # pitch -> the onset of the next note of that pitch (walking backwards)
    for i in reversed(order):
        start, dur, pitch, vel = notes[i]
        nxt = following.get(pitch)
        if nxt is not None and nxt > start:
            end = nxt - max(REARTICULATE * (nxt - start), REARTICULATE_MIN_S)
            out[i] = (start, max(min(dur, end - start), MIN_NOTE_S), pitch, vel)
        following[pitch] = start
    return tuple(out)


def _played(notes: tuple, quantise: bool, beats_s) -> tuple:
    """The notes a part is rendered with: its (articulated) notes, quantised and articulated
    again when the loop chose to quantise."""
    return articulated(quantised(notes, beats_s)) if quantise else notes


def _with_bass_line(notes, x: np.ndarray, sample_rate: int, log):
    """notes with the bass track's notes replaced by the lowest line of the input without its
    drums (the DSP separator's), transcribed in the bass range: QC's reading of the bass
    (``qc.core.bass_line``), and closer to the true bass notes than the bass stem's own
    transcription on the bench's pieces (note F1 0.775 / 0.675 against 0.755 / 0.593 on
    1000-1007 / 1100-1107, docs/reconstruct.md). Kept when that line is empty."""
    from auracore.offline.separate import separate

    if not any(t.name == "bass" for t in notes.tracks):
        return notes
    drums = separate(x, sample_rate, stems=("drums",), model="dsp", log=log)["drums"]
    line = _bass_line(x - drums, sample_rate)
    if not line:
        return notes
    return replace(notes, tracks=tuple(replace(t, notes=tuple(line)) if t.name == "bass" else t for t in notes.tracks))


def _bass_line(y: np.ndarray, sample_rate: int) -> list:
    """The lowest line of y transcribed in the bass range: of notes struck within 50 ms of
    each other the lowest (``transcribe.lowest_line``)."""
    from auracore.offline.transcribe import lowest_line, transcribe

    return lowest_line(transcribe(y, sample_rate, "bass").notes)


def _onset_reader(name: str):
    """How the stem's notes were read, as a function (audio, rate) -> onset times: the bass
    line as ``_with_bass_line`` reads it, the other pitched stems as ``transcribe_stems`` does."""
    from auracore.offline.transcribe import transcribe

    if name == "bass":
        return lambda y, rate: [n.onset_s for n in _bass_line(y, rate)]
    return lambda y, rate: [n.onset_s for n in transcribe(y, rate, "pitched", onset_threshold=PITCHED_ONSET_THRESHOLD).notes]


def _read_lag(part: Part, a: float, b: float, sample_rate: int, log) -> float:
    """The onset lag (s) the transcriber reads the part's program with, by synthesis over
    the excerpt a..b s (timing.py)."""
    played = tuple((s - a, d, p, v) for s, d, p, v in part.notes if a <= s < b)
    lag = timing.onset_lag(played, _excerpt_render(part, a, b, sample_rate)(part.program), sample_rate,
                           _onset_reader(part.name))
    log(f"{part.name}: the transcriber reads program {part.program} {1000 * lag:+.0f} ms off; its notes are played "
        f"{abs(1000 * lag):.0f} ms {'earlier' if lag > 0 else 'later'}")
    return lag


def _excerpt_render(part: Part, a: float, b: float, sample_rate: int):
    from auracore.models import fluid

    shifted = tuple((s - a, d, p, v) for s, d, p, v in part.notes if a <= s < b)

    def render(program):
        return fluid.render_tracks(fluid.SOUNDFONT, [fluid.Track(program, 64, shifted)], b - a, drums=part.drums,
                                   sample_rate=sample_rate, sample_format="float")
    return render


def reconstruct(x, sample_rate: int, target_score: float = 85.0, max_rounds: int = MAX_ROUNDS, decider=None,
                separator: str | None = None, log=None, stage=None, runner=None) -> Reconstruction:
    """Rebuild x: (frames, channels) float (1 or 2 channels) at sample_rate (22.05-96 kHz)
    from its own stems, notes and profile, and iterate until QC reaches target_score (0-100),
    max_rounds (1-20) have run, or the score stops rising (PATIENCE rounds in a row, each
    undone). decider: a RuleDecider (default)
    or LLMDecider. separator: a model folder or "dsp" (default: the shipped model, else
    DSP). log(line): notes from the steps; stage(name): called as each stage starts (a
    progress display). runner: a models.runtime.ModelRunner (timbre and QC embeddings)."""
    from auracore.offline.master import master
    from auracore.offline.profile import profile as profile_of, rt60
    from auracore.offline.qc import qc
    from auracore.offline.separate import separate
    from auracore.offline.transcribe import transcribe_stems

    x = _as_audio(x, sample_rate)
    if not 0.0 <= target_score <= 100.0:
        raise ReconstructError(f"target score {target_score}: give 0 to 100")
    if not 1 <= max_rounds <= 20:
        raise ReconstructError(f"max rounds {max_rounds}: give 1 to 20")
    stage = stage or (lambda name: None)
    log = log or (lambda line: None)
    decider = decider or RuleDecider()
    sr, channels, duration_s = int(sample_rate), x.shape[1], x.shape[0] / sample_rate
    if runner is None:
        from auracore.models.runtime import ModelRunner

        runner = ModelRunner()

    stage("separate")
    stems = separate(x, sr, stems=STEMS, model=separator, log=log)
    for name in STEMS:  # held for the whole loop: float32, one stem converted at a time
        stems[name] = stems[name].astype(np.float32)
    stage("profile")
    prof = profile_of(x, sr)
    stage("transcribe")
    from auracore.offline.transcribe.notes import TempoMap

    tmap = TempoMap.from_beats(prof.beats_s, prof.tempo_bpm) if len(prof.beats_s) >= 2 else TempoMap()
    # the drums are heard with the bass stem under them: the separator leaves much of a
    # kick's low end in the bass stem, and the drum stem alone lost kicks (docs/reconstruct.md)
    heard = {**stems, "drums": stems["drums"] + stems["bass"]}
    notes = transcribe_stems(heard, sr, tempo_map=tmap, onset_threshold=PITCHED_ONSET_THRESHOLD)
    del heard
    notes = _with_bass_line(notes, x, sr, log)
    total = sum(_energy(s) for s in stems.values()) or 1.0
    parts = {}
    for track in notes.tracks:
        tn = part_notes(track.notes)
        if tn:
            parts[track.name] = Part(track.name, track.is_drums, tn, _energy(stems[track.name]) / total)
    if not parts:
        raise ReconstructError("no notes were found in any stem: there is nothing to re-synthesise")
    stage("programs")
    choices = {}
    for name, part in parts.items():
        a, b = timbre.excerpt_window([n[0] for n in part.notes], duration_s)
        i0, i1 = int(a * sr), int(b * sr)
        target = stems[name][i0:i1].astype(np.float64)
        target = np.repeat(target, 2, axis=1) if target.shape[1] == 1 else target
        mix = x[i0:i1] if x.shape[1] == 2 else np.repeat(x[i0:i1], 2, axis=1)
        mask = None if part.drums else timbre.note_band_mask(timbre.band_mask(target, mix, sr), [n[2] for n in part.notes], sr)
        choice = timbre.choose(_excerpt_render(part, a, b, sr), target, sr, mask=mask, runner=runner, drums=part.drums,
                               families=STEM_FAMILIES.get(name), weights=timbre.STEM_WEIGHTS.get(name))
        part.ranking = tuple(p for p, _, _ in choice.candidates)
        part.program = choice.program
        part.choice = choice
        choices[name] = choice.to_dict()
        log(f"{name}: program {choice.program} ({choices[name]['family']})")
        if ONSET_LAG and not part.drums:
            part.lag = _read_lag(part, a, b, sr, log)
            choices[name]["onset_lag_ms"] = round(1000 * part.lag, 1)

    rt = rt60(x, sr)
    sections = [(s.start_s, s.end_s) for s in prof.sections]
    # every render takes the tonal balance of the stem it replaces, section by section (tone.py)
    synth = Synth(sr, duration_s, tone=lambda name, y: tone.match_tone_spans(y, stems[name], sr, sections))
    settings = {"reverb": False, "level_window_s": None}
    rounds, tried, changed = [], set(), []
    qc_cache = {}  # the input's QC analyses (stems, notes, profile, embedding), made once for every round
    best = None  # (score, audio, stems, index, report, ({stem: (program, quantised)}, settings))
    stale = 0  # rounds in a row without a rise

    for index in range(1, max_rounds + 1):
        stage(f"round {index}")
        before = synth.renders
        rendered_now = []
        out_stems = {}
        for name, part in parts.items():
            if best is not None and best[5][0][name] == (part.program, part.quantise) and best[5][1] == settings:
                out_stems[name] = best[2][name]   # as the best round made it: nothing to do again
                continue
            key_known = (name, part.program, part.quantise) in synth.cache
            y = synth.render(part, _played(part.timed_notes(), part.quantise, prof.beats_s), channels)
            if not key_known:
                rendered_now.append(name)
            y = level_match(y, stems[name], sr, _spans(duration_s, sections, settings["level_window_s"]),
                            drums=part.drums)
            if PLACE:
                y = place(y, stems[name])  # the stem's left/right balance (place.py)
            if settings["reverb"] and not part.drums:
                y = room(y, sr, rt or DEFAULT_RT60_S)
            out_stems[name] = y
        mix = sum(out_stems.values())
        if not np.any(mix):
            raise ReconstructError("the re-synthesised stems are silent")
        # the sum ridden band by band toward the input: what the stems' rides, each toward a
        # separated stem with its leaks and gaps, leave between them
        mix = band_ride(mix, x, sr, range_db=MIX_RIDE_RANGE_DB)
        mix = match_band_width(mix, x, sr)
        mastered = master(mix, x, sr).audio
        report = qc(x, mastered, sr, runner=runner, log=log, cache=qc_cache)
        rounds.append(Round(index, report.score, dict(report.dimensions), list(report.weakest),
                            [c.to_dict() for c in changed], rendered_now, best[3] if best else 0))
        improved = best is None or report.score > best[0]
        log(f"round {index}: QC {report.score:.1f} (weakest {', '.join(report.weakest)}); rendered "
            f"{synth.renders - before} stem(s)" + ("" if improved else f"; no rise: back to round {best[3]}"))
        if improved:
            best = (report.score, mastered, out_stems, index, report,
                    ({n: (p.program, p.quantise) for n, p in parts.items()}, dict(settings)))
            synth.pinned = {(n, program, quant) for n, (program, quant) in best[5][0].items()}
            stale = 0
        else:
            stale += 1
            # undo this round's change: the next one starts from the best state (its renders are cached)
            for n, (program, quant) in best[5][0].items():
                parts[n].program, parts[n].quantise = program, quant
            settings.clear()
            settings.update(best[5][1])
        if report.score >= target_score or index == max_rounds or stale >= PATIENCE:
            break
        changed = decider.decide(best[4], parts, tried)
        if not changed:
            break
        for c in changed:
            tried.add((c.kind, c.stem, parts[c.stem].program if c.kind == "program" and c.stem else None))
            if c.kind == "program" and c.stem:
                nxt = parts[c.stem].next_program()
                if nxt is not None:
                    parts[c.stem].program = nxt
            elif c.kind == "quantise" and c.stem:
                parts[c.stem].quantise = True
            elif c.kind == "reverb":
                settings["reverb"] = True
            elif c.kind == "level":
                settings["level_window_s"] = LEVEL_WINDOW_S
    _, audio, best_stems, best_index, _, (best_parts, _) = best
    programs = {n: program for n, (program, _) in best_parts.items()}
    quant = {n: q for n, (_, q) in best_parts.items()}
    from auracore.offline.transcribe.notes import Note

    tracks = []
    for t in notes.tracks:
        if t.name in programs and not t.is_drums:
            t = replace(t, program=int(programs[t.name]))
        if t.name in parts:  # the MIDI holds the notes as the best round played them
            played = _played(parts[t.name].timed_notes(), quant[t.name], prof.beats_s)
            t = replace(t, notes=tuple(Note(s, s + d, p, v) for s, d, p, v in played))
        tracks.append(t)
    final_notes = replace(notes, tracks=tuple(tracks))
    prof_summary = {"tempo_bpm": prof.tempo_bpm, "key": prof.key, "sections": len(prof.sections), "rt60_s": rt}
    return Reconstruction(audio, sr, best_stems, programs, final_notes, tuple(rounds), best_index, synth.renders,
                          decider.name, choices, prof_summary)
