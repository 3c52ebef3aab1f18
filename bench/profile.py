"""Accuracy and speed of ``auracore profile`` on material made here with exact answers, beside librosa (and essentia).

The set (rendered once into --work-dir, reused after):
- generated pieces: MIDI written here with a known tempo map (constant, a step at a section
  boundary, or a ramp), metre (4/4, 3/4, 2/4, 6/8), key, one chord per bar from a per-label
  progression (maj, min, 7, maj7, min7) and a section plan (A B A C ...), each label with its
  own instruments and density; drums, bass, chords and a melody; rendered by FluidSynth
  with FluidR3_GM;
- Bach chorales from music21's corpus (key from the key signature and the final bass
  note, tempo set here, beats on the quarter notes);
- reverb tails: dry bursts convolved with exponentially decaying noise of known RT60;
- sidechain pumping: a rendered pad ducked on every beat by a known depth.

Figures: tempo Acc1 (within 4 %) and Acc2 (also at x2, x1/2, x3, x1/3), beat F-measure
(+-70 ms, mir_eval), downbeat F, metre accuracy, key MIREX weighted score, chord accuracy
(root, and root + quality, mir_eval ``majmin``-style on our five qualities, by duration),
boundary hit rates HR.5F and HR3F (mir_eval), section count error, RT60 relative error,
sidechain depth error (dB), and the speed (x real time, one thread). Peers in the same
run on the same files: librosa's beat tracker and tempo (``librosa.beat.beat_track``),
and essentia's RhythmExtractor2013 and KeyExtractor where essentia imports.

    nice -n 10 .venv/bin/python bench/profile.py [--json] [--pieces N] [--work-dir DIR]
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
RATE = 44100
PITCHES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
# (degree offset in semitones, quality) of diatonic chords
MAJOR_CHORDS = [(0, "maj"), (2, "min7"), (4, "min"), (5, "maj7"), (7, "7"), (9, "min"), (5, "maj"), (7, "maj"),
                (9, "min7"), (2, "min")]
MINOR_CHORDS = [(0, "min"), (5, "min"), (7, "7"), (8, "maj"), (3, "maj"), (10, "maj"), (8, "maj7"), (0, "min7"),
                (5, "min7"), (7, "maj")]
INTERVALS = {"maj": (0, 4, 7), "min": (0, 3, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10)}
PLANS = ["A B A B", "A A B A", "A B C B A", "A B A C A", "A B C A", "A B B A C"]
METERS = [("4/4", 4, 1), ("4/4", 4, 1), ("3/4", 3, 1), ("6/8", 2, 3), ("2/4", 2, 1), ("4/4", 4, 1)]
# per label: (chord program, lead program, bass program, density)
TIMBRES = [(0, 73, 33, 1), (48, 65, 34, 2), (19, 81, 38, 2), (4, 56, 32, 1)]


# ---------------------------------------------------------------- generated pieces
def make_piece(seed: int, bars_per_section: int = 8) -> dict:
    """A piece: notes (program, pitch, start_s, end_s, velocity, drum) and the exact answers."""
    rng = np.random.default_rng(seed)
    sig, bpb, sub = METERS[seed % len(METERS)]
    if sub == 3:
        tempo0 = float(rng.uniform(55, 95))
    else:
        tempo0 = float(rng.uniform(75, 165))
    tonic = int(rng.integers(12))
    minor = bool(rng.integers(2))
    plan = PLANS[seed % len(PLANS)].split()
    n_bars = bars_per_section * len(plan)
    n_beats = n_bars * bpb
    kind = ["const", "step", "const", "ramp"][seed % 4]
    tempo_at = np.full(n_beats, tempo0)
    if kind == "step":
        at = bars_per_section * bpb * (len(plan) // 2)
        tempo_at[at:] = tempo0 * float(rng.choice([0.85, 1.15, 1.2]))
    elif kind == "ramp":
        tempo_at = tempo0 * np.linspace(1.0, float(rng.choice([0.9, 1.1])), n_beats)
    beat_t = np.concatenate(([0.0], np.cumsum(60.0 / tempo_at)))  # n_beats + 1 edges
    pool = MINOR_CHORDS if minor else MAJOR_CHORDS
    progs = {}
    for lab in sorted(set(plan)):
        idx = rng.choice(len(pool), 4, replace=False)
        if lab == "A":
            idx[0] = 0  # the tonic opens the first section
        progs[lab] = [pool[i] for i in idx]
    timbre = {lab: TIMBRES[(i + seed) % len(TIMBRES)] for i, lab in enumerate(sorted(set(plan)))}
    scale = MINOR_SCALE if minor else MAJOR_SCALE
    notes, chords, sections = [], [], []
    bt = lambda b: float(np.interp(b, np.arange(n_beats + 1), beat_t))
    for s, lab in enumerate(plan):
        cp, lp, bp, dens = timbre[lab]
        sections.append((bt(s * bars_per_section * bpb), bt((s + 1) * bars_per_section * bpb), lab))
        for bar in range(bars_per_section):
            b0 = (s * bars_per_section + bar) * bpb
            off, q = progs[lab][bar % 4]
            root = (tonic + off) % 12
            chords.append((bt(b0), bt(b0 + bpb), f"{PITCHES[root]}:{q}"))
            chord_pcs = [(root + i) % 12 for i in INTERVALS[q]]
            # chord voicing around C4, held for the bar (re-struck per beat in dense sections)
            voicing = [48 + ((root - 0) % 12) + i for i in INTERVALS[q]]
            voicing = [v if v >= 52 else v + 12 for v in voicing]
            hits = range(bpb) if dens == 2 else [0]
            for h in hits:
                end = b0 + bpb if dens == 1 else b0 + h + 0.9
                for v in voicing:
                    notes.append((cp, v, bt(b0 + h), bt(end) - 0.02, 70 if h else 80, False))
            # bass: root on every beat (an octave up on off beats in dense sections)
            for h in range(bpb):
                pitch = 36 + root if h % 2 == 0 or dens == 1 else 48 + root
                notes.append((bp, pitch, bt(b0 + h), bt(b0 + h + 0.8), 95 if h == 0 else 80, False))
            # melody: chord tones on beats, scale steps between (subdivision notes)
            for h in range(bpb * sub):
                if rng.random() < 0.25:
                    continue
                pos = b0 + h / sub
                if h % sub == 0:
                    pc = int(rng.choice(chord_pcs))
                else:
                    pc = (tonic + int(rng.choice(scale))) % 12
                pitch = 72 + pc if pc < 7 else 60 + pc
                notes.append((lp, pitch, bt(pos), bt(pos + 1.0 / sub) - 0.01, 75, False))
            # drums: kick on the downbeat (and the middle of 4/4), snare on back beats, hats on subdivisions
            for h in range(bpb):
                pos = b0 + h
                if h == 0 or (bpb == 4 and h == 2):
                    notes.append((0, 36, bt(pos), bt(pos) + 0.1, 110 if h == 0 else 95, True))
                if (bpb == 4 and h in (1, 3)) or (bpb == 2 and h == 1) or (bpb == 3 and h in (1, 2)):
                    notes.append((0, 38, bt(pos), bt(pos) + 0.1, 90 if bpb != 3 else 60, True))
                for k in range(sub if sub == 3 else 2):
                    notes.append((0, 42, bt(pos + k / (sub if sub == 3 else 2)), bt(pos) + 0.05,
                                  70 if k == 0 else 50, True))
    dom = _dominant_tempo(tempo_at)
    return {"name": f"gen{seed:02d}", "notes": notes, "tempo_bpm": dom, "beats_s": beat_t[:-1].tolist(),
            "downbeats_s": beat_t[:-1][::bpb].tolist(), "time_signature": sig,
            "key": f"{PITCHES[tonic]} {'minor' if minor else 'major'}", "chords": chords, "sections": sections,
            "duration_s": float(beat_t[-1]) + 2.0, "tempo_map": kind}


def _dominant_tempo(tempo_at: np.ndarray) -> float:
    """The tempo held longest (by time), for Acc1/Acc2 on tempo maps."""
    dur = 60.0 / tempo_at
    vals = np.round(tempo_at, 1)
    best, best_t = None, -1.0
    for v in np.unique(vals):
        t = dur[vals == v].sum()
        if t > best_t:
            best, best_t = float(v), t
    if tempo_at.std() / tempo_at.mean() > 0.01 and best_t < 0.3 * dur.sum():  # a ramp: the median
        return float(np.median(tempo_at))
    return best


def write_midi(notes, path: str) -> None:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    insts = {}
    for prog, pitch, a, b, vel, drum in notes:
        key = ("drums",) if drum else (prog,)
        if key not in insts:
            insts[key] = pretty_midi.Instrument(program=0 if drum else prog, is_drum=drum)
            pm.instruments.append(insts[key])
        insts[key].notes.append(pretty_midi.Note(velocity=int(vel), pitch=int(pitch), start=float(a), end=float(max(b, a + 0.02))))
    pm.write(path)


def render(mid: str, wav: str) -> None:
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(RATE), "-F", wav, SF2, mid],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def chorales(count: int) -> list[dict]:
    """Bach chorales with key, beats and downbeats from the score at a set tempo."""
    from music21 import corpus, tempo as m21tempo

    out = []
    paths = [p for p in corpus.getComposer("bach") if str(p).endswith(".mxl")]
    paths.sort(key=str)
    rng = np.random.default_rng(7)
    for p in paths[: count * 4]:
        if len(out) >= count:
            break
        s = corpus.parse(p)
        parts = s.parts
        if len(parts) != 4:
            continue
        ks = s.flatten().getElementsByClass("KeySignature")
        ts = s.flatten().getElementsByClass("TimeSignature")
        if not ks or not ts or ts[0].ratioString not in ("4/4", "3/4"):
            continue
        bass = [n for n in parts[-1].flatten().notes]
        if not bass:
            continue
        final_pc = bass[-1].pitch.pitchClass
        major = ks[0].asKey("major")
        minor = ks[0].asKey("minor")
        if final_pc == major.tonic.pitchClass:
            key = f"{PITCHES[major.tonic.pitchClass]} major"
        elif final_pc == minor.tonic.pitchClass:
            key = f"{PITCHES[minor.tonic.pitchClass]} minor"
        else:
            continue  # modal endings: no exact answer
        bpm = float(rng.uniform(70, 110))
        sec_per_q = 60.0 / bpm
        notes = []
        for i, part in enumerate(parts):
            for n in part.flatten().notes:
                for pitch in n.pitches:
                    a = float(n.getOffsetInHierarchy(part)) * sec_per_q
                    b = a + float(n.quarterLength) * sec_per_q
                    notes.append((52 if i < 2 else 48 if i == 2 else 32, pitch.midi, a, b - 0.01, 80, False))
        end_q = float(parts[0].highestTime)
        first = parts[0].getElementsByClass("Measure")
        pickup = float(first[0].duration.quarterLength) if first and first[0].paddingLeft else 0.0
        bar_q = ts[0].barDuration.quarterLength
        beats = (np.arange(0.0, end_q, 1.0) * sec_per_q).tolist()
        downs = (np.arange(pickup, end_q, bar_q) * sec_per_q).tolist()
        out.append({"name": f"bach-{os.path.basename(str(p)).split('.')[0]}", "notes": notes, "tempo_bpm": bpm,
                    "beats_s": beats, "downbeats_s": downs, "time_signature": ts[0].ratioString, "key": key,
                    "chords": None, "sections": None, "duration_s": end_q * sec_per_q + 2.0, "tempo_map": "const"})
    return out


def build_set(work: str, pieces: int, n_chorales: int) -> list[dict]:
    os.makedirs(work, exist_ok=True)
    items = [make_piece(s) for s in range(pieces)] + chorales(n_chorales)
    for it in items:
        wav = os.path.join(work, it["name"] + ".wav")
        if not os.path.exists(wav):
            mid = os.path.join(work, it["name"] + ".mid")
            write_midi(it["notes"], mid)
            render(mid, wav)
        it["wav"] = wav
        del it["notes"]
    return items


# ---------------------------------------------------------------- effect sets
def reverb_set(rng) -> list[tuple[np.ndarray, float]]:
    """(signal (frames, 2), true RT60 s): bursts and plucks through exponential-noise reverb."""
    from scipy.signal import fftconvolve

    out = []
    for rt in (0.3, 0.5, 0.8, 1.2, 1.8, 2.5):
        n = int(RATE * (rt * 1.6 + 0.3))
        dry = np.zeros(int(RATE * (6 * (rt * 1.6 + 0.4))))
        for k in range(6):
            a = int(k * RATE * (rt * 1.6 + 0.4))
            m = int(0.08 * RATE)
            dry[a:a + m] = rng.standard_normal(m) * np.hanning(m)
        t = np.arange(n) / RATE
        ir = rng.standard_normal((n, 2)) * (10.0 ** (-3.0 * t / rt))[:, None]
        ir[0] += 1.0
        wet = np.stack([fftconvolve(dry, ir[:, c])[:dry.size] for c in range(2)], axis=1)
        out.append((0.3 * wet / np.abs(wet).max(), rt))
    return out


def sidechain_set(work: str, rng) -> list[tuple[np.ndarray, float, float, np.ndarray]]:
    """(pumped pad (frames, 2), depth dB, tempo BPM, beat times s) for known depths."""
    import soundfile as sf

    out = []
    for i, depth in enumerate((3.0, 6.0, 9.0, 12.0)):
        bpm = float(rng.uniform(100, 140))
        dur = 24.0
        mid = os.path.join(work, f"pad{i}.mid")
        wav = os.path.join(work, f"pad{i}.wav")
        if not os.path.exists(wav):
            root = int(rng.integers(48, 60))
            notes = [(89, root + iv, 0.0, dur, 90, False) for iv in (0, 4, 7, 12)]
            write_midi(notes, mid)
            render(mid, wav)
        pad, _ = sf.read(wav, always_2d=True)
        pad = pad[: int(dur * RATE)]
        t = np.arange(pad.shape[0]) / RATE
        period = 60.0 / bpm
        ph = (t % period) / period
        # the gain: 5 ms down to -depth, back up to 0 dB over 60 % of the beat (squared curve)
        g_db = np.where(ph < 0.6, -depth * (1.0 - np.clip(ph / 0.6, 0, 1)) ** 2, 0.0)
        ramp = np.clip((t % period) / 0.005, 0.0, 1.0)
        g_db = g_db * ramp
        beats = np.arange(0.0, dur, period)
        out.append((pad * (10.0 ** (g_db / 20.0))[:, None], depth, bpm, beats))
    return out


# ---------------------------------------------------------------- scoring
def acc12(est, ref):
    if est is None or not ref:
        return 0.0, 0.0
    a1 = abs(est - ref) <= 0.04 * ref
    a2 = any(abs(est - ref * f) <= 0.04 * ref * f for f in (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0))
    return float(a1), float(a2)


def beat_f(est, ref):
    import mir_eval

    est = np.asarray(est, dtype=float)
    ref = np.asarray(ref, dtype=float)
    if est.size == 0 or ref.size == 0:
        return 0.0
    return float(mir_eval.beat.f_measure(ref, est, f_measure_threshold=0.07))


def key_weighted(est, ref):
    if est is None:
        return 0.0
    idx = {p: i for i, p in enumerate(PITCHES)}
    et, em = est.split()
    rt, rm = ref.split()
    e, r = idx[et], idx[rt]
    if est == ref:
        return 1.0
    if em == rm and (e - r) % 12 in (5, 7):
        return 0.5
    if em != rm:
        if rm == "major" and em == "minor" and (e - r) % 12 == 9:
            return 0.3
        if rm == "minor" and em == "major" and (e - r) % 12 == 3:
            return 0.3
        if e == r:
            return 0.2
    return 0.0


def chord_accuracy(est, ref, duration):
    """(root, root+quality) accuracy by time over the reference's span, 10 ms grid."""
    idx = {p: i for i, p in enumerate(PITCHES)}
    t = np.arange(ref[0][0], ref[-1][1], 0.01)

    def lab_at(chs, tt):
        starts = np.array([c[0] for c in chs])
        j = np.searchsorted(starts, tt, side="right") - 1
        return [chs[k][2] if k >= 0 and tt[i] < chs[k][1] else "N" for i, k in enumerate(j)]

    r = lab_at(ref, t)
    e = lab_at(list(est), t) if est else ["N"] * t.size
    root = qual = 0
    for a, b in zip(e, r):
        if a == "N" or b == "N":
            continue
        ra, qa = a.split(":")
        rb, qb = b.split(":")
        if idx[ra] == idx[rb]:
            root += 1
            qual += qa == qb
    return root / t.size, qual / t.size


