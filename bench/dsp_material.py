"""The material of the DSP benchmarks: the input, the chain's parameters, the blocks.

Shared by bench/dsp.py and bench/chain_ab.py; it imports only numpy, scipy and the
parameter registry, so that bench/chain_ab.py can load it against an older commit too.
"""

import numpy as np
import scipy.signal as ss

from auracore.kernels import params as P

FS = 48000
BLOCK = 1024
EQ_GAINS_DB = (2.0, -1.5, 1.0, -2.0, 1.5, -1.0, 2.0, 1.5)
COMP = {"threshold_db": -20.0, "ratio": 3.0, "attack_ms": 10.0, "release_ms": 150.0, "knee_db": 6.0}
CEILING_DBTP = -1.0
LIMITER_RELEASE_MS = 100.0
LOUD_MAKEUP_DB = 8.0


def music_like(seconds, fs=FS, seed=2024):
    """(frames, 2) float64: enveloped harmonic tones and noise drum hits, peak -3 dBFS."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * fs)
    t = np.arange(frames) / fs
    out = np.zeros((frames, 2))
    for k, f0 in enumerate((55.0, 110.0, 164.8, 220.0, 329.6, 440.0, 659.3)):
        env = 0.5 + 0.5 * np.sin(2.0 * np.pi * (0.13 + 0.07 * k) * t + k) ** 2
        tone = np.zeros(frames)
        for h in range(1, 20):
            if f0 * h < 0.45 * fs:
                tone += np.sin(2.0 * np.pi * f0 * h * t + rng.uniform(0.0, 2.0 * np.pi)) / h ** 1.2
        pan = (k + 0.5) / 7.0
        out[:, 0] += (1.0 - pan) * env * tone
        out[:, 1] += pan * env * tone
    kick_sos = ss.butter(2, [40.0, 180.0], btype="bandpass", fs=fs, output="sos")
    snare_sos = ss.butter(2, [300.0, 9000.0], btype="bandpass", fs=fs, output="sos")
    kick = ss.sosfilt(kick_sos, rng.standard_normal(frames)) * np.exp(-np.mod(t, 0.5) / 0.08)
    snare = ss.sosfilt(snare_sos, rng.standard_normal(frames)) * np.exp(-np.mod(t + 0.25, 0.5) / 0.05)
    out += 12.0 * kick[:, None] + 3.0 * np.column_stack([snare, 0.8 * snare])
    return out * (10.0 ** (-3.0 / 20.0) / np.abs(out).max())


def chain_params(makeup_db=0.0):
    p = P.default_vector()
    p[P.INDEX["comp.makeup_db"]] = makeup_db
    for b in range(P.EQ_BANDS):
        p[P.INDEX[f"eq.{b + 1}.gain_db"]] = EQ_GAINS_DB[b]
    for k, v in COMP.items():
        p[P.INDEX[f"comp.{k}"]] = v
    p[P.P_CEILING] = CEILING_DBTP
    p[P.P_LIM_RELEASE] = LIMITER_RELEASE_MS
    return p


def blocks_of(frames):
    return [(i, min(i + BLOCK, frames)) for i in range(0, frames, BLOCK)]
