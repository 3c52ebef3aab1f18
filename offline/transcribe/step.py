"""The transcription step: audio arrays (whole or streamed) -> Notes, by stem type, with a tempo map.

``Transcriber`` streams: ``process(block)`` with (frames, channels) float blocks, then
``finish()`` -> ``Notes``; memory stays flat whatever the length. ``transcribe`` runs it on
a whole array; ``transcribe_stems`` runs one per stem into one multi-track ``Notes``.

Stem types: ``pitched`` (basic-pitch's model, 88 keys), ``bass`` (the same, limited to
``BASS_RANGE_HZ``, GM program 33, heard at ``BASS_SPEED`` times its speed: see below), ``drums`` (onsets split into kit pieces, channel 10),
and ``auto``, which runs the pitched and the drum paths side by side on the same audio and
keeps the drums when it is a drum stem: at least ``DRUM_HITS_PER_S`` hits a second while
the model's notes of 250 ms or longer cover under ``DRUM_MAX_NOTE_S_PER_S`` seconds per
second (a kit rings, but holds no pitch).

A bass is heard at double speed, an octave up (the audio resampled to half the model's
rate and read as if at its rate; notes' times doubled and pitches an octave down after):
the model misses or octave-doubles most notes under about 70 Hz, which at double speed sit
in its comfortable range. Measured (2026-12-07, bench/reconstruct.py's 30 s pieces, the
bass line against the true bass notes, onset and pitch F1 within 50 ms): from the mix
less the DSP separator's drums 0.778 -> 0.897 and from the true bass stem 0.930 -> 0.977
on the 12 pieces 1004-1007 and 1100-1107 (0.793 -> 0.942 and 0.969 -> 0.986 on
1000-1003, where it was found). The model also reads half the frames.
"""

import math

import numpy as np


from auracore.kernels.sane import sanitised
from auracore.errors import ParamError

from .drums import DrumTranscriber
from .notes import Note, Notes, TempoMap, Track
from .pitched import FRAME_LAG_SAMPLES, GAP_MS, MODEL_RATE, PitchedTranscriber, StreamResampler

STEM_TYPES = ("auto", "pitched", "drums", "bass")
BASS_RANGE_HZ = (27.5, 400.0)
BASS_SPEED = 2  # a bass is heard at this many times its speed (an octave up): see above
# Heard at double speed, the notes came out 10.7 ms earlier than at the real speed (mean over
# the eight GM basses of FluidR3, 72 lines of 24 notes E1-E3: -12.9 ms against -2.2 ms; the
# median -16.6 against -4.4), which is the model's frame lag (pitched.FRAME_LAG_SAMPLES,
# -236 samples at 22050 Hz) doubled with the times. _slowed takes the stretched part back
# out (then -3.3 ms mean, -6.5 median; docs/transcribe.md).
_SPED_LAG_S = -FRAME_LAG_SAMPLES / MODEL_RATE
# GM programs (0-based) per stem name, for multi-stem transcription
STEM_PROGRAMS = {"vocals": 53, "bass": 33, "piano": 0, "guitar": 25, "other": 0, "strings": 48}
DEFAULT_PROGRAM = 0
BASS_PROGRAM = 33
SILENCE_DBFS = -90.0
# auto: a drum stem has many hits per second and few long notes
DRUM_HITS_PER_S = 1.0
DRUM_MAX_NOTE_S_PER_S = 0.6


def _check(name: str, value: float, lo: float, hi: float) -> float:
    value = float(value)
    if not (lo <= value <= hi):
        raise ParamError(f"{name} {value:g} is outside {lo:g}..{hi:g}")
    return value