def boundary_hr(est_sections, ref_sections):
    import mir_eval

    ref = np.array([[a, b] for a, b, _ in ref_sections])
    est = np.array([[a, b] for a, b, _ in est_sections])
    est[-1, 1] = ref[-1, 1] = max(est[-1, 1], ref[-1, 1])
    est[0, 0] = ref[0, 0] = 0.0
    out = []
    for w in (0.5, 3.0):
        p, r, f = mir_eval.segment.detection(ref, est, window=w, trim=True)
        out.append(f)
    return out


# ---------------------------------------------------------------- peers
def librosa_peer(x, sr):
    import librosa

    y = x.mean(axis=1).astype(np.float32)
    tempo, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
    return float(np.atleast_1d(tempo)[0]), beats


def essentia_peer(x, sr):
    try:
        import essentia.standard as es
    except Exception:
        return None
    y = x.mean(axis=1).astype(np.float32)
    if sr != 44100:
        return None
    bpm, beats, _, _, _ = es.RhythmExtractor2013(method="multifeature")(y)
    key, scale, strength = es.KeyExtractor()(y)
    return float(bpm), np.asarray(beats), f"{_norm_pitch(key)} {scale}"


def _norm_pitch(p):
    enh = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb"}
    return enh.get(p, p)


# ---------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--pieces", type=int, default=40)
    ap.add_argument("--chorales", type=int, default=12)
    ap.add_argument("--work-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "auracore-bench-profile"))
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from auracore.offline.audio_io import load
    from auracore.offline.profile import profile, rt60
    from auracore.offline.profile.elements import _db, envelope, sidechain

    items = build_set(args.work_dir, args.pieces, args.chorales)
    rows = []
    audio_s = 0.0
    cpu_s = 0.0
    for it in items:
        x, sr = load(it["wav"])
        t0 = time.process_time()
        p = profile(x, sr)
        cpu_s += time.process_time() - t0
        audio_s += x.shape[0] / sr
        r = {"name": it["name"], "ref_tempo": it["tempo_bpm"], "tempo": p.tempo_bpm, "sig_ref": it["time_signature"],
             "sig": p.time_signature, "key_ref": it["key"], "key": p.key}
        r["acc1"], r["acc2"] = acc12(p.tempo_bpm, it["tempo_bpm"])
        r["beat_f"] = beat_f(p.beats_s, it["beats_s"])
        r["downbeat_f"] = beat_f(p.downbeats_s, it["downbeats_s"])
        r["meter_ok"] = float(p.time_signature == it["time_signature"])
        r["key_w"] = key_weighted(p.key, it["key"])
        if it["chords"]:
            r["chord_root"], r["chord_quality"] = chord_accuracy(p.chords, it["chords"], it["duration_s"])
        if it["sections"]:
            est = [(s.start_s, s.end_s, s.label) for s in p.sections]
            r["hr05"], r["hr3"] = boundary_hr(est, it["sections"])
            r["sections_ref"] = len(it["sections"])
            r["sections"] = len(est)
        if not args.no_peers:
            lt, lb = librosa_peer(x, sr)
            r["librosa_tempo"] = lt
            r["librosa_acc1"], r["librosa_acc2"] = acc12(lt, it["tempo_bpm"])
            r["librosa_beat_f"] = beat_f(lb, it["beats_s"])
            ess = essentia_peer(x, sr)
            if ess is not None:
                r["essentia_acc1"], r["essentia_acc2"] = acc12(ess[0], it["tempo_bpm"])
                r["essentia_beat_f"] = beat_f(ess[1], it["beats_s"])
                r["essentia_key_w"] = key_weighted(ess[2], it["key"])
        rows.append(r)
        if not args.json:
            print(f"{it['name']:14s} tempo {r['ref_tempo']:6.1f} -> {p.tempo_bpm or 0:6.1f}  beatF {r['beat_f']:.2f}"
                  f"  sig {it['time_signature']}->{p.time_signature}  key {it['key']} -> {p.key}"
                  + (f"  chords {r['chord_root']:.2f}/{r['chord_quality']:.2f}" if "chord_root" in r else "")
                  + (f"  HR3 {r['hr3']:.2f} ({r['sections']}/{r['sections_ref']})" if "hr3" in r else "")
                  + (f"  librosa {r['librosa_tempo']:.1f} F {r['librosa_beat_f']:.2f}" if "librosa_tempo" in r else ""),
                  file=sys.stderr, flush=True)
    rng = np.random.default_rng(3)
    rt_rows = []
    for sig, rt in reverb_set(rng):
        est = rt60(sig, RATE)
        rt_rows.append({"rt60_s": rt, "est_s": est, "rel_err": None if est is None else abs(est - rt) / rt})
    sc_rows = []
    for sig, depth, bpm, beats in sidechain_set(args.work_dir, rng):
        env, fs = envelope(sig, RATE)
        d, rate = sidechain(_db(env), fs, beats)
        sc_rows.append({"depth_db": depth, "est_db": d, "rate_hz": bpm / 60.0, "est_rate_hz": rate})

    def mean(key, rs=rows):
        v = [r[key] for r in rs if key in r and r[key] is not None]
        return float(np.mean(v)) if v else None

    figures = {
        "pieces": len(rows),
        "tempo_acc1": mean("acc1"), "tempo_acc2": mean("acc2"), "beat_f": mean("beat_f"),
        "downbeat_f": mean("downbeat_f"), "meter_accuracy": mean("meter_ok"), "key_weighted": mean("key_w"),
        "chord_root": mean("chord_root"), "chord_root_quality": mean("chord_quality"),
        "boundary_hr05f": mean("hr05"), "boundary_hr3f": mean("hr3"),
        "rt60_mean_rel_err": float(np.mean([r["rel_err"] for r in rt_rows if r["rel_err"] is not None]))
        if any(r["rel_err"] is not None for r in rt_rows) else None,
        "rt60_max_rel_err": max((r["rel_err"] for r in rt_rows if r["rel_err"] is not None), default=None),
        "rt60_found": sum(r["est_s"] is not None for r in rt_rows), "rt60_cases": len(rt_rows),
        "sidechain_depth_mean_abs_err_db": float(np.mean([abs(r["est_db"] - r["depth_db"]) for r in sc_rows])),
        "sidechain_rate_ok": float(np.mean([abs(r["est_rate_hz"] - r["rate_hz"]) < 0.04 * r["rate_hz"] for r in sc_rows])),
        "speed_x_realtime": audio_s / cpu_s if cpu_s else None,
        "librosa_tempo_acc1": mean("librosa_acc1"), "librosa_tempo_acc2": mean("librosa_acc2"),
        "librosa_beat_f": mean("librosa_beat_f"),
        "essentia_tempo_acc1": mean("essentia_acc1"), "essentia_tempo_acc2": mean("essentia_acc2"),
        "essentia_beat_f": mean("essentia_beat_f"), "essentia_key_weighted": mean("essentia_key_w"),
    }
    if args.json:
        print(json.dumps({"figures": figures, "pieces": rows, "rt60": rt_rows, "sidechain": sc_rows}, indent=1))
        return 0
    print(f"\n{'figure':28s} {'auracore':>9s} {'librosa':>9s} {'essentia':>9s} {'ratio a/l':>9s}")
    pairs = [("tempo Acc1", "tempo_acc1"), ("tempo Acc2", "tempo_acc2"), ("beat F", "beat_f")]
    for label, k in pairs:
        a, l, e = figures[k], figures.get("librosa_" + k), figures.get("essentia_" + k)
        print(f"{label:28s} {_f(a):>9s} {_f(l):>9s} {_f(e):>9s} {_f(a / l if a is not None and l else None):>9s}")
    print(f"{'key weighted':28s} {_f(figures['key_weighted']):>9s} {'':>9s} {_f(figures['essentia_key_weighted']):>9s}")
    for k in ("downbeat_f", "meter_accuracy", "chord_root", "chord_root_quality", "boundary_hr05f", "boundary_hr3f",
              "rt60_mean_rel_err", "rt60_max_rel_err", "sidechain_depth_mean_abs_err_db", "sidechain_rate_ok",
              "speed_x_realtime"):
        print(f"{k:28s} {_f(figures[k]):>9s}")
    print(f"rt60 found on {figures['rt60_found']}/{figures['rt60_cases']} tails: "
          + ", ".join(f"{r['rt60_s']:.1f}->{_f(r['est_s'])}" for r in rt_rows))
    print("sidechain: " + ", ".join(f"{r['depth_db']:.0f}->{_f(r['est_db'])} dB" for r in sc_rows))
    return 0


def _f(v):
    return "n/a" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    sys.exit(main())
