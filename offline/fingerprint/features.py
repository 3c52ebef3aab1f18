"""The 64-float fingerprint of a signal, streamed: spectral shape, MFCCs, dynamics, bands, stereo, the models' view.

Level does not change it: the signal is measured (integrated loudness, EBU R128) and
scaled to ``REFERENCE_LUFS`` before anything else is computed, so x and 0.1 x give the
same values except ``input_lufs``, the loudness before scaling. Frames (``frame_params``:
about 46 ms, hop a quarter of that) run on the mono mix at the signal's own rate and are
cut from one continuous sample grid, so the result does not depend on how the signal is
fed in blocks. Frames quieter than ``GATE_DBFS`` (after scaling) do not count toward the
spectral and MFCC statistics, so leading and trailing silence does not dilute them. The
models' part runs on up to ``MODEL_EXCERPTS`` excerpts spread over the signal, resampled
to the models' rate at their reference loudness. Every column is listed in ``FEATURES``
with its unit and how it is computed (docs/fingerprint.md prints the same table).
"""

import math
from dataclasses import dataclass

import numpy as np

from auracore.errors import AudioArrayError
from auracore.offline import mel

REFERENCE_LUFS = -18.0
GATE_DBFS = -60.0
N_MELS = 40
N_MFCC = 13
MFCC_FMAX_HZ = 11025.0
MODEL_EXCERPTS = 8
OCTAVE_CENTRES_HZ = (31.5, 63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)
SPECTRAL_LO_HZ = 40.0
EPS = 1e-12
VERSION = 1

# (name, unit, how it is computed); the order is the column order
FEATURES = (
    ("spectral_centroid_mean_hz", "Hz", "mean over gated frames of the power-weighted mean frequency (40 Hz to min(16 kHz, Nyquist))"),
    ("spectral_centroid_std_hz", "Hz", "standard deviation over gated frames of the spectral centroid"),
    ("spectral_bandwidth_mean_hz", "Hz", "mean over gated frames of the power-weighted standard deviation of frequency around the centroid"),
    ("spectral_rolloff_mean_hz", "Hz", "mean over gated frames of the frequency below which 85 % of the frame's power lies"),
    ("spectral_flatness_mean", "ratio 0..1", "mean over gated frames of the geometric over the arithmetic mean of the power spectrum (40 Hz to min(16 kHz, Nyquist))"),
    ("spectral_flatness_std", "ratio", "standard deviation over gated frames of the spectral flatness"),
) + tuple(
    (f"mfcc_{i + 1}_mean", "dB-scaled cepstral coefficient",
     f"mean over gated frames of MFCC {i + 1} (DCT-II, orthonormal, of the 10 log10 power in 40 mel bands, 20 Hz to min(11.025 kHz, Nyquist)); MFCC 1 is the overall log level")
    for i in range(N_MFCC)
) + tuple(
    (f"mfcc_{i + 1}_std", "dB-scaled cepstral coefficient", f"standard deviation over gated frames of MFCC {i + 1}")
    for i in range(N_MFCC)
) + (
    ("zero_crossing_rate_mean", "crossings per sample", "mean over gated frames of the fraction of adjacent sample pairs that change sign (mono mix)"),
    ("zero_crossing_rate_std", "crossings per sample", "standard deviation over gated frames of the zero-crossing rate"),
    ("onset_strength_mean", "dB", "mean over frames of the onset strength: the mean over mel bands of the rise of the 10 log10 mel power from the previous frame (rises only)"),
    ("onset_strength_std", "dB", "standard deviation over frames of the onset strength"),
    ("onset_rate_hz", "1/s", "onsets per second: local maxima of the onset strength above its mean plus one standard deviation, at least 50 ms apart"),
    ("rms_dbfs", "dBFS", "RMS of all channels after scaling to -18 LUFS (depends on the spectrum: K-weighting is not flat)"),
    ("crest_factor_db", "dB", "sample peak over RMS of all channels after scaling"),
    ("peak_to_average_db", "dB", "4x-oversampled true peak over RMS of all channels after scaling (the meter's true peak)"),
    ("input_lufs", "LUFS", "integrated loudness (EBU R128, BS.1770-4) before scaling: the only column that follows the level"),
    ("loudness_range_lu", "LU", "loudness range (EBU Tech 3342)"),
    ("level_std_db", "dB", "standard deviation of the frame level (10 log10 of the frame's mean square, dBFS) over gated frames"),
    ("level_p95_p10_db", "dB", "95th minus 10th percentile of the frame level over gated frames"),
) + tuple(
    (f"band_{str(c).rstrip('0').rstrip('.') if c < 1000 else f'{c / 1000:g}k'}_db", "dB re total power",
     f"power in the octave band centred on {c:g} Hz (edges at the centre x/÷ sqrt 2, clipped to Nyquist) over the total power, summed over all frames of the mono mix; -120 dB where the band is above Nyquist or empty")
    for c in OCTAVE_CENTRES_HZ
) + (
    ("spectral_tilt_db_per_octave", "dB/octave", "least-squares slope of the octave band levels (63 Hz to 8 kHz, the bands below Nyquist) against the octave number"),
    ("stereo_correlation", "-1..1", "Pearson correlation of left and right over the whole signal; 1 for mono"),
    ("side_mid_db", "dB", "side (L-R)/2 over mid (L+R)/2 energy, floor -60 dB; -60 for mono"),
) + tuple(
    (f"class_{c}_probability", "0..1", f"the content classifier's probability of {c}, averaged over the excerpts (models/weights, at the models' reference loudness)")
    for c in ("speech", "acoustic", "band", "noise", "silence")
) + (
    ("embedding_norm", "embedding units", "L2 norm of the extractor's mean embedding (32 floats per 1024-sample block at 48 kHz) over the excerpts"),
    ("embedding_spread", "embedding units", "mean over the 32 dimensions of the embedding's standard deviation across blocks"),
)
FEATURE_NAMES = tuple(f[0] for f in FEATURES)
assert len(FEATURE_NAMES) == 64, len(FEATURE_NAMES)
_INDEX = {n: i for i, n in enumerate(FEATURE_NAMES)}
MODEL_CLASSES = ("speech", "acoustic", "band", "noise", "silence")


