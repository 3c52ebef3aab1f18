"""Multitrack training data rendered here: FluidSynth renders of MIDI material, stem by stem.

Each piece is ``CLIP_S`` seconds of 44.1 kHz stereo in six stems (``features.STEMS6``:
drums, bass, vocals, piano, guitar, other); the mixture is the exact sum of the stored
stems. Sources:

- ``band``: a music21 corpus score (models/sources.py's list) arranged for a band: the top
  voice sung, the lowest an octave down on a bass, the inner voices shared between piano,
  guitar and other (organ, strings, brass, reeds, pipes, synth leads and pads, chromatic
  percussion), with a generated GM drum part (channel 10, kits drawn per piece). Tempo,
  transposition, programs within each class, velocities, pans and which stems play are
  drawn per piece; every stem may come from a different SoundFont.
- ``electronic``: generated sample by sample like models/sources.py's electronic tracks
  (sine-sweep kick, noise snare and hats, filtered saw bass, detuned saw pads), stem by stem,
  with a sung line on top.
- Vocals: espeak-ng speech (models/sources.py's sentences) re-pitched along the melody with
  the WORLD vocoder (pyworld), stretched toward sung syllables, with vibrato; or a GM voice
  program (choir aahs, voice oohs, synth voice, solo vox) playing the melody.

Every stem then gets its own EQ, compression, reverb, width and level. Splits are by source
piece: ``train``, ``test`` (held-out pieces, the training SoundFonts) and ``ood`` (the same
held-out pieces through SoundFonts, a drum kit and espeak-ng voices that training never
uses, no OPL3 FM synthesis and no electronic tracks).
"""

import hashlib
import json
import math
import os
import subprocess
import tempfile
import time

import numpy as np
import soundfile as sf
from scipy.signal import fftconvolve, resample_poly, sosfilt

from . import features as F

CLIP_S = 8.0
RATE = F.SAMPLE_RATE
STEMS = F.STEMS6
DATA_DIR = "separation-data"
MAX_SCORE_BYTES = 60_000
SF2 = "/usr/share/sounds/sf2/"
SF3 = "/usr/share/sounds/sf3/"
# FluidR3 (GM and Mono), the OPL3 FM bank and the AVL Black Pearl kit for training; the
# csound GM bank and the AVL Red Zeppelin kit only out of domain (never heard in training)
TRAIN_FONTS = (SF2 + "FluidR3_GM.sf2", SF3 + "FluidR3Mono_GM.sf3", SF2 + "OPL-3_FM_128M.sf2")
TRAIN_DRUM_FONTS = TRAIN_FONTS[:2] + (SF2 + "Black_Pearl_4_LV2.sf2",)
OOD_FONTS = (SF2 + "sf_GMbank.sf2",)
OOD_DRUM_FONTS = OOD_FONTS + (SF2 + "Red_Zeppelin_4_LV2.sf2",)
SINGLE_KIT_FONTS = ("Black_Pearl_4_LV2.sf2", "Red_Zeppelin_4_LV2.sf2")
FONT_PACKAGES = "fluid-soundfont-gm fluidr3mono-gm-soundfont opl3-soundfont csound-soundfont avldrums.lv2-soundfont"
TRAIN_VOICES = (("en-us", "en"), ("en-gb", "en"), ("de", "de"), ("fr-fr", "fr"), ("en-gb-x-rp", "en"))
OOD_VOICES = (("es", "es"), ("it", "it"), ("en-029", "en"), ("en-gb-scotland", "en"))
TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3", "klatt")
OOD_VARIANTS = ("m6", "m7", "f4", "f5", "klatt2", "klatt4")
BASS_PROGRAMS = (32, 33, 34, 35, 36, 37, 38, 39)
PIANO_PROGRAMS = (0, 1, 2, 3, 4, 5, 6, 7)
GUITAR_PROGRAMS = (24, 25, 26, 27, 28, 29, 30, 31)
OTHER_PROGRAMS = (8, 9, 10, 11, 12, 16, 17, 18, 19, 20, 21, 22, 40, 41, 42, 44, 45, 46, 48, 49, 50, 51, 56, 57,
                  58, 60, 61, 62, 64, 65, 66, 68, 69, 70, 71, 72, 73, 74, 75, 80, 81, 82, 83, 84, 86, 87, 88,
                  89, 90, 91, 92, 94, 95)
