"""Benchmark: the DSP kernels and the whole chain against pedalboard and scipy, same input.

One run, one input: 30 s of deterministic music-like 48 kHz stereo float64 (enveloped
harmonic tones and band-passed noise drum hits, peaking near -3 dBFS), in 1024-frame
blocks after a JIT warm-up. Each figure is the best of --repeat passes over the whole input,
the passes of all implementations interleaved round by round.

- auracore kernels alone: the 8-band EQ cascade, K-weighting (the same cascade, 2 stages),
  the compressor, the true-peak estimator, the limiter (estimator included);
- auracore ``chain.process`` with every EQ band non-zero, 3:1 compression, -1 dBTP limiter;
  on this material the limiter never acts (its input peaks at -5 dBFS), so the chain runs
  again with LOUD_MAKEUP_DB of makeup before the limiter, which then reduces the gain most
  of the time (the share of 128-frame ticks is printed): the "limiting" rows;
- pedalboard's closest chain: LowShelfFilter, 6 x PeakFilter, HighShelfFilter (the same
  bands), Compressor, Limiter (and a Gain of LOUD_MAKEUP_DB before the Limiter in the
  limiting rows); float32 (channels, frames) blocks, reset=False;
- pedalboard's 8 filters alone and scipy.signal.sosfilt (zi carried) for the EQ.

The process is pinned to one CPU (Numba kernels are single-threaded; so is the peer then).
Warm start: a fresh interpreter imports the chain and processes one block, JIT cache warm.
Usage:
    python bench/dsp.py [--seconds 30] [--repeat 5] [--json]
"""

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pedalboard
import scipy.signal as ss

from auracore.kernels import chain
from auracore.kernels import params as P
from auracore.kernels.biquad import (SHAPE_HIGHSHELF, SHAPE_LOWSHELF, SHAPE_PEAKING, cascade_process,
                                     design_biquad)
from auracore.kernels.compressor import RMS_WINDOW_MS, compressor_process, compressor_state, compressor_work, time_coef
from auracore.kernels.kweighting import design_kweighting
from auracore.kernels.limiter import LimiterState, limiter_process
from auracore.kernels.truepeak import TruePeakState, truepeak_process


def _material():
    """bench/dsp_material.py, loaded by path (bench/ never goes on sys.path: bench/profile.py
    would shadow the standard library's profile)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dsp_material.py")
    spec = importlib.util.spec_from_file_location("auracore_bench_dsp_material", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_M = _material()
BLOCK, CEILING_DBTP, COMP, EQ_GAINS_DB, FS = _M.BLOCK, _M.CEILING_DBTP, _M.COMP, _M.EQ_GAINS_DB, _M.FS
LIMITER_RELEASE_MS, LOUD_MAKEUP_DB = _M.LIMITER_RELEASE_MS, _M.LOUD_MAKEUP_DB
blocks_of, chain_params, music_like = _M.blocks_of, _M.chain_params, _M.music_like

TARGETS = {"chain_x_realtime": 300.0, "chain_vs_pedalboard": 1.5, "warm_start_s": 2.0}


def eq_coefs(fs=FS):
    """The chain's 8 bands (default freqs and Qs) at EQ_GAINS_DB: (8, 5)."""
    coefs = np.zeros((P.EQ_BANDS, 5))
    for b in range(P.EQ_BANDS):
        shape = SHAPE_LOWSHELF if b == 0 else SHAPE_HIGHSHELF if b == P.EQ_BANDS - 1 else SHAPE_PEAKING
        design_biquad(shape, float(fs), P.EQ_DEFAULT_FREQS_HZ[b], EQ_GAINS_DB[b], P.EQ_DEFAULT_Q[b], coefs[b])
    return coefs




# Each runner takes the input and returns a function that makes fresh state and processes
# a fresh copy of the input block by block (copies and set-up outside the timed part).

def run_eq(x):
    coefs = eq_coefs()

    def setup():
        y = x.copy()
        state = np.zeros((2, P.EQ_BANDS, 2))
        return lambda: [cascade_process(y, a, b, coefs, state) for a, b in blocks_of(len(y))]
    return setup


def run_kweighting(x):
    coefs = design_kweighting(FS)

    def setup():
        y = x.copy()
        state = np.zeros((2, 2, 2))
        return lambda: [cascade_process(y, a, b, coefs, state) for a, b in blocks_of(len(y))]
    return setup


def run_compressor(x):
    a = time_coef(COMP["attack_ms"], FS)
    r = time_coef(COMP["release_ms"], FS)
    rc = time_coef(RMS_WINDOW_MS, FS)

    def setup():
        y = x.copy()
        st = compressor_state()
        work = compressor_work()

        def go():
            for lo, hi in blocks_of(len(y)):
                compressor_process(y, lo, hi, COMP["threshold_db"], COMP["ratio"], COMP["knee_db"], a, r,
                                   False, rc, 0.0, 0.0, 0, hi - lo, st, work)
        return go
    return setup


