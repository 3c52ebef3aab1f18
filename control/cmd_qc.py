"""The ``auracore qc`` subcommand: score a candidate B against an original A in 12 dimensions."""

import argparse
import json
import os
import sys

from auracore.offline.audio_io import atomic_file, load
from auracore.offline.qc import DIMENSIONS, WEIGHTS, qc
from auracore.offline.qc.core import DiskCache

PROG = "auracore qc"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``qc`` subcommand to an argparse subparsers object; sets func=run."""
    p = subparsers.add_parser(
        "qc", help="score a candidate against an original in 12 dimensions (0-100 each)",
        description="Align B (the candidate) on A (the original: rate, time offset, level), then "
                    "score 12 dimensions 0-100 (spectrum, RMS per section, width, bass notes, kick "
                    "pattern, chords, energy curve, reverb, dynamic range, BPM, arrangement, timbre) "
                    "and a weighted overall score; names the weakest. Dimensions whose steps are not "
                    "in this build are null and left out of the overall score.")
    p.add_argument("a", metavar="A", help="the original (WAV FLAC OGG AIFF MP3; mono or stereo)")
    p.add_argument("b", metavar="B", help="the candidate")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--plot", metavar="OUT.png", type=_png, help="write a bar chart of the dimensions")
    p.add_argument("--cache", metavar="DIR",
                   help="keep each side's analyses (profile, notes, onsets, embedding; not the stems) in DIR "
                        "and read them back when the same audio is scored again (a folder of small files, "
                        "named by content and version; safe to delete)")
    p.set_defaults(func=run)
    return p


def _png(text: str) -> str:
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"{text}: the plot is written as PNG; name it *.png")
    return text


def plot_report(report, path: str, inputs: tuple) -> None:
    """A horizontal bar per dimension (grey: not computed), the overall score in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(DIMENSIONS)
    values = [report.dimensions[n] if report.dimensions[n] is not None else 0.0 for n in names]
    colours = ["#bbbbbb" if report.dimensions[n] is None else
               ("#c0392b" if n in report.weakest else "#2e86c1") for n in names]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.barh(names[::-1], values[::-1], color=colours[::-1])
    ax.set_xlim(0, 100)
    ax.set_xlabel("score (0-100); grey: not computed; red: weakest")
    ax.set_title(f"auracore qc: {report.score:.1f} / 100 (offset {report.alignment['offset_s'] * 1000:.1f} ms, "
                 f"gain {report.alignment['gain_db']:+.2f} dB)", fontsize=10)
    fig.tight_layout()
    with atomic_file(path, inputs=inputs) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def format_report(r, a: str, b: str) -> str:
    lines = [f"{a} (A) vs {b} (B)",
             f"  aligned: B offset {r.alignment['offset_s'] * 1000:+.1f} ms, gain {r.alignment['gain_db']:+.2f} dB"]
    scale = r.alignment.get("time_scale", 1.0)
    if scale != 1.0:  # B at another tempo: its time mapped on A's (docs/qc.md, Alignment step 4)
        lines.append(f"  tempo: B plays at {scale:.3f}x A's tempo; its time mapped on A's (then "
                     f"{r.alignment.get('time_offset_s', 0.0) * 1000:+.1f} ms) for the notes, chords, sections and curves")
    for name in DIMENSIONS:
        v = r.dimensions[name]
        text = f"{v:6.1f}" if v is not None else "     -"
        why = "" if v is not None else "  (" + r.details[name]["unavailable"] + ")"
        lines.append(f"  {name:<22}{text}   weight {WEIGHTS[name]:2d}{why}")
    lines.append(f"  {'score':<22}{r.score:6.1f}   weakest: {', '.join(r.weakest)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    a, ra = load(args.a)
    b, rb = load(args.b)
    cache = DiskCache(args.cache) if args.cache else None
    report = qc(a, b, ra, b_rate=rb, log=lambda line: print(f"{PROG}: {line}", file=sys.stderr), cache=cache)
    if args.plot:
        plot_report(report, args.plot, (args.a, args.b))
    if args.json:
        d = report.to_dict()
        if args.plot:
            d["plot_png"] = args.plot
        print(json.dumps(d, indent=2, allow_nan=False))
    else:
        print(format_report(report, args.a, args.b))
        if args.plot:
            print(f"  plot: {args.plot}")
    return 0
