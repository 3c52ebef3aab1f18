"""The ``auracore analyze`` subcommand: arguments, folder expansion, table or JSON output, plots.

Several inputs: "several" means more than one FILE argument or any folder argument. Then
``--json`` prints a JSON list (of the files that could be read, possibly empty) and
``--plot OUT.png`` writes one PNG per file, OUT-1.png, OUT-2.png ... numbered by the file's
place in the expanded, sorted input list (a file that fails leaves its number unused). With a
single FILE argument, ``--json`` prints one object and the plot goes to OUT.png itself.

Exit codes (as ``auracore.control.cli``): 0 all files analysed, 1 any file failed (each
reported on stderr as one line ``auracore analyze: <path>: <reason>``; the others are still
analysed and printed), 2 usage error, 3 an internal error (a bug; the batch goes on, and
AURACORE_DEBUG=1 shows the traceback instead), 130 interrupted.
"""

import argparse
import json
import math
import os
import sys

from auracore.errors import one_line
from auracore.offline.analyze import TARGET_LUFS, analyze_file, json_safe
from auracore.offline.audio_io import AUDIO_EXTENSIONS, AudioFileError

from .progress import progress_factory

PROG = "auracore analyze"
CHANNEL_NAMES = {1: ("M",), 2: ("L", "R"), 6: ("L", "R", "C", "LFE", "Ls", "Rs")}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``analyze`` subcommand to an argparse subparsers object; sets func=run."""
    p = subparsers.add_parser(
        "analyze", help="measure loudness, peaks, dynamics, stereo, spectrum and a quality score",
        description="Analyse audio files (1 to 8 channels) in a streaming pass: EBU R128 "
                    "loudness, true peak, PLR, crest factor, stereo correlation and width, DC "
                    "offset, clipping, octave band levels and a 0-100 quality score. A folder "
                    "argument analyses every audio file directly in it ("
                    + " ".join(AUDIO_EXTENSIONS) + "), sorted by name. JSON writes null where "
                    "a value is -inf (silence) or undefined.")
    p.add_argument("paths", nargs="+", metavar="FILE", help="audio file or folder")
    p.add_argument("--json", action="store_true",
                   help="print JSON: one object for one FILE, a list for several or a folder")
    p.add_argument("--plot", metavar="OUT.png", type=_png_path,
                   help="write a PNG figure; for several files OUT-1.png, OUT-2.png ...")
    p.add_argument("--target-lufs", type=_target_lufs, default=TARGET_LUFS,
                   help=f"loudness target for the quality score (default {TARGET_LUFS:g})")
    p.set_defaults(func=run)
    return p


def _png_path(text: str) -> str:
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"{text}: the plot is written as PNG; name it *.png")
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"{text}: the folder {folder} does not exist")
    return text


def _target_lufs(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a number") from None
    if not -70.0 <= value <= 0.0:
        raise argparse.ArgumentTypeError(f"{text}: a loudness target lies in -70..0 LUFS")
    return value


def expand_paths(paths: list[str]) -> tuple[list[str], list[str]]:
    """(files, errors): folders replaced by their audio files, sorted by name; one error
    line (without the program prefix) per folder holding none. Other paths pass through."""
    files, errors = [], []
    for path in paths:
        if not os.path.isdir(path):
            files.append(path)
            continue
        found = sorted(os.path.join(path, name) for name in os.listdir(path)
                       if name.lower().endswith(AUDIO_EXTENSIONS)
                       and os.path.isfile(os.path.join(path, name)))
        if not found:
            errors.append(f"{path}: no audio files in this folder (looked for "
                          + ", ".join(AUDIO_EXTENSIONS) + ")")
        files.extend(found)
    return files, errors


def plot_path(out: str, index: int, several: bool) -> str:
    """The PNG path for the file at 1-based index: out itself, or out's stem + -index."""
    if not several:
        return out
    stem, ext = os.path.splitext(out)
    return f"{stem}-{index}{ext}"


