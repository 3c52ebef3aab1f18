"""Bench: `auracore master --reference` against matchering 2 on the same pairs, in the same run.

Pairs are made the way DeepAFx-ST makes them: one long piece is rendered (corpus scores
arranged for a band, FluidSynth with FluidR3 GM, 44.1 kHz so matchering runs at its own
rate); the reference is one segment of it processed with known random settings
(pedalboard: low shelf, two peaks, high shelf, compressor, stereo width, level), the input
another segment left as it is, so the ideal result (the input through the same settings)
is known. Each tool runs as a user runs it, in a process of its own: `auracore master IN OUT
--reference REF`, and matchering's Python API (its only interface) in `python -c`; wall time
from launch to exit (start-up included), CPU time and peak RSS of that process.

Figures per pair and tool: band error (mean |dB| over 1/3-octave bands 31.5 Hz - 16 kHz of
the output against the reference, both levels aligned on their integrated loudness; and
against the ideal), LUFS error, maximum true peak (dBTP), side/mid ratio error (|dB|),
wall time (s), peak RSS (MB).

    .venv/bin/python bench/master.py [--sets 3,10,30] [--pairs 3,2,1] [--work DIR] [--json]

matchering (GPL-3.0) is a dev dependency and only ever runs in its own child process here.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

RATE = 44100
REFERENCE_S = 90.0
GAP_S = 20.0
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
THIRD_OCTAVE_CENTRES_HZ = tuple(1000.0 * 2.0 ** (k / 3.0) for k in range(-15, 13))   # 31.5 Hz .. 16 kHz
HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- material

def _piece_midi(path: str, seconds: float, seed: int) -> None:
    """A band arrangement of corpus scores, one after another, filling `seconds`."""
    sys.path.insert(0, os.path.dirname(HERE))
    from auracore.models.sources import (BAND_BASSES, BAND_LEADS, BAND_PADS, DRUM_CHANNEL, SourceError,
                                         _drum_pattern, _humanise, corpus_scores, score_voices, write_midi)

    rng = np.random.default_rng(seed)
    scores = corpus_scores()
    order = rng.permutation(len(scores))
    lead, pad, bass = (int(rng.choice(BAND_LEADS)), int(rng.choice(BAND_PADS)), int(rng.choice(BAND_BASSES)))
    tracks = {0: [], 1: [], 2: [], DRUM_CHANNEL: []}
    t = 0.0
    k = 0
    cache = []
    while t < seconds:
        if len(cache) < 10:
            rel = scores[order[k % len(order)]]
            k += 1
            try:
                voices = score_voices(rel, 160.0)
            except SourceError:
                continue
            if len(voices) < 2:
                continue
            cache.append(voices)
        voices = cache[int(rng.integers(len(cache)))] if len(cache) >= 10 else cache[-1]
        bpm = float(rng.uniform(90, 130))
        spq = 60.0 / bpm
        length = max(s + d for v in voices for s, d, _ in v) * spq
        shift = int(rng.integers(-3, 4))
        part = [(t + s, d, min(max(p + shift, 24), 108), v) for s, d, p, v in _humanise(rng, voices[0], bpm, 100)]
        tracks[0] += part
        for notes in voices[1:-1]:
            tracks[1] += [(t + s, d, p + shift, v) for s, d, p, v in _humanise(rng, notes, bpm, 80)]
        low = [(s, d, max(p - 12 + shift, 28)) for s, d, p in voices[-1]]
        tracks[2] += [(t + s, d, p, v) for s, d, p, v in _humanise(rng, low, bpm, 105)]
        tracks[DRUM_CHANNEL] += [(t + s, d, p, v) for s, d, p, v in _drum_pattern(rng, bpm, length)]
        t += length + 0.5
    write_midi(path, [(0, lead, 50, tracks[0]), (1, pad, 80, tracks[1]), (2, bass, 64, tracks[2]),
                      (DRUM_CHANNEL, 0, 64, tracks[DRUM_CHANNEL])])


def render_piece(path_wav: str, seconds: float, seed: int) -> None:
    """FluidSynth render of a generated piece at 44.1 kHz (float WAV)."""
    with tempfile.TemporaryDirectory(prefix="auracore-bench-") as tmp:
        mid = os.path.join(tmp, "piece.mid")
        _piece_midi(mid, seconds, seed)
        cmd = ["fluidsynth", "-ni", "-q", "-r", str(RATE), "-g", "0.5", "-O", "float", "-T", "wav",
               "-F", path_wav, SOUNDFONT, mid]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"fluidsynth failed: {done.stderr.strip()[:300]}")


def random_settings(seed: int) -> dict:
    """Known random processing for the reference (DeepAFx-ST style)."""
    rng = np.random.default_rng(seed + 1000)
    return {
        "low_shelf": (float(rng.uniform(60, 200)), float(rng.uniform(-8, 8))),
        "peak1": (float(rng.uniform(200, 1200)), float(rng.uniform(-8, 8)), float(rng.uniform(0.7, 2.0))),
        "peak2": (float(rng.uniform(1200, 6000)), float(rng.uniform(-8, 8)), float(rng.uniform(0.7, 2.0))),
        "high_shelf": (float(rng.uniform(4000, 12000)), float(rng.uniform(-8, 8))),
        "comp": (float(rng.uniform(-30, -10)), float(rng.uniform(1.5, 6.0)), float(rng.uniform(2, 30)),
                 float(rng.uniform(50, 300))),
        "width": float(rng.uniform(0.4, 1.6)),
        "gain_db": float(rng.uniform(-6, 10)),
    }


def make_board(s: dict):
    import pedalboard as pb

    return pb.Pedalboard([
        pb.LowShelfFilter(cutoff_frequency_hz=s["low_shelf"][0], gain_db=s["low_shelf"][1]),
        pb.PeakFilter(cutoff_frequency_hz=s["peak1"][0], gain_db=s["peak1"][1], q=s["peak1"][2]),
        pb.PeakFilter(cutoff_frequency_hz=s["peak2"][0], gain_db=s["peak2"][1], q=s["peak2"][2]),
        pb.HighShelfFilter(cutoff_frequency_hz=s["high_shelf"][0], gain_db=s["high_shelf"][1]),
        pb.Compressor(threshold_db=s["comp"][0], ratio=s["comp"][1], attack_ms=s["comp"][2],
                      release_ms=s["comp"][3]),
        pb.Gain(gain_db=s["gain_db"]),
    ])


class Processor:
    """The known settings as a stream: pedalboard's chain, then the width, then a fixed scale."""

    def __init__(self, settings: dict, scale: float = 1.0):
        self.board = make_board(settings)
        self.width = settings["width"]
        self.scale = scale

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = self.board(x.T.astype(np.float32), RATE, reset=False).T.astype(np.float64)
        mid = 0.5 * (y[:, 0] + y[:, 1])
        side = 0.5 * (y[:, 0] - y[:, 1]) * self.width
        return np.stack([mid + side, mid - side], axis=1) * self.scale


