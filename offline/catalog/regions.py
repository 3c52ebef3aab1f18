"""Split a signal into content regions by silence: a threshold relative to its loudness.

The level is followed in 50 ms frames (RMS of all channels, dBFS). A frame is content
when its level is above the file's integrated loudness (LUFS, the meter's) plus
``threshold_db`` (and above an absolute floor of -70 dBFS). Content runs separated by gaps
shorter than ``min_gap_s`` are joined; regions shorter than ``min_region_s`` are dropped.
"""

import math
from dataclasses import dataclass

import numpy as np

from auracore.errors import AudioArrayError

FRAME_S = 0.05
FLOOR_DBFS = -70.0


@dataclass(frozen=True)
class Region:
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict:
        return {"start_s": round(self.start_s, 4), "end_s": round(self.end_s, 4),
                "duration_s": round(self.duration_s, 4)}


@dataclass(frozen=True)
class RegionSplit:
    regions: tuple
    threshold_dbfs: float      # the frame level a frame had to exceed
    loudness_lufs: float       # the file's integrated loudness (-inf for silence)

    def to_dict(self) -> dict:
        fin = lambda v: None if not math.isfinite(v) else round(v, 3)  # noqa: E731
        return {"regions": [r.to_dict() for r in self.regions], "threshold_dbfs": fin(self.threshold_dbfs),
                "loudness_lufs": fin(self.loudness_lufs)}


def frame_levels_db(x: np.ndarray, sample_rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS level (dBFS, all channels) of consecutive frame_s frames of x: (frames, channels);
    the last partial frame counts."""
    hop = max(1, int(round(frame_s * sample_rate)))
    n = x.shape[0]
    frames = -(-n // hop)
    sq = np.zeros(frames, dtype=np.float64)
    for c in range(x.shape[1]):
        col = np.asarray(x[:, c], dtype=np.float64) ** 2
        sq += np.add.reduceat(col, np.arange(0, n, hop))
    counts = np.full(frames, hop * x.shape[1], dtype=np.float64)
    counts[-1] = (n - (frames - 1) * hop) * x.shape[1]
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(sq / counts)


def split_regions(x: np.ndarray, sample_rate: int, loudness_lufs: float, threshold_db: float = -30.0,
                  min_region_s: float = 0.5, min_gap_s: float = 0.5) -> RegionSplit:
    """Content regions of x: (frames, channels) float at sample_rate Hz, whose integrated
    loudness is loudness_lufs (-inf: silence, no regions). Times in seconds, on the frame
    grid (50 ms) and clipped to the signal's length."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise AudioArrayError(f"audio must be (frames, channels) with frames > 0, got shape {x.shape}")
    if not math.isfinite(loudness_lufs):
        return RegionSplit((), math.inf, loudness_lufs)
    hop = max(1, int(round(FRAME_S * sample_rate)))
    level = frame_levels_db(x, sample_rate)
    threshold = max(FLOOR_DBFS, loudness_lufs + threshold_db)
    on = level > threshold
    frame_s = hop / sample_rate
    total_s = x.shape[0] / sample_rate
    runs = []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], on.astype(np.int8), [0]))))
    for a, b in zip(edges[0::2], edges[1::2]):
        start, end = a * frame_s, min(b * frame_s, total_s)
        if runs and start - runs[-1][1] < min_gap_s:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    regions = tuple(Region(float(a), float(b)) for a, b in runs if b - a >= min_region_s)
    return RegionSplit(regions, float(threshold), float(loudness_lufs))
