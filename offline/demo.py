"""A generated demo track: deterministic, music-like stereo audio with no files needed.

Chords of harmonic tones with attack/decay envelopes, a bass line, and noise-based kick,
snare and hi-hat, panned across the stereo field, in a quiet-loud-quiet arc, so that
every stage of the chain and every meter has something to do.
"""

import numpy as np


CHORDS_HZ = ((220.0, 277.18, 329.63), (196.0, 246.94, 293.66), (174.61, 220.0, 261.63), (196.0, 246.94, 311.13))
BASS_HZ = (55.0, 49.0, 43.65, 49.0)


def _tone(freq_hz, t, harmonics=6, brightness=0.6):
    out = np.zeros_like(t)
    for h in range(1, harmonics + 1):
        out += brightness ** (h - 1) * np.sin(2 * np.pi * freq_hz * h * t)
    return out


def demo_track(sample_rate: int = 48000, seconds: float = 20.0, seed: int = 7) -> np.ndarray:
    """The demo: (frames, 2) float64, peaks about -3 dBFS, 120 bpm, a quiet-loud-quiet arc."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    beat = 0.5
    bar = 4 * beat
    out = np.zeros((n, 2))
    for start in np.arange(0.0, seconds, bar):
        i0 = int(start * sample_rate)
        i1 = min(n, int((start + bar) * sample_rate))
        k = int(start / bar) % len(CHORDS_HZ)
        tt = t[i0:i1] - start
        env = np.minimum(tt / 0.02, 1.0) * np.exp(-tt / 1.2)
        for j, f in enumerate(CHORDS_HZ[k]):
            pan = (j - 1) * 0.6
            tone = 0.12 * env * _tone(f, tt)
            out[i0:i1, 0] += tone * (1 - pan) / 2 * 2
            out[i0:i1, 1] += tone * (1 + pan) / 2 * 2
        bass = 0.25 * np.minimum(tt / 0.01, 1.0) * np.exp(-tt / 0.8) * _tone(BASS_HZ[k], tt, 4, 0.4)
        out[i0:i1] += bass[:, None]
    from auracore.models.sources import sweep_kick  # here: it brings scipy.signal (0.5 s of start-up)

    kick = sweep_kick(sample_rate, 0.25, 50.0, 80.0, 0.12, 0.6)  # 130 Hz falling to 50 Hz
    kick_len = kick.shape[0]
    snare_len = int(0.2 * sample_rate)
    st = np.arange(snare_len) / sample_rate
    hat_len = int(0.05 * sample_rate)
    ht = np.arange(hat_len) / sample_rate
    for b, start in enumerate(np.arange(0.0, seconds, beat)):
        i0 = int(start * sample_rate)
        if b % 2 == 0:
            m = min(kick_len, n - i0)
            out[i0:i0 + m] += kick[:m, None]
        else:
            m = min(snare_len, n - i0)
            noise = rng.standard_normal((m, 2))
            out[i0:i0 + m] += 0.25 * noise * np.exp(-st[:m] / 0.05)[:, None]
        for off in (0.0, beat / 2):
            j0 = int((start + off) * sample_rate)
            m = min(hat_len, n - j0)
            if m <= 0:
                continue
            noise = np.diff(rng.standard_normal(m + 1))  # a first difference tilts it bright
            out[j0:j0 + m, 0] += 0.06 * noise * np.exp(-ht[:m] / 0.012)
            out[j0:j0 + m, 1] += 0.04 * noise * np.exp(-ht[:m] / 0.012)
    arc = 0.35 + 0.65 * np.sin(np.pi * t / seconds) ** 2
    out *= arc[:, None]
    return out * (10 ** (-3 / 20) / np.max(np.abs(out)))
