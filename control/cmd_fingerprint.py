"""The ``auracore normalize`` and ``auracore fingerprint`` subcommands: loudness normalisation and the 64-float table.

Exit codes (as ``auracore.control.cli``): 0 every file done, 1 any file failed (each
reported on stderr as one line ``auracore <command>: <path>: <reason>``; the others are
still done, and the table or the log holds them), 2 usage error, 3 an internal error, 130
interrupted (nothing half-written is left: every output is written atomically).
"""

import argparse
import json
import math
import os
import sys

from auracore.errors import AuraCoreError, one_line

from .cmd_analyze import expand_paths
from .progress import progress_factory

WRITABLE = (".wav", ".flac", ".ogg", ".aif", ".aiff")
LOG_FILE = "normalize-log.json"


def _float_in(lo: float, hi: float, what: str):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text}: not a number") from None
        if not (math.isfinite(v) and lo <= v <= hi):
            raise argparse.ArgumentTypeError(f"{text}: {what} lies in {lo:g}..{hi:g}")
        return v
    return parse


def add_parsers(sub) -> None:
    from auracore.offline.fingerprint.normalize import MAX_CEILING, MAX_LUFS, MIN_CEILING, MIN_LUFS

    n = sub.add_parser(
        "normalize", help="normalise files to a loudness (LUFS), true-peak safe, with a JSON log",
        description="Normalise each input to --lufs in two passes: measure (EBU R128 integrated loudness and "
                    "4x true peak), then apply the gain. Where that gain would put the true peak over --ceiling, "
                    "--on-peak limit (default) renders through the chain's true-peak limiter at the ceiling with "
                    "the gain set so the result still lands on the target, and --on-peak refuse skips the file "
                    "with one line. Outputs go to --out DIR under the input's name (MP3 inputs become WAV), "
                    "atomically, never over an input; DIR/normalize-log.json records loudness and true peak "
                    "before and after. A folder argument takes every audio file in it.")
    n.add_argument("paths", nargs="+", metavar="IN", help="audio file or folder")
    n.add_argument("--out", required=True, metavar="DIR", help="output folder (made when missing)")
    n.add_argument("--lufs", type=_float_in(MIN_LUFS, MAX_LUFS, "the target"), default=-18.0,
                   help="target integrated loudness in LUFS (default -18)")
    n.add_argument("--ceiling", type=_float_in(MIN_CEILING, MAX_CEILING, "the ceiling"), default=-1.0,
                   help="true-peak ceiling in dBTP (default -1)")
    n.add_argument("--on-peak", choices=("limit", "refuse"), default="limit",
                   help="over the ceiling: limit (default) or refuse the file")
    n.add_argument("--subtype", choices=("PCM_16", "PCM_24", "FLOAT"), default=None,
                   help="sample format (default: PCM_24 for WAV/AIFF/FLAC; TPDF dither when cutting word length)")
    n.add_argument("--json", action="store_true", help="print the log (a JSON list) on stdout")
    n.set_defaults(func=run_normalize)

    f = sub.add_parser(
        "fingerprint", help="write the 64-float fingerprint of files (or their regions) to Parquet or CSV",
        description="Fingerprint each input with 64 named floats measured after scaling to -18 LUFS (spectral "
                    "shape, 13 MFCC means and spreads, dynamics, octave bands, stereo, the models' view; "
                    "docs/fingerprint.md lists every column with its unit) and write one row per file, or per "
                    "content region with --regions, to --out FILE.parquet or FILE.csv, with "
                    "feature_metadata.json beside it. A folder argument takes every audio file in it.")
    f.add_argument("paths", nargs="+", metavar="IN", help="audio file or folder")
    f.add_argument("--out", required=True, metavar="FILE", help="the table: FILE.parquet or FILE.csv")
    f.add_argument("--regions", action="store_true",
                   help="one row per content region (silence-split, as catalog add does) instead of per file")
    f.add_argument("--threshold-db", type=_float_in(-80.0, 0.0, "the threshold"), default=-30.0,
                   help="with --regions: content is louder than the file's loudness plus this (default -30 dB)")
    f.add_argument("--min-region-s", type=_float_in(0.05, 3600.0, "the minimum region"), default=0.5,
                   help="with --regions: shorter regions are dropped (default 0.5 s)")
    f.add_argument("--min-gap-s", type=_float_in(0.0, 3600.0, "the minimum gap"), default=0.5,
                   help="with --regions: shorter silences do not split (default 0.5 s)")
    f.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    f.set_defaults(func=run_fingerprint)


