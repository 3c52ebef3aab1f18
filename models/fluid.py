"""FluidSynth in process: one persistent synth per SoundFont and rate, note lists rendered to stereo arrays.

The one MIDI renderer that renders in process (the training data of the separation model
and ``auracore reconstruct`` both call it). A synth is made once per (SoundFont, sample
rate) in a process and reset before every render, so a render costs only its samples.
FluidSynth's own reverb and chorus are off: who renders adds the effects they want.

Tracks are ``Track``s (or the older ``(program, pan 0..127, notes)`` tuples): notes are
``(start_s, duration_s, pitch, velocity)``, optionally with pitch bends. A track may set
SoundFont generator offsets (``GEN_*``, e.g. the volume envelope's attack in timecents),
which FluidSynth adds to every voice the channel starts: this is how a render follows an
envelope other than the SoundFont's own.
"""

import contextlib
import ctypes
import io
import os
from dataclasses import dataclass, field

import numpy as np

from auracore.errors import AuraCoreError

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
DRUM_CHANNEL = 9
DRUM_BANK = 128
GAIN = 0.25
BEND_RANGE_ST = 2.0     # the GM default pitch-bend range, semitones either way
MIN_NOTE_S = 0.02
# SoundFont 2.01 generator numbers of the volume envelope (values in timecents, cB for sustain)
GEN_ATTACK = 34
GEN_HOLD = 35
GEN_DECAY = 36
GEN_SUSTAIN = 37
GEN_RELEASE = 38
ENVELOPE_GENS = (GEN_ATTACK, GEN_HOLD, GEN_DECAY, GEN_SUSTAIN, GEN_RELEASE)


class SynthError(AuraCoreError):
    """FluidSynth or a SoundFont that cannot be used."""


@dataclass(frozen=True)
class Track:
    """One channel's part: GM program 0..127 (the kit number for drums), pan 0..127 (64
    centre), notes ((start_s, duration_s, pitch, velocity), ...), pitch bends ((time_s,
    semitones), ...) of the channel, and generator offsets {GEN_*: value}."""

    program: int
    pan: int = 64
    notes: tuple = ()
    bends: tuple = ()
    generators: dict = field(default_factory=dict)


_SYNTHS: dict = {}
_WRITTEN: dict = {}  # frames each synth has written: renders start on its 64-frame block grid
BLOCK = 64  # FluidSynth's internal block: events take effect at the next block boundary


def _bind(lib, name, argtypes, restype=ctypes.c_int):
    fn = getattr(lib, name)
    fn.argtypes, fn.restype = argtypes, restype
    return fn


def synth(font: str = SOUNDFONT, sample_rate: int = 44100):
    """(pyfluidsynth Synth, SoundFont id), made once per (font, sample_rate) in this process:
    reverb and chorus off, 256 voices. SynthError when FluidSynth or the font is missing."""
    key = (font, int(sample_rate))
    if key not in _SYNTHS:
        if not os.path.isfile(font):
            raise SynthError(f"SoundFont {font} is missing (Debian package fluid-soundfont-gm)")
        try:
            fluidsynth = _module()
        except (ImportError, OSError) as exc:
            raise SynthError(f"FluidSynth is not usable ({exc}); install pyfluidsynth and Debian's "
                             "libfluidsynth3") from None
        s = fluidsynth.Synth(gain=GAIN, samplerate=float(sample_rate), **{"synth.reverb.active": 0,
                                                                          "synth.chorus.active": 0,
                                                                          "synth.polyphony": 256})
        sfid = s.sfload(font)
        if sfid < 0:
            raise SynthError(f"FluidSynth could not load {font}")
        _SYNTHS[key] = (s, sfid)
    return _SYNTHS[key]


def _module():
    """pyfluidsynth, imported with its stdout held: when the environment variable CI is set
    (as it is on most CI services) its import prints "'fluidsynth' was found at ...", which
    would land in the middle of a command's --json output."""
    with contextlib.redirect_stdout(io.StringIO()):
        import fluidsynth
    return fluidsynth


def _c_functions():
    lib = _module()._fl
    return (_bind(lib, "fluid_synth_set_gen", [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_float]),
            _bind(lib, "fluid_synth_write_float", [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                                   ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]))


