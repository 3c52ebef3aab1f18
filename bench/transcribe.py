"""Benchmark: ``auracore.transcribe`` against basic-pitch's own ``predict`` on rendered MIDI.

References with exact notes are made here: random MIDI (seeded) rendered through FluidSynth
with /usr/share/sounds/sf2/FluidR3_GM.sf2 (reverb and chorus off), in sets
- ``mono``: one monophonic line per clip, several GM programs,
- ``poly``: chords under a melody, several GM programs,
- ``poly+drums``: the same with a GM drum kit mixed in (the pitched notes are scored),
- ``drums``: drum kit alone (onsets scored, and the kit pieces by class),
- ``bass+drums``: a bass line (GM 32-38) and chords over the kit, drums transcribed from the
  mix and scored as ``drums`` (a bass note's onset must not read as a kick),
- ``long``: one 3-minute polyphonic clip (speed and memory).
The bench seeds (0..) are kept apart from the tuning seeds (1000..) used while choosing the
decoder's defaults (``--tuning`` scores those instead).

Scores are mir_eval's note precision, recall and F1 with 50 ms onset tolerance, onset-only
and with offsets (offset within 20 % of the note or 50 ms), pooled over a set's clips (sums
of matches over sums of notes). Speed: wall time per clip from the audio file on disk to
notes (reading included, both sides), and the real-time factor (audio seconds / wall
seconds), best of --repeat runs taken alternately. Both run in this process on the same
files, the peer with its ONNX backend on the same model file. Usage:
    python bench/transcribe.py [--clips 4] [--clip-s 20] [--long-s 180] [--repeat 3] [--tuning] [--json]
"""

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
RENDER_RATE = 44100
MONO_PROGRAMS = (0, 24, 40, 56, 65, 71, 73, 33)  # piano, nylon guitar, violin, trumpet, alto sax, clarinet, flute, bass
POLY_PROGRAMS = (0, 4, 19, 48, 46, 11)
BASS_PROGRAMS = (33, 34, 38, 32)  # fingered, picked, synth, acoustic bass
DRUM_SETS = ("drums", "bass+drums")  # the sets whose drums are scored  # piano, e-piano, organ, strings, harp, vibraphone
# GM drum notes by class, as the bench scores them
DRUM_CLASSES = {"kick": (35, 36), "snare": (38, 40, 37), "closed_hat": (42, 44), "open_hat": (46,),
                "tom": (41, 43, 45, 47, 48, 50), "cymbal": (49, 51, 52, 55, 57, 59)}


def drum_class(pitch: int) -> str:
    """The class of a GM drum note (None for notes outside the classes)."""
    return next((c for c, notes in DRUM_CLASSES.items() if pitch in notes), None)