def _frames(path: str) -> int:
    import soundfile as sf

    try:
        return int(sf.info(path).frames)
    except Exception:  # unreadable: its own error comes when it is processed
        return 0


def _bar(files: list[str], label: str):
    make = progress_factory()
    return make(sum(_frames(p) for p in files), label) if make else None


def _output_name(path: str, out_dir: str, taken: set) -> str:
    stem, ext = os.path.splitext(os.path.basename(path))
    ext = ext.lower() if ext.lower() in WRITABLE else ".wav"
    name, k = stem + ext, 2
    while name in taken:
        name, k = f"{stem}-{k}{ext}", k + 1
    taken.add(name)
    return os.path.join(out_dir, name)


def run_normalize(args: argparse.Namespace) -> int:
    from auracore.offline.audio_io import atomic_file, make_output_folder
    from auracore.offline.fingerprint.normalize import normalize_file

    prog = "auracore normalize"
    files, errors = expand_paths(args.paths)
    for e in errors:
        print(f"{prog}: {e}", file=sys.stderr)
    made = make_output_folder(args.out, "the normalised files")
    taken, log, failed = set(), [], bool(errors)
    bar = _bar(files, "normalize")
    try:
        for path in files:
            out = _output_name(path, args.out, taken)
            try:
                r = normalize_file(path, out, lufs=args.lufs, ceiling=args.ceiling, on_peak=args.on_peak,
                                   subtype=args.subtype)
                log.append(r.to_dict())
            except AuraCoreError as exc:
                failed = True
                log.append({"path": path, "output": None, "error": one_line(exc)})
                print(f"{prog}: {one_line(exc)}", file=sys.stderr)
            if bar is not None:
                bar.update(_frames(path))
    finally:
        if bar is not None:
            bar.close()
        if made and not any(r.get("output") for r in log):
            _remove_empty(args.out)  # nothing was written: leave nothing behind
    if not any(r.get("output") for r in log):
        return 1  # every file failed (each said why): no log, no folder
    with atomic_file(os.path.join(args.out, LOG_FILE), inputs=tuple(files)) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(log, fh, indent=2, allow_nan=False, default=_null)
            fh.write("\n")
    if args.json:
        print(json.dumps(log, indent=2, allow_nan=False, default=_null))
    else:
        for r in log:
            if r.get("output"):
                print(f"{r['path']} -> {r['output']}   {r['input_lufs']:.2f} -> {r['output_lufs']:.2f} LUFS, "
                      f"true peak {r['input_true_peak_dbtp']:.2f} -> {r['output_true_peak_dbtp']:.2f} dBTP"
                      + ("   (limited)" if r["limited"] else ""))
    return 1 if failed else 0


def _remove_empty(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass


def _null(v):
    return None


def run_fingerprint(args: argparse.Namespace) -> int:
    from auracore.offline.fingerprint.table import table_format, write_table

    prog = "auracore fingerprint"
    table_format(args.out)
    files, errors = expand_paths(args.paths)
    for e in errors:
        print(f"{prog}: {e}", file=sys.stderr)
    rows, failed = [], [{"path": None, "error": e} for e in errors]
    bar = _bar(files, "fingerprint")

    try:
        for path in files:
            got, bad = fingerprint_rows(path, args)
            rows.extend(got)
            failed.extend(bad)
            for f in bad:
                print(f"{prog}: {f['error']}", file=sys.stderr)
            if bar is not None:
                bar.update(_frames(path))
    finally:
        if bar is not None:
            bar.close()
    if not rows:
        if args.json:
            print(json.dumps({"output": None, "metadata": None, "rows": 0, "files": len(files), "failed": failed},
                             indent=2))
        return 1  # nothing to write (every file failed, each said why)
    meta = write_table(args.out, rows, inputs=tuple(files))
    summary = {"output": args.out, "metadata": meta, "rows": len(rows), "files": len(files), "failed": failed}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{len(rows)} rows from {len(files) - len({f['path'] for f in failed if f['path']})} of {len(files)} "
              f"files -> {args.out} (columns in {meta})")
    return 1 if failed else 0