class Transcriber:
    """Streaming transcription of one stem (see the module docstring). Thresholds are the
    model's activation levels 0..1; min_note_ms the shortest note kept; min_hz/max_hz limit
    the pitches; program the GM program 0..127 (default: 0, or 33 for bass)."""

    def __init__(self, sample_rate: int, stem_type: str = "auto", program: int | None = None,
                 onset_threshold: float = 0.7, frame_threshold: float = 0.3, min_note_ms: float = 58.0,
                 min_hz: float | None = None, max_hz: float | None = None, name: str | None = None):
        if stem_type not in STEM_TYPES:
            raise ParamError(f"stem type {stem_type!r}: use one of {', '.join(STEM_TYPES)}")
        self.sample_rate = int(sample_rate)
        if self.sample_rate <= 0:
            raise ParamError(f"sample rate {sample_rate} Hz must be positive")
        _check("onset threshold", onset_threshold, 0.0, 1.0)
        _check("frame threshold", frame_threshold, 0.0, 1.0)
        _check("minimum note length (ms)", min_note_ms, 0.0, 10000.0)
        if program is not None and not (0 <= int(program) <= 127):
            raise ParamError(f"GM program {program} is outside 0..127")
        if stem_type == "bass":
            min_hz = BASS_RANGE_HZ[0] if min_hz is None else min_hz
            max_hz = BASS_RANGE_HZ[1] if max_hz is None else max_hz
        for label, hz in (("minimum frequency (Hz)", min_hz), ("maximum frequency (Hz)", max_hz)):
            if hz is not None:
                _check(label, hz, 1.0, 20000.0)
        if min_hz is not None and max_hz is not None and min_hz >= max_hz:
            raise ParamError(f"minimum frequency {min_hz:g} Hz is not below the maximum {max_hz:g} Hz")
        self.stem_type = stem_type
        self.program = program
        self.name = name
        # a bass at double speed: resampled to half the model's rate, read at its rate
        self.speed = BASS_SPEED if stem_type == "bass" else 1
        self.resampler = StreamResampler(self.sample_rate, MODEL_RATE // self.speed)
        self.pitched = None
        if stem_type != "drums":
            k = self.speed
            self.pitched = PitchedTranscriber(MODEL_RATE, onset_threshold, frame_threshold, min_note_ms / k,
                                              None if min_hz is None else min_hz * k,
                                              None if max_hz is None else max_hz * k, gap_ms=GAP_MS / k)
        self.drums = DrumTranscriber() if stem_type in ("drums", "auto") else None
        self.frames = 0
        self.peak = 0.0

    def process(self, block: np.ndarray) -> None:
        """block: (frames, channels) or (frames,) float at sample_rate."""
        x = np.asarray(block, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[0] == 0:
            return
        x = sanitised(x)[0]  # NaN, Inf and absurd samples count as 0, as in the chain
        self.frames += x.shape[0]
        self.peak = max(self.peak, float(np.abs(x).max()))
        self._feed(self.resampler.process(x.mean(axis=1)))

    def _feed(self, y: np.ndarray) -> None:
        if self.pitched is not None:
            self.pitched.process(y)
        if self.drums is not None:
            self.drums.process(y)

    def finish_track(self) -> tuple[Track, list[str]]:
        """The track and its warnings."""
        self._feed(self.resampler.finish())
        pitched = self.pitched.finish() if self.pitched is not None else []
        if self.speed != 1:
            pitched = [_slowed(n, self.speed) for n in pitched]
        hits = self.drums.finish() if self.drums is not None else []
        kind = self.stem_type
        if kind == "auto":
            kind = "drums" if self._looks_like_drums(pitched, hits) else "pitched"
        notes = hits if kind == "drums" else pitched
        program = self.program if self.program is not None else (BASS_PROGRAM if kind == "bass" else DEFAULT_PROGRAM)
        warnings = []
        peak_db = 20.0 * math.log10(self.peak) if self.peak > 0 else -math.inf
        label = f"{self.name}: " if self.name else ""
        if self.frames == 0:
            warnings.append(f"{label}the input holds no audio; the MIDI file has no notes")
        elif peak_db < SILENCE_DBFS:
            warnings.append(f"{label}the input is silent (peak {_db_text(peak_db)} dBFS); the MIDI file has no notes")
            notes = []
        elif not notes:
            warnings.append(f"{label}no notes found (peak {peak_db:.1f} dBFS)")
        return Track(self.name or kind, kind, int(program), tuple(notes)), warnings

    def _looks_like_drums(self, pitched, hits) -> bool:
        seconds = max(self.frames / self.sample_rate, 1e-9)
        held_s = sum(n.offset_s - n.onset_s for n in pitched if n.offset_s - n.onset_s >= 0.25)
        return len(hits) / seconds >= DRUM_HITS_PER_S and held_s / seconds < DRUM_MAX_NOTE_S_PER_S

    def finish(self, tempo_map: TempoMap | None = None) -> Notes:
        """Notes with one track (tempo map default: 120 BPM)."""
        track, warnings = self.finish_track()
        return Notes((track,), tempo_map or TempoMap.constant(), self.frames / self.sample_rate,
                     self.sample_rate, tuple(warnings))


def _slowed(note: Note, speed: int) -> Note:
    """A note heard at speed times the speed, back at the real speed: times x speed, less the
    model's frame lag stretched with them (``_SPED_LAG_S``), the pitch log2(speed) octaves
    down."""
    down = 12 * int(round(math.log2(speed)))
    late = (speed - 1) * _SPED_LAG_S

    def t(v):
        return max(0.0, v * speed + late)

    return Note(t(note.onset_s), t(note.offset_s), note.pitch - down, note.velocity,
                tuple((t(b), st) for b, st in note.bends))


def _db_text(v: float) -> str:
    return "-inf" if v == -math.inf else f"{v:.1f}"


def transcribe(x: np.ndarray, sample_rate: int, stem_type: str = "auto", program: int | None = None,
               onset_threshold: float = 0.7, frame_threshold: float = 0.3, min_note_ms: float = 58.0,
               min_hz: float | None = None, max_hz: float | None = None, tempo_bpm: float | None = None,
               beats_s=None, beats_per_bar: int = 4, block_frames: int = 65536) -> Notes:
    """Transcribe x: (frames, channels) or (frames,) float at sample_rate (Hz) to Notes.

    stem_type: "auto", "pitched", "drums" or "bass". program: GM program 0..127 of the track.
    Thresholds 0..1 (the model's note-start and note-hold activations); min_note_ms: shortest
    note kept; min_hz/max_hz: pitch limits. The tempo map: beats_s (beat times, s) and
    tempo_bpm when known (a profile's), else 120 BPM; it sets the MIDI grid, never the notes'
    times. Memory is flat: x is processed block_frames at a time."""
    t = Transcriber(sample_rate, stem_type, program, onset_threshold, frame_threshold, min_note_ms, min_hz, max_hz)
    x = np.asarray(x)
    for start in range(0, x.shape[0], block_frames):
        t.process(x[start:start + block_frames])
    return t.finish(tempo_map_for(tempo_bpm, beats_s, beats_per_bar))


def tempo_map_for(tempo_bpm: float | None = None, beats_s=None, beats_per_bar: int = 4,
                  downbeat_s: float | None = None) -> TempoMap:
    """The tempo map from a profile's tempo (BPM), beats (s) and first downbeat (s), or 120
    BPM without them."""
    if beats_s is not None and len(beats_s) >= 2:
        return TempoMap.from_beats(beats_s, tempo_bpm, beats_per_bar, downbeat_s)
    if tempo_bpm is not None and math.isfinite(tempo_bpm) and tempo_bpm > 0:
        return TempoMap.constant(tempo_bpm, beats_per_bar)
    return TempoMap.constant(beats_per_bar=beats_per_bar)


def stem_type_for(name: str) -> str:
    """The stem type a separated stem's name implies."""
    low = name.lower()
    if "drum" in low or "perc" in low:
        return "drums"
    if "bass" in low:
        return "bass"
    return "pitched"


def transcribe_stems(stems: dict, sample_rate: int, programs: dict | None = None, tempo_map: TempoMap | None = None,
                     **options) -> Notes:
    """One track per stem: stems {name: (frames, channels) float}; each stem's type from its
    name (drums, bass, else pitched), its program from programs, STEM_PROGRAMS, or 0.
    options: as for Transcriber (thresholds, min_note_ms, min_hz, max_hz)."""
    tracks, warnings, frames = [], [], 0
    for name, x in stems.items():
        kind = stem_type_for(name)
        program = (programs or {}).get(name, STEM_PROGRAMS.get(name.lower(), DEFAULT_PROGRAM))
        opts = dict(options)
        if kind == "drums":
            opts = {}
        t = Transcriber(sample_rate, kind, program, name=name, **opts)
        x = np.asarray(x)
        for start in range(0, x.shape[0], 65536):
            t.process(x[start:start + 65536])
        track, w = t.finish_track()
        tracks.append(track)
        warnings += w
        frames = max(frames, t.frames)
    return Notes(tuple(tracks), tempo_map or TempoMap.constant(), frames / sample_rate, int(sample_rate), tuple(warnings))