def random_midi(kind: str, seed: int, duration_s: float, program: int):
    """A pretty_midi.PrettyMIDI of one kind ("mono", "poly", "poly+drums", "drums") at a seeded
    random tempo, every note inside duration_s."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    bpm = float(rng.uniform(80, 150))
    beat = 60.0 / bpm
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    if kind in ("mono", "poly", "poly+drums", "bass+drums"):
        lead = pretty_midi.Instrument(program=program)
        lo, hi = (36, 60) if 32 <= program <= 39 else (55, 84)  # the GM bass family: a bass line
        t, pitch = 0.25, int(rng.integers(lo + 6, hi - 6))
        while t < duration_s - 0.5:
            dur = beat * float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]))
            pitch = int(np.clip(pitch + rng.integers(-5, 6), lo, hi))
            end = min(t + dur * float(rng.uniform(0.6, 0.95)), duration_s - 0.1)
            lead.notes.append(pretty_midi.Note(int(rng.integers(60, 120)), pitch, t, end))
            t += dur + (beat * 0.5 if rng.random() < 0.15 else 0.0)
        pm.instruments.append(lead)
    if kind in ("poly", "poly+drums", "bass+drums"):
        pad = pretty_midi.Instrument(program=int(rng.choice(POLY_PROGRAMS)))
        t = 0.0
        while t < duration_s - 0.5:
            root = int(rng.integers(43, 55))
            dur = beat * float(rng.choice([2.0, 4.0]))
            for off in ((0, 4, 7), (0, 3, 7), (0, 4, 7, 11), (0, 3, 7, 10))[int(rng.integers(0, 4))]:
                pad.notes.append(pretty_midi.Note(int(rng.integers(50, 100)), root + off, t,
                                                  min(t + dur * 0.9, duration_s - 0.1)))
            t += dur
        pm.instruments.append(pad)
    if kind in ("drums", "poly+drums", "bass+drums"):
        kit = pretty_midi.Instrument(program=0, is_drum=True)
        step = beat / 2.0
        n_steps = int((duration_s - 0.6) / step)
        open_every = int(rng.integers(3, 8))
        for i in range(n_steps):
            t = 0.1 + i * step
            hits = []
            if i % 8 in (0, 3) or (i % 8 == 5 and rng.random() < 0.5):
                hits.append(36)
            if i % 4 == 2:
                hits.append(38)
            if i % open_every == open_every - 1:
                hits.append(46)
            elif rng.random() < 0.9:
                hits.append(42)
            if i % 16 == 0 and i > 0:
                hits.append(49)
            if i % 16 in (13, 14, 15) and rng.random() < 0.7:
                hits.append(int(rng.choice((41, 45, 48))))
            if rng.random() < 0.05:
                hits.append(51)
            for h in hits:
                kit.notes.append(pretty_midi.Note(int(rng.integers(70, 120)), h, t, t + 0.1))
        pm.instruments.append(kit)
    return pm


def render(pm, wav_path: str) -> None:
    """Render a PrettyMIDI through FluidSynth (FluidR3_GM, no reverb or chorus) to wav_path."""
    with tempfile.TemporaryDirectory() as tmp:
        mid = os.path.join(tmp, "in.mid")
        pm.write(mid)
        done = subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r",
                               str(RENDER_RATE), "-F", wav_path, SOUNDFONT, mid], capture_output=True, text=True)
        if done.returncode != 0 or not os.path.isfile(wav_path):
            raise RuntimeError(f"fluidsynth failed: {done.stderr.strip()[:200]}")


def reference_notes(pm, drums: bool = False) -> list[tuple[float, float, int]]:
    """(onset_s, offset_s, pitch) of the pitched (or the drum) notes of a PrettyMIDI."""
    return sorted((n.start, n.end, n.pitch) for inst in pm.instruments if inst.is_drum == drums for n in inst.notes)


def make_clip(folder: str, kind: str, seed: int, duration_s: float, program: int) -> dict:
    """Render one reference clip into folder: {"wav", "notes", "drums", "kind", "program", "seed"}."""
    pm = random_midi(kind, seed, duration_s, program)
    wav = os.path.join(folder, f"{kind}-{seed}-{program}.wav")
    render(pm, wav)
    return {"wav": wav, "notes": reference_notes(pm), "drums": reference_notes(pm, drums=True),
            "kind": kind, "program": program, "seed": seed}


def note_scores(ref, est) -> dict:
    """Match counts for onset-only and onset+offset note scoring (mir_eval, 50 ms)."""
    import mir_eval

    out = {"ref": len(ref), "est": len(est)}
    if not ref or not est:
        out.update(onset_matches=0, offset_matches=0)
        return out
    ri = np.array([[a, max(b, a + 1e-3)] for a, b, _ in ref])
    rp = mir_eval.util.midi_to_hz(np.array([p for _, _, p in ref], dtype=float))
    ei = np.array([[a, max(b, a + 1e-3)] for a, b, _ in est])
    ep = mir_eval.util.midi_to_hz(np.array([p for _, _, p in est], dtype=float))
    on = mir_eval.transcription.match_notes(ri, rp, ei, ep, onset_tolerance=0.05, offset_ratio=None)
    off = mir_eval.transcription.match_notes(ri, rp, ei, ep, onset_tolerance=0.05, offset_ratio=0.2,
                                             offset_min_tolerance=0.05)
    out.update(onset_matches=len(on), offset_matches=len(off))
    return out


def drum_scores(ref, est) -> dict:
    """Drum onsets: class-blind onset matches (unique times, 50 ms, mir_eval.onset) and, per
    class, hits matched to a hit of the same class within 50 ms."""
    import mir_eval

    def times(notes):
        t = np.unique(np.round([n[0] for n in notes], 4))
        keep = np.concatenate(([True], np.diff(t) > 0.03)) if t.size else t.astype(bool)
        return t[keep]

    rt, et = times(ref), times(est)
    out = {"ref_onsets": int(rt.size), "est_onsets": int(et.size),
           "onset_matches": int(len(mir_eval.util.match_events(rt, et, 0.05))) if rt.size and et.size else 0}
    for cls in DRUM_CLASSES:
        r = np.array(sorted(n[0] for n in ref if drum_class(n[2]) == cls))
        e = np.array(sorted(n[0] for n in est if drum_class(n[2]) == cls))
        m = len(mir_eval.util.match_events(r, e, 0.05)) if r.size and e.size else 0
        out[cls] = {"ref": int(r.size), "est": int(e.size), "matches": m}
    return out


def prf(matches: int, n_ref: int, n_est: int) -> tuple[float, float, float]:
    p = matches / n_est if n_est else 0.0
    r = matches / n_ref if n_ref else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def run_ours(wav: str, stem_type: str):
    """Our transcription of a file on disk: ((onset, offset, pitch) list, seconds)."""
    from auracore.offline.audio_io import open_input, read_blocks
    from auracore.offline.transcribe import Transcriber

    t = time.perf_counter()
    with open_input(wav) as f:  # as the command streams it
        tr = Transcriber(f.samplerate, stem_type)
        for block in read_blocks(f, 65536, wav):
            tr.process(block)
    notes = tr.finish()
    elapsed = time.perf_counter() - t
    return [(n.onset_s, n.offset_s, n.pitch) for n in notes.notes], elapsed


def run_peer(wav: str, model):
    """basic-pitch's predict on the same file (its ONNX backend): (notes, seconds)."""
    from basic_pitch.inference import predict

    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        _, _, events = predict(wav, model)
    elapsed = time.perf_counter() - t
    return [(float(a), float(b), int(p)) for a, b, p, _, _ in events], elapsed