def run_truepeak(x):
    floor = 10.0 ** (CEILING_DBTP / 20.0)  # as the limiter calls it: exact only above its ceiling

    def setup():
        tp = TruePeakState(2)
        out = np.zeros((BLOCK, 2))

        def go():
            for lo, hi in blocks_of(len(x)):
                truepeak_process(x[lo:hi], tp.coefs, tp.hist, tp.prev3, tp.work, out[:hi - lo], floor)
        return go
    return setup


def run_limiter(x):
    ceiling = 10.0 ** (CEILING_DBTP / 20.0)
    rel = time_coef(LIMITER_RELEASE_MS, FS)

    def setup():
        y = x.copy()
        lim = LimiterState(FS, 2, 1.5, BLOCK)
        arrays = lim.arrays

        def go():
            for lo, hi in blocks_of(len(y)):
                # the dry input feeds the bypass mix; with bypass 0 any rows of the block do
                limiter_process(y[lo:hi], y[lo:hi], x[lo:hi], hi - lo, ceiling, ceiling, rel, 0.0, 0.0, 0, hi - lo,
                                lim.latency, arrays)
        return go
    return setup


def run_chain(x, makeup_db=0.0):
    params = chain_params(makeup_db)

    def setup():
        y = x.copy()
        st = chain.ChainState(FS, 2, params=params)
        return lambda: [chain.process(y[a:b], st, params) for a, b in blocks_of(len(y))]
    return setup


def pedalboard_eq():
    f, q = P.EQ_DEFAULT_FREQS_HZ, P.EQ_DEFAULT_Q
    return ([pedalboard.LowShelfFilter(cutoff_frequency_hz=f[0], gain_db=EQ_GAINS_DB[0], q=q[0])]
            + [pedalboard.PeakFilter(cutoff_frequency_hz=f[b], gain_db=EQ_GAINS_DB[b], q=q[b]) for b in range(1, 7)]
            + [pedalboard.HighShelfFilter(cutoff_frequency_hz=f[7], gain_db=EQ_GAINS_DB[7], q=q[7])])


def limiting_share(x, makeup_db):
    """The share of 128-frame ticks in which the chain's limiter reduces the gain (> 0.01 dB)."""
    params = chain_params(makeup_db)
    st = chain.ChainState(FS, 2, params=params)
    y = x.copy()
    acting = 0
    for a in range(0, len(y), chain.TICK):
        chain.process(y[a:a + chain.TICK], st, params)
        acting += st.take_gain_reduction()[1] < -0.01
    return acting / math.ceil(len(y) / chain.TICK)


def run_pedalboard(x, with_dynamics, makeup_db=0.0):
    x32 = np.ascontiguousarray(x.T, dtype=np.float32)  # pedalboard's layout: (channels, frames)

    def setup():
        plugins = pedalboard_eq()
        if with_dynamics:
            plugins += [pedalboard.Compressor(threshold_db=COMP["threshold_db"], ratio=COMP["ratio"],
                                              attack_ms=COMP["attack_ms"], release_ms=COMP["release_ms"])]
            if makeup_db:
                plugins.append(pedalboard.Gain(gain_db=makeup_db))
            plugins.append(pedalboard.Limiter(threshold_db=CEILING_DBTP, release_ms=LIMITER_RELEASE_MS))
        board = pedalboard.Pedalboard(plugins)
        return lambda: [board.process(x32[:, a:b], FS, buffer_size=BLOCK, reset=False)
                        for a, b in blocks_of(x32.shape[1])]
    return setup


def run_sosfilt(x):
    coefs = eq_coefs()
    sos = np.column_stack([coefs[:, :3], np.ones(P.EQ_BANDS), coefs[:, 3:]])

    def setup():
        zi = np.zeros((P.EQ_BANDS, 2, 2))

        def go():
            nonlocal zi
            for a, b in blocks_of(len(x)):
                _, zi = ss.sosfilt(sos, x[a:b], axis=0, zi=zi)
        return go
    return setup


def best_times(setups, repeat):
    """Best time of each setup over `repeat` rounds. Rounds visit every setup in turn, so
    load from other processes on a shared machine falls on all of them alike."""
    for setup in setups:
        setup()()  # warm-up: JIT compile (or load from cache), caches, first-call costs
    best = [math.inf] * len(setups)
    for _ in range(repeat):
        for k, setup in enumerate(setups):
            go = setup()
            t0 = time.perf_counter()
            go()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


WARM_START = """
import time
t0 = time.perf_counter()
import numpy as np
from auracore.kernels import chain, params
st = chain.ChainState(48000, 2)
chain.process(np.zeros((1024, 2)), st, params.default_vector())
print(time.perf_counter() - t0)
"""


