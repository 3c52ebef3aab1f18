"""The ``auracore master`` subcommand: master a file to sound like a reference, optionally save the match as a preset."""

import argparse
import json
import math
import sys

from auracore.kernels import params as P
from auracore.offline.audio_io import SUBTYPES, atomic_file
from auracore.offline.master import MATCH_ALL, master_file
from auracore.offline.master.core import check_match

from .progress import progress_factory

PROG = "auracore master"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``master`` subcommand to an argparse subparsers object; sets func=run."""
    p = subparsers.add_parser(
        "master", help="master a file to match a reference track (EQ, loudness, dynamics, width)",
        description="Measure IN and the reference (streaming), set the mastering chain so IN matches "
                    "the reference's tonal balance (8-band EQ fitted to the smoothed mid/side spectral "
                    "difference, plus an offline linear-phase stage where 8 bands cannot follow), "
                    "integrated loudness (LUFS), dynamics (compressor toward its loudness range) and "
                    "stereo width, and render IN through it into OUT. The true-peak limiter holds the "
                    "ceiling (-1 dBTP, or the reference's true peak when lower). Any length, any rate; "
                    "mono in gives mono out.")
    p.add_argument("input", metavar="IN", help="input audio file (WAV FLAC OGG AIFF MP3; mono or stereo)")
    p.add_argument("output", metavar="OUT", help="output audio file; the extension picks the format")
    p.add_argument("--reference", required=True, metavar="REF", help="the reference track to match")
    p.add_argument("--amount", type=_amount, default=1.0, metavar="0..1",
                   help="how much of the match (default 1): every change scaled from the neutral chain; "
                        "0 writes the input unchanged")
    p.add_argument("--match", type=_match, default=MATCH_ALL, metavar="LIST",
                   help="what to match, comma-separated (default " + ",".join(MATCH_ALL) + ")")
    p.add_argument("--save-preset", metavar="P.toml", type=_toml_path,
                   help="also write the chain's settings as a preset for `render --preset` and `serve --preset`")
    p.add_argument("--subtype", choices=SUBTYPES, default=None,
                   help="output sample format (default PCM_24; TPDF dither when cutting word length)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.set_defaults(func=run)
    return p


def _amount(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a number") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: the amount lies in 0..1")
    return v


def _match(text: str) -> tuple:
    try:
        return check_match(text)
    except P.ParamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _toml_path(text: str) -> str:
    if not text.lower().endswith(".toml"):
        raise argparse.ArgumentTypeError(f"{text}: a preset is a TOML file; name it *.toml")
    return text


def preset_text(params: dict, description: str) -> str:
    """A preset file (TOML, one "id" = value line per parameter) that ``presets.load_preset`` reads."""
    lines = [f"description = {json.dumps(description)}", ""]
    for pid, value in params.items():
        p = P.lookup(pid)
        text = ("true" if value >= 0.5 else "false") if p.kind == "bool" else repr(float(value))
        lines.append(f'"{pid}" = {text}')
    return "\n".join(lines) + "\n"


def write_preset(path: str, params: dict, description: str, inputs: tuple) -> None:
    """Write the preset atomically (nothing is left behind on failure); never over an input."""
    with atomic_file(path, inputs=inputs) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(preset_text(params, description))


def run(args: argparse.Namespace) -> int:
    inputs = (args.input, args.reference)
    result = master_file(args.input, args.output, args.reference, amount=args.amount, match=args.match,
                         subtype=args.subtype, progress_factory=progress_factory())
    summary = {"input": args.input, "output": args.output, "reference": args.reference, **result.to_dict()}
    if args.save_preset:
        note = ("matched to the reference; the offline linear-phase matching curve is not part of the live chain"
                if result.matching_curve else "matched to the reference")
        write_preset(args.save_preset, result.params, f"auracore master: {note}",
                     inputs + (args.output,))
        summary["preset"] = args.save_preset
    if args.json:
        print(json.dumps(summary, indent=2, allow_nan=False))
    else:
        print(format_summary(summary))
    return 0


def _num(v, unit: str) -> str:
    return f"{v:8.2f} {unit}" if isinstance(v, (int, float)) and math.isfinite(v) else f"       - {unit}"


def format_summary(s: dict) -> str:
    """The human-readable lines of a master summary."""
    lines = [f"{s['input']} -> {s['output']}   (reference {s['reference']})"]
    for who in ("input", "reference", "output"):
        lines.append(f"  {who:<10} integrated {_num(s[who + '_integrated_lufs'], 'LUFS')}   "
                     f"true peak {_num(s[who + '_true_peak_dbtp'], 'dBTP')}")
    p = s["params"]
    eq = " ".join(f"{p[f'eq.{b}.gain_db']:+.1f}@{p[f'eq.{b}.freq_hz']:.0f}" for b in range(1, P.EQ_BANDS + 1))
    lines.append(f"  EQ (dB@Hz)  {eq}")
    lines.append(f"  compressor  {p['comp.ratio']:.2f}:1 at {p['comp.threshold_db']:.1f} dBFS   "
                 f"width {p['width.amount']:.2f}   output gain {p['output.gain_db']:+.2f} dB   "
                 f"ceiling {p['limiter.ceiling_dbtp']:.2f} dBTP")
    if s.get("matching_curve"):
        c = s["matching_curve"]
        lines.append(f"  matching    offline linear-phase stage, {c['taps']} taps "
                     f"(not in the live chain or the preset)")
    if s.get("preset"):
        lines.append(f"  preset      {s['preset']}")
    return "\n".join(lines)
