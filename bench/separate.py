"""`auracore separate` on long files: real-time factor and peak RSS, the model against the DSP fallback.

For each length (default 1, 10 and 60 minutes) a music-like 44.1 kHz stereo PCM_16 file is
made (a loop of 30 s with a bass line, a melody, a pad and clicks, plus noise so no two
chunks are alike), then `auracore separate IN OUTDIR --force` runs in a child process with
one ONNX Runtime thread (and one BLAS thread), and this script reads the child's wall time
and peak resident memory (wait4's rusage of that child). The issue's limits: 10x real time or faster for the
model, under 1.5 GB RSS for any length.

    python bench/separate.py [--minutes 1 10 60] [--methods model dsp] [--json]
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

RATE = 44100


def make_input(path: str, minutes: float) -> None:
    rng = np.random.default_rng(int(minutes * 10))
    loop_s = 30.0
    n = int(RATE * loop_s)
    t = np.arange(n) / RATE
    bass = 0.25 * np.sin(2 * np.pi * 55 * (1 + (np.floor(t * 2) % 4 == 2) * 0.5) * t)
    melody = 0.15 * np.sin(2 * np.pi * 440 * 2 ** (np.floor(t * 4) % 5 / 12) * t)
    pad = 0.08 * np.sin(2 * np.pi * 330 * t)
    hits = np.zeros(n)
    hits[(np.arange(0, loop_s, 0.25) * RATE).astype(int)] = 1.0
    k = int(0.03 * RATE)
    drums = np.convolve(hits, rng.standard_normal(k) * np.exp(-np.arange(k) / (0.005 * RATE)))[:n]
    loop = np.stack([bass + melody + 0.9 * pad + 0.3 * drums, bass + melody + 0.3 * pad + 0.3 * drums], axis=1)
    total = int(minutes * 60 * RATE)
    with sf.SoundFile(path, "w", RATE, 2, subtype="PCM_16") as f:
        done = 0
        while done < total:
            m = min(n, total - done)
            f.write(np.clip(loop[:m] + 0.003 * rng.standard_normal((m, 2)), -1, 1))
            done += m


def run_one(path: str, outdir: str, method: str) -> dict:
    cmd = [sys.executable, "-m", "auracore.control.cli", "separate", path, outdir, "--force", "--json",
           "--threads", "1"]
    if method == "dsp":
        cmd += ["--model", "dsp"]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
        wall = time.perf_counter() - t0
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"separate failed: {err.read().strip()}")
        info = json.loads(out.read())
    peak_kb = usage.ru_maxrss
    return {"method": method, "model": info["model"], "fallback": info["fallback"], "duration_s": info["duration_s"],
            "wall_s": round(wall, 1), "realtime_factor": round(info["duration_s"] / wall, 1),
            "peak_rss_mb": round(peak_kb / 1024, 0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    ap.add_argument("--methods", nargs="+", default=["model", "dsp"], choices=["model", "dsp"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="auracore-bench-sep-") as tmp:
        for minutes in args.minutes:
            path = os.path.join(tmp, f"in-{minutes:g}.wav")
            make_input(path, minutes)
            for method in args.methods:
                row = run_one(path, os.path.join(tmp, f"out-{method}"), method)
                row["minutes"] = minutes
                rows.append(row)
                if not args.json:
                    print(f"{minutes:5g} min  {method:5s} {row['realtime_factor']:6.1f}x real time  "
                          f"{row['wall_s']:7.1f} s  peak RSS {row['peak_rss_mb']:.0f} MB  ({row['model']})",
                          flush=True)
            os.unlink(path)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