VOICE_PROGRAMS = (52, 53, 54, 85)
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)
KICK, SNARE, RIM, CLAP, CLOSED_HAT, PEDAL_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 37, 39, 42, 44, 46, 49, 51
TOMS = (41, 43, 45, 47, 48, 50)
PERC = (54, 56, 60, 61, 62, 63, 64, 69, 70, 75)


class DataError(RuntimeError):
    """A tool or resource the data needs is missing or failed."""


def require_tools(ood: bool = True) -> None:
    """DataError naming whatever is missing for building the data."""
    missing = [p for p in TRAIN_FONTS + TRAIN_DRUM_FONTS + (OOD_FONTS + OOD_DRUM_FONTS if ood else ())
               if not os.path.exists(p)]
    msgs = []
    if missing:
        msgs.append(f"the SoundFonts {', '.join(sorted(set(missing)))} (Debian packages {FONT_PACKAGES})")
    for mod, pip in (("fluidsynth", "pyfluidsynth (and Debian's libfluidsynth3)"), ("pyworld", "pyworld"),
                     ("music21", "music21")):
        try:
            _pyworld() if mod == "pyworld" else __import__(mod)
        except (ImportError, OSError):
            msgs.append(pip)
    if not any(os.access(os.path.join(d, "espeak-ng"), os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep)):
        msgs.append("espeak-ng (Debian package espeak-ng)")
    if msgs:
        raise DataError("building the separation data needs " + "; ".join(msgs)
                        + " (pip install 'auracore[train]' pyfluidsynth pyworld)")


def _pyworld():
    """pyworld, which reads its own version through pkg_resources (gone from new setuptools)."""
    import sys
    import types

    try:
        import pyworld
    except ModuleNotFoundError as exc:
        if exc.name != "pkg_resources":
            raise
        stub = types.ModuleType("pkg_resources")
        stub.get_distribution = lambda name: types.SimpleNamespace(version="unknown")
        sys.modules["pkg_resources"] = stub
        try:
            import pyworld
        finally:
            del sys.modules["pkg_resources"]
    return pyworld


# ---------------------------------------------------------------- FluidSynth, in process

def render_tracks(font: str, tracks: list, seconds: float, drums: bool = False) -> np.ndarray:
    """Render tracks [(program, pan 0..127, [(start_s, dur_s, pitch, velocity)])] with one
    SoundFont: (frames, 2) float64 at 44.1 kHz, seconds long. drums: channel 10, program = kit.
    models/fluid.py renders (one persistent synth per font, reverb and chorus off: ours come later)."""
    from .. import fluid

    try:
        return fluid.render_tracks(font, tracks, seconds, drums=drums, sample_rate=RATE,
                                   single_kit=os.path.basename(font) in SINGLE_KIT_FONTS)
    except fluid.SynthError as exc:
        raise DataError(str(exc)) from None


# ---------------------------------------------------------------- material

def _notes_in_time(voice, bpm, transpose, rng, velocity, legato=0.95):
    spq = 60.0 / bpm
    return [(st * spq, d * spq * legato, p + transpose, int(np.clip(velocity + rng.integers(-12, 13), 25, 127)))
            for st, d, p in voice]


