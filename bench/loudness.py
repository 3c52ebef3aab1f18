"""Benchmark: the streaming R128 meter against libebur128 (pyebur128) and pyloudnorm.

A deterministic music-like stereo programme (harmonic pads, bass and lead with envelopes,
synthesised kick / snare / hats from filtered noise, sections from quiet breakdowns to
loud choruses, a soft-clip "master") is written to a temporary WAV and read back, then
measured at each rate by:

- auracore ``LoudnessMeter`` (integrated + LRA + true peak, and without true peak),
- libebur128 through pyebur128 (MODE_I | MODE_LRA | MODE_TRUE_PEAK, and without TP),
  fed interleaved float64 in 1 s blocks, the same blocks our meter gets,
- pyloudnorm (integrated only, whole array).

Times are the best of --repeat runs after a JIT warm-up. Usage:
    python bench/loudness.py [--minutes 10] [--rates 44100 48000] [--repeat 3] [--json]
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import pyebur128
import pyloudnorm
import soundfile as sf
from scipy.signal import butter, sosfilt

from auracore.kernels.loudness import LoudnessMeter

BPM = 120.0
# (name, bars, gain dB, parts): one cycle of the song form, repeated to the length wanted
FORM = (
    ("intro", 8, -4.0, ("pad", "hat")),
    ("verse", 16, -2.0, ("pad", "bass", "kick", "hat")),
    ("chorus", 16, 0.0, ("pad", "bass", "lead", "kick", "snare", "hat")),
    ("break", 8, -5.0, ("pad", "bass")),
)
# A minor progression (Am F C G), roots in Hz, chord tones as semitone offsets
ROOTS_HZ = (110.0, 87.31, 130.81, 98.0)
CHORD = (0, 3, 7, 12)
FADE_S = 10.0


def _tone(f0_hz, seconds, fs, harmonics, rng, attack_s, decay_s, vibrato=0.0):
    """A band-limited harmonic tone (1/k partials below Nyquist) with an attack / exponential
    decay envelope: (frames,) float64."""
    t = np.arange(int(seconds * fs)) / fs
    phase = 2.0 * np.pi * f0_hz * (t + vibrato * np.sin(2.0 * np.pi * 5.5 * t) / (2.0 * np.pi * 5.5))
    y = np.zeros_like(t)
    for k in range(1, harmonics + 1):
        if k * f0_hz * (1.0 + vibrato) < 0.45 * fs:
            y += np.sin(k * phase + rng.uniform(0.0, 2.0 * np.pi)) / k
    env = np.minimum(t / attack_s, 1.0) * np.exp(-t / decay_s)
    return y * env


def _drums(fs, rng):
    """One-shot kick, snare and hat: dict of (frames,) float64."""
    t = np.arange(int(0.6 * fs)) / fs
    kick_hz = 45.0 + 75.0 * np.exp(-t / 0.04)
    kick = np.sin(2.0 * np.pi * np.cumsum(kick_hz) / fs) * np.exp(-t / 0.25)
    noise = rng.standard_normal(t.size)
    band = sosfilt(butter(2, [200.0, min(8000.0, 0.45 * fs)], btype="bandpass", fs=fs, output="sos"), noise)
    snare = 1.5 * band * np.exp(-t / 0.12) + 0.6 * np.sin(2.0 * np.pi * 190.0 * t) * np.exp(-t / 0.08)
    high = sosfilt(butter(4, min(7000.0, 0.4 * fs), btype="highpass", fs=fs, output="sos"), rng.standard_normal(t.size))
    hat = 0.8 * high * np.exp(-t / 0.03)
    return {"kick": kick, "snare": snare, "hat": hat}


def _add(out, start, sig, gain, pan):
    """Mix sig into out (frames, 2) at start with equal-power pan in [-1, 1]."""
    stop = min(out.shape[0], start + sig.size)
    if stop <= start:
        return
    angle = (pan + 1.0) * math.pi / 4.0
    out[start:stop, 0] += gain * math.cos(angle) * sig[:stop - start]
    out[start:stop, 1] += gain * math.sin(angle) * sig[:stop - start]


def music(seconds: float, fs: int, seed: int = 1770) -> np.ndarray:
    """The benchmark programme: (frames, 2) float32, sample peak -0.45 dBFS, deterministic."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    out = np.zeros((n, 2))
    beat = int(round(60.0 / BPM * fs))
    bar = 4 * beat
    drums = _drums(fs, rng)
    pos = 0
    bar_index = 0
    while pos < n:
        for _name, bars, gain_db, parts in FORM:
            gain = 10.0 ** (gain_db / 20.0)
            for _ in range(bars):
                if pos >= n:
                    break
                root = ROOTS_HZ[(bar_index // 2) % len(ROOTS_HZ)]
                if "pad" in parts:
                    for semis in CHORD:
                        f = root * 2.0 ** (semis / 12.0 + 1.0)
                        tone = _tone(f, 4.0 * 60.0 / BPM + 0.8, fs, 8, rng, 0.3, 1.6)
                        _add(out, pos, tone, 0.16 * gain, rng.uniform(-0.7, 0.7))
                for b in range(4):
                    at = pos + b * beat
                    if "bass" in parts:
                        _add(out, at, _tone(root / 2.0, 0.5, fs, 10, rng, 0.005, 0.25), 0.22 * gain, 0.0)
                    if "kick" in parts and b in (0, 2):
                        _add(out, at, drums["kick"], 0.5 * gain * rng.uniform(0.85, 1.0), 0.0)
                    if "snare" in parts and b in (1, 3):
                        _add(out, at, drums["snare"], 0.25 * gain * rng.uniform(0.8, 1.0), 0.1)
                    for half in range(2):
                        eighth = at + half * beat // 2
                        if "hat" in parts:
                            _add(out, eighth, drums["hat"], 0.12 * gain * rng.uniform(0.5, 1.0), 0.4)
                        if "lead" in parts and rng.uniform() < 0.7:
                            f = root * 4.0 * 2.0 ** (rng.choice((0, 2, 3, 5, 7, 10, 12)) / 12.0)
                            _add(out, eighth, _tone(f, 0.4, fs, 6, rng, 0.01, 0.2, vibrato=0.004),
                                 0.08 * gain, -0.3)
                pos += bar
                bar_index += 1
    fade = min(n, int(FADE_S * fs))
    out[n - fade:] *= np.linspace(1.0, 0.0, fade)[:, None]
    # a soft-clip "master": the loud parts get the density of a mastered record
    peak = np.max(np.abs(out))
    return (0.95 * np.tanh(1.5 * out / peak) / math.tanh(1.5)).astype(np.float32)


def _best(repeat, fn):
    best = math.inf
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _ours(x, fs, true_peak):
    def run():
        meter = LoudnessMeter(fs, x.shape[1], true_peak=true_peak)
        for i in range(0, x.shape[0], fs):
            meter.process(x[i:i + fs])
        tp = meter.true_peak_dbtp
        return meter.integrated_lufs, meter.loudness_range_lu, None if tp is None else float(np.max(tp))
    return run


def _libebur128(x, fs, true_peak):
    mode = pyebur128.MeasurementMode.MODE_I | pyebur128.MeasurementMode.MODE_LRA
    if true_peak:
        mode |= pyebur128.MeasurementMode.MODE_TRUE_PEAK

    def run():
        state = pyebur128.R128State(x.shape[1], fs, mode)
        for i in range(0, x.shape[0], fs):
            block = x[i:i + fs]
            state.add_frames(block.ravel(), block.shape[0])
        tp = None
        if true_peak:
            tp = 20.0 * math.log10(max(pyebur128.get_true_peak(state, c) for c in range(x.shape[1])))
        return pyebur128.get_loudness_global(state), pyebur128.get_loudness_range(state), tp
    return run


def _pyloudnorm(x, fs):
    def run():
        return pyloudnorm.Meter(fs).integrated_loudness(x), None, None
    return run


def bench_rate(fs: int, minutes: float, repeat: int, folder: str) -> dict:
    """Figures for one rate: per engine time, x real time and readings; ratios and deltas."""
    seconds = 60.0 * minutes
    path = os.path.join(folder, f"programme_{fs}.wav")
    sf.write(path, music(seconds, fs), fs, subtype="FLOAT")
    x, read_fs = sf.read(path, dtype="float64", always_2d=True)
    assert read_fs == fs
    for true_peak in (True, False):  # JIT warm-up (or cache load) of the kernels and readouts
        warm = LoudnessMeter(fs, 2, true_peak=true_peak)
        warm.process(x[:4 * fs])
        warm.readings()
    runs = {
        "auracore I+LRA+TP": (repeat, _ours(x, fs, True)),
        "libebur128 I+LRA+TP": (repeat, _libebur128(x, fs, True)),
        "auracore I+LRA": (repeat, _ours(x, fs, False)),
        "libebur128 I+LRA": (repeat, _libebur128(x, fs, False)),
        "pyloudnorm I": (1, _pyloudnorm(x, fs)),
    }
    engines = {}
    for name, (times, fn) in runs.items():
        t, (i_lufs, lra_lu, tp_dbtp) = _best(times, fn)
        engines[name] = {"time_s": t, "x_realtime": seconds / t, "integrated_lufs": i_lufs,
                         "loudness_range_lu": lra_lu, "true_peak_dbtp": tp_dbtp}
    ours, ref = engines["auracore I+LRA+TP"], engines["libebur128 I+LRA+TP"]
    return {
        "engines": engines,
        "speedup_vs_libebur128_with_tp": ref["time_s"] / ours["time_s"],
        "speedup_vs_libebur128_without_tp": engines["libebur128 I+LRA"]["time_s"] / engines["auracore I+LRA"]["time_s"],
        "speedup_vs_pyloudnorm": engines["pyloudnorm I"]["time_s"] / ours["time_s"],
        "speedup_vs_pyloudnorm_without_tp": engines["pyloudnorm I"]["time_s"] / engines["auracore I+LRA"]["time_s"],
        "delta_integrated_lu": ours["integrated_lufs"] - ref["integrated_lufs"],
        "delta_lra_lu": ours["loudness_range_lu"] - ref["loudness_range_lu"],
        "delta_true_peak_db": ours["true_peak_dbtp"] - ref["true_peak_dbtp"],
        "delta_pyloudnorm_integrated_lu": engines["pyloudnorm I"]["integrated_lufs"] - ref["integrated_lufs"],
    }


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(figures: dict) -> None:
    print(f"R128 meters on {figures['minutes']:g} min of stereo music-like material, "
          f"1 s blocks, best of {figures['repeat']} (pyloudnorm: 1 run)")
    for fs, r in figures["rates"].items():
        print(f"\n{int(fs) / 1000:g} kHz")
        print(f"  {'engine':<22}{'time s':>9}{'x real':>9}{'I LUFS':>10}{'LRA LU':>9}{'TP dBTP':>9}")
        for name, e in r["engines"].items():
            print(f"  {name:<22}{e['time_s']:>9.3f}{e['x_realtime']:>9.0f}{_fmt(e['integrated_lufs'], '.3f'):>10}"
                  f"{_fmt(e['loudness_range_lu'], '.3f'):>9}{_fmt(e['true_peak_dbtp'], '.3f'):>9}")
        print(f"  speed-up vs libebur128: {r['speedup_vs_libebur128_with_tp']:.1f}x with TP, "
              f"{r['speedup_vs_libebur128_without_tp']:.1f}x without; vs pyloudnorm: "
              f"{r['speedup_vs_pyloudnorm']:.0f}x (our full meter), {r['speedup_vs_pyloudnorm_without_tp']:.0f}x (no TP)")
        print(f"  auracore - libebur128: I {r['delta_integrated_lu']:+.4f} LU, LRA {r['delta_lra_lu']:+.4f} LU, "
              f"TP {r['delta_true_peak_db']:+.4f} dB;  pyloudnorm - libebur128: I "
              f"{r['delta_pyloudnorm_integrated_lu']:+.4f} LU")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="programme length (default 10)")
    parser.add_argument("--rates", type=int, nargs="+", default=[44100, 48000], help="sample rates in Hz")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per engine, best kept (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object of the figures")
    args = parser.parse_args(argv)
    figures = {"minutes": args.minutes, "repeat": args.repeat, "rates": {}}
    with tempfile.TemporaryDirectory() as folder:
        for fs in args.rates:
            figures["rates"][str(fs)] = bench_rate(fs, args.minutes, args.repeat, folder)
    if args.json:
        print(json.dumps(figures))
    else:
        print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
