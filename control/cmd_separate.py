"""The ``auracore separate`` subcommand (stems from a file), and ``auracore train separation``."""

import argparse
import json
import os
import sys
import time

PROG = "auracore separate"
STEMS4 = ("drums", "bass", "vocals", "other")
STEMS6 = ("drums", "bass", "vocals", "piano", "guitar", "other")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``separate`` subcommand to an argparse subparsers object; sets func=run."""
    p = subparsers.add_parser(
        "separate", help="split a file into stems (drums, bass, vocals, other; --six adds piano, guitar)",
        description="Separate IN into one file per stem in OUTDIR (made when missing), at the input's rate, "
                    "channel count and length; the stems add back to the input (other takes the rest). "
                    "Any length in flat memory (chunked overlap-add with crossfades), 8-192 kHz, mono in "
                    "gives mono stems. Uses the shipped ONNX model; `--model dsp`, or model files that are "
                    "missing or bad, give the DSP fallback (HPSS, a low band, centre extraction), and one "
                    "line says so. Written atomically: a failed run leaves nothing behind; existing stem "
                    "files are kept unless --force.")
    p.add_argument("input", metavar="IN", help="input audio file (WAV FLAC OGG AIFF MP3; 8-192 kHz; mono or stereo)")
    p.add_argument("outdir", metavar="OUTDIR", help="folder for the stem files (made when missing)")
    p.add_argument("--stems", type=_stems, default=None, metavar="LIST",
                   help="comma-separated stems to write (default drums,bass,vocals,other; with --six also "
                        "piano,guitar); other always takes what the listed stems leave")
    p.add_argument("--six", action="store_true", help="six stems: drums, bass, vocals, piano, guitar, other")
    p.add_argument("--format", choices=("wav", "flac"), default="wav", help="stem file format (default wav)")
    p.add_argument("--subtype", choices=("PCM_16", "PCM_24", "FLOAT"), default=None,
                   help="sample format (default PCM_24, TPDF dither; FLOAT keeps the add-back exact; not with flac)")
    p.add_argument("--model", metavar="DIR|dsp", default=None,
                   help="a model folder (separation.onnx + separation.json), or dsp for the DSP fallback "
                        "(default: the shipped model)")
    p.add_argument("--threads", type=_threads, default=None,
                   help="ONNX Runtime threads (default 2; 1 in a batch worker)")
    p.add_argument("--force", action="store_true", help="overwrite existing stem files")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.set_defaults(func=run)
    return p


def _stems(text: str) -> tuple:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in STEMS6]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{bad[0] if bad else text!r}: the stems are {', '.join(STEMS6)}")
    return tuple(s for s in STEMS6 if s in names)


def _threads(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a whole number") from None
    if not 1 <= v <= 64:
        raise argparse.ArgumentTypeError(f"{text}: use 1 to 64 threads")
    return v


def run(args: argparse.Namespace) -> int:
    from auracore.offline.separate import separate_file
    from auracore.stopping import finish  # a stop after the stems are renamed into place is too late to undo them

    from .progress import progress_factory

    stems = args.stems or (STEMS6 if args.six else STEMS4)
    if args.six and args.stems and ("piano" not in stems or "guitar" not in stems):
        stems = tuple(s for s in STEMS6 if s in set(stems) | {"piano", "guitar"})

    def note(line):
        print(f"{PROG}: {line}", file=sys.stderr)

    result = separate_file(args.input, args.outdir, stems=stems, fmt=args.format, model=args.model,
                           force=args.force, subtype=args.subtype, threads=args.threads,
                           progress_factory=progress_factory(), log=note, before_commit=finish)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, allow_nan=False))
    else:
        print(f"{result.input} -> {result.outdir}   ({result.sample_rate} Hz, {result.channels} ch, "
              f"{result.duration_s:.2f} s, {result.realtime_factor:.1f}x real time, model {result.model})")
        for s, path in result.stems.items():
            print(f"  {s:<7} {100 * result.energy_share[s]:6.2f}% of the energy   {path}")
    for w in result.warnings:
        print(f"{PROG}: warning: {w}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- auracore train separation

def train_separation(args) -> int:
    """`auracore train separation`: build the stems, train, export ONNX, print the metrics."""
    prog = "auracore train separation"
    try:
        import torch  # noqa: F401

        from auracore.models.separation import data, export, train
    except ImportError as exc:
        from .cmd_train import missing_train_extra

        return missing_train_extra(prog, exc)
    from auracore.offline.separate import evaluate

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t0 = time.time()
    work = args.work_dir
    out = args.out or export.weights_dir()
    os.makedirs(work, exist_ok=True)
    try:
        data.require_tools()
    except data.DataError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    index = os.path.join(work, data.DATA_DIR, "index.json")
    if args.reuse_data and os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            data_summary = {**json.load(f)["summary"], "reused": work}
    else:
        data_summary = data.build(work, scale=args.scale, seed=args.seed, jobs=args.jobs, log=log)
    cfg = train.TrainConfig(seed=args.seed)
    if args.max_minutes is not None:
        cfg.max_minutes = args.max_minutes
    net, summary = train.train(work, cfg, log=log)
    manifest = export.export(net, out, extra={"trained": {"seed": args.seed, "scale": data_summary.get("scale"),
                                                          "data_pieces": data_summary.get("pieces"), **summary}})
    log(f"export: separation.onnx ({os.path.getsize(os.path.join(out, export.MODEL_FILE)) / 1e6:.1f} MB) "
        f"written to {out}")
    metrics = evaluate.evaluate(work, out, log=log)
    metrics.update({"data": data_summary, "training": summary, "total_seconds": round(time.time() - t0, 1),
                    "sha256": manifest["sha256"]})
    evaluate.write(metrics, os.path.join(work, evaluate.METRICS_FILE))
    sys.stdout.write(evaluate.markdown(metrics))
    log(f"{prog}: done in {metrics['total_seconds']:.0f} s; metrics in {os.path.join(work, evaluate.METRICS_FILE)}")
    return 0
