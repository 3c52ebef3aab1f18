"""Quality and speed of ``auracore reconstruct`` on material with known parts, beside the oracle.

The material (made here, FluidR3_GM only): pieces of drums, a bass line, a chord part and a
lead, MIDI written here with a tempo, a key, a chord progression and sections of their own
density and level, each part with a GM program drawn from a pool (drum kits too), then
effects the reconstruction is not told: an EQ shelf and a peak per part, a convolution
reverb of known RT60 and wet level, a pan and a width, per-section levels, a bus
compressor. Pieces are held out: nothing in reconstruct was fitted to them (seeds 1000+).

Rows:
- ``reconstruct``: ``auracore.reconstruct`` on the mix (separation, transcription, program
  choice, mix, master by reference, QC, the rule-based decisions), its final QC score;
- ``oracle``: the true MIDI with the true programs, rendered dry (no EQ, reverb or width),
  mixed at the true per-part levels and mastered by reference to the mix, the same QC;
- program family accuracy: per pitched part of the piece (bass, chords, lead), whether the
  program chosen for the stem that stands for it has its GM family (program // 8): the
  bass, other and vocals stems (the DSP separator's split of this material); a part with
  no notes heard counts as wrong; drums are counted apart (a kit is always chosen);
- speed: seconds per second of input, one 3-minute piece with --long-s 180 (2 cores);
- with --family-stages, only where the family is lost: the chords' and the lead's program
  chosen from the true or the separated stem, with the true or the transcribed notes;
- with --swap-parts, only where the points go: the oracle mix with one part replaced by the
  rebuild's, and the bass with the true notes on the rebuild's program and the other way.

    nice -n 5 .venv/bin/python bench/reconstruct.py [--pieces N] [--seconds S] [--rounds R] [--long-s S]
        [--separator DIR|dsp] [--family-stages] [--swap-parts] [--json]
"""

import argparse
import json
import math
import sys
import time

import numpy as np
from scipy.signal import fftconvolve, sosfilt

RATE = 44100
PARTS = ("drums", "bass", "chords", "lead")
KITS = (0, 8, 16, 24, 25, 32, 40)
BASS_POOL = (32, 33, 34, 35, 36, 37, 38, 39)
CHORD_POOL = (0, 1, 2, 4, 5, 16, 17, 19, 24, 25, 26, 48, 49, 50, 88, 89, 90, 91)
LEAD_POOL = (56, 57, 60, 64, 65, 66, 68, 71, 72, 73, 74, 80, 81, 82, 40, 41)
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS_MAJOR = ((0, 5, 3, 4), (0, 3, 4, 0), (0, 4, 5, 3), (5, 3, 0, 4))
PROGRESSIONS_MINOR = ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 4), (0, 2, 5, 4))
STEM_PART = {"drums": "drums", "bass": "bass", "vocals": "lead", "other": "chords"}


def family(program: int) -> int:
    """The GM family (0..15) of a program 0..127."""
    return int(program) // 8


def _shelf_peak(rng, rate):
    """An EQ of a high shelf and a peak (scipy second-order sections), random but mild."""
    from auracore.kernels import biquad

    rows = []
    for shape, f0, gain_db, q in ((biquad.SHAPE_HIGHSHELF, rng.uniform(2500, 8000), rng.uniform(-5, 4), 0.7),
                                  (biquad.SHAPE_PEAKING, math.exp(rng.uniform(math.log(150), math.log(5000))),
                                   rng.uniform(-5, 5), rng.uniform(0.6, 2.0))):
        c = np.zeros(5)
        biquad.design_biquad(shape, float(rate), float(f0), float(gain_db), float(q), c)
        rows.append([c[0], c[1], c[2], 1.0, c[3], c[4]])
    return np.array(rows)


