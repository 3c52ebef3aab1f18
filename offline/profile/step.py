"""The profile step: ``profile(x, sample_rate, stems=None) -> Profile`` and its streaming driver.

``ProfileAnalyzer`` takes (frames, channels) blocks (``process``) and keeps only the
frame-rate features (see features.py), so memory stays flat; ``finish`` runs tempo and
metre, key and chords, sections and levels on them, and the per-element analysis on the
stems when there are any (each stem is streamed the same way, one at a time).
"""

import math
from dataclasses import dataclass, field

import numpy as np


from auracore.errors import AuraCoreError
from auracore.kernels.sane import sanitised

from . import elements as E
from . import harmony, structure, tempo as T
from .features import FeatureStream

BLOCK_FRAMES = 1 << 16
WAVEFORM_COLUMNS = 4000


class ProfileError(AuraCoreError, ValueError):
    """Audio the profile cannot take (shape, rate, values)."""


@dataclass(frozen=True)
class Profile:
    """The musical profile of one track. ``to_dict`` is what ``auracore profile --json``
    prints (-inf and NaN as null)."""

    duration_s: float
    sample_rate: int
    channels: int
    tempo: T.TempoBeats
    harmony: harmony.KeyChords
    structure: structure.Structure
    integrated_lufs: float
    elements: dict = field(default_factory=dict)  # name -> elements.ElementProfile
    # for the plot only (not in to_dict): sample peak per column of waveform_hop_s seconds
    waveform_peak: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    waveform_hop_s: float = 0.0

    @property
    def tempo_bpm(self):
        return self.tempo.tempo_bpm

    @property
    def beats_s(self):
        return self.tempo.beats_s

    @property
    def downbeats_s(self):
        return self.tempo.downbeats_s

    @property
    def time_signature(self):
        return self.tempo.time_signature

    @property
    def key(self):
        return self.harmony.key

    @property
    def chords(self):
        return self.harmony.chords

    @property
    def sections(self):
        return self.structure.sections

    def to_dict(self) -> dict:
        d = {"duration_s": round(self.duration_s, 4), "sample_rate": self.sample_rate, "channels": self.channels}
        d.update(self.tempo.to_dict())
        d.update(self.harmony.to_dict())
        d.update(self.structure.to_dict())
        d["integrated_lufs"] = round(self.integrated_lufs, 2) if math.isfinite(self.integrated_lufs) else None
        d["elements"] = {name: e.to_dict() for name, e in self.elements.items()}
        return d


def check_audio(x, sample_rate) -> np.ndarray:
    """x as (frames, channels) float64; ProfileError for a bad shape, rate or values."""
    a = np.asarray(x)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] < 1 or a.shape[0] < 1:
        raise ProfileError(f"audio must be (frames, channels) with at least one frame, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ProfileError(f"audio must be float samples, got {a.dtype}")
    if not (isinstance(sample_rate, (int, np.integer)) or float(sample_rate).is_integer()) or not 8000 <= sample_rate <= 192000:
        raise ProfileError(f"sample rate {sample_rate} Hz: give a whole number of Hz in 8000-192000")
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        raise ProfileError("the audio holds NaN or infinite samples")
    return a


class ProfileAnalyzer:
    """Streaming profile of one mix: ``process(block)`` then ``finish(stems=None)``."""

    def __init__(self, sample_rate: int, channels: int):
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.stream = FeatureStream(self.sample_rate, self.channels)

    def process(self, block: np.ndarray) -> None:
        """block: (frames, channels) float; NaN, Inf and absurd samples count as 0, as in the chain."""
        self.stream.process(block)

    def finish(self, stems: dict | None = None, progress=None) -> Profile:
        """The profile; stems: {name: (frames, channels) array} at the same rate, or None."""
        feat = self.stream.finish()
        tb = T.from_features(feat)
        kc = harmony.from_features(feat, tb)
        st = structure.from_features(feat, tb)
        elements = {}
        for name, s in (stems or {}).items():
            # absurd samples (beyond +80 dBFS) count as 0, as the mix's features take them
            elements[name] = E.element_profile(sanitised(check_audio(s, self.sample_rate))[0], self.sample_rate, tb)
            if progress is not None:
                progress(name)
        peak, hop_s = _waveform(feat)
        return Profile(duration_s=feat.duration_s, sample_rate=self.sample_rate, channels=self.channels,
                       tempo=tb, harmony=kc, structure=st, integrated_lufs=float(feat.integrated_lufs),
                       elements=elements, waveform_peak=peak, waveform_hop_s=hop_s)


def _waveform(feat, columns: int = WAVEFORM_COLUMNS) -> tuple[np.ndarray, float]:
    peak = feat.levels[:, 3]
    k = max(1, -(-peak.size // columns))
    n = -(-peak.size // k) * k
    padded = np.concatenate((peak, np.zeros(n - peak.size)))
    return padded.reshape(-1, k).max(axis=1), k * feat.hop / feat.sample_rate


def profile(x, sample_rate: int, stems: dict | None = None) -> Profile:
    """The musical profile of x: (frames, channels) or (frames,) float at sample_rate Hz:
    tempo, beats, metre, key, chords, sections with levels, the energy curve, and per
    element (stems: {name: array} at the same rate) ADSR, RT60, delay, sidechain and filter
    movement. Raises ProfileError for unusable audio."""
    a = check_audio(x, sample_rate)
    an = ProfileAnalyzer(int(sample_rate), a.shape[1])
    for start in range(0, a.shape[0], BLOCK_FRAMES):
        an.process(a[start:start + BLOCK_FRAMES])
    return an.finish(stems=stems)
