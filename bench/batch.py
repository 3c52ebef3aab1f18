"""Bench: auracore batch on a LocalCluster against one process doing the same files in turn.

Same run, same generated inputs, same command and options: the serial peer calls the batch
command's own runner (auracore.control.cmd_batch.COMMANDS[...].run) file after file in this
process, after the same warm-up; the batch runs on a LocalCluster of --workers single-threaded
processes. Reported: wall times, files/s and their ratio, both for the whole batch (warm-up and
cluster start included) and for the files alone (files_s: first submission to last result; warm-up, cluster start and
shutdown excluded); then the
overhead per file on tiny files; and, as the ceiling of the machine at that moment, a plain
multiprocessing pool of as many spawned, warmed processes (no scheduler) on the same files. The
overhead per file on tiny files: (batch files-only time x workers - serial time) / files, the
cost of a Dask task, a worker-side open and an atomic write beyond the work itself. The
serial peer runs twice: as a user's one process does (render and analyze spread each file
pass over the cores, offline/pipeline.py) and on one thread per pass, as a batch worker does
("1-thr": the batch's scaling over its workers, and the base of the overhead figure). Outputs of
the two paths are compared (render: sample-identical; JSON commands: byte-identical).

    .venv/bin/python bench/batch.py [--command render] [--files 32] [--seconds 20] [--tiny 40] [--workers 2] [--repeat 1] [--json]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

from auracore.control import cmd_batch
from auracore.offline.batch import plan, run_batch
from auracore.offline.pipeline import set_threaded

RATE = 44100


def make_inputs(folder: str, count: int, seconds: float) -> list[str]:
    os.makedirs(folder)
    rng = np.random.default_rng(11)
    paths = []
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    for i in range(count):
        f0 = 80.0 * 2 ** (i % 24 / 12)
        x = 0.2 * np.sin(2 * np.pi * f0 * t)[:, None] + 0.05 * rng.standard_normal((n, 2))
        path = os.path.join(folder, f"in{i:03d}.wav")
        sf.write(path, x, RATE, subtype="PCM_24")
        paths.append(path)
    return paths


def namespace(command: str, preset: str | None):
    c = cmd_batch.COMMANDS[command]
    single = cmd_batch._single_parser(c)
    argv = [command, "x", "--out", "y"] + (["--preset", preset] if preset and command == "render" else [])
    holder = argparse.ArgumentParser(add_help=False)
    sub = holder.add_subparsers(dest="cmd")
    cmd_batch.add_parser(sub)
    args = holder.parse_args(["batch"] + argv)
    return c, cmd_batch.command_namespace(c, single, args), cmd_batch._suffix(c, args)


def serial(c, ns, pairs, threaded: bool = True) -> float:
    """The files in turn in this process; threaded=False: each file pass on one thread (what a
    batch worker does), else the commands' own pipelines spread each pass over the cores."""
    set_threaded(threaded)
    try:
        t0 = time.perf_counter()
        for inp, out in pairs:
            c.run(ns, inp, out)
        return time.perf_counter() - t0
    finally:
        set_threaded(True)


def _pool_init(c, ns, suffix):
    cmd_batch._warm(c, ns, suffix)


def _pool_one(args):
    c, ns, inp, out = args
    c.run(ns, inp, out)


