"""The ``auracore reconstruct`` subcommand: take a track apart, rebuild it, iterate until QC passes.

Exit codes (as ``auracore.control.cli``): 0 done (whether or not the target score was
reached: the report says), 1 bad input, an output folder that is not empty (without
--force), or a language-model endpoint that failed, 2 usage error, 3 internal error, 130/143
interrupted. Nothing half-written is left: every file is written into a temporary folder
inside OUTDIR and moved into place at the end.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

from auracore.errors import AudioFileError
from auracore.stopping import raise_if_stopped

# the API's default (offline/reconstruct/core.py MAX_ROUNDS; kept here so that the parser
# loads no numpy): tests/test_reconstruct.py holds them equal
MAX_ROUNDS = 8

PROG = "auracore reconstruct"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "reconstruct", help="rebuild a track from its stems, notes and profile through FluidSynth, iterating on QC",
        description="Separate IN into stems, transcribe each, profile the track, choose a General MIDI program "
                    "per stem by timbre (family first; drums choose a kit), render the notes through FluidSynth "
                    "(FluidR3 GM), mix at the stems' levels section by section, master by reference to IN, score "
                    "with auracore qc, and iterate: a decision step changes what the weakest dimensions point at "
                    "(a program, a room, quantised notes, finer levels) and only the stems that changed are "
                    "rendered again, until --target-score, --max-rounds, or the score stops rising. OUTDIR gets "
                    "reconstruction.wav (the best round), stems/, reconstruction.mid, report.json and report.html "
                    "(A/B players, the 12 dimensions per round, spectrograms; opens offline).")
    p.add_argument("input", metavar="IN", help="input audio file (22.05-96 kHz, mono or stereo, at least 2 s)")
    p.add_argument("outdir", metavar="OUTDIR", help="output folder (made when missing; must be empty unless --force)")
    p.add_argument("--target-score", type=_score, default=85.0, help="stop when QC reaches this (0-100, default 85)")
    p.add_argument("--max-rounds", type=_rounds, default=MAX_ROUNDS, help=f"most rounds (1-20, default {MAX_ROUNDS})")
    p.add_argument("--separator", metavar="DIR|dsp", default=None,
                   help="the separation model folder, or dsp (default: the shipped model, else the DSP fallback)")
    p.add_argument("--llm-url", metavar="URL", default=None,
                   help="ask a language model at this OpenAI-compatible endpoint (POST URL/v1/chat/completions) "
                        "what to change each round, instead of the built-in rules; off unless given: nothing is "
                        "sent anywhere otherwise")
    p.add_argument("--llm-model", metavar="NAME", default="auracore", help="the model name sent to --llm-url")
    p.add_argument("--subtype", choices=("PCM_16", "PCM_24", "FLOAT"), default=None,
                   help="sample format of the WAV files (default PCM_24)")
    p.add_argument("--force", action="store_true", help="write into a non-empty OUTDIR (files of the same name are replaced)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.set_defaults(func=run)
    return p


def _score(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a number") from None
    if not 0.0 <= v <= 100.0:
        raise argparse.ArgumentTypeError(f"{text}: a score lies in 0..100")
    return v


def _rounds(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a whole number") from None
    if not 1 <= v <= 20:
        raise argparse.ArgumentTypeError(f"{text}: give 1..20 rounds")
    return v


STAGES = ("separate", "profile", "transcribe", "programs")


def run(args: argparse.Namespace) -> int:
    from auracore.offline.audio_io import check_output_path, load, make_output_folder

    x, sr = load(args.input)
    if os.path.isdir(args.outdir) and os.listdir(args.outdir) and not args.force:
        raise AudioFileError(f"{args.outdir}: the folder is not empty; nothing was written (use --force to write into it)")
    made = make_output_folder(args.outdir, "the reconstruction")
    try:
        check_output_path(os.path.join(args.outdir, "reconstruction.wav"), inputs=(args.input,))
        return _rebuild(args, x, sr, made)
    except BaseException:
        if made:
            shutil.rmtree(args.outdir, ignore_errors=True)
        raise


def _rebuild(args, x, sr, made) -> int:
    from auracore.offline.reconstruct import LLMDecider, RuleDecider, reconstruct
    from auracore.offline.reconstruct.report import write_outputs

    from .progress import progress_factory

    decider = LLMDecider(args.llm_url, model=args.llm_model) if args.llm_url else RuleDecider()
    make = progress_factory()
    bar = make(len(STAGES) + args.max_rounds, "reconstruct") if make else None

    def stage(name):
        if bar is not None:
            bar.set_description(f"reconstruct: {name}")
            bar.update(1)

    def note(line):
        if bar is None:
            print(f"{PROG}: {line}", file=sys.stderr)

    try:
        result = reconstruct(x, sr, target_score=args.target_score, max_rounds=args.max_rounds, decider=decider,
                             separator=args.separator, log=note, stage=stage)
    finally:
        if bar is not None:
            bar.close()
    tmp = tempfile.mkdtemp(prefix=".auracore-reconstruct-", dir=args.outdir)
    try:
        summary = write_outputs(result, x, os.path.abspath(args.input), tmp, subtype=args.subtype)
        final = _move_into_place(tmp, args.outdir, summary)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(final, indent=2))
    else:
        last = result.rounds[result.best_round - 1]
        print(f"{args.input} -> {final['output']}: QC {last.qc_score:.1f} in round {result.best_round} of "
              f"{len(result.rounds)} (target {args.target_score:g}); programs "
              + ", ".join(f"{n} {p}" for n, p in result.programs.items()) + f"; report {final['report']}")
    return 0


def _move_into_place(tmp: str, outdir: str, summary: dict) -> dict:
    """Every file written under tmp renamed to the same place under outdir; the summary's paths follow."""
    raise_if_stopped()
    for root, _, files in os.walk(tmp):
        for name in files:
            src = os.path.join(root, name)
            dst = os.path.join(outdir, os.path.relpath(src, tmp))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.replace(src, dst)

    def moved(p):
        return os.path.join(outdir, os.path.relpath(p, tmp))
    return {**summary, "output": moved(summary["output"]), "midi": moved(summary["midi"]),
            "report": moved(summary["report"]), "stems": {k: moved(v) for k, v in summary["stems"].items()}}
