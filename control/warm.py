"""Compile (or load from Numba's cache) every DSP kernel the daemon and the commands call, build the commands' entry points ahead of time, and say so when it is slow.

Numba compiles the kernels on their first call and caches the machine code beside the
sources; the first run after an install or an upgrade therefore spends about a minute on 2
cores compiling. ``scripts/install`` runs ``python -m auracore.control.warm`` once so that
cost is paid at install time; it also makes the ahead-of-time build (``kernels/aot.py``)
from ``workload``: render, analyze, master, transcribe, profile, separate and qc run here on
small generated files, and every kernel entry they called is compiled into a module that
later runs them without loading Numba. Where compiling must be paid at run time,
``announce_if_slow`` prints one line after a couple of seconds instead of leaving the user in
silence.
"""

import shutil
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np

SLOW_S = 2.0
MESSAGE = "compiling the DSP kernels (first run after an install or upgrade: about a minute on 2 cores; cached afterwards)"


@contextmanager
def announce_if_slow(log, message: str = MESSAGE, after_s: float = SLOW_S):
    """Run the block; if it is still running after after_s seconds, log(message) once."""
    timer = threading.Timer(after_s, log, [message])
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def warm_engine(sample_rate: int, channels: int, params) -> None:
    """The live engine's kernels, on a scratch engine, for both block dtypes (the audio
    callback's float32 and the file backend's float64) and every thread's entry point."""
    from auracore.realtime.engine import Engine

    scratch = Engine(sample_rate, channels, params)
    block = np.zeros((64, channels), dtype=np.float32)
    scratch.run_block(block, block.copy())
    scratch.run_block(block.astype(np.float64), block.astype(np.float64))
    scratch.control.post([(0, float(params[0]))])
    scratch.targets.publish(scratch.params)
    scratch.ring.read(np.zeros(64, dtype=np.float32))
    scratch.out_ring.read(np.zeros(64, dtype=np.float32))


def warm_all() -> float:
    """Every kernel of serve/demo, render (dither included), analyze, and the DSP separator's
    median filters; returns the seconds it took."""
    from auracore.offline.chain import Chain, Meter
    from auracore.offline.params import Params

    t0 = time.perf_counter()
    params = Params()
    warm_engine(48000, 2, np.asarray(params))
    x = np.zeros((4800, 2))
    Chain(params, 48000, 2)(x)
    m = Meter(48000, 2)
    m.process(x)
    from auracore.offline.analyze import analyze

    analyze(np.random.default_rng(0).standard_normal((48000, 2)) * 0.1, 48000)
    from auracore.kernels.median import running_median
    from auracore.offline.audio_io import Quantizer

    for subtype in ("PCM_16", "PCM_24"):  # render's word-length reduction, both integer widths
        Quantizer(subtype).apply(np.zeros((64, 2)))
    running_median(np.zeros((32, 32)), 17, 0)  # separate's DSP masks and qc
    return time.perf_counter() - t0


def _band(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """A small generated band, (frames, 2): a kick on each beat at 120 BPM, a bass line in
    eighths, chords, noise hats, every other second 20 dB quieter (a loudness range for
    master's dynamics to fit, notes for transcribe, beats and chords for profile)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = np.zeros((n, 2))
    kt = np.arange(int(0.25 * rate)) / rate
    kick = 0.7 * np.sin(2 * np.pi * (45 * kt + 2.7 * (1 - np.exp(-kt / 0.03)))) * np.exp(-kt / 0.1)
    for i, start in enumerate(np.arange(0.0, seconds, 0.25)):
        i0 = int(start * rate)
        i1 = min(n, i0 + int(0.25 * rate))
        tt = t[i0:i1] - start
        f = 55.0 * 2 ** ((0, 0, 7, 5, 3, 3, 7, 10)[i % 8] / 12)
        out[i0:i1] += (0.3 * np.exp(-tt / 0.3) * np.sin(2 * np.pi * f * tt))[:, None]
        if i % 2 == 0:
            out[i0:i1] += kick[:i1 - i0, None]
        else:
            out[i0:i1] += 0.05 * rng.standard_normal((i1 - i0, 2)) * np.exp(-tt / 0.01)[:, None]
    for j, semis in enumerate((0, 3, 7)):
        out[:, j % 2] += 0.08 * np.sin(2 * np.pi * 220.0 * 2 ** (semis / 12) * t)
    return out * np.where(np.floor(t) % 2 == 0, 1.0, 0.1)[:, None]


def run_commands() -> None:
    """The commands as the command line runs them (in this process, output silenced) on
    small generated files, stereo 44.1 kHz float and mono 48 kHz 16-bit, so the kernels
    meet the argument types those commands give them: render (every output subtype, --ai,
    --two-pass), analyze and master (which must succeed), then transcribe, profile,
    separate and qc (skipped where this build lacks their parts)."""
    import contextlib
    import io
    import os
    import tempfile

    import soundfile as sf

    from auracore.control import cli

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="auracore-warm-") as d, \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        stereo, mono, ref = (os.path.join(d, n) for n in ("stereo.wav", "mono.wav", "ref.wav"))
        sf.write(stereo, _band(8.0, 44100).astype(np.float32), 44100, subtype="FLOAT")
        sf.write(mono, rng.standard_normal(48000 * 3) * 0.1, 48000, subtype="PCM_16")
        sf.write(ref, rng.standard_normal((44100 * 3, 2)) * 0.2, 44100, subtype="PCM_24")
        required = [["render", stereo, "out.wav"], ["render", stereo, "out.wav", "--subtype", "PCM_16", "--preset", "streaming"],
                    ["render", mono, "out.wav", "--subtype", "FLOAT"], ["render", stereo, "out.flac", "--two-pass"],
                    ["render", stereo, "out.wav", "--ai"], ["render", mono, "out.wav", "--ai"],
                    ["analyze", stereo, "--json"], ["analyze", mono],
                    ["master", stereo, "out.wav", "--reference", ref], ["master", mono, "out.wav", "--reference", ref]]
        optional = [["transcribe", stereo, "out.mid"], ["transcribe", stereo, "out.mid", "--stem-type", "drums"],
                    ["profile", stereo, "--json"], ["separate", stereo, "out.stems"], ["qc", stereo, stereo, "--json"]]
        for argv in required + optional:
            argv = [os.path.join(d, a) if a.startswith("out.") else a for a in argv]
            code = cli.main(argv)
            if code and argv[0] in ("render", "analyze", "master"):
                raise RuntimeError(f"auracore {argv[0]} failed in the warm-up ({code}): {err.getvalue().strip()[-300:]}")
            for name in os.listdir(d):
                if name.startswith("out."):
                    path = os.path.join(d, name)
                    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def workload() -> None:
    """What the ahead-of-time build compiles: every kernel ``warm_all`` and the commands
    reach, with their argument types."""
    warm_all()
    run_commands()


def main() -> int:
    print("auracore: preparing the compiled DSP kernels (once; about 70 s on 2 cores)", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    from auracore.kernels import aot

    try:
        built = aot.build(workload)
    except Exception as exc:  # the JIT still serves every command
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0].rstrip(".")
        print(f"auracore: kernels ready for Numba's JIT (each command loads it: about 0.4 s and 110 MB more); "
              f"the ahead-of-time build failed: {reason} (it needs a C compiler: apt-get install gcc)", file=sys.stderr)
        return 0
    print(f"auracore: kernels ready ({time.perf_counter() - t0:.0f} s; {built['exports']} entry points built "
          f"ahead of time)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
