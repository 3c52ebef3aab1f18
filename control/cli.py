"""The `auracore` command line: subcommands, and one-line errors with exit codes.

Exit codes: 0 success, 1 a failure the user can fix (bad file, preset, parameter), 2 a
usage error (argparse), 3 an internal error (a bug: set AURACORE_DEBUG=1 for the
traceback), 130 interrupted by Ctrl-C (no partial output is left behind).
"""

import argparse
import os
import sys

from auracore import __version__
from auracore.kernels import params as P
from auracore.offline.audio_io import AudioFileError

from auracore.models.runtime import ModelError
from auracore.realtime.portaudio import AudioDeviceError

from . import cmd_analyze, cmd_render, cmd_serve, cmd_train
from .presets import PresetError, preset_description, preset_names


def _add_info_parsers(sub) -> None:
    p = sub.add_parser("presets", help="list the shipped presets",
                       description="List the presets shipped in the package with their descriptions.")
    p.set_defaults(func=_run_presets)
    q = sub.add_parser("params", help="print the parameter table (ids, units, ranges, defaults)",
                       description="Print every live parameter: id, OSC address, unit, range, default, "
                                   "glide time and description, as a Markdown table (docs/parameters.md); "
                                   "with --osc, the OSC address space (docs/osc.md).")
    q.add_argument("--osc", action="store_true", help="print the OSC address space instead")
    q.set_defaults(func=_run_params)


def _run_presets(args) -> int:
    for name in preset_names():
        print(f"{name:10s} {preset_description(name)}")
    return 0


def params_markdown() -> str:
    """The parameter documentation table, generated from the registry."""
    rows = ["# Parameters", "",
            "Every live parameter, generated from the registry (kernels/params.py) by",
            "`auracore params > docs/parameters.md`; a test fails when this file is out of date.",
            "Booleans take 0 or 1. Glide: the time constant (ms) of the one-pole that smooths a change.", "",
            "| id | OSC address | unit | range | default | glide ms | description |",
            "|---|---|---|---|---|---|---|"]
    for p in P.PARAMS:
        rows.append(f"| `{p.id}` | `{p.osc_address}` | {p.unit} | {p.range_text} | {p.default:g} | "
                    f"{p.smoothing_ms:g} | {p.description} |")
    return "\n".join(rows) + "\n"


def _run_params(args) -> int:
    if args.osc:
        from .osc_server import osc_markdown

        sys.stdout.write(osc_markdown())
    else:
        sys.stdout.write(params_markdown())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auracore", description="AuraCore: a real-time AI mastering engine: the live daemon, and offline render, analysis and training.")
    parser.add_argument("--version", action="version", version=f"auracore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    cmd_render.add_parsers(sub)
    cmd_analyze.add_parser(sub)
    cmd_serve.add_parsers(sub)
    cmd_train.add_parser(sub)
    _add_info_parsers(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    name = f"auracore {args.command}"
    try:
        return args.func(args)
    except (AudioFileError, PresetError, P.ParamError, cmd_serve.ConfigError, AudioDeviceError, ModelError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug: one line by default, the traceback on request
        if os.environ.get("AURACORE_DEBUG"):
            raise
        print(f"{name}: internal error: {type(exc).__name__}: {exc} (set AURACORE_DEBUG=1 for details)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
