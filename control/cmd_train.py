"""The ``auracore train`` subcommand: rebuild the data, train, export ONNX, measure on held-out pieces.

Needs the ``train`` extra (torch, onnx, music21) and Debian's fluidsynth, fluid-soundfont-gm
and espeak-ng. Everything is seeded: the same command gives the same data and, on the same
machine and library versions, the same weights.
"""

import argparse
import os
import sys
import time

PROG = "auracore train"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to an argparse subparsers object; sets func=run."""
    # the package folder, not runtime.default_model_dir: that would import ONNX Runtime for
    # every command the CLI parses
    import auracore.models

    weights_dir = os.path.join(os.path.dirname(os.path.abspath(auracore.models.__file__)), "weights")
    p = subparsers.add_parser(
        "train", help="rebuild the training data, train and export the models, report held-out metrics",
        description="Rebuild the training data (rendered corpus scores, generated band and electronic "
                    "tracks, espeak-ng speech, noises, silences, and their flawed copies), train the "
                    "feature extractor, content classifier and parameter predictor, export them as "
                    "ONNX and measure them on held-out pieces. Needs the train extra "
                    "(pip install 'auracore[train]') and Debian's fluidsynth, fluid-soundfont-gm and espeak-ng.")
    p.add_argument("target", nargs="?", choices=("models", "width", "separation", "fingerprint"), default="models",
                   help="what to train: models (default: the mastering models), width (the width model "
                        "on stereo input, see models/MODEL_CARD.md; renders the data set's clean pieces of "
                        "seed 1 into --work-dir, --seed and --scale do not apply), separation (the stem "
                        "separation model, see docs/separate.md) or fingerprint (the flaw classifier on "
                        "fingerprints, see docs/fingerprint.md)")
    p.add_argument("--work-dir", default="auracore-train",
                   help="folder for the data, checkpoints, curves.csv and metrics (default ./auracore-train)")
    p.add_argument("--out", default=None,
                   help="where the ONNX files and manifest go (default: the package's shipped weights, "
                        f"{weights_dir} for models)")
    p.add_argument("--scale", type=_positive, default=1.0,
                   help="data size as a fraction of the full set (default 1: 390 pieces, about 1400 clips)")
    p.add_argument("--seed", type=int, default=1, help="seed for the data and the training (default 1)")
    p.add_argument("--jobs", type=int, default=2, help="processes building the data (default 2)")
    p.add_argument("--epochs", type=int, default=80, help="most epochs (default 80; early stopping ends sooner)")
    p.add_argument("--max-minutes", type=_positive, default=None,
                   help="stop training after this many minutes (default 20; 75 for separation)")
    p.add_argument("--reuse-data", action="store_true",
                   help="train on the data already in --work-dir instead of rebuilding it")
    p.set_defaults(func=run)
    return p


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text} must be above 0")
    return v


def missing_train_extra(prog: str, exc: ImportError) -> int:
    """The one line for a training target whose train extra is not installed; exit code 1."""
    print(f"{prog}: needs the train extra ({exc.name} is missing): pip install 'auracore[train]'", file=sys.stderr)
    return 1


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _train_width(args) -> int:
    try:
        import sklearn  # noqa: F401
        import skl2onnx  # noqa: F401

        from auracore.models import width
        from auracore.models.runtime import default_model_dir
        from auracore.models.sources import SourceError
    except ImportError as exc:
        return missing_train_extra(PROG, exc)
    os.makedirs(args.work_dir, exist_ok=True)
    try:
        metrics = width.train(args.work_dir, args.out or default_model_dir(), log=_log)
    except SourceError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(width.markdown(metrics))
    _log(f"{PROG}: width model written to {args.out or default_model_dir()} in {metrics['trained']['seconds']:.0f} s")
    return 0


def run(args) -> int:
    if getattr(args, "target", "models") == "separation":
        from .cmd_separate import train_separation

        return train_separation(args)
    if getattr(args, "target", "models") == "fingerprint":
        from .cmd_fingerprint import train_fingerprint

        return train_fingerprint(args)
    if getattr(args, "target", "models") == "width":
        return _train_width(args)
    if args.out is None:
        import auracore.models

        args.out = os.path.join(os.path.dirname(os.path.abspath(auracore.models.__file__)), "weights")
    args.max_minutes = 20.0 if args.max_minutes is None else args.max_minutes
    try:
        import torch  # noqa: F401

        from auracore.models import dataset, evaluate, export, train
        from auracore.models.sources import SourceError
    except ImportError as exc:
        return missing_train_extra(PROG, exc)
    t0 = time.time()
    os.makedirs(args.work_dir, exist_ok=True)
    try:
        if args.reuse_data and os.path.exists(os.path.join(args.work_dir, dataset.DATA_FILE)):
            data_summary = {"reused": args.work_dir}
        else:
            data_summary = dataset.build(args.work_dir, scale=args.scale, seed=args.seed, jobs=args.jobs, log=_log)
    except SourceError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    arrays, clips = dataset.load(args.work_dir)
    cfg = train.TrainConfig(epochs=args.epochs, max_minutes=args.max_minutes, seed=args.seed)
    models, train_summary = train.train(train.Data(arrays, clips), args.work_dir, cfg, log=_log)
    manifest = export.export(models, args.out, extra={
        "trained": {"seed": args.seed, "scale": args.scale, "max_epochs": args.epochs,
                    "max_minutes": args.max_minutes, "epochs": train_summary["epochs"],
                    "best_epoch": train_summary["best_epoch"]}})
    _log(f"export: {', '.join(sorted(manifest['sha256']))} written to {args.out}")
    metrics = evaluate.evaluate(args.work_dir, args.out, log=_log)
    metrics["data"] = data_summary
    metrics["training"] = train_summary
    metrics["total_seconds"] = round(time.time() - t0, 1)
    evaluate.write(metrics, args.work_dir)
    sys.stdout.write(evaluate.markdown(metrics))
    _log(f"{PROG}: done in {metrics['total_seconds']:.0f} s; metrics in "
         f"{os.path.join(args.work_dir, 'metrics.json')}, curves in {os.path.join(args.work_dir, train.CURVES_FILE)}")
    return 0


def main(argv=None) -> int:
    """Run ``train`` alone (``python -m auracore.control.cmd_train``) until the CLI wires it in."""
    parser = argparse.ArgumentParser(prog="auracore")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