def drum_part(rng, bpm: float, seconds: float) -> list:
    """A GM drum part: kick/snare/hat groove drawn per piece, ghost notes, fills on toms, crashes."""
    beat = 60.0 / bpm
    six = beat / 4
    steps = int(seconds / six) + 1
    grooves = ((0, 8), (0, 6, 8), (0, 8, 10), (0, 3, 8, 11), (0, 4, 8, 12), (0, 7, 10), (0, 2, 8, 10))
    kick = grooves[rng.integers(len(grooves))]
    snare_pos = (4, 12) if rng.random() < 0.8 else (8,)
    hat_step = int(rng.choice([1, 2, 2, 4]))
    hat = int(rng.choice([CLOSED_HAT, CLOSED_HAT, RIDE, PEDAL_HAT]))
    backbeat = SNARE if rng.random() < 0.8 else int(rng.choice([CLAP, RIM]))
    perc = int(rng.choice(PERC)) if rng.random() < 0.3 else None
    swing = rng.uniform(0, 0.25) * six if rng.random() < 0.3 else 0.0
    notes = [(0.0, 0.5, CRASH, 110)]
    for s in range(steps):
        pos, bar = s % 16, s // 16
        t = s * six + (swing if s % 2 else 0.0) + rng.normal(0, 0.004)
        t = max(t, 0.0)
        fill = bar % 4 == 3 and pos >= 12 and rng.random() < 0.7
        if fill:
            notes.append((t, 0.2, int(rng.choice(TOMS)), int(rng.integers(80, 120))))
            continue
        if pos in kick:
            notes.append((t, 0.2, KICK, int(rng.integers(90, 125))))
        if pos in snare_pos:
            notes.append((t, 0.2, backbeat, int(rng.integers(85, 120))))
        elif rng.random() < 0.06:
            notes.append((t, 0.1, SNARE, int(rng.integers(25, 50))))
        if pos % hat_step == 0:
            h = OPEN_HAT if (pos == 14 and rng.random() < 0.3) else hat
            notes.append((t, 0.1, h, int(rng.integers(50, 95))))
        if perc is not None and pos % 4 == 2:
            notes.append((t, 0.1, perc, int(rng.integers(50, 90))))
        if pos == 0 and bar % 4 == 0 and bar > 0:
            notes.append((t, 0.5, CRASH, int(rng.integers(90, 120))))
    return notes


def _chords(voices, rng):
    """Merge inner voices into one chord part."""
    out = []
    for v in voices:
        out += v
    return sorted(out)


def _strum(notes, rng):
    """Guitar-like: notes that start together are spread by a few ms."""
    out = []
    by_start = {}
    for n in notes:
        by_start.setdefault(round(n[0], 3), []).append(n)
    for st, group in by_start.items():
        gap = rng.uniform(0.005, 0.02)
        for i, (s, d, p, v) in enumerate(sorted(group, key=lambda n: n[2])):
            out.append((s + i * gap, d, p, v))
    return out


def _bass_line(low, rng, bpm):
    """The lowest voice an octave down; sometimes as repeated eighths."""
    if rng.random() < 0.35:
        eighth = 30.0 / bpm
        out = []
        for s, d, p, v in low:
            k = max(1, int(d / eighth + 0.5))
            out += [(s + i * eighth, eighth * 0.8, p, v) for i in range(k)]
        return out
    return low


# ---------------------------------------------------------------- vocals

def _speech(rng, voices, variants, seconds: float) -> tuple[np.ndarray, int]:
    from .. import sources

    voice, lang = voices[rng.integers(len(voices))]
    variant = str(rng.choice(variants))
    text = " ".join(sources._sentence(rng, lang) for _ in range(max(2, int(seconds / 2.0))))
    with tempfile.TemporaryDirectory(prefix="auracore-sep-tts-") as tmp:
        wav = os.path.join(tmp, "s.wav")
        cmd = ["espeak-ng", "-v", f"{voice}+{variant}", "-s", str(int(rng.integers(110, 160))),
               "-p", str(int(rng.integers(30, 70))), "-w", wav, text]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(wav):
            raise DataError(f"espeak-ng failed: {done.stderr.strip()[:200]}")
        x, fs = sf.read(wav, dtype="float64")
    if x.ndim > 1:
        x = x.mean(axis=1)
    return x, fs


