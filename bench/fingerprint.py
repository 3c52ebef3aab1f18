"""Bench: the 64-float fingerprint of a file against librosa computing the seed's features on the same file.

Same run, same generated file (44.1 kHz stereo FLOAT WAV, music-like: a bass line, chords,
a melody and noise hits): ``fingerprint_file`` (two streamed passes: loudness, then the
64 features, the models' excerpts included) against librosa loading the file and computing
the features the seed names (spectral centroid, flatness, 13 MFCCs, zero-crossing rate,
onset strength, RMS) at librosa's defaults. CPU seconds (one thread each: BLAS and ONNX
Runtime pinned to one) and peak RSS growth; best of --repeat, alternating.

    .venv/bin/python bench/fingerprint.py [--seconds 120] [--repeat 3] [--json]
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import soundfile as sf

RATE = 44100


def make_file(path: str, seconds: float) -> None:
    rng = np.random.default_rng(5)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    bass = 0.25 * np.sin(2 * np.pi * 55 * (1 + (np.floor(t * 2) % 4 == 2) * 0.5) * t)
    chords = sum(0.06 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))
    melody = 0.12 * np.sin(2 * np.pi * 440 * 2 ** (np.floor(t * 4) % 7 / 12) * t)
    hits = np.zeros(n)
    hits[(np.arange(0, seconds, 0.25) * RATE).astype(int)] = 1.0
    k = int(0.04 * RATE)
    drums = np.convolve(hits, rng.standard_normal(k) * np.exp(-np.arange(k) / (0.006 * RATE)))[:n]
    x = np.stack([bass + chords + melody + 0.3 * drums, bass + 0.7 * chords + melody + 0.3 * drums], axis=1)
    sf.write(path, x.astype(np.float32), RATE, subtype="FLOAT")


def ours(path: str) -> None:
    from auracore.offline.fingerprint import fingerprint_file

    fingerprint_file(path)


def peer(path: str) -> None:
    import librosa

    y, sr = librosa.load(path, sr=None, mono=True)
    librosa.feature.spectral_centroid(y=y, sr=sr)
    librosa.feature.spectral_flatness(y=y)
    librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
    librosa.feature.zero_crossing_rate(y)
    librosa.onset.onset_strength(y=y, sr=sr)
    librosa.feature.rms(y=y)


def timed(fn, path) -> float:
    t0 = time.process_time()
    fn(path)
    return time.process_time() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="auracore-bench-fp-") as tmp:
        path = os.path.join(tmp, "music.wav")
        make_file(path, args.seconds)
        warm = os.path.join(tmp, "warm.wav")
        make_file(warm, 3.0)
        ours(warm)
        peer(warm)  # imports and first-call compilation outside the timing
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t_ours, t_peer = [], []
        for _ in range(args.repeat):
            t_ours.append(timed(ours, path))
            t_peer.append(timed(peer, path))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = {"seconds": args.seconds, "ours_cpu_s": round(min(t_ours), 3), "librosa_cpu_s": round(min(t_peer), 3),
           "ours_x_realtime": round(args.seconds / min(t_ours), 1),
           "librosa_x_realtime": round(args.seconds / min(t_peer), 1),
           "speed_ratio": round(min(t_peer) / min(t_ours), 2), "peak_rss_growth_mb": round((rss - rss0) / 1024, 1),
           "ours_features": 64, "librosa_features": "centroid, flatness, 13 MFCC, ZCR, onset strength, RMS (frames)"}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{args.seconds:.0f} s stereo 44.1 kHz, best of {args.repeat}, CPU seconds on one thread")
        print(f"{'':28s}{'CPU s':>8s}{'x real time':>14s}")
        print(f"{'auracore fingerprint (64)':28s}{res['ours_cpu_s']:8.2f}{res['ours_x_realtime']:14.1f}")
        print(f"{'librosa (seed features)':28s}{res['librosa_cpu_s']:8.2f}{res['librosa_x_realtime']:14.1f}")
        print(f"ratio librosa / auracore: {res['speed_ratio']:.2f}x; peak RSS growth {res['peak_rss_growth_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
