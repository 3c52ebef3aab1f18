"""The ``auracore batch`` subcommand: one offline command over many files on Dask.

``auracore batch COMMAND INPUTS... --out DIR [command options] [--scheduler ADDRESS]
[--workers N] [--retries N] [--timeout S] [--memory-limit M] [--json]``

COMMAND is one entry of ``COMMANDS`` (render, analyze, separate, transcribe, profile,
master). Each takes the single command's own options (parsed by that command's parser, so
``--preset``, ``--set``, ``--reference`` ... mean what they mean there), minus the ones that
name outputs or print (see ``Command.exclude``). Inputs are files or folders (a folder gives
its audio files, as ``analyze`` does); paths are made absolute, since workers may run
elsewhere. Outputs go under --out, named by ``auracore.offline.batch.naming``.

Exit codes: 0 every file done or skipped, 1 any file failed (each is in the summary with its
reason) or a batch that cannot start (an unreachable scheduler, options that fail on a test
file), 2 usage error, 3 internal error, 130/143 interrupted.
"""

import argparse
import contextlib
import functools
import io
import json
import os
import sys
import tempfile
import threading
from dataclasses import dataclass

from auracore.errors import AuraCoreError, ConfigError
from auracore.offline.audio_io import make_output_folder
from auracore.offline.batch import plan, run_batch, worker_cached

PROG = "auracore batch"
AUDIO_FORMATS = ("wav", "flac", "aiff", "ogg")
_CAPTURE = threading.Lock()  # stdout/stderr are per process: one captured command at a time


@dataclass(frozen=True)
class Command:
    """One batch command: the single command's parser, the output, and how a worker runs it."""

    name: str
    module: str            # control module whose parser defines the options
    suffix: str            # output suffix; "" for a folder, None for --format's extension
    run: object            # run(ns, input, output) in a worker; raises AuraCoreError on failure
    exclude: tuple = ()    # the single command's options not offered (outputs, printing)
    help: str = ""
    parser_path: tuple = ()  # the single command's parser under `auracore` (default: (name,))
    options: tuple = ()    # batch-only options: ((flags...), {add_argument keywords}), ...
    writer: object = None  # writer(ns, pairs) -> dict, in this process after the files: one writer


def _captured(func, ns) -> str:
    """func(ns) (a command's run) with its stdout captured and returned, stderr dropped."""
    out, err = io.StringIO(), io.StringIO()
    with _CAPTURE, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = func(ns)
    if code:
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        raise AuraCoreError(lines[-1] if lines else f"the command exited with {code}")
    return out.getvalue()


def _write_text(path: str, text: str, input_path: str) -> None:
    from auracore.offline.audio_io import atomic_file

    with atomic_file(path, inputs=(input_path,), suffix=".json") as tmp:
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)


def run_analyze(ns, input_path: str, output_path: str) -> None:
    """What ``auracore analyze --json INPUT`` prints, into output_path."""
    from auracore.offline.analyze import analyze_file, json_safe

    metrics = json_safe(analyze_file(input_path, target_lufs=ns.target_lufs, exact_series=False).metrics)
    _write_text(output_path, json.dumps(metrics, indent=2, allow_nan=False) + "\n", input_path)


def run_render(ns, input_path: str, output_path: str) -> None:
    """``auracore render INPUT OUTPUT`` with ns's options; the models load once per worker."""
    from auracore.offline.params import build_params
    from auracore.offline.render import render_file

    from .cmd_render import parse_assignments

    params = build_params(ns.preset, parse_assignments(ns.assignments))
    runner = None
    if ns.ai or params["ai.enabled"]:
        from auracore.models.runtime import ModelRunner

        runner = worker_cached(("render-models", ns.models), lambda: ModelRunner(ns.models))
        params.set("ai.enabled", 1)
    render_file(input_path, output_path, params, blocksize=ns.blocksize, subtype=ns.subtype,
                two_pass=ns.two_pass, ai_runner=runner)