def peer_model():
    import logging

    logging.disable(logging.WARNING)  # basic-pitch warns about every backend it lacks
    from basic_pitch import build_icassp_2022_model_path, FilenameSuffix
    from basic_pitch.inference import Model

    return Model(build_icassp_2022_model_path(FilenameSuffix.onnx))


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=4, help="clips per set (default 4)")
    ap.add_argument("--clip-s", type=float, default=20.0, help="seconds per clip (default 20)")
    ap.add_argument("--long-s", type=float, default=180.0, help="the long clip, seconds (0: none)")
    ap.add_argument("--tuning", action="store_true", help="score the tuning seeds (1000..) instead")
    ap.add_argument("--sets", nargs="+", default=["mono", "poly", "poly+drums", "drums", "bass+drums"])
    ap.add_argument("--repeat", type=int, default=3, help="timing: best of this many runs per side, "
                    "alternating (default 3; the long clip: best of 2)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    base = 1000 if args.tuning else 0
    model = peer_model()
    from auracore.offline.transcribe.pitched import model_session

    model_session()  # both sides start with their model loaded
    run_ours(make_warm(), "pitched")  # JIT warm-up
    run_peer(make_warm(), model)  # the peer's lazy imports and caches
    results_model = model_ms_per_window(model)
    results = {"sets": {}, "clips": [], "model_ms_per_window": results_model}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.sets:
            agg = {"ours": {}, "peer": {}}
            for i in range(args.clips):
                seed = base + 10 * i + len(kind)
                programs = {"mono": MONO_PROGRAMS, "bass+drums": BASS_PROGRAMS}.get(kind, POLY_PROGRAMS[:1] + MONO_PROGRAMS)
                program = programs[(i + base) % len(programs)]
                clip = make_clip(tmp, kind, seed, args.clip_s, program)
                row = {"set": kind, "seed": seed, "program": program, "audio_s": args.clip_s}
                if kind in DRUM_SETS:
                    est, t_ours = best_of(args.repeat, lambda: run_ours(clip["wav"], "drums"))
                    sc = drum_scores(clip["drums"], est)
                    _accumulate(agg["ours"], sc)
                    row.update(ours_s=t_ours, ours_drums=sc)
                else:
                    (est, t_ours), (peer, t_peer) = best_of_pair(
                        args.repeat, lambda: run_ours(clip["wav"], "pitched"), lambda: run_peer(clip["wav"], model))
                    so, sp = note_scores(clip["notes"], est), note_scores(clip["notes"], peer)
                    _accumulate(agg["ours"], so)
                    _accumulate(agg["peer"], sp)
                    row.update(ours_s=t_ours, peer_s=t_peer, speedup=t_peer / t_ours, ours=so, peer=sp)
                results["clips"].append(row)
                os.unlink(clip["wav"])
            results["sets"][kind] = _summary(kind, agg)
        if args.long_s > 0:
            clip = make_clip(tmp, "poly", base + 999, args.long_s, 0)
            rss0 = peak_rss_mb()
            est, t_ours = run_ours(clip["wav"], "pitched")
            rss1 = peak_rss_mb()
            peer, t_peer = run_peer(clip["wav"], model)
            rss2 = peak_rss_mb()
            for _ in range(max(0, min(args.repeat, 2) - 1)):  # best of 2, alternating
                t_ours = min(t_ours, run_ours(clip["wav"], "pitched")[1])
                t_peer = min(t_peer, run_peer(clip["wav"], model)[1])
            so, sp = note_scores(clip["notes"], est), note_scores(clip["notes"], peer)
            results["long"] = {"audio_s": args.long_s, "ours_s": t_ours, "peer_s": t_peer,
                               "speedup": t_peer / t_ours, "ours_rtf": args.long_s / t_ours,
                               "peer_rtf": args.long_s / t_peer,
                               "ours_f1_onset": prf(so["onset_matches"], so["ref"], so["est"])[2],
                               "peer_f1_onset": prf(sp["onset_matches"], sp["ref"], sp["est"])[2],
                               "peak_rss_mb_after_ours": rss1, "peak_rss_mb_after_peer": rss2,
                               "peak_rss_mb_before": rss0}
    speedups = [c["speedup"] for c in results["clips"] if "speedup" in c]
    results["min_clip_speedup"] = min(speedups) if speedups else None
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print_table(results)
    return 0


def best_of(n: int, run):
    """(result, best seconds) of n runs of run() -> (result, seconds)."""
    result, best = run()
    for _ in range(n - 1):
        best = min(best, run()[1])
    return result, best


def best_of_pair(n: int, ours, peer):
    """Both sides n times, alternating (a busy machine slows both alike): the best of each."""
    a, b = ours(), peer()
    ta, tb = a[1], b[1]
    for _ in range(n - 1):
        ta, tb = min(ta, ours()[1]), min(tb, peer()[1])
    return (a[0], ta), (b[0], tb)


def model_ms_per_window(model, windows: int = 24) -> dict:
    """The model alone, ms per 2 s window: our session (batches of 4, pipeline.model_threads() threads) and the
    peer's (its Model.predict, one window a call, ONNX Runtime's default threads)."""
    from auracore.offline.transcribe import pitched

    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal((windows, pitched.WINDOW, 1))).astype(np.float32)
    sess = pitched.model_session()
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x[:pitched.BATCH_WINDOWS]})
    t = time.perf_counter()
    for i in range(0, windows, pitched.BATCH_WINDOWS):
        sess.run(None, {name: x[i:i + pitched.BATCH_WINDOWS]})
    ours = (time.perf_counter() - t) / windows
    model.predict(x[:1])
    t = time.perf_counter()
    for i in range(windows):
        model.predict(x[i:i + 1])
    peer = (time.perf_counter() - t) / windows
    t = time.perf_counter()
    for i in range(0, windows, pitched.BATCH_WINDOWS):
        sess.run(None, {name: x[i:i + pitched.BATCH_WINDOWS]})
    ours = min(ours, (time.perf_counter() - t) / windows)
    return {"ours": 1000 * ours, "peer": 1000 * peer}