def pool_peer(c, ns, suffix, pairs, workers) -> float:
    """The same files on a plain multiprocessing pool of `workers` spawned, warmed processes:
    what any scheme of that many processes could reach on this machine now (no scheduler)."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers, initializer=_pool_init, initargs=(c, ns, suffix)) as pool:
        pool.map(_pool_one, [(c, ns, pairs[0][0], pairs[0][1] + ".warm" + suffix)] * workers, chunksize=1)
        t0 = time.perf_counter()
        list(pool.imap_unordered(_pool_one, [(c, ns, i, o) for i, o in pairs], chunksize=1))
        return time.perf_counter() - t0


def same_outputs(a_pairs, b_pairs, suffix) -> bool:
    for (_, a), (_, b) in zip(a_pairs, b_pairs):
        if suffix == ".wav":
            if not np.array_equal(sf.read(a, dtype="int32")[0], sf.read(b, dtype="int32")[0]):
                return False
        elif open(a, "rb").read() != open(b, "rb").read():
            return False
    return True


def measure(c, ns, suffix, inputs, root, tag, workers, repeat) -> dict:
    """Each figure the best (smallest) of `repeat` alternating runs of each path (the machine
    is shared: the best run is the least disturbed); outputs compared on every run."""
    import functools

    runs, serial_s, serial1_s, pool_s, identical = [], [], [], [], True
    for r in range(repeat):
        s1_pairs = plan(inputs, os.path.join(root, f"{tag}-single{r}"), suffix)
        s_pairs = plan(inputs, os.path.join(root, f"{tag}-serial{r}"), suffix)
        b_pairs = plan(inputs, os.path.join(root, f"{tag}-batch{r}"), suffix)
        p_pairs = plan(inputs, os.path.join(root, f"{tag}-pool{r}"), suffix)
        for d in (f"{tag}-single{r}", f"{tag}-serial{r}", f"{tag}-batch{r}", f"{tag}-pool{r}"):
            os.makedirs(os.path.join(root, d))
        serial1_s.append(serial(c, ns, s1_pairs, threaded=False))
        serial_s.append(serial(c, ns, s_pairs))
        pool_s.append(pool_peer(c, ns, suffix, p_pairs, workers))
        res = run_batch(c.name, functools.partial(c.run, ns), b_pairs, os.path.join(root, f"{tag}-batch{r}"),
                        workers=workers, warm=functools.partial(cmd_batch._warm, c, ns, suffix))
        assert res.done == len(inputs) and not res.failures, res.failures
        identical = (identical and same_outputs(s_pairs, b_pairs, suffix) and same_outputs(s_pairs, p_pairs, suffix)
                     and same_outputs(s_pairs, s1_pairs, suffix))
        runs.append(res)
    t_serial, t_single = min(serial_s), min(serial1_s)
    best = {k: min(getattr(r, k) for r in runs) for k in ("time_s", "warm_s", "startup_s", "files_s")}
    n = len(inputs)
    return {"files": n, "serial_s": round(t_serial, 3), "batch_s": best["time_s"], "batch_warm_s": best["warm_s"],
            "batch_startup_s": best["startup_s"], "batch_files_s": best["files_s"],
            "serial_files_per_s": round(n / t_serial, 3), "batch_files_per_s": round(n / best["time_s"], 3),
            "speedup_total": round(t_serial / best["time_s"], 3), "speedup_files": round(t_serial / best["files_s"], 3),
            "single_thread_s": round(t_single, 3), "speedup_files_single": round(t_single / best["files_s"], 3),
            "overhead_ms_per_file": round(1000 * (best["files_s"] * workers - t_single) / n, 2),
            "pool_files_s": round(min(pool_s), 3), "speedup_pool": round(t_serial / min(pool_s), 3),
            "identical": identical, "repeat": repeat}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--command", default="render", choices=("render", "analyze", "profile"))
    ap.add_argument("--preset", default="club", help="render's preset (default club)")
    ap.add_argument("--files", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--tiny", type=int, default=40, help="tiny files (0.1 s each) for the per-file overhead")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="alternating runs of each path; the best is kept")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    c, ns, suffix = namespace(args.command, args.preset)
    root = tempfile.mkdtemp(prefix="auracore-bench-batch-")
    try:
        cmd_batch._warm(c, ns, suffix)  # the serial peer starts warm too
        big = measure(c, ns, suffix, make_inputs(os.path.join(root, "big"), args.files, args.seconds), root,
                      "big", args.workers, args.repeat)
        tiny = measure(c, ns, suffix, make_inputs(os.path.join(root, "tiny"), args.tiny, 0.1), root,
                       "tiny", args.workers, args.repeat) if args.tiny else None
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = {"load_average_1min": round(os.getloadavg()[0], 2), "command": args.command, "workers": args.workers, "cores": os.cpu_count(), "seconds_per_file": args.seconds,
           "big": big, "tiny": tiny}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"auracore batch {args.command}: LocalCluster of {args.workers} workers vs one process, "
          f"{os.cpu_count()} cores, best of {args.repeat}, load average {out['load_average_1min']} at the end")
    print(f"{'set':<6} {'files':>5} {'serial s':>9} {'batch s':>8} {'(warm':>6} {'start':>6} {'files)':>7} "
          f"{'x total':>8} {'x files':>8} {'pool s':>7} {'x pool':>7} {'1-thr s':>8} {'x 1-thr':>8} "
          f"{'ovh ms/file':>12} {'identical':>9}")
    for name, m in (("big", big), ("tiny", tiny)):
        if m is None:
            continue
        print(f"{name:<6} {m['files']:>5} {m['serial_s']:>9.2f} {m['batch_s']:>8.2f} {m['batch_warm_s']:>6.2f} "
              f"{m['batch_startup_s']:>6.2f} {m['batch_files_s']:>7.2f} {m['speedup_total']:>8.2f} "
              f"{m['speedup_files']:>8.2f} {m['pool_files_s']:>7.2f} {m['speedup_pool']:>7.2f} "
              f"{m['single_thread_s']:>8.2f} {m['speedup_files_single']:>8.2f} "
              f"{m['overhead_ms_per_file']:>12.1f} {str(m['identical']):>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
