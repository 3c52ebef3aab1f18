"""Timbre matching: which General MIDI program (or drum kit) plays a stem's notes most like the stem.

Candidates play the stem's own notes over an excerpt (the ``EXCERPT_S`` seconds holding the
most note onsets) through FluidSynth, and each is compared with the stem over that excerpt
after passing through the stem's band mask (the separator kept only part of the spectrum
of each instrument: the mask is the stem's long-term spectrum over the mix's, so a candidate
is heard as the separation would have left it). Four distances, each over a fixed scale:

- spectral envelope: the mean |difference| (dB) of the long-term mel spectra, each
  normalised to its mean over the bands where the stem is within 40 dB of its loudest;
- MFCC statistics: the distance of the mean and of the standard deviation of MFCCs 1-13
  (DCT of the mel spectrogram in dB) over active frames;
- envelope: the mean |difference| (dB) of the 10 ms RMS envelopes (same notes, same times,
  each at its own RMS), over frames where either is within 50 dB of its loudest;
- embedding: 1 - the mean cosine similarity of the project's extractor embeddings (1024-
  sample blocks at the models' rate), the timbre dimension of ``auracore qc``.

The family is decided first (``FAMILY_REPRESENTATIVES``: one or two programs per GM family),
then every program of the ``TOP_FAMILIES`` best families is rendered and the closest wins.
Drums choose among FluidR3's kits the same way.
"""

import math
from dataclasses import dataclass

import numpy as np

from auracore.offline.qc.dimensions import embedding_similarity, mel_db
from auracore.offline.qc.align import to_rate

EXCERPT_S = 6.0
EXCERPT_STEP_S = 0.5
GM_FAMILIES = ("piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
               "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive", "sound effects")
# two programs per family, far apart in sound; sound effects (120-127) are never candidates
FAMILY_REPRESENTATIVES = {0: (0, 4), 1: (8, 11), 2: (16, 19), 3: (24, 29), 4: (33, 38), 5: (40, 42),
                          6: (48, 52), 7: (56, 61), 8: (65, 71), 9: (73, 75), 10: (80, 81), 11: (88, 89),
                          12: (96, 99), 13: (104, 105), 14: (112, 115)}
TOP_FAMILIES = 2
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40, 48)  # FluidR3_GM's kits in bank 128
MEL_FLOOR_DB = 80.0
ACTIVE_BAND_DB = 40.0
ENV_FRAME_S = 0.01
ENV_RANGE_DB = 50.0
N_MFCC = 13
# distance scales: a difference of one scale costs 1 (about what tells two families apart)
SCALES = {"spectral_db": 4.0, "mfcc": 8.0, "envelope_db": 4.0, "embedding": 0.1}
WEIGHTS = {"spectral_db": 1.0, "mfcc": 1.0, "envelope_db": 1.0, "embedding": 1.0}
# the drum kit and the bass program weigh the distances their own way: fitted on 24 generated
# pieces (bench/reconstruct.py's kind, seeds 3000-3023, none of the bench's), the true kit
# ranked first in 18 of 24 with these against 12 with WEIGHTS, the true bass program in 12
# against 8; on pieces 1000-1007, not used to fit, 5 of 8 against 4 and 4 of 8 against 3
# (docs/reconstruct.md). The other stems keep WEIGHTS.
STEM_WEIGHTS = {
    "drums": {"spectral_db": 2.0, "mfcc": 0.0, "envelope_db": 1.0, "embedding": 0.0},
    "bass": {"spectral_db": 2.0, "mfcc": 0.0, "envelope_db": 0.0, "embedding": 1.0},
}
MASK_SMOOTH_OCT = 1.0 / 3.0
MASK_FFT = 4096


def family_of(program: int) -> int:
    """GM family 0..15 of program 0..127."""
    return int(program) // 8


def excerpt_window(onsets_s, duration_s: float, length_s: float = EXCERPT_S) -> tuple[float, float]:
    """(start_s, end_s): the length_s window (whole input when shorter) holding the most note
    onsets, the earliest such window on ties."""
    if duration_s <= length_s:
        return 0.0, float(duration_s)
    on = np.sort(np.asarray(list(onsets_s), dtype=np.float64))
    starts = np.arange(0.0, duration_s - length_s + 1e-9, EXCERPT_STEP_S)
    counts = np.searchsorted(on, starts + length_s) - np.searchsorted(on, starts)
    best = float(starts[int(np.argmax(counts))]) if counts.size else 0.0
    return best, best + length_s


