"""Benchmark (quality): every qc dimension against every degradation the issue names, on one generated band.

A is tests/test_qc.py's generated band in three sections of --section-s (10 s) (A B A: the middle one in
another key and timbre; a kick on every beat, a bass line in eighths, panned chords, hats)
at 48 kHz. Each row is one degradation of A at the strength the tests use last; each cell
the dimension's score (0-100) for that pair. A dimension's own degradation is marked *.
The issue asks that each dimension fall with its own degradation and move little with the
others: read the table along a column.
Usage:
    python bench/qc_matrix.py [--json]
"""

import argparse
import importlib.util
import json
import os
import time

import numpy as np

from auracore.models.runtime import ModelRunner
from auracore.offline.qc import DIMENSIONS, qc


def _generators():
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "test_qc.py")
    spec = importlib.util.spec_from_file_location("qc_generators", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the matrix as JSON too")
    ap.add_argument("--section-s", type=float, default=10.0, help="each section's length (s; default 10)")
    args = ap.parse_args()
    g = _generators()
    fs = g.FS

    sec = args.section_s

    def band(first=sec, middle=sec, last=sec, **kw):
        return g.three_part(first, middle, last, **kw)

    a = band()

    def middle_louder(db):
        y = a.copy()
        y[int(sec * fs):int(2 * sec * fs)] *= 10 ** (db / 20)
        return y

    rows = {  # degradation: (the dimension it is for, B)
        "EQ tilt 8 dB/decade": ("spectral", lambda: g.tilt(a, 8.0)),
        "middle section +6 dB": ("rms_per_section", lambda: middle_louder(6.0)),
        "side x0.15": ("width", lambda: g.narrow(a, 0.15)),
        "bass notes a tone up": ("bass_notes", lambda: band(shifted=1.0)),
        "kicks removed": ("kick_pattern", lambda: band(kick_keep=0.0)),
        "middle section's chords a tone up": ("harmonic_progression", lambda: band(shift_semis=(0, 2, 0))),
        "second half +12 dB": ("energy_curve", lambda: g.sections(a, 12.0)),
        "reverb 60 %": ("reverb", lambda: g.reverb(a, 0.6)),
        "compressor 14 dB": ("dynamic_range", lambda: g.squash(a, 14.0)),
        # the same parts 10 % faster: every section as many beats (a time-stretch, not new sections)
        "10 % faster": ("bpm", lambda: band(first=sec / 1.1, middle=sec / 1.1, last=sec / 1.1, bpm=132.0)),
        f"boundaries moved {0.6 * sec:g} s": ("arrangement", lambda: band(first=1.6 * sec, middle=sec, last=0.4 * sec)),
        "first two sections swapped": ("arrangement", lambda: np.concatenate(
            [a[int(sec * fs):int(2 * sec * fs)], a[:int(sec * fs)], a[int(2 * sec * fs):]])),
        "brighter instruments": ("timbre", lambda: band(bright_add=0.35)),
    }
    runner = ModelRunner()
    cache = {}
    short = {d: d.replace("harmonic_progression", "chords").replace("rms_per_section", "rms/section")
             .replace("dynamic_range", "dynamics").replace("energy_curve", "energy").replace("kick_pattern", "kicks")
             .replace("bass_notes", "bass") for d in DIMENSIONS}
    print("| B: A with | " + " | ".join(short[d] for d in DIMENSIONS) + " | s |")
    print("|---" * (len(DIMENSIONS) + 2) + "|")
    out = {}
    for label, (own, make) in rows.items():
        t0 = time.perf_counter()
        r = qc(a, make(), fs, runner=runner, cache=cache)
        out[label] = r.dimensions
        cells = ["-" if r.dimensions[d] is None else f"{r.dimensions[d]:.0f}" + ("*" if d == own else "") for d in DIMENSIONS]
        print(f"| {label} | " + " | ".join(cells) + f" | {time.perf_counter() - t0:.1f} |", flush=True)
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
