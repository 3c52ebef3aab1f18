"""Sections (boundaries and labels, no fixed count), levels per section, and the energy curve.

- Boundaries: per beat, the chroma (unit norm) and timbre (MFCC 1..12 of the mel frames,
  z-scored) are stacked over ``EMBED_BEATS`` beats; the cosine self-similarity matrix is
  scanned with a Gaussian-tapered checkerboard kernel of ``KERNEL_BEATS`` beats on each
  side (Foote's novelty), fewer on a short track: at most a sixth of its beats (not under
  ``MIN_KERNEL_BEATS``), so that the whole kernel spans no more than a third of the track
  (on a 30 s track of three sections a 16-beat kernel spreads each boundary's peak over
  half the track, and the threshold below rises with it). Peaks that are the largest
  within ``MIN_SECTION_BEATS`` beats and above the novelty's median + ``PEAK_MADS`` median
  absolute deviations become boundaries, snapped to the nearest downbeat. The count
  follows from the track.
- Labels: each section's mean feature (chroma and timbre) is compared with the first
  section of every label so far: cosine similarity >= ``SAME_SIM`` takes that label,
  >= ``VARIANT_SIM`` takes it with a prime (A'), else a new letter.
- Levels per section: integrated loudness (EBU R128 gating, absolute -70 LUFS and relative
  -10 LU, over the 400 ms momentary blocks of ``auracore.kernels.loudness.LoudnessMeter``
  lying wholly inside the section), RMS (dBFS, channels pooled), crest factor (sample
  peak over that RMS, dB) and stereo width (side over mid energy, as ``analyze``; null for
  mono).
- The energy curve: the momentary loudness every ``ENERGY_STEP_S`` seconds.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy.fft import dct

from .features import CHROMA_STEP, Features, extract
from .tempo import TempoBeats, from_features as _tempo_from_features

EMBED_BEATS = 1
KERNEL_BEATS = 16
MIN_KERNEL_BEATS = 8
MIN_SECTION_BEATS = 16
PEAK_MADS = 1.5
SAME_SIM = 0.93
VARIANT_SIM = 0.85
ENERGY_STEP_S = 0.5
LUFS_OFFSET = -0.691


@dataclass(frozen=True)
class Section:
    """One section: its span (s), label and levels."""

    start_s: float
    end_s: float
    label: str
    integrated_lufs: float
    rms_dbfs: float
    crest_db: float
    width: float | None

    def to_dict(self) -> dict:
        return {"start_s": _r(self.start_s, 4), "end_s": _r(self.end_s, 4), "label": self.label,
                "integrated_lufs": _r(self.integrated_lufs, 2), "rms_dbfs": _r(self.rms_dbfs, 2),
                "crest_db": _r(self.crest_db, 2), "width": _r(self.width, 4)}


@dataclass(frozen=True)
class Structure:
    """The sections in order and the energy curve ((time_s, loudness_lufs), ...)."""

    sections: tuple = ()
    energy_curve: tuple = ()

    def to_dict(self) -> dict:
        return {"sections": [s.to_dict() for s in self.sections],
                "energy_curve": [{"time_s": _r(t, 3), "loudness_lufs": _r(v, 2)} for t, v in self.energy_curve]}


def _r(v, digits):
    if v is None:
        return None
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


def beat_features(feat: Features, beats_s: np.ndarray) -> np.ndarray:
    """(beats, 24) per beat span: unit chroma and z-scored MFCC 1..12."""
    frame_s = feat.hop * CHROMA_STEP / feat.sample_rate
    edges = np.concatenate((beats_s, [feat.duration_s]))
    idx = np.clip(np.round(edges / frame_s).astype(int), 0, feat.chroma.shape[1])
    mfcc = dct(feat.mel_db, type=2, norm="ortho", axis=0)[1:13]
    out = np.zeros((beats_s.size, 24))
    for i in range(beats_s.size):
        a, b = idx[i], max(idx[i + 1], idx[i] + 1)
        a = min(a, max(feat.chroma.shape[1] - 1, 0))
        c = feat.chroma[:, a:b].mean(axis=1)
        out[i, :12] = c / max(np.linalg.norm(c), 1e-12)
        out[i, 12:] = mfcc[:, a:b].mean(axis=1)
    t = out[:, 12:]
    out[:, 12:] = (t - t.mean(axis=0)) / np.maximum(t.std(axis=0), 1e-9)
    return out


def _embed(f: np.ndarray, k: int) -> np.ndarray:
    parts = [np.vstack((f[j:], np.repeat(f[-1:], j, axis=0))) for j in range(k)]
    e = np.hstack(parts)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def novelty(ssm: np.ndarray, half: int) -> np.ndarray:
    """Foote novelty of a self-similarity matrix with a Gaussian checkerboard of half-width half."""
    n = ssm.shape[0]
    x = np.arange(-half, half) + 0.5
    g = np.exp(-0.5 * (x / (0.5 * half)) ** 2)
    kern = np.outer(g, g) * np.sign(x)[:, None] * np.sign(x)[None, :]
    pad = np.pad(ssm, half, mode="edge")
    nov = np.zeros(n)
    for i in range(n):
        nov[i] = (pad[i:i + 2 * half, i:i + 2 * half] * kern).sum()
    return nov


def boundaries(feat_beats: np.ndarray) -> np.ndarray:
    """Boundary beat indices (including 0) from per-beat features."""
    n = feat_beats.shape[0]
    if n < 2 * MIN_SECTION_BEATS:
        return np.array([0])
    e = _embed(feat_beats, EMBED_BEATS)
    ssm = e @ e.T
    nov = novelty(ssm, int(min(KERNEL_BEATS, max(MIN_KERNEL_BEATS, n // 6))))
    med = np.median(nov)
    mad = np.median(np.abs(nov - med)) + 1e-12
    thr = med + PEAK_MADS * mad
    w = MIN_SECTION_BEATS // 2
    peaks = [i for i in range(MIN_SECTION_BEATS // 2, n - MIN_SECTION_BEATS // 2)
             if nov[i] >= thr and nov[i] == nov[max(0, i - w):i + w + 1].max()]
    return np.array([0] + peaks)


def _snap(idx: np.ndarray, beats_s: np.ndarray, downbeats_s: np.ndarray) -> np.ndarray:
    if downbeats_s.size == 0:
        return idx
    out = []
    for i in idx:
        if i == 0:
            out.append(0)
            continue
        d = downbeats_s[np.argmin(np.abs(downbeats_s - beats_s[i]))]
        out.append(int(np.argmin(np.abs(beats_s - d))))
    out = sorted(set(out))
    # keep sections at least half the minimum length apart after snapping
    keep = [out[0]]
    for i in out[1:]:
        if i - keep[-1] >= MIN_SECTION_BEATS // 2:
            keep.append(i)
    return np.array(keep)


def label_sections(means: np.ndarray) -> list[str]:
    """A, B, A', ... for section mean features (sections, dims)."""
    u = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    reps: list[tuple[str, np.ndarray]] = []
    labels = []
    for v in u:
        sims = [float(v @ r) for _, r in reps]
        j = int(np.argmax(sims)) if sims else -1
        if j >= 0 and sims[j] >= SAME_SIM:
            labels.append(reps[j][0])
        elif j >= 0 and sims[j] >= VARIANT_SIM:
            labels.append(reps[j][0] + "'")
        else:
            name = _letter(len(reps))
            reps.append((name, v))
            labels.append(name)
    return labels


