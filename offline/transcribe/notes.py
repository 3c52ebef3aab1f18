"""Transcribed notes and their MIDI form: tracks of notes, a tempo map, a type-1 MIDI file.

Times are real seconds throughout; the tempo map only decides how seconds become ticks, so a
note lands where it sounded whatever the map, and a DAW's bar grid follows the map. MIDI is
written with ``mido`` (MIT); nothing here reads audio.
"""

import math
from dataclasses import dataclass, field

import numpy as np

TICKS_PER_BEAT = 480
DEFAULT_TEMPO_BPM = 120.0
DRUM_CHANNEL = 9  # channel 10, counted from 1
PITCH_BEND_RANGE_ST = 2.0  # the GM default bend range, semitones either way
BEND_MAX = 8191


@dataclass(frozen=True)
class Note:
    """One note: onset and offset in seconds, MIDI pitch, velocity 1..127, and pitch bends
    as ((time_s, semitones), ...) relative to the pitch (empty when the pitch held)."""

    onset_s: float
    offset_s: float
    pitch: int
    velocity: int
    bends: tuple = ()

    def to_dict(self) -> dict:
        return {"onset_s": round(self.onset_s, 4), "offset_s": round(self.offset_s, 4), "pitch": self.pitch,
                "velocity": self.velocity, "bends": [[round(t, 4), round(s, 3)] for t, s in self.bends]}


def lowest_line(notes, cluster_s: float = 0.05) -> list:
    """The lowest note of each group of onsets within cluster_s of the group's first, timed at
    that first onset: the line a bass part plays, read from a polyphonic transcription."""
    out = []
    for n in sorted(notes, key=lambda n: n.onset_s):
        if out and n.onset_s - out[-1].onset_s <= cluster_s:
            if n.pitch < out[-1].pitch:
                out[-1] = Note(out[-1].onset_s, max(n.offset_s, out[-1].onset_s), n.pitch, n.velocity, n.bends)
        else:
            out.append(n)
    return out


@dataclass(frozen=True)
class Track:
    """The notes of one instrument: a name (the stem), how it was transcribed ("pitched",
    "bass" or "drums"), its GM program 0..127 (ignored for drums, which play on channel 10)."""

    name: str
    stem_type: str
    program: int
    notes: tuple = ()

    @property
    def is_drums(self) -> bool:
        return self.stem_type == "drums"

    def to_dict(self) -> dict:
        return {"name": self.name, "stem_type": self.stem_type, "program": self.program,
                "channel": DRUM_CHANNEL + 1 if self.is_drums else None, "note_count": len(self.notes),
                "notes": [n.to_dict() for n in self.notes]}


@dataclass(frozen=True)
class TempoMap:
    """Beat times in seconds (at least one) and the tempo before the first and after the
    last beat (BPM); beats_per_bar for the time signature (beats_per_bar/4)."""

    beats_s: tuple = (0.0,)
    tempo_bpm: float = DEFAULT_TEMPO_BPM
    beats_per_bar: int = 4
    downbeat_index: int = 0  # which of beats_s is the first downbeat (it starts a bar)

    @classmethod
    def constant(cls, tempo_bpm: float = DEFAULT_TEMPO_BPM, beats_per_bar: int = 4) -> "TempoMap":
        """One tempo from time 0."""
        return cls((0.0,), float(tempo_bpm), int(beats_per_bar))

    @classmethod
    def from_beats(cls, beats_s, tempo_bpm: float | None = None, beats_per_bar: int = 4,
                   downbeat_s: float | None = None) -> "TempoMap":
        """From detected beat times (seconds, increasing); tempo_bpm (the profile's global
        tempo) fills the time before the first beat, else the first interval's tempo;
        downbeat_s: the first downbeat, put on a bar line."""
        beats = np.asarray([b for b in beats_s if math.isfinite(b) and b >= 0.0], dtype=np.float64)
        beats = np.unique(beats)
        if beats.size < 2:
            bpm = tempo_bpm if tempo_bpm and tempo_bpm > 0 else DEFAULT_TEMPO_BPM
            return cls.constant(bpm, beats_per_bar)
        beats = beats[np.concatenate(([True], np.diff(beats) > 0.05))]  # no beats closer than 50 ms
        bpm = float(tempo_bpm) if tempo_bpm and tempo_bpm > 0 else 60.0 / float(beats[1] - beats[0])
        k = int(np.argmin(np.abs(beats - downbeat_s))) if downbeat_s is not None else 0
        return cls(tuple(float(b) for b in beats), bpm, int(beats_per_bar), k)

    def segments(self) -> list[tuple[float, float, float]]:
        """[(start_s, start_beat, seconds_per_beat), ...]: beat 0 at time 0, each segment's
        tempo held until the next one starts."""
        spb0 = 60.0 / self.tempo_bpm
        beats = self.beats_s
        segs = []
        # before the first beat: the global tempo, ending exactly on a whole beat count
        first = beats[0]
        # the lead-in has a whole number of beats, chosen so the first downbeat starts a bar
        # (music that starts on its first beat at time 0 keeps that beat as beat 0)
        n_lead = 0
        if first > 0.0:
            n_lead = max(1, round(first / spb0))
            while (n_lead + self.downbeat_index) % max(1, self.beats_per_bar):
                n_lead += 1
            segs.append((0.0, 0.0, first / n_lead))
        beat0 = float(n_lead)
        for i in range(len(beats) - 1):
            segs.append((beats[i], beat0 + i, beats[i + 1] - beats[i]))
        last_spb = (beats[-1] - beats[-2]) if len(beats) > 1 else spb0
        segs.append((beats[-1], beat0 + len(beats) - 1, last_spb))
        return segs

    def to_dict(self) -> dict:
        return {"tempo_bpm": round(self.tempo_bpm, 3), "beats_per_bar": self.beats_per_bar,
                "beat_count": len(self.beats_s) if len(self.beats_s) > 1 else 0}


