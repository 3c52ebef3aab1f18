"""Benchmark: the whole chain and the engine block at this checkout against an older commit.

Both run in the same command on the same input (bench/dsp_material.py: 30 s of
music-like 48 kHz stereo float64, 1024-frame blocks): two worker processes, one importing
this checkout's package, one importing the other commit's (extracted with ``git archive``
into a temporary folder), each JIT-warm, timed in alternating rounds so that load from
elsewhere falls on both alike; the best round of each is kept. Rows:

- ``chain``: ``chain.process`` with every EQ band non-zero, 3:1 compression, -1 dBTP;
- ``chain, limiting``: the same with +8 dB of makeup, so the limiter acts most of the time;
- ``engine block``: ``Engine.run_block`` (mailboxes, blend, chain, fault check, meter,
  rings) on float32 blocks, the path the live callback takes.

The outputs of the two are compared too (the chain's samples, bit for bit).
Usage:
    python bench/chain_ab.py [--against REV] [--seconds 30] [--repeat 7] [--json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("kernels", "realtime", "models", "offline", "control")

WORKER = r"""
import hashlib, importlib.util, sys, time
import numpy as np
spec = importlib.util.spec_from_file_location("dsp_material", sys.argv[1])
M = importlib.util.module_from_spec(spec); spec.loader.exec_module(M)
from auracore.kernels import chain
from auracore.realtime.engine import Engine
x = M.music_like(float(sys.argv[2]))
blocks = M.blocks_of(len(x))

def run_chain(makeup):
    p = M.chain_params(makeup); y = x.copy(); st = chain.ChainState(M.FS, 2, params=p)
    t0 = time.perf_counter()
    for a, b in blocks:
        chain.process(y[a:b], st, p)
    return time.perf_counter() - t0, hashlib.sha256(y.tobytes()).hexdigest()[:16]

def run_engine():
    e = Engine(M.FS, 2, params=M.chain_params(0.0)); x32 = x.astype(np.float32); out = np.empty_like(x32)
    t0 = time.perf_counter()
    for a, b in blocks:
        e.run_block(x32[a:b], out[a:b])
    return time.perf_counter() - t0, hashlib.sha256(out.tobytes()).hexdigest()[:16]

CASES = {"chain": lambda: run_chain(0.0), "chain, limiting": lambda: run_chain(8.0), "engine block": run_engine}
for f in CASES.values():
    f()
print("ready", flush=True)
for line in sys.stdin:
    t, digest = CASES[line.strip()]()
    print(f"{t!r} {digest}", flush=True)
"""


def extract(rev: str, into: str) -> str:
    """git archive REV into `into`; returns a folder to put on PYTHONPATH (an ``auracore``
    package made of links, as the installed layout maps the top-level folders)."""
    tree = os.path.join(into, "tree")
    os.makedirs(tree)
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    pkg = os.path.join(into, "pkg", "auracore")
    os.makedirs(pkg)
    for name in os.listdir(os.path.join(tree, "auracore")):
        os.symlink(os.path.join(tree, "auracore", name), os.path.join(pkg, name))
    for name in PACKAGES:
        os.symlink(os.path.join(tree, name), os.path.join(pkg, name))
    return os.path.join(into, "pkg")


def start(pythonpath: str | None, seconds: float) -> subprocess.Popen:
    """A worker importing the package from pythonpath (None: the installed checkout)."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.Popen([sys.executable, "-c", WORKER, os.path.join(ROOT, "bench", "dsp_material.py"),
                             str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            cwd=tempfile.gettempdir())
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"the worker for {pythonpath} did not start")
    return proc


def ask(proc: subprocess.Popen, case: str) -> tuple[float, str]:
    proc.stdin.write(case + "\n")
    proc.stdin.flush()
    t, digest = proc.stdout.readline().split()
    return float(t), digest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default="HEAD~1", metavar="REV", help="the commit to compare with (default HEAD~1)")
    ap.add_argument("--seconds", type=float, default=30.0, help="input length (default 30)")
    ap.add_argument("--repeat", type=int, default=7, help="timed rounds, best kept (default 7)")
    ap.add_argument("--json", action="store_true", help="print one JSON object of the figures")
    args = ap.parse_args()
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", args.against], check=True, capture_output=True,
                         text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="auracore-ab-") as tmp:
        old = start(extract(args.against, tmp), args.seconds)
        new = start(None, args.seconds)  # this checkout, as installed (scripts/install: editable)
        cases = ("chain", "chain, limiting", "engine block")
        best = {(who, c): float("inf") for who in ("old", "new") for c in cases}
        digests = {}
        for r in range(args.repeat):
            order = (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))
            for c in cases:
                for who, proc in order:
                    t, digest = ask(proc, c)
                    best[who, c] = min(best[who, c], t)
                    digests[who, c] = digest
        for proc in (old, new):
            proc.stdin.close()
            proc.wait()
    frames = args.seconds * 48000
    rows = []
    for c in cases:
        t_old, t_new = best["old", c], best["new", c]
        rows.append({"case": c, "old_x_realtime": args.seconds / t_old, "new_x_realtime": args.seconds / t_new,
                     "new_over_old_speed": t_old / t_new, "identical": digests["old", c] == digests["new", c]})
    if args.json:
        print(json.dumps({"against": rev, "seconds": args.seconds, "repeat": args.repeat, "rows": rows}, indent=1))
        return 0
    print(f"{args.seconds:g} s of 48 kHz stereo in 1024-frame blocks, best of {args.repeat} alternating rounds; "
          f"old = {rev}, new = this checkout ({frames / 1e6:.2f} M frames)")
    print(f"{'case':18s} {'old x RT':>9s} {'new x RT':>9s} {'new/old':>8s}  samples")
    for row in rows:
        print(f"{row['case']:18s} {row['old_x_realtime']:9.1f} {row['new_x_realtime']:9.1f} "
              f"{row['new_over_old_speed']:7.3f}x  {'identical' if row['identical'] else 'DIFFER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