def band_mask(stem: np.ndarray, mix: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(freqs_hz, gain 0..1): the amplitude share of the stem in the mix per frequency,
    long-term (Welch), smoothed over a third of an octave. Applied to a candidate, it keeps
    what the separation would have kept of it."""
    from scipy.signal import welch

    n = min(MASK_FFT, stem.shape[0])
    f, ps = welch(stem.mean(axis=1), sample_rate, nperseg=n)
    _, pm = welch(mix.mean(axis=1), sample_rate, nperseg=n)
    share = np.sqrt(np.clip(ps / np.maximum(pm, 1e-20), 0.0, 1.0))
    out = np.empty_like(share)
    for i, fc in enumerate(f):
        lo, hi = fc * 2 ** (-MASK_SMOOTH_OCT / 2), fc * 2 ** (MASK_SMOOTH_OCT / 2)
        sel = (f >= lo) & (f <= hi)
        out[i] = share[sel].mean() if sel.any() else share[i]
    return f, out


def note_band_mask(mask, pitches, sample_rate: int):
    """The mask limited to the stem's notes: above 0.8 x the fundamental of the lowest notes
    (the 5th percentile of pitches; a raised-cosine ramp over the half octave below it), so
    what leaked into the stem under its notes (another part's harmonics) is not compared."""
    pitches = np.asarray(list(pitches), dtype=np.float64)
    if pitches.size == 0:
        return mask
    f_lo = 0.8 * 440.0 * 2 ** ((np.percentile(pitches, 5) - 69) / 12)
    f = mask[0] if mask is not None else np.fft.rfftfreq(MASK_FFT, 1.0 / sample_rate)
    g = mask[1] if mask is not None else np.ones_like(f)
    ramp = np.clip(np.log2(np.maximum(f, 1e-3) / (f_lo / math.sqrt(2))) * 2.0, 0.0, 1.0)
    return f, g * (0.5 - 0.5 * np.cos(np.pi * ramp))


def apply_mask(x: np.ndarray, sample_rate: int, mask) -> np.ndarray:
    """x: (frames, channels) through the mask (zero-phase, in one FFT)."""
    if mask is None:
        return x
    f, g = mask
    spec = np.fft.rfft(x, axis=0)
    gains = np.interp(np.fft.rfftfreq(x.shape[0], 1.0 / sample_rate), f, g)
    return np.fft.irfft(spec * gains[:, None], n=x.shape[0], axis=0)


@dataclass(frozen=True)
class Features:
    """What the distances compare, of one mono excerpt at its own RMS: mel spectrogram
    frames (dB, floored MEL_FLOOR_DB under the loudest) with their levels (dB), and the
    extractor's embeddings of 1024-sample blocks at the models' rate (or None)."""

    mel: np.ndarray                # (frames, 64) dB
    frame_db: np.ndarray           # (frames,) dB
    embedding: np.ndarray | None   # (blocks, 32)
    blocks_per_frame: float


def _dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    k = np.arange(n_out)[:, None]
    i = np.arange(n_in)[None, :]
    return np.cos(np.pi * k * (2 * i + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)


_DCT = _dct_matrix(64, N_MFCC + 1)


def features(x: np.ndarray, sample_rate: int, runner=None) -> Features | None:
    """Features of x: (frames, channels) float; None when x is silent."""
    mono = x.mean(axis=1) if x.ndim == 2 else x
    rms = math.sqrt(float(np.mean(mono ** 2))) if mono.size else 0.0
    if rms < 1e-7:
        return None
    mono = mono / rms
    mel = mel_db(mono[:, None], sample_rate)
    mel = np.maximum(mel, mel.max() - MEL_FLOOR_DB)
    frame_db = 10 * np.log10(np.mean(10 ** (mel / 10), axis=1))
    emb, ratio = None, 1.0
    if runner is not None:
        y = to_rate(mono[:, None], sample_rate, runner.sample_rate)[:, 0]
        k = y.shape[0] // runner.block
        if k:
            # the extractor was trained near its reference loudness: about -23 LUFS ~ RMS 0.07
            emb = runner.embed_batch((0.07 * y[:k * runner.block]).reshape(k, runner.block).astype(np.float32))
            ratio = k / max(1, mel.shape[0])
    return Features(mel, frame_db, emb, ratio)


def distances(stem: Features, cand: Features | None) -> dict:
    """The four distances (raw units) of a candidate to the stem, over the frames where the
    candidate sounds (within ENV_RANGE_DB of its loudest: its notes, not the rests, where
    the stem holds reverb and what leaked in from other parts); inf for a silent candidate."""
    if cand is None:
        return {k: math.inf for k in SCALES}
    n = min(stem.mel.shape[0], cand.mel.shape[0])
    act = cand.frame_db[:n] > cand.frame_db[:n].max() - ENV_RANGE_DB
    if act.sum() < 4:
        return {k: math.inf for k in SCALES}
    ma, mb = stem.mel[:n][act], cand.mel[:n][act]
    a = 10 * np.log10(np.mean(10 ** (ma / 10), axis=0))
    b = 10 * np.log10(np.mean(10 ** (mb / 10), axis=0))
    used = a > a.max() - ACTIVE_BAND_DB
    d_spec = float(np.mean(np.abs((a[used] - a[used].mean()) - (b[used] - b[used].mean()))))
    # cepstral mean normalisation: a static EQ moves only the means, so only the spread is
    # compared (how the spectrum moves within and across notes)
    ca, cb = ma @ _DCT[1:].T, mb @ _DCT[1:].T
    d_mfcc = float(np.linalg.norm(ca.std(axis=0) - cb.std(axis=0))) / math.sqrt(N_MFCC)
    # the envelope: the frame levels over the candidate's notes, each less its median
    diff = stem.frame_db[:n][act] - cand.frame_db[:n][act]
    d_env = float(np.mean(np.abs(diff - np.median(diff))))
    d_emb = 0.0
    if stem.embedding is not None and cand.embedding is not None:
        k = min(stem.embedding.shape[0], cand.embedding.shape[0])
        idx = np.minimum((np.arange(k) / cand.blocks_per_frame).astype(int), n - 1)
        keep = act[idx]
        if keep.any():
            d_emb = 1.0 - embedding_similarity(stem.embedding[:k][keep], cand.embedding[:k][keep])
    return {"spectral_db": d_spec, "mfcc": d_mfcc, "envelope_db": d_env, "embedding": d_emb}


def cost(d: dict, weights: dict | None = None) -> float:
    """The weighted sum of the distances over their scales (weights: WEIGHTS by default)."""
    weights = weights or WEIGHTS
    return float(sum(weights[k] * d[k] / SCALES[k] for k in SCALES))


@dataclass(frozen=True)
class Choice:
    """A stem's program (or kit) choice: the program, its family, and every candidate tried
    as (program, cost, distances), best first."""

    program: int
    family: int
    candidates: tuple

    @property
    def runner_up(self) -> int | None:
        return self.candidates[1][0] if len(self.candidates) > 1 else None

    @property
    def margin(self) -> float:
        """How much closer the winner is than the runner-up (cost units)."""
        return self.candidates[1][1] - self.candidates[0][1] if len(self.candidates) > 1 else math.inf

    def to_dict(self) -> dict:
        return {"program": self.program, "family": GM_FAMILIES[self.family] if self.family < 16 else "drum kit",
                "candidates": [{"program": p, "cost": round(c, 3), **{k: round(v, 3) for k, v in d.items()}}
                               for p, c, d in self.candidates[:8]]}


def choose(render, target: np.ndarray, sample_rate: int, mask=None, runner=None, drums: bool = False,
           families=None, weights: dict | None = None) -> Choice:
    """Choose a program: render(program) -> (frames, 2) the candidate over the excerpt;
    target the stem over the same excerpt. Family first, then the program (drums: the kit).
    families: the GM families (0-15) to choose among (default all but sound effects);
    weights: of the distances (default WEIGHTS; STEM_WEIGHTS has the drums' and the bass's)."""
    ref = features(apply_mask(target, sample_rate, mask), sample_rate, runner)
    tried = {}

    def score(program):
        if program not in tried:
            cand = apply_mask(render(program), sample_rate, mask)
            d = distances(ref, features(cand, sample_rate, runner)) if ref is not None else \
                {k: 0.0 for k in SCALES}
            tried[program] = (cost(d, weights), d)
        return tried[program][0]

    if drums:
        for kit in DRUM_KITS:
            score(kit)
    else:
        fam_cost = {f: min(score(p) for p in reps) for f, reps in FAMILY_REPRESENTATIVES.items()
                    if families is None or f in families}
        for f in sorted(fam_cost, key=fam_cost.get)[:TOP_FAMILIES]:
            for p in range(8 * f, 8 * f + 8):
                score(p)
    ranked = sorted(tried.items(), key=lambda kv: (kv[1][0], kv[0]))
    best = ranked[0][0]
    return Choice(best, 16 if drums else family_of(best), tuple((p, c, d) for p, (c, d) in ranked))

