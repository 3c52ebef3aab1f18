"""Benchmark (quality): qc's `reverb` dimension on dense music, where it reads the modulation spectra.

Material: the generated demo track (``offline/demo.py``, 60 s) and four 30 s pieces of
bench/reconstruct.py (FluidR3 parts with effects, seeds 1000, 1001, 1100, 1101), all at
44.1 kHz. B is A with one degradation:

- reverb: A convolved with exponentially decaying noise of RT60 0.5 s or 1.5 s, at A's
  energy, mixed in at 10, 30 and 60 % (the dimension's own property: it should fall);
- compression: a static compressor on a 10 ms envelope, 8 and 14 dB at the top;
- level per section: the second half 6 dB louder (it should move little).

Each cell is the reverb score (0-100) as qc computes it (the blind RT60s where both sides
have a free decay, marked *, else the modulation reading).
Usage:
    python bench/qc_reverb.py
"""

import importlib.util
import os

import numpy as np

from auracore.offline.demo import demo_track
from auracore.offline.profile import rt60
from auracore.offline.qc import dimensions as D
from auracore.offline.qc.align import align
from auracore.offline.qc.modulation import modulation_spectrum

RATE = 44100


def _pieces():
    spec = importlib.util.spec_from_file_location("bench_reconstruct", os.path.join(os.path.dirname(__file__), "reconstruct.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return [(f"piece {s}", np.asarray(mod.make_piece(s, 30.0, rate=RATE)["mix"], dtype=np.float64)) for s in (1000, 1001, 1100, 1101)]


def with_reverb(x, rt60_s, mix):
    rng = np.random.default_rng(5)
    n = int(rt60_s * RATE)
    ir = rng.standard_normal(n) * 10 ** (-3 * np.arange(n) / n)
    wet = np.stack([np.convolve(x[:, c], ir)[:x.shape[0]] for c in range(x.shape[1])], axis=1)
    wet *= np.sqrt(np.sum(x ** 2) / np.sum(wet ** 2))
    return (1 - mix) * x + mix * wet


def squash(x, db):
    k = RATE // 100
    env = np.sqrt(np.convolve(x.mean(axis=1) ** 2, np.ones(k) / k, mode="same")) + 1e-9
    level = 20 * np.log10(env / env.max())
    return x * 10 ** (-db * np.clip((level + 30) / 30, 0, 1) / 20)[:, None]


def louder_half(x, db):
    y = x.copy()
    y[y.shape[0] // 2:] *= 10 ** (db / 20)
    return y


def score(a, b) -> str:
    al = align(a, b, RATE)
    s, d = D.reverb(rt60(al.a, RATE), rt60(al.b, RATE), modulation_spectrum(al.a, RATE), modulation_spectrum(al.b, RATE))
    return f"{s:.0f}" + ("" if d.get("basis") == "modulation" else "*")


def main() -> None:
    sets = [("demo 60 s", np.asarray(demo_track(RATE, 60.0), dtype=np.float64))] + _pieces()
    cols = [("rev 0.5 s 10/30/60 %", lambda x: [with_reverb(x, 0.5, m) for m in (0.1, 0.3, 0.6)]),
            ("rev 1.5 s 10/30/60 %", lambda x: [with_reverb(x, 1.5, m) for m in (0.1, 0.3, 0.6)]),
            ("comp 8/14 dB", lambda x: [squash(x, 8), squash(x, 14)]),
            ("half +6 dB", lambda x: [louder_half(x, 6)])]
    print("| A | " + " | ".join(c for c, _ in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, x in sets:
        print(f"| {name} | " + " | ".join(" / ".join(score(x, b) for b in make(x)) for _, make in cols) + " |", flush=True)


if __name__ == "__main__":
    main()