def run(args: argparse.Namespace) -> int:
    """Analyse args.paths; print a table per file or JSON; return the exit code."""
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    several = len(args.paths) > 1 or any(os.path.isdir(p) for p in args.paths)
    files, errors = expand_paths(args.paths)
    for line in errors:
        print(f"{PROG}: {one_line(line)}", file=sys.stderr)
    status = 1 if errors else 0
    bars = progress_factory()  # per-file bars on a terminal's stderr, closed before any message
    results = []
    for index, path in enumerate(files, start=1):
        try:
            metrics = _analyze_one(path, index, several, args, bars)
        except (AudioFileError, OSError) as exc:
            print(f"{PROG}: {_one_line(exc, path)}", file=sys.stderr)
            status = max(status, 1)
            continue
        except Exception as exc:  # a bug: one line, and the batch goes on
            if os.environ.get("AURACORE_DEBUG"):
                raise
            print(f"{PROG}: {path}: internal error: {type(exc).__name__}: {_one_line(exc, '')} "
                  "(set AURACORE_DEBUG=1 for details)", file=sys.stderr)
            status = 3
            continue
        if args.json:  # the Python API's Analysis.to_dict(), and the plot's path when drawn
            results.append(json_safe(metrics))
        else:
            print(format_table(metrics), flush=True)
    if args.json and (several or results):
        print(json.dumps(results if several else results[0], indent=2, allow_nan=False))
    return status


def _analyze_one(path: str, index: int, several: bool, args, bars) -> dict:
    result = analyze_file(path, target_lufs=args.target_lufs, progress_factory=bars, exact_series=bool(args.plot))
    metrics = result.metrics
    if args.plot:
        from auracore.offline.plot import plot_analysis  # matplotlib loads only when asked for

        out = plot_path(args.plot, index, several)
        plot_analysis(result, out)
        metrics["plot_png"] = out
    return metrics


def _one_line(exc: Exception, path: str) -> str:
    """The exception's message on one line, led by the path when the message does not carry it."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename or path}: {exc.strerror}"
    if path and not text.startswith(path):
        text = f"{path}: {text}"
    return one_line(text)


def format_table(metrics: dict) -> str:
    """One file's metrics as aligned rows (label, value, unit, per-channel detail); -inf is
    shown as -inf, unknown values as n/a."""
    m = metrics
    names = CHANNEL_NAMES.get(m["channels"], tuple(str(i + 1) for i in range(m["channels"])))

    def per_channel(values, digits=2):
        if len(values) < 2:
            return ""
        return "(" + ", ".join(f"{n} {_num(v, digits)}" for n, v in zip(names, values)) + ")"

    dc = m["dc_offset"]
    rows = [
        ("duration", _num(m["duration_s"], 3), "s"),
        ("sample rate", str(m["sample_rate"]), "Hz"),
        ("channels", str(m["channels"]), ""),
        ("integrated loudness", _num(m["integrated_lufs"]), "LUFS"),
        ("loudness range", _num(m["loudness_range_lu"]), "LU"),
        ("momentary max", _num(m["momentary_max_lufs"]), "LUFS"),
        ("short-term max", _num(m["short_term_max_lufs"]), "LUFS"),
        ("true peak", _num(m["true_peak_dbtp"]),
         "dBTP  " + per_channel(m["true_peak_dbtp_per_channel"])),
        ("true-peak overs", str(m["true_peak_overs"]), "runs of 10 ms at or above -1 dBTP"),
        ("sample peak", _num(m["sample_peak_dbfs"]),
         "dBFS  " + per_channel(m["sample_peak_dbfs_per_channel"])),
        ("RMS", _num(m["rms_dbfs"]), "dBFS  " + per_channel(m["rms_dbfs_per_channel"])),
        ("PLR", _num(m["plr_db"]), "dB"),
        ("crest factor", _num(m["crest_factor_db"]), "dB"),
        ("stereo correlation", _num(m["stereo_correlation"], 3), ""),
        ("stereo width", _num(m["stereo_width"], 3), "side/mid energy"),
        ("DC offset", _num(max(dc, key=abs), 5), "full scale, largest  " + per_channel(dc, 5)),
        ("clipping events", str(m["clipping_events"]), "runs of 3+ samples at or above -0.01 dBFS"),
    ]
    rows += [(f"band {label} Hz", _num(v, 1), "dB re total")
             for label, v in m["band_levels_db"].items()]
    rows.append(("quality score", _num(m["quality_score"], 1), "/ 100"))
    rows += [(f"  - {name}", f"-{t['penalty']:.2f}" if t["penalty"] > 0 else "0.00", t["rule"])
             for name, t in m["quality_terms"].items()]
    label_w = max(len(r[0]) for r in rows)
    value_w = max(len(r[1]) for r in rows)
    lines = [m["path"]]
    lines += [f"  {label:<{label_w}}  {value:>{value_w}}  {unit}".rstrip() for label, value, unit in rows]
    if "plot_png" in m:
        lines.append(f"  plot: {m['plot_png']}")
    return "\n".join(lines) + "\n"


def _num(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:.{digits}f}"