def warm_start(repeat):
    """(whole subprocess wall time, import + first block inside it), best of repeat, in s."""
    subprocess.run([sys.executable, "-c", WARM_START], check=True, capture_output=True)  # fills the cache
    wall = inner = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", WARM_START], check=True, capture_output=True, text=True)
        wall = min(wall, time.perf_counter() - t0)
        inner = min(inner, float(done.stdout.strip().splitlines()[-1]))
    return wall, inner


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="input length (default 30)")
    ap.add_argument("--repeat", type=int, default=5, help="timed rounds, best kept (default 5)")
    ap.add_argument("--json", action="store_true", help="print one JSON object of the figures")
    args = ap.parse_args(argv)

    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    x = music_like(args.seconds)
    frames = len(x)
    rows = [  # (key, stage, implementation, runner)
        ("eq", "EQ 8 bands", "auracore cascade_process", run_eq(x)),
        ("eq_sosfilt", "EQ 8 bands", "scipy sosfilt (zi)", run_sosfilt(x)),
        ("eq_pedalboard", "EQ 8 bands", "pedalboard 8 filters", run_pedalboard(x, False)),
        ("kweighting", "K-weighting", "auracore cascade_process", run_kweighting(x)),
        ("compressor", "compressor", "auracore compressor_process", run_compressor(x)),
        ("truepeak", "true-peak estimate", "auracore truepeak_process", run_truepeak(x)),
        ("limiter", "limiter (with estimate)", "auracore limiter_process", run_limiter(x)),
        ("chain", "whole chain", "auracore chain.process", run_chain(x)),
        ("chain_pedalboard", "whole chain", "pedalboard EQ+Comp+Limiter", run_pedalboard(x, True)),
        ("chain_limiting", "whole chain, limiting", "auracore chain.process", run_chain(x, LOUD_MAKEUP_DB)),
        ("chain_limiting_pedalboard", "whole chain, limiting", "pedalboard, Gain before Limiter",
         run_pedalboard(x, True, LOUD_MAKEUP_DB)),
    ]
    figures = {"input_seconds": args.seconds, "sample_rate": FS, "block": BLOCK, "cpu": cpu}
    for (key, _, _, _), t in zip(rows, best_times([r[3] for r in rows], args.repeat)):
        figures[key] = {"seconds": t, "samples_per_s": 2 * frames / t, "x_realtime": frames / FS / t}
    ratios = {
        "chain_vs_pedalboard": figures["chain"]["x_realtime"] / figures["chain_pedalboard"]["x_realtime"],
        "chain_limiting_vs_pedalboard": (figures["chain_limiting"]["x_realtime"]
                                         / figures["chain_limiting_pedalboard"]["x_realtime"]),
        "eq_vs_sosfilt": figures["eq"]["x_realtime"] / figures["eq_sosfilt"]["x_realtime"],
        "eq_vs_pedalboard": figures["eq"]["x_realtime"] / figures["eq_pedalboard"]["x_realtime"],
    }
    figures["ratios"] = ratios
    figures["limiter_acting_share"] = {"chain": limiting_share(x, 0.0),
                                       "chain_limiting": limiting_share(x, LOUD_MAKEUP_DB)}
    wall, inner = warm_start(args.repeat)
    figures["warm_start_s"] = wall
    figures["warm_start_import_and_block_s"] = inner
    figures["targets"] = TARGETS
    figures["targets_met"] = {
        "chain_x_realtime": figures["chain"]["x_realtime"] >= TARGETS["chain_x_realtime"],
        "chain_vs_pedalboard": ratios["chain_vs_pedalboard"] >= TARGETS["chain_vs_pedalboard"],
        "warm_start_s": wall < TARGETS["warm_start_s"],
    }
    if args.json:
        print(json.dumps(figures, indent=None))
        return
    print(f"{args.seconds:g} s of 48 kHz stereo float64 in {BLOCK}-frame blocks, best of {args.repeat}, "
          f"pinned to CPU {cpu}; samples = frames x 2 channels")
    print(f"{'stage':<24} {'implementation':<28} {'Msamples/s':>11} {'x real time':>12}")
    for key, stage, impl, _ in rows:
        f = figures[key]
        print(f"{stage:<24} {impl:<28} {f['samples_per_s'] / 1e6:>11.2f} {f['x_realtime']:>12.1f}")
    print()
    print(f"chain / pedalboard chain      {ratios['chain_vs_pedalboard']:6.2f}x   "
          f"(target >= {TARGETS['chain_vs_pedalboard']}x: {'met' if figures['targets_met']['chain_vs_pedalboard'] else 'NOT met'})")
    print(f"chain real-time factor        {figures['chain']['x_realtime']:6.1f}x   "
          f"(target >= {TARGETS['chain_x_realtime']:g}x: {'met' if figures['targets_met']['chain_x_realtime'] else 'NOT met'})")
    share = figures["limiter_acting_share"]
    print(f"limiter acting (ticks)        {share['chain']:6.1%}    (limiting rows, +{LOUD_MAKEUP_DB:g} dB makeup: "
          f"{share['chain_limiting']:.1%})")
    print(f"limiting chain / pedalboard   {ratios['chain_limiting_vs_pedalboard']:6.2f}x")
    print(f"EQ / scipy sosfilt            {ratios['eq_vs_sosfilt']:6.2f}x")
    print(f"EQ / pedalboard 8 filters     {ratios['eq_vs_pedalboard']:6.2f}x")
    print(f"warm start (fresh process)    {wall:6.2f} s   (import + first block inside it: {inner:.2f} s; "
          f"target < {TARGETS['warm_start_s']:g} s: {'met' if figures['targets_met']['warm_start_s'] else 'NOT met'})")


if __name__ == "__main__":
    main()