def run_master(ns, input_path: str, output_path: str) -> None:
    """``auracore master INPUT OUTPUT --reference REF`` with ns's options."""
    from auracore.offline.master import master_file

    master_file(input_path, output_path, ns.reference, amount=ns.amount, match=ns.match, subtype=ns.subtype)


def _separator(model, threads):
    from auracore.offline.separate.core import load_separator

    def make():
        sep, note = load_separator(model, threads=threads)
        return sep

    return worker_cached(("separator", model, threads), make)


def run_separate(ns, input_path: str, output_path: str) -> None:
    """``auracore separate INPUT FOLDER``: the stems go to a temporary folder beside
    output_path, renamed into place when every stem is written. The separator loads once
    per worker."""
    folder = os.path.dirname(output_path)
    tmp = tempfile.mkdtemp(prefix=".auracore-", dir=folder)
    try:
        stems_dir = os.path.join(tmp, "stems")
        args = argparse.Namespace(**vars(ns))
        args.input, args.outdir, args.json, args.force = input_path, stems_dir, False, False
        args.model = _separator(ns.model, ns.threads)
        _captured(_module("cmd_separate").run, args)
        try:
            os.rename(stems_dir, output_path)
        except OSError as exc:
            raise AuraCoreError(f"{output_path}: cannot move the stems into place ({exc.strerror})") from None
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def run_transcribe(ns, input_path: str, output_path: str) -> None:
    """``auracore transcribe INPUT OUTPUT.mid`` (its model session is cached per process)."""
    args = argparse.Namespace(**vars(ns))
    args.input, args.output, args.json = input_path, output_path, False
    _captured(_module("cmd_transcribe").run, args)


def run_profile(ns, input_path: str, output_path: str) -> None:
    """What ``auracore profile --json INPUT`` prints, into output_path."""
    args = argparse.Namespace(**vars(ns))
    args.input, args.json, args.plot, args.stems = input_path, True, None, None
    if args.separate:
        args.separate_model = _separator(ns.separate_model, 1)
    _write_text(output_path, _captured(_module("cmd_profile").run, args), input_path)


def _catalog_plugins(ns):
    from auracore.offline.catalog.plugins import PluginWorker

    from .cmd_catalog import _plugins

    return worker_cached(("catalog-plugins", ns.plugins, ns.timeout_s), lambda: PluginWorker(_plugins(ns)))


def run_catalog_add(ns, input_path: str, output_path: str) -> None:
    """A file's catalog analysis (regions and every plugin's result) as a JSON record in
    output_path; the writer inserts the records into the catalog afterwards."""
    from auracore.offline.catalog.store import analyse_file, utf8_problem

    problem = utf8_problem(input_path)
    if problem:
        raise AuraCoreError(f"{problem[0]}: {problem[1]}")
    record = analyse_file(input_path, _catalog_plugins(ns), ns.threshold_db, ns.min_region_s, ns.min_gap_s)
    _write_text(output_path, json.dumps(record, allow_nan=False), input_path)


def write_catalog(ns, pairs) -> dict:
    """The one writer of catalog-add: every record present under --out goes into the catalog
    (one transaction per file), unless the catalog already holds that file with that content."""
    from auracore.offline.catalog.store import Catalog

    inserted = unchanged = regions = 0
    with Catalog(ns.db) as cat:
        for _, output in pairs:
            if not os.path.exists(output):
                continue
            with open(output, encoding="utf-8") as f:
                record = json.load(f)
            if record["sha"] is not None and cat.unchanged(record["path"], record["sha"]):
                unchanged += 1
                continue
            status, n, _, _ = cat.insert(record)
            inserted += 1
            regions += n
    return {"catalog": os.path.abspath(ns.db), "files_inserted": inserted, "files_unchanged": unchanged,
            "regions_inserted": regions}