def sung(rng, melody: list, seconds: float, voices, variants) -> np.ndarray:
    """espeak-ng speech re-pitched along melody [(start_s, dur_s, pitch, vel)] with WORLD:
    (frames,) float64 at 44.1 kHz. Voiced frames take the melody's pitch with vibrato and
    glides; the speech is stretched toward sung syllables; rests are silent."""
    pw = _pyworld()
    x, fs = _speech(rng, voices, variants, seconds)
    period = 5.0
    f0, t = pw.dio(x, fs, frame_period=period)
    f0 = pw.stonemask(x, f0, t, fs)
    sp = pw.cheaptrick(x, f0, t, fs)
    ap = pw.d4c(x, f0, t, fs)
    n_out = int(seconds * 1000 / period)
    stretch = rng.uniform(1.2, 2.0)
    src = np.minimum((np.arange(n_out) / stretch).astype(int), len(f0) - 1)
    if len(f0) / stretch < n_out:  # loop the speech to cover the clip
        src = (np.arange(n_out) / stretch).astype(int) % len(f0)
    times = np.arange(n_out) * period / 1000.0
    target = np.zeros(n_out)
    gate = np.zeros(n_out)
    for st, d, p, v in melody:
        i0, i1 = int(st * 1000 / period), int((st + d) * 1000 / period)
        target[i0:i1] = p
        gate[i0:i1] = 1.0
    # glide between notes, vibrato after the attack
    hz = 440.0 * 2 ** ((np.where(target > 0, target, 60) - 69) / 12)
    hz = np.exp(np.convolve(np.log(hz), np.ones(9) / 9, mode="same"))
    vib = rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * times)
    hz *= 2 ** (vib / 12)
    voiced = f0[src] > 0
    new_f0 = np.where(voiced & (gate > 0), hz, 0.0)
    y = pw.synthesize(np.ascontiguousarray(new_f0), np.ascontiguousarray(sp[src]),
                      np.ascontiguousarray(ap[src]), fs, period)
    g = np.repeat(np.convolve(gate, np.ones(8) / 8, mode="same"), int(fs * period / 1000))
    y = y[:len(g)] * g[:len(y)]
    gcd = math.gcd(RATE, fs)
    y = resample_poly(y, RATE // gcd, fs // gcd)
    n = int(seconds * RATE)
    return np.pad(y, (0, max(0, n - len(y))))[:n]


# ---------------------------------------------------------------- per-stem processing

def _biquad_peak(f0, gain_db, q):
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * f0 / RATE
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None]


def _shelf(f0, gain_db, high: bool):
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * f0 / RATE
    alpha = np.sin(w) / 2 * np.sqrt(2)
    c, sa = np.cos(w), 2 * np.sqrt(a) * alpha
    sign = 1 if high else -1
    b0 = a * ((a + 1) + sign * (a - 1) * c + sa)
    b1 = -2 * sign * a * ((a - 1) + sign * (a + 1) * c)
    b2 = a * ((a + 1) + sign * (a - 1) * c - sa)
    a0 = (a + 1) - sign * (a - 1) * c + sa
    a1 = 2 * sign * ((a - 1) - sign * (a + 1) * c)
    a2 = (a + 1) - sign * (a - 1) * c - sa
    return np.array([[b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0]])


def process_stem(rng, x: np.ndarray, centre: bool) -> np.ndarray:
    """EQ (a peak and a shelf), compression, width, reverb, in that order: (frames, 2)."""
    sos = np.concatenate([_biquad_peak(float(np.exp(rng.uniform(np.log(100), np.log(8000)))),
                                       rng.uniform(-6, 6), rng.uniform(0.5, 2.0)),
                          _shelf(rng.uniform(2000, 9000), rng.uniform(-6, 4), True)])
    y = sosfilt(sos, x, axis=0)
    if rng.random() < 0.6:  # RMS compressor, 10 ms / 150 ms
        ratio = rng.uniform(1.5, 6.0)
        env = np.sqrt(sosfilt(np.array([[0.002, 0, 0, 1, -0.998, 0]]), np.mean(y ** 2, axis=1)) + 1e-12)
        level = 20 * np.log10(env)
        thr = np.percentile(level, 80) - rng.uniform(0, 10)
        gain_db = np.minimum(0.0, (thr - level) * (1 - 1 / ratio))
        y = y * (10 ** (gain_db / 20))[:, None]
    if centre:
        mid = y.mean(axis=1, keepdims=True)
        y = mid + rng.uniform(0, 0.3) * (y - mid)
    if rng.random() < 0.7:
        rt60 = rng.uniform(0.2, 1.8)
        n = int(min(rt60, 1.2) * RATE)
        tt = np.arange(n) / RATE
        decay = np.exp(-6.91 * tt / rt60)
        wet = 10 ** (rng.uniform(-22, -8) / 20)
        pre = int(rng.uniform(0.005, 0.03) * RATE)
        out = y.copy()
        for c in range(2):
            ir = rng.standard_normal(n) * decay
            ir *= wet / np.sqrt(np.sum(ir ** 2))
            ir = np.concatenate([np.zeros(pre), ir])
            out[:, c] += fftconvolve(y.mean(axis=1), ir)[:y.shape[0]]
        y = out
    return y