def make_pair(work: str, minutes: float, index: int) -> dict:
    """Input, reference and the known settings of one pair (cached in work)."""
    tag = f"{minutes:g}min-{index}"
    inp = os.path.join(work, f"{tag}-input.wav")
    ref = os.path.join(work, f"{tag}-reference.wav")
    meta = os.path.join(work, f"{tag}.json")
    if os.path.exists(meta):
        with open(meta) as f:
            return json.load(f)
    seed = int(minutes * 100 + index)
    piece = os.path.join(work, f"{tag}-piece.wav")
    total = REFERENCE_S + GAP_S + minutes * 60.0 + 2.0
    render_piece(piece, total, seed)
    settings = random_settings(seed)
    with sf.SoundFile(piece) as f:
        ref_x = f.read(int(REFERENCE_S * RATE), dtype="float64", always_2d=True)
        f.seek(int((REFERENCE_S + GAP_S) * RATE))
        y = Processor(settings)(ref_x)
        scale = min(1.0, 0.99 / max(np.max(np.abs(y)), 1e-9))  # part of the known level
        sf.write(ref, Processor(settings, scale)(ref_x), RATE, subtype="FLOAT")
        with sf.SoundFile(inp, "w", RATE, 2, subtype="FLOAT") as out:
            left = int(minutes * 60 * RATE)
            while left > 0:
                block = f.read(min(left, 1 << 18), dtype="float64", always_2d=True)
                if block.shape[0] == 0:
                    break
                out.write(block)
                left -= block.shape[0]
    os.unlink(piece)
    info = {"tag": tag, "minutes": minutes, "input": inp, "reference": ref, "settings": settings,
            "scale": scale}
    with open(meta, "w") as f:
        json.dump(info, f)
    return info