def run_fingerprint(ns, input_path: str, output_path: str) -> None:
    """A file's fingerprint rows (one, or one per region with --regions) as JSON in
    output_path; the writer gathers every file's rows into one table afterwards."""
    from .cmd_fingerprint import fingerprint_rows

    rows, failed = fingerprint_rows(input_path, ns)
    if not rows:
        raise AuraCoreError(failed[-1]["error"] if failed else f"{input_path}: no rows")
    _write_text(output_path, json.dumps({"rows": rows, "failed": failed}, allow_nan=False), input_path)


def write_fingerprints(ns, pairs) -> dict:
    """The one writer of fingerprint: every file's rows under --out, in input order, into one
    table (--table, default fingerprints.parquet in --out) with feature_metadata.json beside."""
    from auracore.offline.fingerprint.table import write_table

    rows, files = [], 0
    for _, output in pairs:
        if os.path.exists(output):
            with open(output, encoding="utf-8") as f:
                rows.extend(json.load(f)["rows"])
            files += 1
    if not pairs:
        return {"table": None, "rows": 0}
    table = ns.table or os.path.join(os.path.dirname(pairs[0][1]), "fingerprints.parquet")
    if not rows:
        return {"table": None, "rows": 0}
    write_table(table, rows, inputs=tuple(i for i, _ in pairs))
    return {"table": os.path.abspath(table), "rows": len(rows), "files_in_table": files}


# One entry per command; a command whose module is missing is left out of the CLI.
COMMANDS = {
    "render": Command("render", "cmd_render", None, run_render, ("--json",),
                      "master files through the chain (as `auracore render`)"),
    "analyze": Command("analyze", "cmd_analyze", ".json", run_analyze, ("--json", "--plot"),
                       "one JSON file per input, what `auracore analyze --json` prints"),
    "separate": Command("separate", "cmd_separate", "", run_separate, ("--json", "--force"),
                        "one folder of stems per input (as `auracore separate`)"),
    "transcribe": Command("transcribe", "cmd_transcribe", ".mid", run_transcribe, ("--json",),
                          "one MIDI file per input (as `auracore transcribe`)"),
    "profile": Command("profile", "cmd_profile", ".json", run_profile, ("--json", "--plot", "--stems"),
                       "one JSON file per input, what `auracore profile --json` prints"),
    "master": Command("master", "cmd_master", None, run_master, ("--json", "--save-preset"),
                      "match every input to one reference (as `auracore master`)"),
    "catalog-add": Command("catalog-add", "cmd_catalog", ".catalog.json", run_catalog_add, ("--json",),
                           "analyse files for the catalog on the workers (one JSON record each), then "
                           "insert them here, one writer (as `auracore catalog add`)",
                           parser_path=("catalog", "add"),
                           options=((("--db",), {"metavar": "FILE", "default": "auracore-catalog.sqlite",
                                                 "help": "the catalog file (default ./auracore-catalog.sqlite)"}),),
                           writer=write_catalog),
    "fingerprint": Command("fingerprint", "cmd_fingerprint", ".fingerprint.json", run_fingerprint, ("--json", "--out"),
                           "the 64-float fingerprint rows of each file on the workers, gathered here into one "
                           "table (as `auracore fingerprint`)",
                           options=((("--table",), {"metavar": "FILE", "default": None,
                                                    "help": "the table, .parquet or .csv (default "
                                                            "fingerprints.parquet in --out)"}),),
                           writer=write_fingerprints),
}


def _module(name: str):
    import importlib

    return importlib.import_module(f"{__package__}.{name}")


def _single_parser(command: Command) -> argparse.ArgumentParser:
    """The single command's own parser (its options, types and defaults)."""
    holder = argparse.ArgumentParser(prog="auracore", add_help=False)
    sub = holder.add_subparsers()
    module = _module(command.module)
    (getattr(module, "add_parsers", None) or module.add_parser)(sub)
    parser = holder
    for name in command.parser_path or (command.name,):
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser


def available_commands() -> dict:
    """The entries of COMMANDS whose single command exists and imports."""
    out = {}
    for name, command in COMMANDS.items():
        try:
            _single_parser(command)
        except (ImportError, KeyError, StopIteration):
            continue
        out[name] = command
    return out


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``batch`` (with one sub-command per batch command) to an argparse subparsers object."""
    p = subparsers.add_parser(
        "batch", help="run an offline command over many files on Dask (local or a cluster)",
        description="Run one offline command over many files on a Dask cluster: a LocalCluster "
                    "of one single-threaded worker per core, or an existing scheduler. Outputs go "
                    "under --out as <input stem>-<8 hex of the input path's SHA-1><ext>; finished "
                    "outputs are skipped on a rerun. A failing or timed-out file is reported and "
                    "the batch goes on; exit 1 when any file failed. See docs/batch.md.")
    sub = p.add_subparsers(dest="batch_command", metavar="COMMAND")
    sub.required = True
    for name, command in available_commands().items():
        single = _single_parser(command)
        q = sub.add_parser(name, help=command.help, description=f"auracore {name} over many files: {command.help}. "
                           "The options after the batch options are the single command's own.")
        q.add_argument("inputs", nargs="+", metavar="INPUT", help="audio file or folder (its audio files)")
        q.add_argument("--out", required=True, metavar="DIR", help="output folder (made when missing)")
        q.add_argument("--scheduler", metavar="ADDRESS", default=os.environ.get("DASK_SCHEDULER_ADDRESS") or None,
                       help="a Dask scheduler, e.g. tcp://host:8786 (default $DASK_SCHEDULER_ADDRESS, "
                            "else a LocalCluster on this machine)")
        q.add_argument("--workers", type=_count(1, 256), default=None, metavar="N",
                       help="LocalCluster worker processes, one thread each (default: one per core)")
        q.add_argument("--memory-limit", type=_memory, default=None, metavar="M",
                       help="LocalCluster memory per worker, as Dask takes it: 2GB, 500MB, 0 for none "
                            "(default auto: the machine's memory shared out)")
        q.add_argument("--retries", type=_count(0, 100), default=0, metavar="N",
                       help="run a file again up to N times after an internal error or a lost worker (default 0)")
        q.add_argument("--timeout", type=_seconds, default=None, metavar="S",
                       help="a file running longer than S seconds fails as timed out, and its worker restarts")
        if command.suffix is None:
            q.add_argument("--format", choices=AUDIO_FORMATS, default="wav", help="output audio format (default wav)")
        q.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
        for flags, kw in command.options:
            q.add_argument(*flags, **kw)
        for action in single._actions:
            if action.option_strings and action.dest != "help" and not set(action.option_strings) & set(command.exclude):
                q._add_action(action)
        q.set_defaults(func=run, batch_single=single)
    return p


def _count(lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text}: not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text}: give {lo}..{hi}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a number") from None
    if not 0.0 < value <= 7 * 86400:
        raise argparse.ArgumentTypeError(f"{text}: a timeout lies in (0, 604800] seconds")
    return value


def command_namespace(command: Command, single: argparse.ArgumentParser, args) -> argparse.Namespace:
    """The single command's options (its defaults, then what the batch line set) as a
    picklable namespace for the workers."""
    values = {flags[0].lstrip("-").replace("-", "_"): getattr(args, flags[0].lstrip("-").replace("-", "_"))
              for flags, _ in command.options}
    for action in single._actions:
        if action.dest in ("help",) or not action.option_strings:
            continue
        offered = not set(action.option_strings) & set(command.exclude)
        values[action.dest] = getattr(args, action.dest, action.default) if offered else action.default
    return argparse.Namespace(**values)


def _warm(command: Command, ns, suffix: str) -> None:
    """Run the command once here on a 1 s generated file, so the Numba kernels it needs are
    compiled and cached before any worker starts (no concurrent cache writes), and options
    that cannot run fail once, up front."""
    import numpy as np

    from auracore.offline.audio_io import save

    with tempfile.TemporaryDirectory(prefix="auracore-batch-warm-") as tmp:
        rate = 44100
        t = np.arange(rate) / rate
        rng = np.random.default_rng(7)
        x = 0.2 * np.sin(2 * np.pi * 220.0 * t)[:, None] + 0.02 * rng.standard_normal((rate, 2))
        src = os.path.join(tmp, "warm.wav")
        save(src, x, rate)
        out = os.path.join(tmp, "out" + suffix)
        try:
            command.run(ns, src, out)
        except AuraCoreError as exc:
            raise ConfigError(f"the {command.name} options fail on a test file: {exc}") from None


def _suffix(command: Command, args) -> str:
    return "." + args.format if command.suffix is None else command.suffix


def _bar(total: int):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="batch", unit="file", file=sys.stderr, leave=False)


def run(args: argparse.Namespace) -> int:
    """Plan, warm, run and report; returns the exit code. An interruption keeps the outputs
    already finished (each is complete) and says so: a rerun resumes."""
    from .entry import Terminated

    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished outputs are kept, and a rerun resumes", file=sys.stderr)
        return 130
    except Terminated as stop:
        print(f"{PROG}: stopped by {stop.name}; finished outputs are kept, and a rerun resumes", file=sys.stderr)
        return stop.exit_code


def _run(args: argparse.Namespace) -> int:
    from .cmd_analyze import expand_paths

    command = COMMANDS[args.batch_command]
    ns = command_namespace(command, args.batch_single, args)
    files, errors = expand_paths(args.inputs)
    if errors:
        raise ConfigError(errors[0])
    out_dir = args.out
    made = make_output_folder(out_dir, "the outputs")
    try:
        suffix = _suffix(command, args)
        pairs = plan(files, out_dir, suffix)
        if args.scheduler and args.workers:
            print(f"{PROG}: note: --workers is for a LocalCluster; the scheduler's workers are used", file=sys.stderr)
        task = functools.partial(command.run, ns)
        result = run_batch(command.name, task, pairs, out_dir, scheduler=args.scheduler, workers=args.workers,
                           retries=args.retries, timeout_s=args.timeout, memory_limit=args.memory_limit,
                           warm=functools.partial(_warm, command, ns, suffix), progress=_bar)
    finally:
        if made:  # a folder this run made and left empty (every file failed, or an interruption) goes
            try:
                os.rmdir(out_dir)
            except OSError:
                pass
    summary = result.to_dict()
    if command.writer is not None:
        summary.update(command.writer(ns, pairs))
    if args.json:
        print(json.dumps(summary, indent=2, allow_nan=False))
    else:
        print(f"{command.name}: {result.done} done, {result.skipped} skipped, {len(result.failures)} failed "
              f"of {result.total} in {result.time_s:.1f} s ({result.files_per_s:.2f} files/s, "
              f"{result.workers} workers at {result.scheduler}) -> {result.out_dir}")
    if command.writer is not None and not args.json:
        print(f"{command.name}: {summary['files_inserted']} files inserted into {summary['catalog']} "
              f"({summary['regions_inserted']} regions), {summary['files_unchanged']} unchanged")
    for f in result.failures:
        reason = f["reason"] if f["reason"].startswith(f["input"]) else f"{f['input']}: {f['reason']}"
        print(f"{PROG}: {reason}", file=sys.stderr)
    return 1 if result.failures else 0


def _memory(text: str):
    """Dask's memory limit: a size ("2GB", "500MB", bytes), 0 for none, or "auto"."""
    if text in ("0", "auto"):
        return 0 if text == "0" else "auto"
    from dask.utils import parse_bytes

    try:
        value = parse_bytes(text)
    except (ValueError, TypeError):
        value = -1
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: give a size such as 2GB or 500MB, 0 for none, or auto")
    return value