# ---------------------------------------------------------------- pieces

def _fonts(split: str):
    return (OOD_FONTS, OOD_DRUM_FONTS) if split == "ood" else (TRAIN_FONTS, TRAIN_DRUM_FONTS)


def band_piece(rel_path: str, seed: int, split: str) -> tuple[np.ndarray, dict]:
    """A corpus score arranged for a band: (stems (6, frames, 2) float64, description)."""
    from .. import sources

    rng = np.random.default_rng(seed)
    fonts, drum_fonts = _fonts(split)
    bpm = float(rng.uniform(70, 150))
    transpose = int(rng.integers(-5, 6))
    voices = sources.score_voices(rel_path, CLIP_S * bpm / 60.0 + 1.0)
    if not voices:
        raise DataError(f"{rel_path}: no notes")
    n = int(CLIP_S * RATE)
    stems = np.zeros((len(STEMS), n, 2))
    desc = {"source": rel_path, "bpm": round(bpm, 1), "transpose": transpose}
    top, inner, low = voices[0], voices[1:-1] if len(voices) > 2 else voices[1:], voices[-1] if len(voices) > 1 else []
    play = {s: rng.random() < p for s, p in (("drums", 0.85), ("bass", 0.9), ("vocals", 0.8), ("piano", 0.55),
                                             ("guitar", 0.55), ("other", 0.75))}
    if not inner:
        play["piano"] = play["guitar"] = False
    if sum(play.values()) < 2:
        play["vocals"] = play["drums"] = True

    def font(kind="pitched"):
        return str(rng.choice(drum_fonts if kind == "drums" else fonts))

    if play["drums"]:
        f = font("drums")
        stems[0] = render_tracks(f, [(int(rng.choice(DRUM_KITS)), 64, drum_part(rng, bpm, CLIP_S))], CLIP_S,
                                 drums=True)
        desc["drums"] = os.path.basename(f)
    if play["bass"] and low:
        f, prog = font(), int(rng.choice(BASS_PROGRAMS))
        line = [(s, d, max(p - 12, 28), v) for s, d, p, v in _notes_in_time(low, bpm, transpose, rng, 100)]
        stems[1] = render_tracks(f, [(prog, 64, _bass_line(line, rng, bpm))], CLIP_S)
        desc["bass"] = f"{os.path.basename(f)}:{prog}"
    melody = _notes_in_time(top, bpm, transpose, rng, 100, legato=0.98)
    if play["vocals"]:
        lo = np.mean([p for _, _, p, _ in melody])
        shift = 12 * int(np.round((64 - lo) / 12))  # into a singing range
        mel = [(s, d, p + shift, v) for s, d, p, v in melody]
        if rng.random() < 0.65:
            v_voices, v_vars = (OOD_VOICES, OOD_VARIANTS) if split == "ood" else (TRAIN_VOICES, TRAIN_VARIANTS)
            mono = sung(rng, mel, CLIP_S, v_voices, v_vars)
            stems[2] = np.stack([mono, mono], axis=1) * 10 ** (rng.uniform(-2, 2) / 20)
            desc["vocals"] = "espeak-ng+world"
        else:
            f, prog = font(), int(rng.choice(VOICE_PROGRAMS))
            stems[2] = render_tracks(f, [(prog, 64, mel)], CLIP_S)
            desc["vocals"] = f"{os.path.basename(f)}:{prog}"
    chord_voices = [_notes_in_time(v, bpm, transpose, rng, 80) for v in inner]
    if play["piano"]:
        f, prog = font(), int(rng.choice(PIANO_PROGRAMS))
        part = _chords(chord_voices, rng)
        if rng.random() < 0.3:
            part += [(s, d, p - 12, v) for s, d, p, v in melody]
        stems[3] = render_tracks(f, [(prog, int(rng.integers(40, 90)), part)], CLIP_S)
        desc["piano"] = f"{os.path.basename(f)}:{prog}"
    if play["guitar"]:
        f, prog = font(), int(rng.choice(GUITAR_PROGRAMS))
        part = _strum(_chords(chord_voices, rng), rng)
        stems[4] = render_tracks(f, [(prog, int(rng.integers(20, 108)), part)], CLIP_S)
        desc["guitar"] = f"{os.path.basename(f)}:{prog}"
    if play["other"]:
        f, prog = font(), int(rng.choice(OTHER_PROGRAMS))
        if rng.random() < 0.5 or not chord_voices:
            part = [(s, d, p + 12 * int(rng.integers(-1, 2)), v) for s, d, p, v in melody]
        else:
            part = _chords(chord_voices, rng)
        stems[5] = render_tracks(f, [(prog, int(rng.integers(20, 108)), part)], CLIP_S)
        desc["other"] = f"{os.path.basename(f)}:{prog}"
    return stems, desc