def make_warm() -> str:
    path = os.path.join(tempfile.gettempdir(), "auracore-transcribe-warm.wav")
    if not os.path.exists(path):
        render(random_midi("mono", 7, 3.0, 0), path)
    return path


def _accumulate(acc: dict, sc: dict) -> None:
    for k, v in sc.items():
        if isinstance(v, dict):
            _accumulate(acc.setdefault(k, {}), v)
        else:
            acc[k] = acc.get(k, 0) + v


def _summary(kind: str, agg: dict) -> dict:
    out = {}
    if kind in DRUM_SETS:
        o = agg["ours"]
        p, r, f = prf(o["onset_matches"], o["ref_onsets"], o["est_onsets"])
        out["ours"] = {"onset_p": p, "onset_r": r, "onset_f1": f}
        for cls in DRUM_CLASSES:
            c = o[cls]
            out["ours"][f"{cls}_p"], out["ours"][f"{cls}_r"], out["ours"][f"{cls}_f1"] = prf(c["matches"], c["ref"], c["est"])
        return out
    for side in ("ours", "peer"):
        s = agg[side]
        p, r, f = prf(s["onset_matches"], s["ref"], s["est"])
        p2, r2, f2 = prf(s["offset_matches"], s["ref"], s["est"])
        out[side] = {"onset_p": p, "onset_r": r, "onset_f1": f, "offset_p": p2, "offset_r": r2, "offset_f1": f2}
    return out


