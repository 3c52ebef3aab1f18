"""Clean training material from packaged sources: rendered scores, generated tracks, speech, noises, silences.

Every clip is stereo, 48 kHz, ``CLIP_S`` long, and made from a piece description and a seed
alone, so the same description always gives the same samples. Pieces and their labels:

- ``acoustic``: a score from music21's bundled corpus (chorales, madrigals, quartets, ...)
  written to a MIDI file with an acoustic or orchestral instrumentation (strings, piano,
  organ, winds, brass, choir, nylon guitar) and rendered by FluidSynth with the FluidR3 GM
  SoundFont (Debian ``fluid-soundfont-gm``).
- ``band``: either another corpus score arranged for a band (electric keys, guitars, synth
  leads and pads, a bass line an octave under the lowest part, a generated GM drum-kit
  pattern) and rendered the same way, or an electronic track generated sample by sample
  (sine-sweep kick, noise snare and hats, filtered saw bass, detuned saw pads).
- ``speech``: sentences from a small grammar (English, German, French, Spanish, Italian),
  spoken by espeak-ng with a voice, variant, speed and pitch drawn per piece, in a
  generated stereo room.
- ``noise``: white, pink, brown, band-limited, hum, crackle, rain, wind and fan noises.
- ``silence``: digital silence, dither, and room tone or hum under -60 dBFS.

Music, speech and noise are normalised to ``REFERENCE_LUFS``; silences keep their own level.
"""

import math
import os
import struct
import subprocess
import tempfile

import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

from .dsp import SAMPLE_RATE, loudness_lufs
from .labels import CLASSES, REFERENCE_LUFS

CLIP_S = 6.0
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
CORPUS_COMPOSERS = ("bach", "beethoven", "mozart", "haydn", "monteverdi", "palestrina", "josquin",
                    "schumann_robert", "schumann_clara", "trecento", "handel", "corelli", "schubert",
                    "verdi", "weber", "chopin", "cpebach", "luca", "ciconia", "lusitano")
ACOUSTIC_ENSEMBLES = (  # GM programs (0-based) per voice, top voice first
    ("string quartet", (40, 40, 41, 42)), ("string orchestra", (48, 48, 48, 48)),
    ("piano", (0, 0, 0, 0)), ("harpsichord", (6, 6, 6, 6)), ("organ", (19, 19, 19, 19)),
    ("woodwinds", (73, 68, 71, 70)), ("brass", (56, 56, 60, 57)), ("choir", (52, 52, 52, 52)),
    ("guitar", (24, 24, 24, 24)), ("mixed chamber", (40, 73, 41, 42)), ("recorders", (74, 74, 74, 74)))
BAND_LEADS = (4, 5, 16, 18, 26, 27, 29, 30, 61, 65, 80, 81)
BAND_PADS = (4, 5, 16, 18, 50, 88, 89, 90, 91, 94)
BAND_BASSES = (33, 34, 35, 38, 39)
DRUM_CHANNEL = 9
KICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 42, 46, 49, 51