def _reverb(rng, x, rate, rt60_s, wet_db):
    """x plus a stereo convolution reverb: exponentially decaying noise of rt60_s."""
    n = int(min(1.5 * rt60_s, 3.0) * rate)
    t = np.arange(n) / rate
    decay = np.exp(-6.91 * t / rt60_s)
    y = x.copy()
    mono = x.mean(axis=1)
    for c in range(2):
        ir = rng.standard_normal(n) * decay
        ir *= 10 ** (wet_db / 20) / np.sqrt(np.sum(ir ** 2))
        y[:, c] += fftconvolve(mono, ir)[:x.shape[0]]
    return y


def _width(x, amount):
    mid = x.mean(axis=1, keepdims=True)
    return mid + amount * (x - mid)


def make_piece(seed: int, seconds: float = 12.0, rate: int = RATE, effects: bool = True) -> dict:
    """A piece with known parts: {"mix": (frames, 2), "stems": {part: (frames, 2)}, "parts":
    {part: {"program", "notes", "pan", "level_db", ...}}, "tempo_bpm", "sections"}. Notes
    are (start_s, duration_s, pitch, velocity); drums' program is the kit."""
    from auracore.models import fluid

    rng = np.random.default_rng(seed)
    bpm = float(rng.uniform(88, 132))
    beat = 60.0 / bpm
    tonic = int(rng.integers(0, 12))
    minor = bool(rng.integers(2))
    scale = MINOR if minor else MAJOR
    prog = (PROGRESSIONS_MINOR if minor else PROGRESSIONS_MAJOR)[int(rng.integers(4))]
    bars = int(math.ceil(seconds / (4 * beat)))
    # two or three sections: each with its own density and level offset (dB)
    n_sec = 2 if bars < 8 else 3
    bounds = np.linspace(0, bars, n_sec + 1).round().astype(int)
    sec_gain = [0.0] + [float(rng.uniform(-6, 4)) for _ in range(n_sec - 1)]
    programs = {"drums": int(rng.choice(KITS)), "bass": int(rng.choice(BASS_POOL)),
                "chords": int(rng.choice(CHORD_POOL)), "lead": int(rng.choice(LEAD_POOL))}
    notes = {p: [] for p in PARTS}
    kick_pattern = ((0, 8), (0, 6, 8), (0, 8, 10), (0, 3, 8, 11))[int(rng.integers(4))]
    for bar in range(bars):
        sec = int(np.searchsorted(bounds, bar, side="right") - 1)
        dense = sec % 2 == 1
        b0 = bar * 4 * beat
        degree = prog[bar % 4]
        root = tonic + scale[degree]
        chord = [root + scale[(degree + k) % 7] - scale[degree] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
        # drums: kick pattern, snare on 2 and 4, hats in eighths (sixteenths when dense)
        for s in range(16):
            t = b0 + s * beat / 4
            if s in kick_pattern:
                notes["drums"].append((t, 0.1, 36, int(rng.integers(95, 120))))
            if s in (4, 12):
                notes["drums"].append((t, 0.1, 38, int(rng.integers(90, 115))))
            if s % (1 if dense else 2) == 0:
                notes["drums"].append((t, 0.05, 42, int(rng.integers(55, 85))))
        # bass: the root in quarters (eighths when dense), an octave around E1-E2
        base = 36 + (root % 12)
        step = beat / 2 if dense else beat
        for k in range(int(4 * beat / step)):
            p = base + (12 if dense and k % 2 else 0)
            notes["bass"].append((b0 + k * step, step * 0.85, p, int(rng.integers(85, 110))))
        # chords: the triad around C4, held for the bar (struck per half bar when dense)
        voicing = [60 + ((c - 60) % 12) if c < 60 else c for c in [48 + (c % 12) for c in chord]]
        voicing = sorted(v if v >= 55 else v + 12 for v in voicing)
        hits = (0, 2) if dense else (0,)
        for h in hits:
            dur = (2 if dense else 4) * beat * 0.95
            for v in voicing:
                notes["chords"].append((b0 + h * beat, dur, v, int(rng.integers(65, 85))))
        # lead: chord tones and scale steps in eighths, some rests
        for k in range(8):
            if rng.random() < 0.3:
                continue
            pc = int(rng.choice(chord)) if k % 2 == 0 else tonic + int(rng.choice(scale))
            pitch = 72 + (pc % 12) if (pc % 12) < 7 else 60 + (pc % 12)
            notes["lead"].append((b0 + k * beat / 2, beat / 2 * 0.9, pitch, int(rng.integers(80, 105))))
    pans = {"drums": 64, "bass": 64, "chords": int(rng.choice([int(rng.integers(20, 44)), int(rng.integers(84, 108))])),
            "lead": 64}
    levels = {"drums": 0.0, "bass": float(rng.uniform(-3, 2)), "chords": float(rng.uniform(-6, 0)),
              "lead": float(rng.uniform(-4, 1))}
    stems, parts = {}, {}
    sec_s = [(bounds[i] * 4 * beat, bounds[i + 1] * 4 * beat) for i in range(n_sec)]
    n = int(round(seconds * rate))
    for part in PARTS:
        tr = fluid.Track(programs[part], pans[part], tuple(notes[part]))
        x = fluid.render_tracks(fluid.SOUNDFONT, [tr], seconds, drums=part == "drums", sample_rate=rate,
                                sample_format="float")
        info = {"program": programs[part], "pan": pans[part], "notes": notes[part], "level_db": levels[part]}
        if effects:
            x = sosfilt(_shelf_peak(rng, rate), x, axis=0)
            rt60, wet = float(rng.uniform(0.3, 1.6)), float(rng.uniform(-20, -9))
            x = _reverb(rng, x, rate, rt60, wet)
            width = float(rng.uniform(0.6, 1.4)) if part in ("chords", "lead") else 1.0
            x = _width(x, width)
            info.update(rt60_s=rt60, wet_db=wet, width=width)
        rms = np.sqrt(np.mean(x ** 2))
        x = x * (0.1 / max(rms, 1e-9)) * 10 ** (levels[part] / 20)
        gains = np.ones(n)
        for (a, b), g in zip(sec_s, sec_gain):
            gains[int(a * rate):int(b * rate)] = 10 ** (g / 20)
        stems[part] = x[:n] * gains[:x.shape[0], None]
        parts[part] = info
    mix = sum(stems.values())
    if effects:  # a gentle bus compressor (RMS, 4:1 over the 70th percentile)
        env = np.sqrt(sosfilt(np.array([[0.0005, 0, 0, 1, -0.9995, 0]]), np.mean(mix ** 2, axis=1)) + 1e-12)
        level = 20 * np.log10(env)
        thr = np.percentile(level, 70)
        g = 10 ** (np.minimum(0.0, (thr - level) * 0.75) / 20)
        mix = mix * g[:, None]
        stems = {k: v * g[:, None] for k, v in stems.items()}
    peak = np.max(np.abs(mix))
    scale_lin = 10 ** (-1.0 / 20) / max(peak, 1e-9)
    return {"mix": mix * scale_lin, "stems": {k: v * scale_lin for k, v in stems.items()}, "parts": parts,
            "tempo_bpm": bpm, "sections": sec_s, "section_gain_db": sec_gain, "rate": rate, "seed": seed,
            "key": (tonic, minor)}


def oracle_part(piece: dict, part: str, program: int | None = None, notes=None) -> np.ndarray:
    """One part rendered dry (its true program and notes unless given), at its true level
    section by section, float64."""
    from auracore.models import fluid
    from auracore.offline.reconstruct.core import _spans, level_match

    rate, info = piece["rate"], piece["parts"][part]
    seconds = piece["mix"].shape[0] / rate
    track = fluid.Track(info["program"] if program is None else program, info["pan"],
                        tuple(info["notes"] if notes is None else notes))
    y = fluid.render_tracks(fluid.SOUNDFONT, [track], seconds, drums=part == "drums", sample_rate=rate,
                            sample_format="float")
    return level_match(y, piece["stems"][part], rate, _spans(seconds, piece["sections"], None),
                       drums=part == "drums").astype(np.float64)


def score_mix(piece: dict, mix: np.ndarray, runner=None):
    """mix mastered by reference to the piece's mix, and its QC report against it."""
    from auracore.offline.master import master
    from auracore.offline.qc import qc

    rate = piece["rate"]
    return qc(piece["mix"], master(mix, piece["mix"], rate).audio, rate, runner=runner)


def oracle(piece: dict, runner=None):
    """The true MIDI with the true programs rendered dry, each part at its true level section
    by section, summed, mastered by reference to the mix: its QC report against the mix."""
    return score_mix(piece, sum(oracle_part(piece, part) for part in piece["parts"]), runner)


SWAP_DIMENSIONS = ("spectral", "bass_notes", "kick_pattern", "harmonic_progression", "energy_curve", "timbre")


def swap_parts(seeds, seconds: float, rounds: int, runner, separator=None) -> dict:
    """Where the points go: the oracle mix with one part replaced by the rebuild's (drums,
    bass, or vocals + other for chords + lead), and the bass as the true notes on the
    rebuild's program and the rebuild's notes on the true program; each mastered and scored
    as the oracle is. {variant: {"score": mean, dimension: mean}}."""
    from auracore.offline.reconstruct import reconstruct

    acc = {}
    for seed in seeds:
        piece = make_piece(seed, seconds)
        r = reconstruct(piece["mix"], piece["rate"], max_rounds=rounds, runner=runner, separator=separator)
        true = {part: oracle_part(piece, part) for part in PARTS}
        rb = {k: v.astype(np.float64) for k, v in r.stems.items()}
        bass_notes = [(n.onset_s, n.offset_s - n.onset_s, n.pitch, n.velocity)
                      for t in r.notes.tracks if t.name == "bass" for n in t.notes]
        rest = true["drums"] + true["chords"] + true["lead"]
        variants = {
            "oracle": rest + true["bass"],
            "rebuild's drums": rb["drums"] + true["bass"] + true["chords"] + true["lead"],
            "rebuild's bass": rest + rb["bass"],
            "rebuild's vocals + other for chords + lead": true["drums"] + true["bass"] + rb["vocals"] + rb["other"],
            "rebuild (all four)": rb["drums"] + rb["bass"] + rb["vocals"] + rb["other"],
        }
        if "bass" in r.programs:
            variants["true bass notes, rebuild's bass program"] = rest + oracle_part(piece, "bass", r.programs["bass"])
            variants["rebuild's bass notes, true bass program"] = rest + oracle_part(piece, "bass", notes=bass_notes)
        for name, mix in variants.items():
            rep = score_mix(piece, mix, runner)
            row = acc.setdefault(name, {"score": []})
            row["score"].append(rep.score)
            for d in SWAP_DIMENSIONS:
                if rep.dimensions.get(d) is not None:
                    row.setdefault(d, []).append(rep.dimensions[d])
        print(f"piece {seed}: " + ", ".join(f"{k} {v['score'][-1]:.1f}" for k, v in acc.items()), file=sys.stderr)
    return {name: {k: float(np.mean(v)) for k, v in row.items()} for name, row in acc.items()}


def _family_name(f) -> str:
    return "none" if f is None else GM_FAMILY_NAMES[f]


def family_hits(programs: dict, piece: dict) -> list:
    """(stem, chosen family, true family, right?) for each pitched part of the piece (bass,
    chords, lead): the stem that stands for it (STEM_PART); a part no stem stands for (no
    notes were heard) counts as wrong, with chosen family None."""
    out = []
    for part in ("bass", "chords", "lead"):
        true = family(piece["parts"][part]["program"])
        stems = [s for s, p in STEM_PART.items() if p == part and s in programs]
        if not stems:
            out.append((part, None, true, False))
            continue
        chosen = family(programs[stems[0]])
        out.append((stems[0], chosen, true, chosen == true))
    return out


# the chords and the lead, and the separated stem each is scored against (the DSP separator's split)
PITCHED_PARTS = {"chords": "other", "lead": "vocals"}
LOWEST_MELODIC_PITCH = 48  # C3: what a melodic stem holds under it is mostly the bass's


def top_line(notes, overlap_s: float = 0.02) -> tuple[tuple, tuple]:
    """(top, rest): the notes no higher note overlaps by more than overlap_s at either end
    (the melody a listener follows over chords), and the others. notes: (start_s,
    duration_s, pitch, velocity) tuples, as the parts hold them."""
    notes = tuple(notes)
    if not notes:
        return (), ()
    start, dur, pitch = (np.array([n[k] for n in notes], dtype=np.float64) for k in range(3))
    end = start + dur
    top, rest = [], []
    for i, note in enumerate(notes):
        covered = (pitch > pitch[i]) & (start < end[i] - overlap_s) & (end > start[i] + overlap_s)
        (rest if covered.any() else top).append(note)
    return tuple(top), tuple(rest)


def choose_jointly(renders: dict, target: np.ndarray, sample_rate: int, mask=None, runner=None,
                   passes: int = 2) -> dict:
    """Programs for several parts heard together in one stem (a separator's ``other`` holding
    a lead and chords): renders {name: render(program) -> (frames, 2)} over the excerpt of
    target. Each part is chosen in turn (``choose``) with the candidate heard beside the
    other parts' current choices, for ``passes`` passes; the first pass starts from
    nothing. Returns {name: Choice}."""
    from auracore.offline.reconstruct import timbre

    chosen: dict = {}
    cache: dict = {}

    def rendered(name, program):
        if (name, program) not in cache:
            cache[(name, program)] = renders[name](program)
        return cache[(name, program)]

    for _ in range(passes):
        for name in renders:
            others = [rendered(o, c.program) for o, c in chosen.items() if o != name]

            def render(program, name=name, others=others):
                y = np.array(rendered(name, program), dtype=np.float64)
                for z in others:
                    k = min(y.shape[0], z.shape[0])
                    y[:k] += z[:k]
                return y
            chosen[name] = timbre.choose(render, target, sample_rate, mask=mask, runner=runner)
    return chosen


def family_by_stage(seeds, seconds: float, runner, separator=None) -> dict:
    """Where the program choice loses the family: the chords' and the lead's program chosen
    by timbre (``timbre.choose``, as reconstruct calls it) from (the true stem or the
    separated stem) x (the true notes or the stem's transcription); and a fifth way, the
    separated vocals and other summed and transcribed (notes from C3 up), split into its top
    line (the lead) and the rest (the chords), the two programs chosen together
    (``choose_jointly`` above). {stage: accuracy}, and
    the rows (stage, seed, part, true program, chosen program)."""
    from auracore.offline.reconstruct import timbre
    from auracore.offline.reconstruct.core import STEM_FAMILIES, Part, _excerpt_render, part_notes
    from auracore.offline.separate import separate
    from auracore.offline.transcribe import transcribe

    rows = []
    for seed in seeds:
        piece = make_piece(seed, seconds)
        rate, mix = piece["rate"], piece["mix"]
        duration_s = mix.shape[0] / rate
        separated = separate(mix, rate, stems=("drums", "bass", "vocals", "other"), model=separator)
        for part, stem_name in PITCHED_PARTS.items():
            true_notes = tuple(piece["parts"][part]["notes"])
            for stems_from, stem in (("true", piece["stems"][part]), ("separated", separated[stem_name])):
                heard = part_notes(transcribe(stem, rate, stem_type="pitched").notes)
                for notes_from, notes in (("true", true_notes), ("transcribed", heard)):
                    if not notes:
                        rows.append((f"{stems_from} stem, {notes_from} notes", seed, part, piece["parts"][part]["program"], None))
                        continue
                    a, b = timbre.excerpt_window([n[0] for n in notes], duration_s)
                    i0, i1 = int(a * rate), int(b * rate)
                    mask = timbre.note_band_mask(timbre.band_mask(stem[i0:i1], mix[i0:i1], rate), [n[2] for n in notes], rate)
                    choice = timbre.choose(_excerpt_render(Part(part, False, notes, 1.0), a, b, rate), stem[i0:i1], rate,
                                           mask=mask, runner=runner, families=STEM_FAMILIES.get(stem_name))
                    rows.append((f"{stems_from} stem, {notes_from} notes", seed, part, piece["parts"][part]["program"],
                                 choice.program))
        # the lead and the chords as one: vocals + other transcribed, split into its top line
        # (the lead) and the rest (the chords), the two programs chosen together
        stage = "separated vocals + other, top line and the rest, chosen together"
        both = separated["vocals"] + separated["other"]
        heard = part_notes(n for n in transcribe(both, rate, stem_type="pitched").notes
                           if n.pitch >= LOWEST_MELODIC_PITCH)
        lead, chords = top_line(heard)
        chosen = {}
        if lead and chords:
            a, b = timbre.excerpt_window([n[0] for n in heard], duration_s)
            i0, i1 = int(a * rate), int(b * rate)
            mask = timbre.note_band_mask(timbre.band_mask(both[i0:i1], mix[i0:i1], rate), [n[2] for n in heard], rate)
            renders = {part: _excerpt_render(Part(part, False, notes, 1.0), a, b, rate)
                       for part, notes in (("chords", chords), ("lead", lead))}
            chosen = {part: c.program for part, c in
                      choose_jointly(renders, both[i0:i1], rate, mask=mask, runner=runner).items()}
        for part in PITCHED_PARTS:
            rows.append((stage, seed, part, piece["parts"][part]["program"], chosen.get(part)))
    acc = {st: float(np.mean([r[4] is not None and family(r[4]) == family(r[3]) for r in rows if r[0] == st]))
           for st in dict.fromkeys(r[0] for r in rows)}  # in the order first met
    return {"accuracy": acc, "rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pieces", type=int, default=4)
    ap.add_argument("--first-seed", type=int, default=1000, help="the first piece's seed (default 1000)")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--long-s", type=float, default=0.0, help="also time one piece this long (s), e.g. 180")
    ap.add_argument("--separator", default=None, help="a model folder or dsp (default: reconstruct's own, the shipped model)")
    ap.add_argument("--family-stages", action="store_true",
                    help="only measure where the program family is lost: true or separated stems x true or transcribed notes")
    ap.add_argument("--swap-parts", action="store_true",
                    help="only measure where the points go: the oracle mix with one part replaced by the rebuild's")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from auracore.models.runtime import ModelRunner
    from auracore.offline.reconstruct import reconstruct

    runner = ModelRunner()
    if args.family_stages:
        res = family_by_stage(range(args.first_seed, args.first_seed + args.pieces), args.seconds, runner, args.separator)
        if args.json:
            print(json.dumps(res))
        else:
            print(f"| chords and lead of {args.pieces} pieces | program family right |")
            print("|---|---|")
            for stage, acc in res["accuracy"].items():
                print(f"| {stage} | {acc:.0%} |")
        return 0
    if args.swap_parts:
        res = swap_parts(range(args.first_seed, args.first_seed + args.pieces), args.seconds, args.rounds, runner,
                         args.separator)
        if args.json:
            print(json.dumps(res))
        else:
            print(f"| mix ({args.pieces} pieces) | QC | " + " | ".join(SWAP_DIMENSIONS) + " |")
            print("|---|---|" + "---|" * len(SWAP_DIMENSIONS))
            for name, row in res.items():
                print(f"| {name} | {row['score']:.1f} | " + " | ".join(f"{row.get(d, math.nan):.0f}" for d in SWAP_DIMENSIONS) + " |")
        return 0
    rows = []
    for k in range(args.pieces):
        seed = args.first_seed + k
        piece = make_piece(seed, args.seconds)
        t0 = time.time()
        r = reconstruct(piece["mix"], piece["rate"], max_rounds=args.rounds, runner=runner, separator=args.separator)
        took = time.time() - t0
        o_report = oracle(piece, runner)
        o = o_report.score
        hits = family_hits(r.programs, piece)
        rows.append({"seed": seed, "qc_round1": r.rounds[0].qc_score, "qc": r.qc_score, "rounds": len(r.rounds),
                     "dimensions": dict(r.rounds[r.best_round - 1].dimensions),
                     "oracle_qc": o, "oracle_dimensions": dict(o_report.dimensions), "family_hits": [h[3] for h in hits],
                     "families": {h[0]: [_family_name(h[1]), _family_name(h[2])] for h in hits},
                     "seconds": took, "x_duration": took / args.seconds})
        if not args.json:
            print(f"piece {seed}: QC {r.rounds[0].qc_score:.1f} -> {r.qc_score:.1f} in {len(r.rounds)} rounds, "
                  f"oracle {o:.1f}; families " + ", ".join(f"{h[0]} {_family_name(h[1])}/{_family_name(h[2])}"
                                                        for h in hits) + f"; {took:.1f} s", file=sys.stderr)
    res = {"pieces": len(rows), "seconds": args.seconds,
           "qc_mean": float(np.mean([r["qc"] for r in rows])), "qc_round1_mean": float(np.mean([r["qc_round1"] for r in rows])),
           "oracle_qc_mean": float(np.mean([r["oracle_qc"] for r in rows])),
           "family_accuracy": float(np.mean([h for r in rows for h in r["family_hits"]])),
           "x_duration_mean": float(np.mean([r["x_duration"] for r in rows])), "rows": rows,
           "dimensions_mean": {d: float(np.mean([r["dimensions"][d] for r in rows if r["dimensions"].get(d) is not None]
                                                 or [math.nan])) for d in rows[0]["dimensions"]},
           "oracle_dimensions_mean": {d: float(np.mean([r["oracle_dimensions"][d] for r in rows
                                                        if r["oracle_dimensions"].get(d) is not None] or [math.nan]))
                                      for d in rows[0]["oracle_dimensions"]}}
    if args.long_s:
        piece = make_piece(2000, args.long_s)
        t0 = time.time()
        reconstruct(piece["mix"], piece["rate"], max_rounds=args.rounds, runner=runner, separator=args.separator)
        res["long"] = {"seconds": args.long_s, "wall_s": time.time() - t0, "x_duration": (time.time() - t0) / args.long_s}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"| row | QC (mean of {len(rows)}) | program family right | time / duration |")
        print("|---|---|---|---|")
        print(f"| reconstruct, round 1 | {res['qc_round1_mean']:.1f} | | |")
        print(f"| reconstruct, best round | {res['qc_mean']:.1f} | {res['family_accuracy']:.0%} | {res['x_duration_mean']:.2f}x |")
        print(f"| oracle (true MIDI and programs) | {res['oracle_qc_mean']:.1f} | 100% | |")
        print("best round's dimensions, mean: " + ", ".join(f"{d} {v:.0f}" for d, v in res["dimensions_mean"].items()))
        print("oracle's dimensions, mean: " + ", ".join(f"{d} {v:.0f}" for d, v in res["oracle_dimensions_mean"].items()))
        if "long" in res:
            print(f"{args.long_s:.0f} s piece: {res['long']['wall_s']:.0f} s wall, {res['long']['x_duration']:.2f}x its duration")
    return 0


GM_FAMILY_NAMES = ("piano", "chromatic", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed", "pipe",
                   "lead", "pad", "fx", "ethnic", "percussive", "sfx")

if __name__ == "__main__":
    sys.exit(main())