def _print_table(results: dict) -> None:
    print(f"{'set':12s} {'side':5s} {'P':>6s} {'R':>6s} {'F1':>6s} | {'P+off':>6s} {'R+off':>6s} {'F1+off':>6s}")
    for kind, s in results["sets"].items():
        if kind in DRUM_SETS:
            o = s["ours"]
            print(f"{kind:12s} ours  {o['onset_p']:6.3f} {o['onset_r']:6.3f} {o['onset_f1']:6.3f} | onsets, class-blind")
            for cls in DRUM_CLASSES:
                print(f"{'':12s} {cls:10s} P {o[cls + '_p']:.3f} R {o[cls + '_r']:.3f} F1 {o[cls + '_f1']:.3f}")
            continue
        for side in ("ours", "peer"):
            o = s[side]
            print(f"{kind:12s} {side:5s} {o['onset_p']:6.3f} {o['onset_r']:6.3f} {o['onset_f1']:6.3f} | "
                  f"{o['offset_p']:6.3f} {o['offset_r']:6.3f} {o['offset_f1']:6.3f}")
    print()
    print(f"{'clip':28s} {'ours s':>8s} {'peer s':>8s} {'speedup':>8s} {'ours RTF':>9s}")
    for c in results["clips"]:
        name = f"{c['set']} seed {c['seed']} prog {c['program']}"
        if "speedup" in c:
            print(f"{name:28s} {c['ours_s']:8.3f} {c['peer_s']:8.3f} {c['speedup']:7.2f}x {c['audio_s'] / c['ours_s']:8.1f}x")
        else:
            print(f"{name:28s} {c['ours_s']:8.3f} {'-':>8s} {'-':>8s} {c['audio_s'] / c['ours_s']:8.1f}x")
    if "long" in results:
        lg = results["long"]
        print(f"\nlong {lg['audio_s']:.0f} s: ours {lg['ours_s']:.2f} s ({lg['ours_rtf']:.1f}x real time), "
              f"basic-pitch {lg['peer_s']:.2f} s ({lg['peer_rtf']:.1f}x): {lg['speedup']:.2f}x faster; "
              f"onset F1 ours {lg['ours_f1_onset']:.3f} vs {lg['peer_f1_onset']:.3f}; peak RSS "
              f"{lg['peak_rss_mb_before']:.0f} -> {lg['peak_rss_mb_after_ours']:.0f} MB (ours) -> "
              f"{lg['peak_rss_mb_after_peer']:.0f} MB (basic-pitch)")
    m = results["model_ms_per_window"]
    from auracore.offline.pipeline import model_threads

    print(f"model alone: ours {m['ours']:.1f} ms per window (batches of 4, {model_threads()} threads), basic-pitch "
          f"{m['peer']:.1f} ms (one window a call, default threads)")
    if results.get("min_clip_speedup"):
        print(f"slowest clip speedup: {results['min_clip_speedup']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