class FingerprintError(AudioArrayError):
    """A signal that has no fingerprint (silent, too short, not audio)."""


@dataclass(frozen=True)
class Fingerprint:
    """The 64 values (``FEATURE_NAMES`` order) and what they were measured on."""

    values: np.ndarray          # float32, shape (64,)
    input_lufs: float
    duration_s: float
    sample_rate: int
    channels: int
    content_class: str         # the classifier's most probable class

    def to_dict(self) -> dict:
        """{feature name: float} in column order."""
        return {n: float(v) for n, v in zip(FEATURE_NAMES, self.values)}

    def __getitem__(self, name: str) -> float:
        return float(self.values[_INDEX[name]])


def frame_params(sample_rate: int) -> tuple[int, int]:
    """(n_fft, hop): about 46 ms frames (2048 at 44.1 and 48 kHz), hop a quarter."""
    n_fft = 1 << int(round(math.log2(max(sample_rate, 1000) * 2048.0 / 44100.0)))
    n_fft = max(n_fft, 256)
    return n_fft, n_fft // 4


class FrameStats:
    """Frame features of the scaled mono mix, fed in blocks of any size: the same result for
    any block size (frames are cut from one continuous grid, a tail kept between blocks)."""

    def __init__(self, sample_rate: int):
        self.sample_rate = int(sample_rate)
        self.n_fft, self.hop = frame_params(self.sample_rate)
        nyq = self.sample_rate / 2.0
        self.freqs = np.fft.rfftfreq(self.n_fft, 1.0 / self.sample_rate)
        self.spec = (self.freqs >= SPECTRAL_LO_HZ) & (self.freqs <= min(16000.0, nyq))
        self.mel = mel.filter_bank(self.sample_rate, self.n_fft, N_MELS, 20.0, min(MFCC_FMAX_HZ, nyq)).astype(np.float64)
        from scipy.fft import dct

        self.dct = dct(np.eye(N_MELS), type=2, norm="ortho", axis=0)[:N_MFCC]  # (13, 40)
        self.window = np.hanning(self.n_fft + 1)[:-1]
        self.wnorm = float(np.sum(self.window ** 2))
        self.band_power = np.zeros(len(OCTAVE_CENTRES_HZ))
        self.bands = [(self.freqs >= c / math.sqrt(2.0)) & (self.freqs < c * math.sqrt(2.0)) for c in OCTAVE_CENTRES_HZ]
        self.tail = np.zeros(self.n_fft // 2)  # centred frames: half a frame of zeros before the start
        self.prev_logmel = None
        self.rows = []  # per chunk: (k, 6 + 13 + 2) gated-frame stats; level, onset per frame
        self.levels = []
        self.onsets = []

    def process(self, mono: np.ndarray) -> None:
        buf = np.concatenate((self.tail, mono))
        k = (buf.size - self.n_fft) // self.hop + 1
        if k <= 0:
            self.tail = buf
            return
        self._frames(buf, k)
        self.tail = buf[k * self.hop:]

    def finish(self) -> None:
        # the last frames run past the end on zeros (half a frame), as the first ran before it
        pad = np.concatenate((self.tail, np.zeros(self.n_fft // 2)))
        k = (pad.size - self.n_fft) // self.hop + 1
        if k > 0:
            self._frames(pad, k)

    def _frames(self, buf: np.ndarray, k: int) -> None:
        idx = np.arange(self.n_fft)[None, :] + self.hop * np.arange(k)[:, None]
        fr = buf[idx]
        ms = np.mean(fr ** 2, axis=1)
        level = 10.0 * np.log10(ms + EPS)
        p = np.abs(np.fft.rfft(fr * self.window, axis=1)) ** 2 / self.wnorm
        for b, sel in enumerate(self.bands):
            self.band_power[b] += float(p[:, sel].sum())
        logmel = 10.0 * np.log10(p @ self.mel.T + EPS)
        first = logmel[:1] if self.prev_logmel is None else self.prev_logmel[None, :]
        rise = np.maximum(logmel - np.vstack((first, logmel[:-1])), 0.0).mean(axis=1)
        self.prev_logmel = logmel[-1].copy()
        gated = level > GATE_DBFS
        self.levels.append(level.astype(np.float32))
        self.onsets.append(rise.astype(np.float32))
        if not gated.any():
            return
        ps, f = p[gated][:, self.spec], self.freqs[self.spec]
        tot = ps.sum(axis=1) + EPS
        centroid = ps @ f / tot
        bandwidth = np.sqrt(np.maximum(ps @ (f ** 2) / tot - centroid ** 2, 0.0))
        cum = np.cumsum(ps, axis=1)
        rolloff = f[np.minimum(np.argmax(cum >= 0.85 * cum[:, -1:], axis=1), f.size - 1)]
        flatness = np.exp(np.mean(np.log(ps + EPS), axis=1)) / (np.mean(ps, axis=1) + EPS)
        mfcc = logmel[gated] @ self.dct.T
        signs = np.signbit(fr[gated])
        zcr = np.mean(signs[:, 1:] != signs[:, :-1], axis=1)
        self.rows.append(np.column_stack((centroid, bandwidth, rolloff, flatness, zcr, mfcc)))

    def values(self) -> dict:
        rows = np.concatenate(self.rows) if self.rows else np.zeros((0, 5 + N_MFCC))
        levels = np.concatenate(self.levels) if self.levels else np.zeros(0)
        onsets = np.concatenate(self.onsets).astype(np.float64) if self.onsets else np.zeros(0)
        if rows.shape[0] < 2:
            raise FingerprintError("too little sound for a fingerprint: fewer than 2 frames above -60 dBFS")
        mean, std = rows.mean(axis=0), rows.std(axis=0)
        out = {"spectral_centroid_mean_hz": mean[0], "spectral_centroid_std_hz": std[0],
               "spectral_bandwidth_mean_hz": mean[1], "spectral_rolloff_mean_hz": mean[2],
               "spectral_flatness_mean": mean[3], "spectral_flatness_std": std[3],
               "zero_crossing_rate_mean": mean[4], "zero_crossing_rate_std": std[4]}
        for i in range(N_MFCC):
            out[f"mfcc_{i + 1}_mean"] = mean[5 + i]
            out[f"mfcc_{i + 1}_std"] = std[5 + i]
        g = levels[levels > GATE_DBFS].astype(np.float64)
        out["level_std_db"] = float(g.std())
        out["level_p95_p10_db"] = float(np.percentile(g, 95) - np.percentile(g, 10))
        out["onset_strength_mean"] = float(onsets.mean())
        out["onset_strength_std"] = float(onsets.std())
        thr = onsets.mean() + onsets.std()
        gap = max(1, int(round(0.05 * self.sample_rate / self.hop)))
        peaks = np.flatnonzero((onsets[1:-1] > thr) & (onsets[1:-1] >= onsets[:-2]) & (onsets[1:-1] > onsets[2:])) + 1
        kept, last = 0, -gap
        for i in peaks:
            if i - last >= gap:
                kept, last = kept + 1, i
        out["onset_rate_hz"] = kept / max(levels.size * self.hop / self.sample_rate, EPS)
        total = self.band_power.sum() + EPS
        bands_db = []
        for c, bp in zip(OCTAVE_CENTRES_HZ, self.band_power):
            name = FEATURE_NAMES[_INDEX["band_31.5_db"] + OCTAVE_CENTRES_HZ.index(c)]
            v = 10.0 * math.log10(bp / total) if bp > 0 else -120.0
            out[name] = max(v, -120.0)
            bands_db.append(out[name])
        use = [i for i, c in enumerate(OCTAVE_CENTRES_HZ) if 63.0 <= c <= 8000.0 and c * math.sqrt(2.0) <= self.sample_rate / 2.0]
        out["spectral_tilt_db_per_octave"] = float(np.polyfit(np.array(use, float), np.array(bands_db)[use], 1)[0]) if len(use) >= 2 else 0.0
        return out


class WholeStats:
    """Sample peak, energy and stereo sums of the scaled signal over all channels."""

    def __init__(self, channels: int):
        self.channels = channels
        self.peak = 0.0
        self.energy = 0.0
        self.n = 0
        self.ll = self.rr = self.lr = self.mm = self.ss = 0.0
        self.sl = self.sr = 0.0

    def process(self, y: np.ndarray) -> None:
        self.peak = max(self.peak, float(np.max(np.abs(y))) if y.size else 0.0)
        self.energy += float(np.sum(y * y))
        self.n += y.size
        if self.channels == 2:
            left, right = y[:, 0], y[:, 1]
            self.ll += float(left @ left)
            self.rr += float(right @ right)
            self.lr += float(left @ right)
            self.sl += float(left.sum())
            self.sr += float(right.sum())
            m, s = 0.5 * (left + right), 0.5 * (left - right)
            self.mm += float(m @ m)
            self.ss += float(s @ s)

    def values(self, true_peak_dbtp: float) -> dict:
        rms = math.sqrt(self.energy / max(self.n, 1))
        rms_db = 20.0 * math.log10(rms + EPS)
        out = {"rms_dbfs": rms_db, "crest_factor_db": 20.0 * math.log10(self.peak + EPS) - rms_db,
               "peak_to_average_db": true_peak_dbtp - rms_db}
        if self.channels == 2:
            frames = self.n / 2
            ml, mr = self.sl / frames, self.sr / frames
            cov = self.lr / frames - ml * mr
            vl, vr = self.ll / frames - ml * ml, self.rr / frames - mr * mr
            out["stereo_correlation"] = float(cov / math.sqrt(vl * vr)) if vl > EPS and vr > EPS else 1.0
            out["side_mid_db"] = max(10.0 * math.log10((self.ss + EPS) / (self.mm + EPS)), -60.0)
        else:
            out["stereo_correlation"], out["side_mid_db"] = 1.0, -60.0
        return out


def model_view(excerpts: list, sample_rate: int) -> dict:
    """The models' part: excerpts (each (frames,) mono at sample_rate, already at the models'
    reference loudness) through the extractor and the classifier."""
    from scipy.signal import resample_poly

    r = _runner()
    probs, embs = [], []
    for ex in excerpts:
        y = ex
        if sample_rate != r.sample_rate:
            g = math.gcd(r.sample_rate, int(sample_rate))
            y = resample_poly(ex, r.sample_rate // g, int(sample_rate) // g)
        n = y.size // r.block
        if n < 1:
            continue
        emb = r.embed_batch(y[:n * r.block].astype(np.float32).reshape(n, r.block))
        embs.append(emb)
        w = min(r.context_blocks, n)
        probs.append(r.decide(emb[:w])[0])
    if not probs:
        raise FingerprintError("too short for the models: under one 1024-sample block at 48 kHz")
    p = np.mean(probs, axis=0)
    e = np.concatenate(embs, axis=0)
    out = {f"class_{c}_probability": float(p[r.classes.index(c)]) for c in MODEL_CLASSES}
    out["embedding_norm"] = float(np.linalg.norm(e.mean(axis=0)))
    out["embedding_spread"] = float(e.std(axis=0).mean()) if e.shape[0] > 1 else 0.0
    out["_class"] = MODEL_CLASSES[int(np.argmax([out[f"class_{c}_probability"] for c in MODEL_CLASSES]))]
    return out


def _runner():
    from auracore.models.runtime import shared_runner

    return shared_runner()


def excerpt_starts(frames: int, excerpt_frames: int, count: int = MODEL_EXCERPTS) -> list[int]:
    """Start frames of up to count excerpts spread evenly over frames (one when it is short)."""
    if frames <= excerpt_frames:
        return [0]
    return sorted(set(int(s) for s in np.linspace(0, frames - excerpt_frames, count)))


def excerpt_frames(sample_rate: int) -> int:
    """Frames at sample_rate that make the classifier's context (context_blocks blocks at 48 kHz)."""
    r = _runner()
    return int(math.ceil(r.context_blocks * r.block * sample_rate / r.sample_rate)) + 64