def sweep_kick(sample_rate: int, seconds: float, end_hz: float, drop_hz: float, decay_s: float,
               level: float) -> np.ndarray:
    """A synthetic kick drum: (frames,) a sine whose pitch falls from end_hz + drop_hz to
    end_hz (instantaneous frequency end + drop exp(-t / 30 ms)) under an exponential decay."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    phase = end_hz * t + drop_hz * 0.03 * (1 - np.exp(-t / 0.03))
    return level * np.sin(2 * np.pi * phase) * np.exp(-t / decay_s)

class SourceError(RuntimeError):
    """A tool or resource the data needs is missing or failed (FluidSynth, espeak-ng, a score)."""


def require_tools() -> None:
    """SourceError naming what is missing for building the data."""
    missing = []
    if not os.path.exists(SOUNDFONT):
        missing.append(f"{SOUNDFONT} (Debian package fluid-soundfont-gm)")
    for tool, pkg in (("fluidsynth", "fluidsynth"), ("espeak-ng", "espeak-ng")):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep)):
            missing.append(f"{tool} (Debian package {pkg})")
    try:
        import music21  # noqa: F401
    except ImportError:
        missing.append("music21 (pip install 'auracore[train]')")
    if missing:
        raise SourceError("building the training data needs " + ", ".join(missing))


def corpus_scores() -> list[str]:
    """music21 corpus files of the listed composers, as paths relative to the corpus, in
    round-robin order over composers (the corpus is mostly Palestrina and Bach; this keeps
    the others in any prefix of the list), sorted within each composer."""
    from music21 import corpus

    out = []
    for p in corpus.getCorePaths():
        parts = str(p).replace("\\", "/").split("/corpus/", 1)[-1].split("/")
        if parts[0] in CORPUS_COMPOSERS and str(p).endswith((".mxl", ".xml", ".musicxml", ".krn")):
            out.append("/".join(parts))
    by_composer = {}
    for rel in sorted(out):
        by_composer.setdefault(rel.split("/")[0], []).append(rel)
    queues = [by_composer[c] for c in sorted(by_composer)]
    ordered = []
    for i in range(max(len(q) for q in queues)):
        ordered += [q[i] for q in queues if i < len(q)]
    return ordered


def score_voices(rel_path: str, max_quarters: float, max_voices: int = 4) -> list[list[tuple]]:
    """The first max_quarters quarter notes of a corpus score: per part (top first, at most
    max_voices), a list of (start_ql, duration_ql, midi pitch) of every sounding pitch."""
    from music21 import corpus

    try:
        score = corpus.parse(rel_path)
    except Exception as exc:  # music21 raises many kinds; the caller skips the score
        raise SourceError(f"music21 could not parse {rel_path}: {exc}") from exc
    parts = list(getattr(score, "parts", []))[:max_voices] or [score]
    voices = []
    for part in parts:
        notes = []
        for n in part.flatten().notes:
            start = float(n.offset)
            if start >= max_quarters:
                break
            dur = max(float(n.quarterLength), 0.25)
            for p in n.pitches:
                notes.append((start, dur, int(p.midi)))
        if notes:
            voices.append(notes)
    return voices


def _vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


TICKS_PER_QUARTER = 480
TEMPO_US = 500000  # 120 bpm in the file: one second is 960 ticks


def write_midi(path: str, tracks: list[tuple[int, int, int, list[tuple]]]) -> None:
    """A type-1 standard MIDI file. tracks: (channel, program, pan 0..127, notes) with notes
    (start_s, duration_s, pitch, velocity)."""
    ticks_per_s = TICKS_PER_QUARTER * 1e6 / TEMPO_US
    chunks = [b"\x00\xff\x51\x03" + TEMPO_US.to_bytes(3, "big") + b"\x00\xff\x2f\x00"]
    for channel, program, pan, notes in tracks:
        events = []
        for start_s, dur_s, pitch, vel in notes:
            on = int(round(start_s * ticks_per_s))
            off = max(on + 1, int(round((start_s + dur_s) * ticks_per_s)))
            events.append((off, 0, bytes([0x80 | channel, pitch, 0])))
            events.append((on, 1, bytes([0x90 | channel, pitch, vel])))
        events.sort(key=lambda e: (e[0], e[1]))
        data = bytearray(b"\x00" + bytes([0xC0 | channel, program]) + b"\x00" + bytes([0xB0 | channel, 10, pan]))
        now = 0
        for tick, _, msg in events:
            data += _vlq(tick - now) + msg
            now = tick
        data += b"\x00\xff\x2f\x00"
        chunks.append(bytes(data))
    with open(path, "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 1, len(chunks), TICKS_PER_QUARTER))
        for c in chunks:
            f.write(b"MTrk" + struct.pack(">I", len(c)) + c)


def render_midi(tracks, seconds: float, soundfont: str = SOUNDFONT) -> np.ndarray:
    """FluidSynth render of the tracks (see write_midi) with soundfont: (frames, 2) float64 at 48 kHz."""
    with tempfile.TemporaryDirectory(prefix="auracore-fs-") as tmp:
        mid = os.path.join(tmp, "in.mid")
        wav = os.path.join(tmp, "out.wav")
        write_midi(mid, tracks)
        cmd = ["fluidsynth", "-ni", "-q", "-r", str(SAMPLE_RATE), "-g", "0.4", "-O", "float", "-T", "wav",
               "-F", wav, soundfont, mid]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(wav):
            raise SourceError(f"fluidsynth failed: {done.stderr.strip()[:200]}")
        x, fs = sf.read(wav, dtype="float64", always_2d=True)
    return _fit_length(x, seconds)


def _fit_length(x: np.ndarray, seconds: float) -> np.ndarray:
    n = int(round(seconds * SAMPLE_RATE))
    if x.shape[0] >= n:
        return x[:n]
    return np.concatenate([x, np.zeros((n - x.shape[0], x.shape[1]))])


def _humanise(rng, notes, bpm, velocity):
    spq = 60.0 / bpm
    return [(s * spq, d * spq * 0.95, p, int(np.clip(velocity + rng.integers(-10, 11), 30, 127)))
            for s, d, p in notes]


def acoustic_piece(rel_path: str, seed: int, soundfont: str = SOUNDFONT) -> tuple[np.ndarray, str]:
    """A corpus score for an acoustic ensemble: (clip, description)."""
    rng = np.random.default_rng(seed)
    bpm = float(rng.uniform(60, 110))
    voices = score_voices(rel_path, CLIP_S * bpm / 60.0 + 1.0)
    if not voices:
        raise SourceError(f"{rel_path}: no notes")
    name, programs = ACOUSTIC_ENSEMBLES[rng.integers(len(ACOUSTIC_ENSEMBLES))]
    tracks = []
    for i, notes in enumerate(voices):
        pan = int(np.clip(64 + (i - (len(voices) - 1) / 2) * rng.uniform(10, 30), 0, 127))
        tracks.append((i, programs[i % len(programs)], pan, _humanise(rng, notes, bpm, int(rng.integers(60, 100)))))
    return (render_midi(tracks, CLIP_S + 0.5, soundfont)[: int(CLIP_S * SAMPLE_RATE)],
            f"{rel_path} as {name} at {bpm:.0f} bpm")


def _drum_pattern(rng, bpm: float, seconds: float) -> list[tuple]:
    beat = 60.0 / bpm
    sixteenths = int(seconds / (beat / 4)) + 1
    patterns = ((0, 8), (0, 6, 8), (0, 8, 10), (0, 3, 8, 11), (0, 4, 8, 12))
    kick = patterns[rng.integers(len(patterns))]
    hat_step = int(rng.choice([2, 4, 1]))
    ride = rng.random() < 0.25
    notes = [(0.0, 1.0, CRASH, 100)]
    for s in range(sixteenths):
        t = s * beat / 4
        pos = s % 16
        if pos in kick:
            notes.append((t, 0.1, KICK, int(rng.integers(95, 120))))
        if pos in (4, 12):
            notes.append((t, 0.1, SNARE, int(rng.integers(90, 115))))
        if pos % hat_step == 0:
            notes.append((t, 0.05, RIDE if ride else (OPEN_HAT if pos == 14 and rng.random() < 0.3 else CLOSED_HAT),
                          int(rng.integers(55, 90))))
    return notes


def band_piece(rel_path: str, seed: int, soundfont: str = SOUNDFONT) -> tuple[np.ndarray, str]:
    """A corpus score arranged for a band with a generated drum part: (clip, description)."""
    rng = np.random.default_rng(seed)
    bpm = float(rng.uniform(88, 132))
    voices = score_voices(rel_path, CLIP_S * bpm / 60.0 + 1.0)
    if not voices:
        raise SourceError(f"{rel_path}: no notes")
    lead = int(rng.choice(BAND_LEADS))
    pad = int(rng.choice(BAND_PADS))
    bass = int(rng.choice(BAND_BASSES))
    tracks = [(0, lead, 64 + int(rng.integers(-15, 16)), _humanise(rng, voices[0], bpm, 100))]
    for i, notes in enumerate(voices[1:-1] if len(voices) > 2 else [], start=1):
        tracks.append((i, pad, int(np.clip(64 + (-1) ** i * rng.uniform(15, 40), 0, 127)),
                       _humanise(rng, notes, bpm, 80)))
    if len(voices) > 1:
        low = [(s, d, max(p - 12, 28)) for s, d, p in voices[-1]]
        tracks.append((len(voices), bass, 64, _humanise(rng, low, bpm, 105)))
    tracks.append((DRUM_CHANNEL, 0, 64, _drum_pattern(rng, bpm, CLIP_S + 0.5)))
    desc = f"{rel_path} for band (lead {lead}, pad {pad}, bass {bass}, drums) at {bpm:.0f} bpm"
    return render_midi(tracks, CLIP_S + 0.5, soundfont)[: int(CLIP_S * SAMPLE_RATE)], desc


def _saw(freq_hz, t, rng):
    phase = (freq_hz * t + rng.random()) % 1.0
    return 2.0 * phase - 1.0


def electronic_piece(seed: int) -> tuple[np.ndarray, str]:
    """A generated electronic track: kick, snare, hats, saw bass and pad chords: (clip, description)."""
    rng = np.random.default_rng(seed)
    fs = SAMPLE_RATE
    n = int(CLIP_S * fs)
    t = np.arange(n) / fs
    bpm = float(rng.uniform(90, 140))
    beat = 60.0 / bpm
    root = 36 + int(rng.integers(0, 12))
    scale = (0, 2, 3, 5, 7, 8, 10) if rng.random() < 0.5 else (0, 2, 4, 5, 7, 9, 11)
    degrees = rng.choice([0, 3, 4, 5], size=4)
    out = np.zeros((n, 2))
    bar = 4 * beat
    cutoff = float(rng.uniform(400, 2500))
    for k in range(int(CLIP_S / bar) + 1):
        i0 = int(k * bar * fs)
        i1 = min(n, int((k + 1) * bar * fs))
        if i0 >= n:
            break
        deg = int(degrees[k % 4])
        tt = t[i0:i1] - k * bar
        chord = [root + 12 + scale[(deg + j) % 7] + 12 * ((deg + j) // 7) for j in (0, 2, 4)]
        pad = np.zeros((i1 - i0, 2))
        for j, m in enumerate(chord):
            f = 440.0 * 2 ** ((m + 12 - 69) / 12)
            for side, det in ((0, 0.997), (1, 1.003)):
                pad[:, side] += _saw(f * det, tt, rng)
        env = np.minimum(tt / 0.3, 1.0)
        pad *= 0.05 * env[:, None]
        bass_f = 440.0 * 2 ** ((root + scale[deg] - 69) / 12)
        bass = 0.25 * _saw(bass_f, tt, rng) * np.exp(-(tt % beat) / (0.6 * beat))
        out[i0:i1] += pad
        out[i0:i1] += bass[:, None]
    out = sosfilt(butter(2, cutoff, "low", fs=fs, output="sos"), out, axis=0)
    f_end = rng.uniform(40, 60)
    kick = sweep_kick(fs, 0.3, f_end, 100.0, rng.uniform(0.1, 0.25), 0.8)
    kick_len = kick.shape[0]
    snare_len = int(0.2 * fs)
    st = np.arange(snare_len) / fs
    hp = butter(2, 6000, "high", fs=fs, output="sos")
    for b in range(int(CLIP_S / beat) + 1):
        i0 = int(b * beat * fs)
        if i0 >= n:
            break
        m = min(kick_len, n - i0)
        if b % 2 == 0 or rng.random() < 0.3:
            out[i0:i0 + m] += kick[:m, None]
        if b % 2 == 1:
            m = min(snare_len, n - i0)
            noise = rng.standard_normal((m, 2)) * np.exp(-st[:m] / 0.06)[:, None]
            out[i0:i0 + m] += 0.3 * noise + 0.2 * np.sin(2 * np.pi * 190 * st[:m])[:, None] * np.exp(-st[:m] / 0.05)[:, None]
        for off in (0.0, 0.5 * beat):
            j0 = int((b * beat + off) * fs)
            m = min(int(0.05 * fs), n - j0)
            if m > 0:
                hat = sosfilt(hp, rng.standard_normal((m, 2)), axis=0) * np.exp(-np.arange(m) / fs / 0.015)[:, None]
                out[j0:j0 + m] += 0.15 * hat * np.array([1.0, rng.uniform(0.5, 1.0)])
    return out, f"electronic at {bpm:.0f} bpm, root {root}, cutoff {cutoff:.0f} Hz"


WORDS = {
    "en": (("the old captain", "a quiet teacher", "my neighbour", "the young engineer", "our small band",
            "the weather report", "a tired traveller", "the city council", "this recording", "the orchestra"),
           ("carried", "described", "painted", "forgot", "measured", "announced", "repaired", "followed",
            "discovered", "remembered"),
           ("the broken window", "a long letter", "the morning train", "seven green apples", "the evening news",
            "an empty harbour", "the last chapter", "a simple melody", "the river bridge", "every small detail"),
           ("before noon", "with great care", "in the rain", "without a word", "after the meeting",
            "near the station", "for the second time", "at the very end")),
    "de": (("der alte Kapitaen", "eine ruhige Lehrerin", "mein Nachbar", "die junge Ingenieurin", "das Orchester"),
           ("trug", "beschrieb", "malte", "vergass", "reparierte", "entdeckte"),
           ("das kaputte Fenster", "einen langen Brief", "den Morgenzug", "die Abendnachrichten", "die Bruecke"),
           ("vor dem Mittag", "mit grosser Sorgfalt", "im Regen", "ohne ein Wort", "am Bahnhof")),
    "fr": (("le vieux capitaine", "une professeure calme", "mon voisin", "la jeune ingenieure", "l'orchestre"),
           ("portait", "decrivait", "peignait", "oubliait", "reparait", "decouvrait"),
           ("la fenetre cassee", "une longue lettre", "le train du matin", "les nouvelles du soir", "le pont"),
           ("avant midi", "avec grand soin", "sous la pluie", "sans un mot", "pres de la gare")),
    "es": (("el viejo capitan", "una maestra tranquila", "mi vecino", "la joven ingeniera", "la orquesta"),
           ("llevaba", "describia", "pintaba", "olvidaba", "reparaba", "descubria"),
           ("la ventana rota", "una carta larga", "el tren de la manana", "las noticias", "el puente"),
           ("antes del mediodia", "con mucho cuidado", "bajo la lluvia", "sin una palabra", "cerca de la estacion")),
    "it": (("il vecchio capitano", "una maestra tranquilla", "il mio vicino", "la giovane ingegnera", "l'orchestra"),
           ("portava", "descriveva", "dipingeva", "dimenticava", "riparava", "scopriva"),
           ("la finestra rotta", "una lunga lettera", "il treno del mattino", "le notizie", "il ponte"),
           ("prima di mezzogiorno", "con grande cura", "sotto la pioggia", "senza una parola", "vicino alla stazione")),
}
VOICES = (("en-us", "en"), ("en-gb", "en"), ("en-gb-scotland", "en"), ("en-gb-x-rp", "en"), ("en-029", "en"),
          ("de", "de"), ("fr-fr", "fr"), ("es", "es"), ("it", "it"))
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt4")


def _sentence(rng, lang: str) -> str:
    subj, verb, obj, adv = WORDS[lang]
    return f"{rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)} {rng.choice(adv)}."


def _room(rng, x_mono: np.ndarray) -> np.ndarray:
    """Mono speech into a generated stereo room: the direct sound and a decaying noise tail per ear."""
    fs = SAMPLE_RATE
    rt60_s = float(rng.uniform(0.15, 0.6))
    n = int(0.5 * fs)
    t = np.arange(n) / fs
    decay = np.exp(-6.91 * t / rt60_s)
    wet = 10 ** (rng.uniform(-20, -8) / 20)
    out = np.empty((x_mono.shape[0], 2))
    for c in range(2):
        ir = rng.standard_normal(n) * decay
        ir *= wet / np.sqrt(np.sum(ir ** 2))
        ir[0] += 1.0
        out[:, c] = fftconvolve(x_mono, ir)[: x_mono.shape[0]]
    return out


def speech_piece(seed: int, voices=VOICES) -> tuple[np.ndarray, str]:
    """Sentences spoken by espeak-ng in a generated room: (clip, description). voices:
    (espeak voice, sentence language) pairs to draw from."""
    rng = np.random.default_rng(seed)
    voice, lang = voices[rng.integers(len(voices))]
    variant = str(rng.choice(VARIANTS))
    speed = int(rng.integers(130, 200))
    pitch = int(rng.integers(25, 75))
    text = " ".join(_sentence(rng, lang) for _ in range(4))
    with tempfile.TemporaryDirectory(prefix="auracore-tts-") as tmp:
        wav = os.path.join(tmp, "speech.wav")
        cmd = ["espeak-ng", "-v", f"{voice}+{variant}", "-s", str(speed), "-p", str(pitch), "-w", wav, text]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(wav):
            raise SourceError(f"espeak-ng failed: {done.stderr.strip()[:200]}")
        x, fs = sf.read(wav, dtype="float64")
    if x.ndim > 1:
        x = x.mean(axis=1)
    g = math.gcd(SAMPLE_RATE, fs)
    x = resample_poly(x, SAMPLE_RATE // g, fs // g)
    lead = int(rng.uniform(0.0, 0.3) * SAMPLE_RATE)
    x = np.concatenate([np.zeros(lead), x])
    clip = _fit_length(_room(rng, x), CLIP_S)
    floor = 10 ** (rng.uniform(-75, -55) / 20) * rng.standard_normal(clip.shape)
    return clip + floor, f"espeak-ng {voice}+{variant} {speed} wpm pitch {pitch}: {text[:60]}..."


def _coloured(rng, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ f**exponent: (n,) unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    f[0] = f[1]
    spec *= f ** (exponent / 2.0)
    x = np.fft.irfft(spec, n)
    return x / np.sqrt(np.mean(x ** 2))


NOISE_KINDS = ("white", "pink", "brown", "band", "hum", "crackle", "rain", "wind", "fan")


def noise_piece(seed: int) -> tuple[np.ndarray, str]:
    """One of NOISE_KINDS, stereo with a drawn inter-channel correlation: (clip, description)."""
    rng = np.random.default_rng(seed)
    n = int(CLIP_S * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    kind = NOISE_KINDS[rng.integers(len(NOISE_KINDS))]
    corr = float(rng.uniform(0.0, 1.0))
    chans = []
    shared_seed = int(rng.integers(1 << 31))
    for c in range(2):
        own = np.random.default_rng([shared_seed, c])
        common = np.random.default_rng([shared_seed, 9])
        mix = lambda a, b: math.sqrt(corr) * a + math.sqrt(1 - corr) * b  # noqa: E731
        if kind in ("white", "pink", "brown"):
            e = {"white": 0.0, "pink": -1.0, "brown": -2.0}[kind]
            x = mix(_coloured(common, n, e), _coloured(own, n, e))
        elif kind == "band":
            lo = float(np.exp(rng.uniform(np.log(60), np.log(6000))))
            sos = butter(2, [lo, min(lo * rng.uniform(1.5, 4), 20000)], "band", fs=SAMPLE_RATE, output="sos")
            x = sosfilt(sos, mix(common.standard_normal(n), own.standard_normal(n)))
        elif kind == "hum":
            f0 = 50.0 if rng.random() < 0.5 else 60.0
            x = sum(rng.uniform(0.1, 1.0) / h * np.sin(2 * np.pi * f0 * h * t + rng.random() * 6.28) for h in range(1, 8))
            x = x + 0.05 * own.standard_normal(n)
        elif kind == "crackle":
            x = 0.02 * mix(_coloured(common, n, -1.0), _coloured(own, n, -1.0))
            idx = own.integers(0, n, size=int(rng.uniform(20, 200) * CLIP_S))
            x[idx] += own.standard_normal(len(idx)) * 0.8
        elif kind == "rain":
            drops = np.zeros(n)
            idx = own.integers(0, n, size=int(rng.uniform(500, 4000) * CLIP_S))
            drops[idx] = own.standard_normal(len(idx))
            x = sosfilt(butter(2, rng.uniform(1500, 5000), "high", fs=SAMPLE_RATE, output="sos"), drops)
            x = x + 0.2 * _coloured(own, n, -1.0) * np.std(x)
        elif kind == "wind":
            gust = 1.0 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.random() * 6.28)
            x = sosfilt(butter(2, rng.uniform(200, 800), "low", fs=SAMPLE_RATE, output="sos"),
                        mix(common.standard_normal(n), own.standard_normal(n))) * gust
        else:  # fan: pink noise with a blade tone and its harmonics
            f0 = rng.uniform(80, 300)
            x = _coloured(own, n, -1.0) + sum(0.3 / h * np.sin(2 * np.pi * f0 * h * t) for h in range(1, 4))
        chans.append(np.asarray(x, dtype=np.float64))
    return np.stack(chans, axis=1), f"{kind} noise, correlation {corr:.2f}"


SILENCE_KINDS = ("digital", "dither", "room", "hum")


def silence_piece(seed: int) -> tuple[np.ndarray, str]:
    """Digital silence, dither, room tone or hum, all under -60 dBFS RMS: (clip, description)."""
    rng = np.random.default_rng(seed)
    n = int(CLIP_S * SAMPLE_RATE)
    kind = SILENCE_KINDS[rng.integers(len(SILENCE_KINDS))]
    if kind == "digital":
        return np.zeros((n, 2)), "digital silence"
    level_db = float(rng.uniform(-100, -65))
    if kind == "dither":
        x = rng.uniform(-1, 1, (n, 2)) + rng.uniform(-1, 1, (n, 2))
    elif kind == "room":
        x = np.stack([_coloured(rng, n, -1.5) for _ in range(2)], axis=1)
    else:
        t = np.arange(n) / SAMPLE_RATE
        x = np.sin(2 * np.pi * 50.0 * t)[:, None] * np.ones((1, 2)) + 0.1 * rng.standard_normal((n, 2))
    x = x / np.sqrt(np.mean(x ** 2)) * 10 ** (level_db / 20)
    return x, f"{kind} at {level_db:.0f} dBFS RMS"


def normalise(x: np.ndarray, target_lufs: float = REFERENCE_LUFS) -> np.ndarray:
    """x scaled to target_lufs integrated loudness (unchanged when it has no gated loudness)."""
    lufs = loudness_lufs(x)
    if not np.isfinite(lufs):
        return x
    return x * 10 ** ((target_lufs - lufs) / 20)


def make_clean(kind: str, ref: str, seed: int) -> tuple[np.ndarray, str]:
    """The clean clip of one piece: kind is one of CLASSES (band with ref '' is electronic).
    Returns ((frames, 2) float32-exact float64 at REFERENCE_LUFS, or silence as made; description)."""
    if kind == "acoustic":
        x, desc = acoustic_piece(ref, seed)
    elif kind == "band":
        x, desc = band_piece(ref, seed) if ref else electronic_piece(seed)
    elif kind == "speech":
        x, desc = speech_piece(seed)
    elif kind == "noise":
        x, desc = noise_piece(seed)
    elif kind == "silence":
        x, desc = silence_piece(seed)
    else:
        raise ValueError(f"unknown class {kind!r}; expected one of {CLASSES}")
    if kind != "silence":
        x = normalise(x)
    # the stored clips are float32: round once here so every later use sees the same samples
    return x.astype(np.float32).astype(np.float64), desc