def _letter(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def gated_lufs(momentary_lufs: np.ndarray) -> float:
    """Integrated loudness (LUFS) of a run of 400 ms block loudnesses, BS.1770 gating."""
    m = momentary_lufs[np.isfinite(momentary_lufs) & (momentary_lufs > -70.0)]
    if m.size == 0:
        return -math.inf
    e = 10.0 ** ((m - LUFS_OFFSET) / 10.0)
    rel = LUFS_OFFSET + 10.0 * math.log10(e.mean()) - 10.0
    e = e[m > rel]
    return LUFS_OFFSET + 10.0 * math.log10(e.mean()) if e.size else -math.inf


def section_levels(feat: Features, start_s: float, end_s: float) -> tuple[float, float, float, float | None]:
    """(integrated_lufs, rms_dbfs, crest_db, width) of the span start_s..end_s."""
    hop_s = feat.hop / feat.sample_rate
    # the level hops lying wholly inside the span (a hop over the edge carries the next
    # section's peak); at least one
    a = int(math.ceil(start_s / hop_s - 1e-9))
    b = max(int(math.floor(end_s / hop_s + 1e-9)), a + 1)
    lv = feat.levels[a:b]
    frames = lv[:, 4].sum()
    ms = lv[:, 0].sum() / frames if frames else 0.0
    rms_db = 10.0 * math.log10(ms) if ms > 0 else -math.inf
    peak = lv[:, 3].max() if lv.size else 0.0
    crest = 20.0 * math.log10(peak) - rms_db if peak > 0 and ms > 0 else math.nan
    width = None
    if feat.channels >= 2:
        mid, side = lv[:, 1].sum(), lv[:, 2].sum()
        width = float(side / mid) if mid > 1e-12 * (mid + side) and mid > 0 else None
    t = feat.momentary_times_s
    inside = (t - 0.4 >= start_s - 1e-9) & (t <= end_s + 1e-9)
    lufs = gated_lufs(feat.momentary_lufs[inside]) if feat.momentary_lufs.size else -math.inf
    return lufs, rms_db, crest, width


def energy_curve(feat: Features) -> tuple:
    """((time_s, momentary LUFS), ...) every ENERGY_STEP_S seconds."""
    t, m = feat.momentary_times_s, feat.momentary_lufs
    if t.size == 0:
        return ()
    every = max(1, int(round(ENERGY_STEP_S / 0.1)))
    return tuple((float(a), float(b)) for a, b in zip(t[every - 1::every], m[every - 1::every]))


def from_features(feat: Features, tempo: TempoBeats) -> Structure:
    """Sections and energy curve from features and the beats of ``tempo``."""
    beats = np.asarray(tempo.beats_s)
    spans: list[tuple[float, float]]
    labels: list[str]
    if beats.size >= 2 * MIN_SECTION_BEATS:
        fb = beat_features(feat, beats)
        idx = _snap(boundaries(fb), beats, np.asarray(tempo.downbeats_s))
        starts = [0.0] + [float(beats[i]) for i in idx[1:]]
        ends = starts[1:] + [feat.duration_s]
        spans = list(zip(starts, ends))
        bounds = list(idx) + [beats.size]
        means = np.array([fb[bounds[k]:max(bounds[k + 1], bounds[k] + 1)].mean(axis=0) for k in range(len(idx))])
        labels = label_sections(means)
    else:
        spans, labels = [(0.0, feat.duration_s)], ["A"]
    sections = tuple(Section(a, b, lab, *section_levels(feat, a, b)) for (a, b), lab in zip(spans, labels))
    return Structure(sections=sections, energy_curve=energy_curve(feat))


def sections(x: np.ndarray, sample_rate: int, tempo: TempoBeats | None = None) -> Structure:
    """Sections (labels, levels) and the energy curve of x: (frames, channels) float at
    sample_rate Hz; tempo: beats and downbeats (found with ``tempo_and_beats`` when None)."""
    feat = extract(x, sample_rate)
    return from_features(feat, tempo if tempo is not None else _tempo_from_features(feat))