# ---------------------------------------------------------------- figures

def _stats(path: str, processor=None) -> dict:
    """Streaming figures of a file (optionally through a processor: the ideal)."""
    from auracore.offline.master.measure import Measurer

    with sf.SoundFile(path) as f:
        m = Measurer(f.samplerate, f.channels)
        while True:
            block = f.read(1 << 16, dtype="float64", always_2d=True)
            if block.shape[0] == 0:
                break
            if block.shape[1] == 1:
                block = np.repeat(block, 2, axis=1)
                m = m if m.channels == 2 else Measurer(f.samplerate, 2)
            m.process(processor(block) if processor else block)
    r = m.finish()
    power = r.mid_power + r.side_power
    bands = []
    for c in THIRD_OCTAVE_CENTRES_HZ:
        sel = (r.freqs_hz >= c * 2 ** (-1 / 6)) & (r.freqs_hz < c * 2 ** (1 / 6))
        bands.append(10 * math.log10(max(float(power[sel].sum()), 1e-30)))
    return {"lufs": r.integrated_lufs, "true_peak_dbtp": r.true_peak_dbtp,
            "bands_db": np.array(bands) - r.integrated_lufs, "side_mid": r.side_mid_ratio}


def figures(out: dict, ref: dict, ideal: dict) -> dict:
    return {
        "band_error_db": float(np.mean(np.abs(out["bands_db"] - ref["bands_db"]))),
        "band_error_ideal_db": float(np.mean(np.abs(out["bands_db"] - ideal["bands_db"]))),
        "lufs_error_lu": abs(out["lufs"] - ref["lufs"]),
        "true_peak_dbtp": out["true_peak_dbtp"],
        "side_mid_error_db": abs(10 * math.log10(max(out["side_mid"], 1e-12) / max(ref["side_mid"], 1e-12))),
    }


# ---------------------------------------------------------------- tools, each in a child process

# the timer: runs one tool's command as a child of its own, from launch to exit (start-up
# included); CPU time and peak RSS are that child's (getrusage of the children: nothing of
# this process or of the bench is counted)
TIMER = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
err = None
if done.returncode != 0:
    err = ((done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1])[:300]
print(json.dumps({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024,
                  "error": err}))
"""

MATCHERING = ("import sys, matchering as mg; "
              "mg.process(target=sys.argv[1], reference=sys.argv[2], results=[mg.pcm24(sys.argv[3])])")


def tool_command(tool: str, inp: str, ref: str, out: str) -> list:
    """The command a user runs: `auracore master` (the venv's console script, 24-bit output,
    its default), or matchering's Python API (it has no command of its own) writing 24 bits."""
    if tool == "auracore":
        script = os.path.join(os.path.dirname(sys.executable), "auracore")
        head = [script] if os.path.exists(script) else [sys.executable, "-m", "auracore.control.cli"]
        return head + ["master", inp, out, "--reference", ref]
    return [sys.executable, "-c", MATCHERING, inp, ref, out]


