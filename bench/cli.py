"""Benchmark: the commands as a user runs them, start-up included, against the peers' closest.

One generated file (bench/dsp_material.py's music-like material at 44.1 kHz stereo, float
WAV, --seconds long, 300 by default: the 5-minute file of the targets), and each of these
run as a fresh process, in alternating rounds, best of --repeat (wall and CPU, the CPU being
the child's user + system time):

- ``auracore render IN OUT --preset streaming`` (decode, chain, meters, dither, 24-bit write)
  against pedalboard's closest chain in a fresh interpreter: ``pedalboard.io.AudioFile``
  decode, the 8 filters (LowShelf, 6 Peak, HighShelf at the preset's 0 dB), Compressor
  (-18 dB, 2:1, 10/150 ms), Limiter (-1 dB, 100 ms), 24-bit write;
- ``auracore analyze IN --json`` (loudness, LRA, true peak, peaks, dynamics, stereo,
  spectrum, score) against libebur128 (pyebur128: integrated, LRA, true peak) fed by
  soundfile's decode in 1 s blocks, in a fresh interpreter.

Targets (issue 11): render >= 1.5x pedalboard's wall time, analyze >= 3x libebur128's,
and a 5-minute 44.1 kHz stereo file rendered in under 2 s of CPU.
Usage:
    python bench/cli.py [--seconds 300] [--repeat 3] [--json]
"""

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
RATE = 44100

PEDALBOARD = r"""
import sys
import pedalboard
from pedalboard.io import AudioFile
src, dst = sys.argv[1], sys.argv[2]
freqs = (80.0, 160.0, 315.0, 630.0, 1250.0, 2500.0, 5000.0, 10000.0)
board = pedalboard.Pedalboard(
    [pedalboard.LowShelfFilter(cutoff_frequency_hz=freqs[0], gain_db=0.0)]
    + [pedalboard.PeakFilter(cutoff_frequency_hz=f, gain_db=0.0, q=1.0) for f in freqs[1:7]]
    + [pedalboard.HighShelfFilter(cutoff_frequency_hz=freqs[7], gain_db=0.0),
       pedalboard.Compressor(threshold_db=-18.0, ratio=2.0, attack_ms=10.0, release_ms=150.0),
       pedalboard.Limiter(threshold_db=-1.0, release_ms=100.0)])
with AudioFile(src) as f:
    rate, channels = f.samplerate, f.num_channels
    with AudioFile(dst, "w", rate, channels, bit_depth=24) as out:
        while f.tell() < f.frames:
            out.write(board(f.read(1 << 16), rate, reset=False))
"""

LIBEBUR128 = r"""
import json, math, sys
import pyebur128
import soundfile as sf
mode = (pyebur128.MeasurementMode.MODE_I | pyebur128.MeasurementMode.MODE_LRA
        | pyebur128.MeasurementMode.MODE_TRUE_PEAK)
with sf.SoundFile(sys.argv[1]) as f:
    state = pyebur128.R128State(f.channels, f.samplerate, mode)
    for block in f.blocks(f.samplerate, dtype="float64"):
        state.add_frames(block.ravel(), block.shape[0])
    tp = max(pyebur128.get_true_peak(state, c) for c in range(f.channels))
print(json.dumps({"integrated_lufs": pyebur128.get_loudness_global(state),
                  "loudness_range_lu": pyebur128.get_loudness_range(state), "true_peak_dbtp": 20 * math.log10(tp)}))
"""


def material():
    spec = importlib.util.spec_from_file_location("auracore_bench_dsp_material", os.path.join(HERE, "dsp_material.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the child) for one run of argv, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}... failed: {r.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="input length (default 300)")
    ap.add_argument("--repeat", type=int, default=3, help="alternating rounds, best kept (default 3)")
    ap.add_argument("--json", action="store_true", help="print one JSON object of the figures")
    args = ap.parse_args()
    auracore = [sys.executable, "-m", "auracore.control.cli"]
    with tempfile.TemporaryDirectory(prefix="auracore-bench-cli-") as tmp:
        src = os.path.join(tmp, "in.wav")
        sf.write(src, material().music_like(args.seconds, fs=RATE), RATE, subtype="FLOAT")
        out_a, out_p = os.path.join(tmp, "a.wav"), os.path.join(tmp, "p.wav")
        runs = {
            "render": auracore + ["render", src, out_a, "--preset", "streaming"],
            "pedalboard": [sys.executable, "-c", PEDALBOARD, src, out_p],
            "analyze": auracore + ["analyze", src, "--json"],
            "libebur128": [sys.executable, "-c", LIBEBUR128, src],
        }
        for argv in runs.values():  # warm: JIT caches, page cache
            timed(argv)
            for path in (out_a, out_p):
                if os.path.exists(path):
                    os.remove(path)
        best = {name: [float("inf"), float("inf")] for name in runs}
        for r in range(args.repeat):
            names = list(runs) if r % 2 == 0 else list(runs)[::-1]
            for name in names:
                wall, cpu = timed(runs[name])
                best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
                for path in (out_a, out_p):
                    if os.path.exists(path):
                        os.remove(path)
    figures = {name: {"wall_s": w, "cpu_s": c, "x_realtime": args.seconds / w} for name, (w, c) in best.items()}
    ratios = {"render_vs_pedalboard": best["pedalboard"][0] / best["render"][0],
              "analyze_vs_libebur128": best["libebur128"][0] / best["analyze"][0]}
    if args.json:
        print(json.dumps({"seconds": args.seconds, "rate": RATE, "repeat": args.repeat, "runs": figures,
                          "ratios": ratios}, indent=1))
        return 0
    print(f"{args.seconds:g} s of 44.1 kHz stereo float WAV; fresh processes, start-up included, best of "
          f"{args.repeat} alternating rounds")
    print(f"{'run':12s} {'wall s':>7s} {'CPU s':>7s} {'x real time':>12s}")
    for name, f in figures.items():
        print(f"{name:12s} {f['wall_s']:7.2f} {f['cpu_s']:7.2f} {f['x_realtime']:12.1f}")
    print(f"render / pedalboard      {ratios['render_vs_pedalboard']:.2f}x  (target >= 1.5x)")
    print(f"analyze / libebur128     {ratios['analyze_vs_libebur128']:.2f}x  (target >= 3x)")
    print(f"render CPU               {figures['render']['cpu_s']:.2f} s for {args.seconds:g} s  (target < 2 s for 300 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