class _Clock:
    """Seconds -> ticks under a tempo map (piecewise linear)."""

    def __init__(self, tempo_map: TempoMap):
        self.segs = tempo_map.segments()
        self.starts = np.array([s[0] for s in self.segs])

    def ticks(self, t_s: float) -> int:
        t_s = max(0.0, t_s)
        i = max(0, int(np.searchsorted(self.starts, t_s, side="right")) - 1)
        start_s, start_beat, spb = self.segs[i]
        return int(round((start_beat + (t_s - start_s) / spb) * TICKS_PER_BEAT))

    def tempo_events(self) -> list[tuple[int, int]]:
        """[(tick, microseconds per beat)], one per tempo change."""
        out, last = [], None
        for start_s, start_beat, spb in self.segs:
            us = int(round(spb * 1e6))
            if us != last:
                out.append((int(round(start_beat * TICKS_PER_BEAT)), us))
                last = us
        return out


@dataclass(frozen=True)
class Notes:
    """A transcription: tracks of notes, the tempo map for the MIDI file, the duration (s),
    and warnings (one line each)."""

    tracks: tuple
    tempo_map: TempoMap = field(default_factory=TempoMap)
    duration_s: float = 0.0
    sample_rate: int = 0
    warnings: tuple = ()

    @property
    def notes(self) -> tuple:
        """Every note of every track, by onset."""
        return tuple(sorted((n for t in self.tracks for n in t.notes), key=lambda n: (n.onset_s, n.pitch)))

    def to_dict(self) -> dict:
        """What ``--json`` prints."""
        return {"duration_s": round(self.duration_s, 4), "sample_rate": self.sample_rate,
                "note_count": sum(len(t.notes) for t in self.tracks), "tempo": self.tempo_map.to_dict(),
                "tracks": [t.to_dict() for t in self.tracks], "warnings": list(self.warnings)}

    def to_midi(self):
        """A type-1 ``mido.MidiFile``: track 0 holds the tempo map and time signature, then one
        track per instrument track (GM program, its own channel; drums on channel 10). Pitch
        bends are written for notes that overlap no other note of their track (a channel has
        one bend wheel), with a bend range of 2 semitones."""
        import mido

        clock = _Clock(self.tempo_map)
        mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
        meta = [(tick, mido.MetaMessage("set_tempo", tempo=us, time=0)) for tick, us in clock.tempo_events()]
        meta.insert(0, (0, mido.MetaMessage("time_signature", numerator=self.tempo_map.beats_per_bar,
                                             denominator=4, time=0)))
        end_tick = clock.ticks(self.duration_s)
        mid.tracks.append(_track_from_events("tempo", meta, end_tick))
        channels = iter([c for c in range(16) if c != DRUM_CHANNEL])
        for track in self.tracks:
            channel = DRUM_CHANNEL if track.is_drums else next(channels, 15)
            mid.tracks.append(_track_from_events(track.name, _note_events(track, channel, clock), end_tick))
        return mid


def _note_events(track: Track, channel: int, clock: _Clock) -> list:
    import mido

    ev = []  # (tick, order, message): note-offs (0) before bends (1) before note-ons (2) at one tick
    if not track.is_drums:
        ev.append((0, -1, mido.Message("program_change", channel=channel, program=track.program, time=0)))
    notes = sorted(track.notes, key=lambda n: (n.onset_s, n.pitch))
    solo = _solo_notes(notes)
    for i, n in enumerate(notes):
        on, off = clock.ticks(n.onset_s), clock.ticks(n.offset_s)
        off = max(off, on + 1)
        ev.append((on, 2, mido.Message("note_on", channel=channel, note=n.pitch, velocity=n.velocity, time=0)))
        ev.append((off, 0, mido.Message("note_off", channel=channel, note=n.pitch, velocity=0, time=0)))
        if n.bends and solo[i] and not track.is_drums:
            for t_s, st in n.bends:
                value = int(round(np.clip(st / PITCH_BEND_RANGE_ST, -1.0, 1.0) * BEND_MAX))
                tick = min(max(clock.ticks(t_s), on), off - 1)
                ev.append((tick, 1, mido.Message("pitchwheel", channel=channel, pitch=value, time=0)))
            ev.append((off, 0, mido.Message("pitchwheel", channel=channel, pitch=0, time=0)))
    return [(tick, msg) for tick, _, msg in sorted(ev, key=lambda e: (e[0], e[1]))]


def _solo_notes(notes: list) -> list[bool]:
    """For notes sorted by onset: True where the note overlaps no other note."""
    solo = [True] * len(notes)
    latest_end, latest_i = -math.inf, -1
    for i, n in enumerate(notes):
        if n.onset_s < latest_end:
            solo[i] = False
            solo[latest_i] = False
        if n.offset_s > latest_end:
            latest_end, latest_i = n.offset_s, i
    return solo


def _track_from_events(name: str, events: list, end_tick: int):
    import mido

    tr = mido.MidiTrack()
    tr.append(mido.MetaMessage("track_name", name=name, time=0))
    now = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        tr.append(msg.copy(time=tick - now))
        now = tick
    tr.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
    return tr
