"""The `auracore` command line: subcommands, and one-line errors with exit codes.

Exit codes: 0 success, 1 a failure the user can fix (bad file, preset, parameter), 2 a
usage error, 3 an internal error (a bug: set AURACORE_DEBUG=1 for the traceback), 130
interrupted by Ctrl-C, 143 stopped by SIGTERM, 129 by SIGHUP (no partial output is left
behind in any of these cases).
"""

import argparse
import importlib
import os
import sys

from auracore import __version__
from auracore.errors import AuraCoreError, clip_text, one_line
from auracore.stopping import raise_if_stopped

from .entry import Terminated, install_signal_handlers

# The modules that add subcommands, in help order; each has add_parsers(sub) or add_parser(sub).
COMMAND_MODULES = ["cmd_render", "cmd_analyze", "cmd_serve", "cmd_train", "cmd_master", "cmd_transcribe", "cmd_separate", "cmd_qc", "cmd_profile", "cmd_catalog", "cmd_batch", "cmd_fingerprint", "cmd_reconstruct"]
# which module adds each command (a test holds this to what the modules add): a command line
# naming one imports that module alone, not every command's libraries (start-up: `render`
# 0.45 s instead of 1.3 s)
COMMAND_MODULE = {"render": "cmd_render", "analyze": "cmd_analyze", "serve": "cmd_serve", "demo": "cmd_serve",
                  "devices": "cmd_serve", "train": "cmd_train", "master": "cmd_master",
                  "transcribe": "cmd_transcribe", "separate": "cmd_separate", "qc": "cmd_qc",
                  "profile": "cmd_profile", "catalog": "cmd_catalog", "batch": "cmd_batch",
                  "normalize": "cmd_fingerprint", "fingerprint": "cmd_fingerprint",
                  "reconstruct": "cmd_reconstruct"}


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: "auracore render: error: ... (see --help)", exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {clip_text(message, 300)} (see {self.prog} --help)\n")


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
    from auracore.offline.params import preset_description, preset_names  # here: the other commands skip it

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
    from auracore.kernels import params as P  # here: the other commands skip it

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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with command (a key of COMMAND_MODULE), only that
    command's module is imported and added (its parse is the same)."""
    parser = Parser(
        prog="auracore", description="AuraCore: a real-time AI mastering engine: the live daemon, and offline render, analysis and training.")
    parser.add_argument("--version", action="version", version=f"auracore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in ([COMMAND_MODULE[command]] if command in COMMAND_MODULE else COMMAND_MODULES):
        module = importlib.import_module(f"{__package__}.{name}")
        (getattr(module, "add_parsers", None) or module.add_parser)(sub)
    _add_info_parsers(sub)
    return parser


def _stop_in_chain(exc: BaseException):
    """The KeyboardInterrupt or Terminated behind an exception, if any. A signal that lands
    while a compiled (Numba) function is being dispatched surfaces as "SystemError: ...
    returned a result with an exception set", with the stop as its cause."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (KeyboardInterrupt, Terminated)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def main(argv=None) -> int:
    """Parse argv (default sys.argv[1:]) and run the command; returns the exit code."""
    name = "auracore"
    try:
        install_signal_handlers()
        # file names that are not UTF-8 reach the terminal as the bytes they are
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="surrogateescape")
        argv = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser(argv[0] if argv else None)
        args = parser.parse_args(argv)
        name = f"auracore {args.command}"
        code = args.func(args)
        if code is not None and code < 128:  # a command that reported a stop itself returned 128 + N
            raise_if_stopped()  # a stop a destructor swallowed: the exit code still says so
        return code
    except AuraCoreError as exc:
        print(f"{name}: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Terminated as stop:
        print(f"{name}: stopped by {stop.name}; nothing was written", file=sys.stderr)
        return stop.exit_code
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug: one line by default, the traceback on request
        stop = _stop_in_chain(exc)
        if isinstance(stop, Terminated):
            print(f"{name}: stopped by {stop.name}; nothing was written", file=sys.stderr)
            return stop.exit_code
        if isinstance(stop, KeyboardInterrupt):
            print(f"{name}: interrupted; nothing was written", file=sys.stderr)
            return 130
        if os.environ.get("AURACORE_DEBUG"):
            raise
        print(f"{name}: internal error: {type(exc).__name__}: {clip_text(exc, 200)} "
              "(set AURACORE_DEBUG=1 for details)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    from .entry import main as _entry_main

    sys.exit(_entry_main())