_C = []


def _write_float(s, frames: int) -> np.ndarray:
    """frames of float output: (frames, 2) float32."""
    if not _C:
        _C.extend(_c_functions())
    out = np.zeros((frames, 2), dtype=np.float32)
    ptr = out.ctypes.data
    _C[1](s.synth, frames, ptr, 0, 2, ptr, 1, 2)
    return out


def _set_gen(s, chan: int, gen: int, value: float) -> None:
    if not _C:
        _C.extend(_c_functions())
    _C[0](s.synth, chan, gen, float(value))


def _as_track(t) -> Track:
    if isinstance(t, Track):
        return t
    program, pan, notes = t
    return Track(int(program), int(pan), tuple(notes))


def render_tracks(font: str, tracks: list, seconds: float, drums: bool = False, sample_rate: int = 44100,
                  single_kit: bool = False, sample_format: str = "s16") -> np.ndarray:
    """Render tracks (``Track`` or (program, pan 0..127, [(start_s, dur_s, pitch, velocity)]))
    with one SoundFont: (frames, 2) float64 at sample_rate, seconds long. drums: channel 10,
    program = the kit (bank 128; kit 0 when the font lacks it; single_kit: a font whose only
    preset is a kit, in bank 0). sample_format: "s16" (FluidSynth's dithered 16-bit output)
    or "float" (its float output, no word-length cut), both in [-1, 1]."""
    s, sfid = synth(font, sample_rate)
    rate = int(sample_rate)
    key = (font, rate)
    s.system_reset()
    events = []
    for ch, raw in enumerate(tracks):
        t = _as_track(raw)
        chan = DRUM_CHANNEL if drums else ch + (1 if ch >= DRUM_CHANNEL else 0)
        if chan > 15:
            raise SynthError(f"{len(tracks)} tracks: a render takes at most 15 pitched tracks")
        if drums:
            if single_kit:
                s.program_select(chan, sfid, 0, 0)
            elif s.program_select(chan, sfid, DRUM_BANK, t.program) != 0:
                s.program_select(chan, sfid, DRUM_BANK, 0)
        else:
            s.program_select(chan, sfid, 0, int(t.program))
        s.cc(chan, 10, int(np.clip(t.pan, 0, 127)))
        s.cc(chan, 7, 100)
        for gen in ENVELOPE_GENS:  # offsets of an earlier render are cleared too
            _set_gen(s, chan, gen, float(t.generators.get(gen, 0.0)))
        for start, dur, pitch, vel in t.notes:
            if 0 <= pitch <= 127 and start < seconds:
                events.append((start, 2, chan, int(pitch), int(np.clip(vel, 1, 127))))
                events.append((start + max(dur, MIN_NOTE_S), 0, chan, int(pitch), 0))
        for time_s, semitones in t.bends:
            value = int(round(np.clip(semitones / BEND_RANGE_ST, -1.0, 1.0) * 8191))
            events.append((time_s, 1, chan, value, -1))
    events.sort(key=lambda e: (e[0], e[1]))
    n_total = int(round(seconds * rate))
    out = []
    now = 0

    def run(frames):
        _WRITTEN[key] = _WRITTEN.get(key, 0) + frames
        if sample_format == "float":
            return _write_float(s, frames).astype(np.float64)
        return s.get_samples(frames).astype(np.float64).reshape(-1, 2) / 32768.0

    # an event lands on FluidSynth's next block boundary: start every render on that grid,
    # so the same tracks give the same samples whatever was rendered before
    if _WRITTEN.get(key, 0) % BLOCK:
        run(BLOCK - _WRITTEN[key] % BLOCK)

    for t_s, kind, chan, value, vel in events:
        at = min(int(round(t_s * rate)), n_total)
        if at > now:
            out.append(run(at - now))
            now = at
        if kind == 2:
            s.noteon(chan, value, vel)
        elif kind == 1:
            s.pitch_bend(chan, value)
        else:
            s.noteoff(chan, value)
    if n_total > now:
        out.append(run(n_total - now))
    for chan in range(16):  # silence every voice now: the next render starts from nothing
        s.all_sounds_off(chan)
    run(64)
    x = np.concatenate(out) if out else np.zeros((n_total, 2))
    return x[:n_total]
