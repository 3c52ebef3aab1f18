"""The DSP fallback: HPSS, a low band and centre extraction, as masks that sum to one.

Per STFT bin (44.1 kHz, 2048 points, the model's front end): median filtering across time
and across frequency splits the magnitude into harmonic and percussive parts (soft masks);
``drums`` takes the percussive part; ``bass`` the harmonic part under about 120-250 Hz;
``vocals`` the harmonic part in the voice band (about 150 Hz to 8 kHz) weighted by how
centred the bin is between the channels (equal level and phase in both: a mono input is all
centre, so there it takes the whole harmonic voice band); ``other`` is what is left. It
cannot tell piano or guitar from the rest: those stems come out silent.
"""

import numpy as np

from auracore.kernels.median import running_median
from auracore.models.separation import features as F

STEMS = ("drums", "bass", "vocals", "other")
KERNEL_FRAMES = 17
KERNEL_BINS = 17
CENTRE_POWER = 24.0


def _ramp(freqs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below lo, 1 above hi, raised-cosine between."""
    t = np.clip((freqs - lo) / (hi - lo), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * t)


class DspSeparator:
    """The fallback separator: ``process`` takes (frames, channels) at ``sample_rate`` and
    returns (len(stems), frames, channels) whose sum over stems is the input."""

    name = "dsp"
    sample_rate = F.SAMPLE_RATE
    stems = STEMS
    pad_edges = True  # zeros beyond the file's ends as context (ChunkedSeparation), as qc's rules were measured

    def __init__(self):
        freqs = np.fft.rfftfreq(F.N_FFT, 1.0 / self.sample_rate)
        self.low = 1.0 - _ramp(freqs, 120.0, 250.0)
        self.voice = _ramp(freqs, 100.0, 200.0) * (1.0 - _ramp(freqs, 6000.0, 11000.0))

    def masks(self, spec: np.ndarray) -> np.ndarray:
        """(channels, T, bins) complex -> (4, T, bins) float masks summing to one."""
        power = np.abs(spec) ** 2
        mag = np.sqrt(power.mean(axis=0))
        # scipy.ndimage.median_filter(mag, (17, 1) and (1, 17), mode="nearest"), value for
        # value, at a quarter of its time
        harm = running_median(mag, KERNEL_FRAMES, 0)
        perc = running_median(mag, KERNEL_BINS, 1)
        h2, p2 = harm ** 2, perc ** 2
        total = np.maximum(h2 + p2, 1e-20)
        m_perc = p2 / total
        m_harm = 1.0 - m_perc
        if spec.shape[0] >= 2:
            cross = np.abs(spec[0] * np.conj(spec[1]))
            centre = 2.0 * cross / np.maximum(power[0] + power[1], 1e-20)
            centre = np.clip(centre, 0.0, 1.0) ** CENTRE_POWER
            # centred and equally loud: the balance term drops for panned sources
        else:
            centre = np.ones_like(mag)
        bass = m_harm * self.low
        vocals = m_harm * (1.0 - self.low) * self.voice * centre
        other = np.clip(1.0 - m_perc - bass - vocals, 0.0, 1.0)
        return np.stack([m_perc, bass, vocals, other]).astype(np.float32)

    def process(self, x: np.ndarray, want=None) -> np.ndarray:
        """(frames, channels) -> (4, frames, channels); only the stems in want (default all)."""
        spec = F.stft(x)
        m = self.masks(spec)
        idx = [i for i, s in enumerate(self.stems) if want is None or s in want]
        out = np.zeros((len(self.stems), x.shape[0], x.shape[1]))
        if idx:
            out[idx] = F.istft(m[idx][:, None] * spec[None], x.shape[0])
        return out
