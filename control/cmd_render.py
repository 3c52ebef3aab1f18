"""The `render` command: master a file offline."""

import json
import sys

from auracore.errors import clip_text
from auracore.kernels import params as P
from auracore.offline.audio_io import SUBTYPES
from auracore.offline.params import build_params, preset_names
from auracore.offline.render import render_file

from .progress import progress_factory


def add_parsers(sub) -> None:
    """Register `render` on an argparse subparsers object."""
    p = sub.add_parser(
        "render", help="master an audio file offline through the chain",
        description="Stream IN through the mastering chain into OUT (WAV, FLAC, OGG, AIFF or MP3 by "
                    "extension). The output is aligned with the input and has its length; it is "
                    "written atomically and never over the input.")
    p.add_argument("input", metavar="IN", help="input audio file (WAV FLAC OGG AIFF MP3; 8-192 kHz; mono or stereo)")
    p.add_argument("output", metavar="OUT", help="output audio file; the extension picks the format")
    chain_options(p)
    p.add_argument("--blocksize", type=int, default=1024, metavar="FRAMES",
                   help="frames per block of the models' steering with --ai (default 1024); the output "
                        "does not depend on it")
    p.add_argument("--subtype", choices=SUBTYPES, default=None,
                   help="output sample format (default PCM_24; TPDF dither when cutting word length)")
    p.add_argument("--two-pass", action="store_true",
                   help="measure first, then land the output on loudness.target_lufs within 0.1 LU")
    p.add_argument("--ai", action="store_true",
                   help="let the models steer the chain (sets ai.enabled=1, and ai.enabled=1 means --ai; ai.amount "
                        "blends, default 0.5); deterministic, the same result every run")
    p.add_argument("--models", metavar="DIR", help="with --ai: a model folder (default: the shipped models)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.set_defaults(func=run_render)


def chain_options(p, default_preset=None) -> None:
    p.add_argument("--preset", default=default_preset, metavar="NAME",
                   help="a shipped preset (" + ", ".join(preset_names()) + ") or a path to a TOML file"
                   + (f" (default {default_preset})" if default_preset else ""))
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="ID=VALUE",
                   help="set a parameter, e.g. eq.3.gain_db=2.5 (repeatable; see `auracore params`)")


def _print_summary(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return

    def fmt(v, unit):
        return f"{v:8.2f} {unit}" if v is not None else "       - " + unit

    print(f"{result.input} -> {result.output}")
    print(f"  duration           {result.duration_s:8.2f} s    ({result.sample_rate} Hz, {result.channels} ch)")
    print(f"  input  integrated  {fmt(result.input_integrated_lufs, 'LUFS')}   true peak {fmt(result.input_true_peak_dbtp, 'dBTP')}")
    print(f"  output integrated  {fmt(result.output_integrated_lufs, 'LUFS')}   true peak {fmt(result.output_true_peak_dbtp, 'dBTP')}")
    print(f"  output range       {fmt(result.output_loudness_range_lu, 'LU')}")
    if result.two_pass_gain_db is not None:
        print(f"  two-pass gain      {result.two_pass_gain_db:8.2f} dB   ({result.measure_passes} measuring passes)")
    print(f"  speed              {result.realtime_factor:8.1f} x real time")
    if result.sanitised_samples:
        print(f"  sanitised          {result.sanitised_samples} NaN/Inf input samples replaced by 0")
    for w in result.warnings:
        print(f"  warning: {w}")


def run_render(args) -> int:
    params = build_params(args.preset, parse_assignments(args.assignments))
    runner = None
    if args.ai or params["ai.enabled"]:  # --set ai.enabled=1 (or a preset saying so) means --ai
        from auracore.models.runtime import ModelRunner

        runner = ModelRunner(args.models)  # ModelError: one line, exit 1
        params.set("ai.enabled", 1)
    result = render_file(args.input, args.output, params, blocksize=args.blocksize, subtype=args.subtype,
                         two_pass=args.two_pass, progress_factory=progress_factory(), ai_runner=runner)
    _print_summary(result, args.json)
    for w in result.warnings:
        print(f"auracore render: warning: {w}", file=sys.stderr)
    return 0


def parse_assignments(items: list[str]) -> dict[str, float]:
    """Parse repeated ``ID=VALUE`` strings (from --set) into validated {id: value}."""
    out = {}
    for item in items:
        if "=" not in item:
            raise P.ParamError(f"--set {clip_text(item, 60)}: expected ID=VALUE, e.g. eq.3.gain_db=2.5")
        pid, value = item.split("=", 1)
        if not value.strip():
            raise P.ParamError(f"--set {clip_text(item, 60)}: no value after '='")
        out[pid.strip()] = P.check_in_range(pid.strip(), value)
    return out