def _saw(freq, t, phase):
    return 2.0 * ((freq * t + phase) % 1.0) - 1.0


def electronic_piece(seed: int, split: str) -> tuple[np.ndarray, dict]:
    """A generated electronic track in stems (drums, bass, other, a sung line)."""
    from scipy.signal import butter

    rng = np.random.default_rng(seed)
    n = int(CLIP_S * RATE)
    t = np.arange(n) / RATE
    bpm = float(rng.uniform(90, 140))
    beat = 60.0 / bpm
    root = 36 + int(rng.integers(0, 12))
    scale = (0, 2, 3, 5, 7, 8, 10) if rng.random() < 0.5 else (0, 2, 4, 5, 7, 9, 11)
    degrees = rng.choice([0, 3, 4, 5], size=4)
    stems = np.zeros((len(STEMS), n, 2))
    bar = 4 * beat
    cutoff = float(rng.uniform(400, 2500))
    melody = []
    for k in range(int(CLIP_S / bar) + 1):
        i0, i1 = int(k * bar * RATE), min(n, int((k + 1) * bar * RATE))
        if i0 >= n:
            break
        deg = int(degrees[k % 4])
        tt = t[i0:i1] - k * bar
        chord = [root + 12 + scale[(deg + j) % 7] + 12 * ((deg + j) // 7) for j in (0, 2, 4)]
        for m in chord:
            f = 440.0 * 2 ** ((m + 12 - 69) / 12)
            for side, det in ((0, 0.997), (1, 1.003)):
                stems[5, i0:i1, side] += 0.05 * _saw(f * det, tt, rng.random()) * np.minimum(tt / 0.3, 1.0)
        bf = 440.0 * 2 ** ((root + scale[deg] - 69) / 12)
        stems[1, i0:i1] += (0.25 * _saw(bf, tt, rng.random()) * np.exp(-(tt % beat) / (0.6 * beat)))[:, None]
        for q in range(4):
            if rng.random() < 0.8:
                melody.append((k * bar + q * beat, beat * rng.choice([0.5, 0.9]),
                               chord[int(rng.integers(3))] + 12 + int(rng.choice([0, 2])), 100))
    lp = butter(2, cutoff, "low", fs=RATE, output="sos")
    stems[1] = sosfilt(lp, stems[1], axis=0)
    stems[5] = sosfilt(lp, stems[5], axis=0)
    kick_len = int(0.3 * RATE)
    kt = np.arange(kick_len) / RATE
    f_end = rng.uniform(40, 60)
    kick = 0.8 * np.sin(2 * np.pi * (f_end * kt + 3 * (1 - np.exp(-kt / 0.03)))) * np.exp(-kt / rng.uniform(0.1, 0.25))
    snare_len = int(0.2 * RATE)
    st = np.arange(snare_len) / RATE
    hp = butter(2, 6000, "high", fs=RATE, output="sos")
    for b in range(int(CLIP_S / beat) + 1):
        i0 = int(b * beat * RATE)
        if i0 >= n:
            break
        m = min(kick_len, n - i0)
        if b % 2 == 0 or rng.random() < 0.3:
            stems[0, i0:i0 + m] += kick[:m, None]
        if b % 2 == 1:
            m = min(snare_len, n - i0)
            noise = rng.standard_normal((m, 2)) * np.exp(-st[:m] / 0.06)[:, None]
            stems[0, i0:i0 + m] += 0.3 * noise + 0.2 * (np.sin(2 * np.pi * 190 * st[:m]) * np.exp(-st[:m] / 0.05))[:, None]
        for off in (0.0, 0.5 * beat):
            j0 = int((b * beat + off) * RATE)
            m = min(int(0.05 * RATE), n - j0)
            if m > 0:
                hat = sosfilt(hp, rng.standard_normal((m, 2)), axis=0) * np.exp(-np.arange(m) / RATE / 0.015)[:, None]
                stems[0, j0:j0 + m] += 0.15 * hat * np.array([1.0, rng.uniform(0.5, 1.0)])
    if rng.random() < 0.75:
        v_voices, v_vars = (OOD_VOICES, OOD_VARIANTS) if split == "ood" else (TRAIN_VOICES, TRAIN_VARIANTS)
        mono = sung(rng, melody, CLIP_S, v_voices, v_vars)
        stems[2] = np.stack([mono, mono], axis=1) * 0.5
    return stems, {"source": f"electronic:{seed}", "bpm": round(bpm, 1)}


def finish_piece(rng, stems: np.ndarray) -> np.ndarray:
    """Per-stem processing and levels, then one gain so the mixture peaks at -1 to -10 dBFS."""
    out = np.zeros_like(stems)
    for i, name in enumerate(STEMS):
        e = np.sqrt(np.mean(stems[i] ** 2))
        if e < 1e-6:
            continue
        y = process_stem(rng, stems[i], centre=name in ("vocals", "bass"))
        y *= (0.1 / max(np.sqrt(np.mean(y ** 2)), 1e-9)) * 10 ** (rng.uniform(-9, 3) / 20)
        out[i] = y
    peak = np.max(np.abs(out.sum(axis=0)))
    if peak > 0:
        out *= 10 ** (-rng.uniform(1, 10) / 20) / peak
    return out


# ---------------------------------------------------------------- the data set

def split_of(rel_path: str) -> str:
    """train for about 88% of the pieces, test (and ood) for the rest, by a hash of the path."""
    h = int(hashlib.sha1(rel_path.encode()).hexdigest()[:8], 16) % 100
    return "test" if h < 12 else "train"


def plan(scale: float = 1.0, seed: int = 1) -> list[dict]:
    """The pieces to make: [{"split", "kind", "ref", "seed", "index"}]."""
    from .. import sources

    from music21 import corpus

    root = str(corpus.getCorePaths()[0]).replace("\\", "/").split("/corpus/", 1)[0] + "/corpus/"
    # big scores take music21 many seconds to parse, for the 8 s we use
    scores = [s for s in sources.corpus_scores() if os.path.getsize(root + s) < MAX_SCORE_BYTES]
    n_train, n_test, n_elec = int(450 * scale), max(4, int(36 * scale)), int(75 * scale)
    train = [s for s in scores if split_of(s) == "train"][:n_train]
    test = [s for s in scores if split_of(s) == "test"][:n_test]
    jobs = []
    for i, ref in enumerate(train):
        jobs.append({"split": "train", "kind": "band", "ref": ref, "seed": seed * 100003 + i})
    for i in range(n_elec):
        jobs.append({"split": "train", "kind": "electronic", "ref": "", "seed": seed * 200003 + i})
    for i, ref in enumerate(test):
        jobs.append({"split": "test", "kind": "band", "ref": ref, "seed": seed * 300007 + i})
        jobs.append({"split": "ood", "kind": "band", "ref": ref, "seed": seed * 400009 + i})
    counts = {}
    for j in jobs:
        j["index"] = counts.get(j["split"], 0)
        counts[j["split"]] = j["index"] + 1
    return jobs


def make_piece(job: dict) -> tuple[dict, np.ndarray | None, str]:
    """(job, stems (6, 2, frames) int16 or None when the score gave nothing, message)."""
    rng = np.random.default_rng([job["seed"], 7])
    try:
        if job["kind"] == "band":
            stems, desc = band_piece(job["ref"], job["seed"], job["split"])
        else:
            stems, desc = electronic_piece(job["seed"], job["split"])
    except Exception as exc:  # a score music21 cannot read, a note FluidSynth cannot play: skip the piece
        return job, None, f"skipped {job['ref'] or job['kind']}: {type(exc).__name__}: {str(exc)[:120]}"
    stems = finish_piece(rng, stems)
    q = np.clip(np.rint(stems * 32767.0), -32767, 32767).astype(np.int16)
    return {**job, "desc": desc}, np.ascontiguousarray(q.transpose(0, 2, 1)), ""


def _worker_signals() -> None:
    """A forked worker dies quietly on the SIGTERM with which the pool ends it: the parent's
    handlers (the CLI's, which raise to unwind) must not print a traceback from each worker;
    Ctrl-C is the parent's to handle."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def build(work_dir: str, scale: float = 1.0, seed: int = 1, jobs: int = 2, log=print) -> dict:
    """Render every piece of plan() into work_dir/separation-data/{split}.npy (pieces, 6, 2,
    frames) int16 and index.json; returns a summary."""
    require_tools()
    from multiprocessing import get_context

    out_dir = os.path.join(work_dir, DATA_DIR)
    os.makedirs(out_dir, exist_ok=True)
    todo = plan(scale, seed)
    t0 = time.time()
    results = {"train": [], "test": [], "ood": []}
    arrays = {"train": [], "test": [], "ood": []}
    with get_context("fork").Pool(max(1, jobs), initializer=_worker_signals) as pool:
        for k, (job, q, msg) in enumerate(pool.imap(make_piece, todo, chunksize=2)):
            if q is None:
                log(f"data: {msg}")
                continue
            results[job["split"]].append(job)
            arrays[job["split"]].append(q)
            if (k + 1) % 25 == 0:
                log(f"data: {k + 1}/{len(todo)} pieces in {time.time() - t0:.0f} s")
    summary = {"clip_s": CLIP_S, "sample_rate": RATE, "stems": list(STEMS), "seed": seed, "scale": scale,
               "pieces": {s: len(v) for s, v in results.items()}, "seconds": round(time.time() - t0, 1)}
    for split, arr in arrays.items():
        np.save(os.path.join(out_dir, f"{split}.npy"),
                np.stack(arr) if arr else np.zeros((0, len(STEMS), 2, int(CLIP_S * RATE)), np.int16))
    with open(os.path.join(out_dir, "index.json"), "w", encoding="utf-8") as f:
        json.dump({"summary": summary, "pieces": results}, f, indent=1)
    log(f"data: {sum(summary['pieces'].values())} pieces ({summary['pieces']}) in {summary['seconds']:.0f} s")
    return summary


def load(work_dir: str, split: str, mmap: bool = True) -> np.ndarray:
    """(pieces, 6, 2, frames) int16 of one split."""
    return np.load(os.path.join(work_dir, DATA_DIR, f"{split}.npy"), mmap_mode="r" if mmap else None)
