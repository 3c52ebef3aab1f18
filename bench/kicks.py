"""Benchmark (quality): kick onsets read from a whole mix, against the true kicks, beside the drum transcription of the DSP drum stem.

Material: bench/reconstruct.py's pieces (FluidR3's seven kits with effects, bass, chords and
lead playing; 12 s at 44.1 kHz), two sets of seeds. Readers:

- mix: ``auracore.offline.transcribe.kicks.kick_onsets`` on the mix (qc's kick_pattern);
- dsp stem: the drum transcription (GM 35/36) of the DSP separator's drum stem (qc's reading
  before 2026-12-07);
- model stems (``--model``): the drum transcription of the shipped separation model's drum
  and bass stems summed (reconstruct's reading).

Figure: onset F1 within 50 ms (mir_eval), the mean over each set's pieces. ``--squash``
also reads each piece through a fast 14 dB compressor (bench/qc_reverb.py's: a static curve
on a 10 ms envelope), in columns of their own.
Usage:
    python bench/kicks.py [--model] [--squash] [--seconds 12] [--first-seeds 1000 1100]
"""

import argparse
import importlib.util
import os

import mir_eval
import numpy as np

from auracore.offline.separate import separate
from auracore.offline.transcribe import transcribe
from auracore.offline.transcribe.kicks import kick_onsets



def _make_piece():
    spec = importlib.util.spec_from_file_location("bench_reconstruct", os.path.join(os.path.dirname(__file__), "reconstruct.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_piece


def f1(ref, est) -> float:
    if not len(ref) and not len(est):
        return 1.0
    if not len(ref) or not len(est):
        return 0.0
    return float(mir_eval.onset.f_measure(np.asarray(ref), np.asarray(est), window=0.05)[0])


def transcribed_kicks(x, rate) -> list:
    return [n.onset_s for n in transcribe(x, rate, "drums").notes if n.pitch in (35, 36)]


def readers(model: bool) -> dict:
    out = {"mix": lambda x, r: kick_onsets(x, r),
           "dsp stem": lambda x, r: transcribed_kicks(separate(x, r, stems=("drums",), model="dsp", log=lambda s: None)["drums"], r)}
    if model:
        def stems(x, r):
            s = separate(x, r, stems=("drums", "bass"), log=lambda line: None)
            return transcribed_kicks(s["drums"] + s["bass"], r)
        out["model stems"] = stems
    return out


def _squash():
    """bench/qc_reverb.py's compressor (a static curve on a 10 ms envelope at 44.1 kHz, the
    pieces' rate), loaded by path as bench/reconstruct.py is."""
    spec = importlib.util.spec_from_file_location("bench_qc_reverb", os.path.join(os.path.dirname(__file__), "qc_reverb.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.squash


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="store_true", help="also read the shipped separation model's drum and bass stems")
    ap.add_argument("--squash", action="store_true", help="also read each piece through a fast 14 dB compressor")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--first-seeds", type=int, nargs="+", default=[1000, 1100],
                    help="the first seed of each set of 8 pieces (default 1000 1100; 1200 was read only to check, until the mix reader's reference band was chosen on all three)")
    args = ap.parse_args()
    make_piece = _make_piece()
    rd = readers(args.model)
    if args.squash:
        squash = _squash()
        rd.update({f"{k}, compressed": (lambda x, r, fn=fn: fn(squash(x, 14.0), r)) for k, fn in list(rd.items())})
    print("| seeds | " + " | ".join(rd) + " |")
    print("|---" * (len(rd) + 1) + "|")
    for first in args.first_seeds:
        name, seeds = f"{first}-{first + 7}", range(first, first + 8)
        scores = {k: [] for k in rd}
        for seed in seeds:
            p = make_piece(seed, args.seconds)
            x = np.asarray(p["mix"], dtype=np.float64)
            dur = x.shape[0] / p["rate"]
            truth = sorted(n[0] for n in p["parts"]["drums"]["notes"] if n[2] in (35, 36) and n[0] < dur)
            for k, fn in rd.items():
                scores[k].append(f1(truth, fn(x, p["rate"])))
        print(f"| {name} | " + " | ".join(f"{np.mean(v):.3f}" for v in scores.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