def run_tool(tool: str, inp: str, ref: str, out: str) -> dict:
    done = subprocess.run([sys.executable, "-c", TIMER] + tool_command(tool, inp, ref, out),
                          capture_output=True, text=True)
    lines = [ln for ln in done.stdout.strip().splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(lines[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="3,10,30", help="input lengths in minutes")
    ap.add_argument("--pairs", default="3,2,1", help="pairs per set")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "auracore-bench-master"))
    ap.add_argument("--tools", default="auracore,matchering")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    sets = [float(s) for s in args.sets.split(",")]
    pairs = [int(p) for p in args.pairs.split(",")]
    tools = args.tools.split(",")
    rows = []
    for minutes, n in zip(sets, pairs):
        for i in range(n):
            pair = make_pair(args.work, minutes, i)
            ref = _stats(pair["reference"])
            ideal = _stats(pair["input"], Processor(pair["settings"], pair["scale"]))
            for tool in tools:
                out = os.path.join(args.work, f"{pair['tag']}-{tool}.wav")
                if os.path.exists(out):
                    os.unlink(out)
                run = run_tool(tool, pair["input"], pair["reference"], out)
                row = {"set_min": minutes, "pair": pair["tag"], "tool": tool, **run}
                if run.get("error") is None and os.path.exists(out):
                    row.update(figures(_stats(out), ref, ideal))
                    os.unlink(out)
                rows.append(row)
                print(_row_text(row), file=sys.stderr, flush=True)
    summary = _summary(rows, sets, tools)
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary}, indent=2))
    else:
        print(_table(rows, summary))
    return 0


def _row_text(r: dict) -> str:
    if r.get("error"):
        return f"{r['pair']:>12} {r['tool']:<10} error: {r['error']}"
    return (f"{r['pair']:>12} {r['tool']:<10} band {r['band_error_db']:5.2f} dB (ideal {r['band_error_ideal_db']:5.2f})"
            f"  LUFS {r['lufs_error_lu']:5.2f}  TP {r['true_peak_dbtp']:+6.2f}  S/M {r['side_mid_error_db']:5.2f} dB"
            f"  {r['wall_s']:7.1f} s (cpu {r.get('cpu_s', float('nan')):6.1f} s)  {r['peak_rss_mb']:7.0f} MB")


def _summary(rows, sets, tools) -> list:
    keys = ("band_error_db", "band_error_ideal_db", "lufs_error_lu", "side_mid_error_db", "wall_s", "cpu_s",
            "peak_rss_mb")
    out = []
    for minutes in sets:
        entry = {"set_min": minutes}
        for tool in tools:
            ok = [r for r in rows if r["set_min"] == minutes and r["tool"] == tool and not r.get("error")]
            errs = [r["error"] for r in rows if r["set_min"] == minutes and r["tool"] == tool and r.get("error")]
            if ok:
                entry[tool] = {k: float(np.mean([r[k] for r in ok])) for k in keys}
                entry[tool]["max_true_peak_dbtp"] = max(r["true_peak_dbtp"] for r in ok)
                entry[tool]["pairs"] = len(ok)
            if errs:
                entry.setdefault(tool, {})["errors"] = errs
        a, m = entry.get("auracore", {}), entry.get("matchering", {})
        if "wall_s" in a and "wall_s" in m:
            entry["speed_ratio"] = m["wall_s"] / a["wall_s"]
            entry["cpu_ratio"] = m["cpu_s"] / a["cpu_s"]
            entry["memory_ratio"] = m["peak_rss_mb"] / a["peak_rss_mb"]
        out.append(entry)
    return out


def _table(rows, summary) -> str:
    lines = ["| set | tool | pairs | band error dB (to ref / to ideal) | LUFS error LU | max TP dBTP | S/M error dB | wall s | CPU s | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for e in summary:
        for tool in ("auracore", "matchering"):
            t = e.get(tool)
            if not t:
                continue
            if "wall_s" not in t:
                lines.append(f"| {e['set_min']:g} min | {tool} | 0 | refused: {t['errors'][0][:80]} | | | | | | |")
                continue
            lines.append(f"| {e['set_min']:g} min | {tool} | {t['pairs']} | {t['band_error_db']:.2f} / {t['band_error_ideal_db']:.2f} | "
                         f"{t['lufs_error_lu']:.2f} | {t['max_true_peak_dbtp']:+.2f} | {t['side_mid_error_db']:.2f} | "
                         f"{t['wall_s']:.1f} | {t['cpu_s']:.1f} | {t['peak_rss_mb']:.0f} |")
        if "speed_ratio" in e:
            lines.append(f"| {e['set_min']:g} min | matchering / auracore | | | | | | {e['speed_ratio']:.2f}x | "
                         f"{e['cpu_ratio']:.2f}x | {e['memory_ratio']:.1f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