def _row(path, index, start_s, end_s, fp) -> dict:
    from auracore.offline.fingerprint import FEATURE_NAMES

    r = {"path": path, "region_index": index, "start_s": round(start_s, 4), "end_s": round(end_s, 4),
         "duration_s": round(end_s - start_s, 4), "sample_rate": fp.sample_rate, "channels": fp.channels,
         "class": fp.content_class}
    r.update(zip(FEATURE_NAMES, (float(v) for v in fp.values)))
    return r


def fingerprint_rows(path: str, args) -> tuple[list, list]:
    """(rows, failures) of one file: one row, or one per content region with args.regions
    (args.threshold_db, min_region_s, min_gap_s); a failure is {path, [region_index,] error}."""
    from auracore.offline.fingerprint import fingerprint, fingerprint_file

    try:
        if not args.regions:
            fp = fingerprint_file(path)
            return [_row(path, -1, 0.0, fp.duration_s, fp)], []
        from auracore.offline.audio_io import load
        from auracore.offline.catalog.regions import split_regions
        from auracore.offline.chain import Meter
        from auracore.offline.fingerprint.core import MAX_CHANNELS

        x, sr = load(path, max_channels=MAX_CHANNELS)
        m = Meter(sr, x.shape[1])
        m.process(x)
        split = split_regions(x, sr, m.integrated_lufs, args.threshold_db, args.min_region_s, args.min_gap_s)
        if not split.regions:
            raise AuraCoreError(f"{path}: no content regions (silent, or nothing above the threshold)")
    except AuraCoreError as exc:
        return [], [{"path": path, "error": one_line(exc)}]
    rows, failed = [], []
    for i, reg in enumerate(split.regions):
        a, b = int(round(reg.start_s * sr)), int(round(reg.end_s * sr))
        try:
            rows.append(_row(path, i, reg.start_s, reg.end_s, fingerprint(x[a:b], sr)))
        except AuraCoreError as exc:
            failed.append({"path": path, "region_index": i,
                           "error": f"{path}: region {i} ({reg.start_s:.2f}-{reg.end_s:.2f} s): {one_line(exc)}"})
    return rows, failed


# ---------------------------------------------------------------- auracore train fingerprint

PIECES_PER_KIND = 60  # at --scale 1: acoustic, band (half electronic) and speech (out of domain)


def train_fingerprint(args) -> int:
    """`auracore train fingerprint`: the labelled table, the forest, ONNX, the metrics."""
    prog = "auracore train fingerprint"
    try:
        import sklearn  # noqa: F401
        import skl2onnx  # noqa: F401

        from auracore.offline.fingerprint import train
    except ImportError as exc:
        from .cmd_train import missing_train_extra

        return missing_train_extra(prog, exc)
    from auracore.models.fingerprint import default_model_dir

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    import time

    t0 = time.time()
    n = max(3, int(round(PIECES_PER_KIND * args.scale)))
    table = os.path.join(args.work_dir, train.TABLE_FILE)
    if not (args.reuse_data and os.path.exists(table)):
        table = train.build_table(args.work_dir, {"acoustic": n, "band": n, "speech": n}, seed=args.seed,
                                  jobs=args.jobs, log=log)
    out = args.out or default_model_dir()
    metrics = train.train_and_export(table, out, seed=args.seed, log=log)
    metrics["total_seconds"] = round(time.time() - t0, 1)
    metrics["pieces_per_kind"] = n
    with open(os.path.join(args.work_dir, train.METRICS_FILE), "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)
    sys.stdout.write(train.markdown(metrics))
    log(f"{prog}: done in {metrics['total_seconds']:.0f} s; weights in {out}, metrics in "
        f"{os.path.join(args.work_dir, train.METRICS_FILE)}")
    return 0
