"""Benchmark: ``auracore qc`` from scratch and with its analyses cached, as a user runs it.

Pairs made here: A is the generated demo track (``offline/demo.py``: drums, bass, chords,
lead) of --seconds at 44.1 kHz stereo; B is A through the chain with another preset (club:
EQ, compression, limiting, louder) and, for the second pair, shifted by 23 ms and resampled
to 48 kHz (the alignment's work). Each run is a fresh process (start-up included):

- scratch: ``auracore qc A B --json`` (separation, transcription of the bass and kick
  stems, both profiles, the embedding, all computed);
- cached: the same with ``--cache DIR`` after one run has filled DIR (every analysis read
  back: the rerun a user makes after changing B's name, or a batch scoring pairs again).

Real-time factor = A's duration / wall time; the issue's targets are 5x from scratch and 20x
cached. Both runs' JSON reports are compared (the cache changes no figure).
Usage:
    python bench/qc.py [--seconds 60] [--repeat 2] [--json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from auracore.kernels.chain import ChainState, process
from auracore.offline.demo import demo_track
from auracore.offline.params import build_vector

RATE = 44100


def make_pairs(folder: str, seconds: float) -> list[tuple[str, str, float]]:
    a = demo_track(RATE, seconds)
    st = ChainState(RATE, 2)
    b = a.copy()
    process(b, st, build_vector("club", {}))
    b = b[st.latency:]
    b = np.concatenate([b, np.zeros((st.latency, 2))])
    pa, pb1, pb2 = (os.path.join(folder, n) for n in ("a.wav", "b1.wav", "b2.wav"))
    sf.write(pa, a, RATE, subtype="FLOAT")
    sf.write(pb1, b, RATE, subtype="FLOAT")
    shifted = np.concatenate([np.zeros((int(0.023 * RATE), 2)), b])
    sf.write(pb2, resample_poly(shifted, 160, 147, axis=0), 48000, subtype="FLOAT")
    return [(pa, pb1, seconds), (pa, pb2, seconds)]


def run(argv: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if r.returncode != 0:
        raise SystemExit(f"qc failed: {r.stderr.strip()[-400:]}")
    return time.perf_counter() - t0, r.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="A's length (default 60)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each, best kept (default 2)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    qc = [sys.executable, "-m", "auracore.control.cli", "qc"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="auracore-bench-qc-") as tmp:
        for k, (a, b, seconds) in enumerate(make_pairs(tmp, args.seconds)):
            cache = os.path.join(tmp, f"cache{k}")
            scratch, cached = float("inf"), float("inf")
            for r in range(args.repeat):
                t, out_s = run(qc + [a, b, "--json"])
                scratch = min(scratch, t)
                if r == 0:
                    run(qc + [a, b, "--json", "--cache", cache])  # fills the cache
                t, out_c = run(qc + [a, b, "--json", "--cache", cache])
                cached = min(cached, t)
            same = json.loads(out_s)["dimensions"] == json.loads(out_c)["dimensions"]
            rows.append({"pair": os.path.basename(b), "seconds": seconds, "scratch_s": scratch, "cached_s": cached,
                         "scratch_x_realtime": seconds / scratch, "cached_x_realtime": seconds / cached,
                         "score": json.loads(out_s)["score"], "same_report": same})
    if args.json:
        print(json.dumps({"rows": rows}, indent=1))
        return 0
    print(f"auracore qc, fresh processes, best of {args.repeat}; A = {args.seconds:g} s demo track at 44.1 kHz")
    print(f"{'pair':8s} {'scratch s':>10s} {'x RT':>6s} {'cached s':>9s} {'x RT':>6s} {'score':>6s}  same report")
    for r in rows:
        print(f"{r['pair']:8s} {r['scratch_s']:10.2f} {r['scratch_x_realtime']:6.1f} {r['cached_s']:9.2f} "
              f"{r['cached_x_realtime']:6.1f} {r['score']:6.1f}  {r['same_report']}")
    print("targets: 5x real time from scratch, 20x cached")
    return 0


if __name__ == "__main__":
    sys.exit(main())
