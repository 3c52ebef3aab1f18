"""Drum transcription on kits other than the bench's: kick, snare and hi-hat F1 per SoundFont.

Grooves of kick, snare and hi-hat (plus a crash and tom fills now and then; 10 s, seeded,
90-140 bpm, varied velocities) rendered through FluidR3_GM's seven kits (bank 128 programs
0, 8, 16, 24, 25, 32, 40: the kits the templates were measured on, other patterns and
velocities), through csound's sf_GMbank at the same kit numbers (a kit it lacks falls back
to its standard kit) and three grooves each through AVL's Black Pearl and Red Zeppelin kits
(kits no template was measured on). Each is transcribed (``stem_type="drums"``) with the
shipped templates, and with the standard kit's alone (``drums.KITS`` held to kit 0); a hit
matches a reference hit of its class within 50 ms.

    .venv/bin/python bench/drum_kits.py [--json]
"""

import argparse
import json
import os
import sys

import numpy as np

SF2 = "/usr/share/sounds/sf2/"
FLUID_KITS = (0, 8, 16, 24, 25, 32, 40)
CLASS = {35: "kick", 36: "kick", 38: "snare", 40: "snare", 42: "hat", 44: "hat", 46: "hat",
         41: "tom", 45: "tom", 48: "tom", 49: "crash"}


def groove(rng, seconds: float) -> list:
    step = 60.0 / rng.uniform(90, 140) / 2
    notes, t, k = [], 0.2, 0
    while t < seconds - 0.5:
        if k % 8 in (0, 5) or (k % 8 == 3 and rng.random() < 0.3):
            notes.append((t, 0.1, 36, int(rng.integers(80, 121))))
        if k % 8 in (2, 6):
            notes.append((t, 0.1, 38, int(rng.integers(80, 121))))
        if rng.random() < 0.8:
            notes.append((t, 0.1, 42, int(rng.integers(60, 111))))
        if k % 32 == 0 and rng.random() < 0.5:
            notes.append((t, 0.1, 49, 100))
        if k % 16 in (14, 15) and rng.random() < 0.4:
            notes.append((t, 0.1, int(rng.choice([41, 45, 48])), 100))
        t += step
        k += 1
    return notes


def f1(ref, est, tol: float = 0.05) -> float:
    used, hit = set(), 0
    for e in est:
        for i, x in enumerate(ref):
            if i not in used and abs(x - e) <= tol:
                used.add(i)
                hit += 1
                break
    return 2 * hit / max(len(ref) + len(est), 1)


def cases() -> list:
    out = [("FluidR3_GM", SF2 + "FluidR3_GM.sf2", k, False, 100 + i) for i, k in enumerate(FLUID_KITS)]
    out += [("sf_GMbank", SF2 + "sf_GMbank.sf2", k, False, 200 + i) for i, k in enumerate(FLUID_KITS)]
    out += [("AVL", SF2 + f, 0, True, 300 + 10 * i + r)
            for i, f in enumerate(("Black_Pearl_4_LV2.sf2", "Red_Zeppelin_4_LV2.sf2")) for r in range(3)]
    return [c for c in out if os.path.exists(c[1])]


def run(seconds: float = 10.0) -> dict:
    from auracore.models import fluid
    from auracore.offline.transcribe import drums as DR
    from auracore.offline.transcribe import transcribe

    shipped = DR.KITS
    scores = {}
    for label, font, kit, single, seed in cases():
        notes = groove(np.random.default_rng(seed), seconds)
        x = fluid.render_tracks(font, [fluid.Track(kit, 64, tuple(notes))], seconds, drums=True, single_kit=single,
                                sample_format="float")
        for variant, kits in (("standard kit's templates", {0: shipped[0]}), ("shipped templates", shipped)):
            DR.KITS = kits
            try:
                hits = transcribe(x, 44100, stem_type="drums").notes
            finally:
                DR.KITS = shipped
            for cls in ("kick", "snare", "hat"):
                ref = sorted(n[0] for n in notes if CLASS[n[2]] == cls)
                est = sorted(h.onset_s for h in hits if CLASS.get(h.pitch) == cls)
                scores.setdefault(variant, {}).setdefault(label, {}).setdefault(cls, []).append(f1(ref, est))
    return {v: {lab: {c: round(float(np.mean(x)), 3) for c, x in d.items()} for lab, d in by.items()}
            for v, by in scores.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = run()
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    variants = list(res)
    print("| kits | " + " | ".join(f"{v}: kick / snare / hat" for v in variants) + " |")
    print("|---|" + "---|" * len(variants))
    for label in res[variants[0]]:
        print(f"| {label} | " + " | ".join(" / ".join(f"{res[v][label][c]:.2f}" for c in ("kick", "snare", "hat"))
                                         for v in variants) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
