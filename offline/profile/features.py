"""Streaming feature extraction for the profile: onset envelopes, chroma, mel frames, levels, loudness.

``FeatureStream`` takes (frames, channels) blocks of any size and keeps only frame-rate
features (about 25 KB per second of audio, whatever the sample rate), so memory grows with
the duration at the rate of a plot series and never holds the audio itself. Frames are
centred on multiples of ``hop`` samples (the first on sample 0, zero padding before the
start and after the end), so the features do not depend on the block size.

- Onset frames (``hop`` = 11.6 ms, window ``n_fft`` = 46 ms rounded to a power of two):
  the log-mel spectral flux ``onset`` (mean over 64 mel bands of the half-wave rectified
  rise in dB) and ``onset_low`` (the same over the bands below 200 Hz: kick and bass).
- Chroma frames (every ``CHROMA_STEP`` onset frames, 4x longer window for pitch resolution):
  ``semitones`` (79, n) energy per semitone from A1 (55 Hz) to 5 kHz, ``chroma`` (12, n) the
  same folded to pitch classes, and ``mel_db`` (64, n). ``Features.whitened_chroma()`` is the
  chroma of the semitone energies with the track's long-term spectral tilt taken out (then
  weighted by a fixed register curve): a static EQ tilt cancels out of it.
- Level frames (one per ``hop`` samples of the input, all channels): energy sums for RMS,
  peak and mid/side energy, for any span (a section) to be summed afterwards.
- The EBU R128 momentary loudness every 100 ms (``auracore.kernels.loudness.LoudnessMeter``),
  from which a section's gated integrated loudness is computed.
"""

import math

import numpy as np

from auracore.kernels.sane import sanitised
from auracore.kernels.loudness import LoudnessMeter, hop_frames
from auracore.offline import mel

N_MELS = 64
CHROMA_STEP = 4
CHROMA_LO_HZ = 55.0
CHROMA_HI_HZ = 5000.0
LOW_BAND_HZ = 200.0
FLOOR_DB = -100.0
LOG_HOPS = 1000
SEMITONE_LO = 33  # MIDI note of CHROMA_LO_HZ (A1)
# after the tilt is taken out, registers are weighted by a fixed Gaussian over MIDI notes
# (middle C, 15 semitones): a flat spectrum gives the bass's smear and the hats' noise as much
# weight as the harmony (chosen on bench/profile.py's pieces, docs/profile.md)
REGISTER_CENTRE_MIDI = 60.0
REGISTER_SIGMA_SEMIS = 15.0


def frame_params(sample_rate: int) -> tuple[int, int]:
    """(hop, n_fft) in samples for the onset frames: 512 and 2048 at 44.1 kHz, scaled."""
    hop = max(1, int(round(sample_rate * 512.0 / 44100.0)))
    n_fft = 1 << int(round(math.log2(sample_rate * 2048.0 / 44100.0)))
    return hop, max(n_fft, 64)


def _mel_filters(sample_rate: int, n_fft: int) -> np.ndarray:
    return mel.filter_bank(sample_rate, n_fft, N_MELS, 30.0, min(16000.0, sample_rate / 2.0)).astype(np.float64)


def _semitone_filters(sample_rate: int, n_fft: int) -> np.ndarray:
    """(semitones, bins): each bin in CHROMA_LO..HI_HZ spreads over its two nearest
    semitones by distance (linear in semitones); row 0 is MIDI note SEMITONE_LO (A1)."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    top = int(math.floor(69.0 + 12.0 * math.log2(CHROMA_HI_HZ / 440.0))) + 1
    fb = np.zeros((top - SEMITONE_LO + 1, freqs.size))
    ok = (freqs >= CHROMA_LO_HZ) & (freqs <= CHROMA_HI_HZ)
    midi = 69.0 + 12.0 * np.log2(freqs[ok] / 440.0)
    lo = np.floor(midi)
    frac = midi - lo
    cols = np.flatnonzero(ok)
    row = lo.astype(int) - SEMITONE_LO
    np.add.at(fb, (row, cols), 1.0 - frac)
    np.add.at(fb, (row + 1, cols), frac)
    return fb


def fold_chroma(semitones: np.ndarray) -> np.ndarray:
    """(12, n) pitch-class sums (C = 0) of (semitones, n) energies from MIDI SEMITONE_LO up."""
    out = np.zeros((12, semitones.shape[1]), dtype=np.float64)
    for i in range(semitones.shape[0]):
        out[(SEMITONE_LO + i) % 12] += semitones[i]
    return out


def whiten_semitones(semitones: np.ndarray) -> np.ndarray:
    """Semitone energies (rows from MIDI SEMITONE_LO up) with the track's spectral tilt taken
    out: divided by the straight line (log level against semitone, least squares) fitted to
    their long-term mean levels. An EQ tilt (a level linear in log frequency) changes only
    that line, so it cancels exactly; a shelf or a peak cancels in part."""
    s = np.asarray(semitones, dtype=np.float64)
    if s.shape[1] == 0:
        return s
    mean = s.mean(axis=1)
    ok = mean > 0.0  # a semitone no FFT bin reaches (the lowest, at some rates) stays out of the fit
    if ok.sum() < 2:
        return s
    idx = np.arange(mean.size, dtype=np.float64)
    slope, icept = np.polyfit(idx[ok], np.log(mean[ok]), 1)
    return s * np.exp(-(slope * idx + icept))[:, None]


class LevelFrames:
    """Per-hop energy sums of the input: total, mid, side (mean over channels of x**2, and
    of ((L+R)/2)**2, ((L-R)/2)**2 for stereo) and the sample peak."""

    def __init__(self, hop: int, channels: int):
        self.hop = hop
        self.channels = channels
        self.rest = np.zeros((0, channels))
        self.parts: list[np.ndarray] = []

    def process(self, x: np.ndarray) -> None:
        if self.rest.shape[0]:
            x = np.concatenate((self.rest, x), axis=0)
        n = (x.shape[0] // self.hop) * self.hop
        if n:
            self.parts.append(self._stats(x[:n].reshape(-1, self.hop, self.channels)))
        self.rest = x[n:].copy()

    def _stats(self, f: np.ndarray) -> np.ndarray:
        out = np.empty((f.shape[0], 5))
        out[:, 0] = (f ** 2).mean(axis=2).sum(axis=1)
        if self.channels >= 2:
            mid = 0.5 * (f[:, :, 0] + f[:, :, 1])
            side = 0.5 * (f[:, :, 0] - f[:, :, 1])
        else:
            mid, side = f[:, :, 0], np.zeros(f.shape[:2])
        out[:, 1] = (mid ** 2).sum(axis=1)
        out[:, 2] = (side ** 2).sum(axis=1)
        out[:, 3] = np.abs(f).max(axis=(1, 2))
        out[:, 4] = f.shape[1]
        return out

    def finish(self) -> np.ndarray:
        """(hops, 5): sum of mean-square, sum of mid**2, sum of side**2, peak, frames."""
        if self.rest.shape[0]:
            self.parts.append(self._stats(self.rest[None]))
            self.rest = np.zeros((0, self.channels))
        return np.concatenate(self.parts) if self.parts else np.zeros((0, 5))


class MomentaryLog:
    """The loudness meter (no true peak) with its momentary loudness kept every 100 ms."""

    def __init__(self, sample_rate: int, channels: int):
        self.meter = LoudnessMeter(sample_rate, channels, true_peak=False)
        self.hop, step = hop_frames(sample_rate)
        self.step_hops = step // self.hop
        self.meter.hop_log_enable(LOG_HOPS)
        self.armed = 0
        self.hops = 0
        self.times: list[np.ndarray] = []
        self.momentary: list[np.ndarray] = []

    def process(self, x: np.ndarray) -> None:
        room = LOG_HOPS * self.hop
        pos = 0
        while pos < x.shape[0]:
            k = min(room - self.armed, x.shape[0] - pos)
            self.meter.process(x[pos:pos + k])
            pos += k
            self.armed += k
            if self.armed == room:
                self._drain()
                self.meter.hop_log_enable(LOG_HOPS)
                self.armed = 0

    def _drain(self) -> None:
        log = self.meter.hop_log()
        n = log["time_s"].shape[0]
        hop_no = np.arange(self.hops + 1, self.hops + n + 1)
        self.hops += n
        ends = np.flatnonzero(hop_no % self.step_hops == 0)
        self.times.append(log["time_s"][ends])
        self.momentary.append(log["momentary_lufs"][ends])

    def finish(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(step end times s, momentary LUFS per 100 ms step, whole-file integrated LUFS)."""
        self._drain()
        self.meter.hop_log_enable(0)
        t = np.concatenate(self.times) if self.times else np.zeros(0)
        m = np.concatenate(self.momentary) if self.momentary else np.zeros(0)
        return t, m, self.meter.integrated_lufs


class Features:
    """What ``FeatureStream.finish`` returns: frame-rate series of one signal."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def onset_times_s(self) -> np.ndarray:
        return np.arange(self.onset.size) * self.hop / self.sample_rate

    def chroma_times_s(self) -> np.ndarray:
        return np.arange(self.chroma.shape[1]) * self.hop * CHROMA_STEP / self.sample_rate

    def whitened_chroma(self) -> np.ndarray:
        """(12, n) chroma of the detilted semitone energies (``whiten_semitones``), each
        register weighted by a fixed Gaussian (REGISTER_CENTRE_MIDI, REGISTER_SIGMA_SEMIS)."""
        midi = SEMITONE_LO + np.arange(self.semitones.shape[0])
        weight = np.exp(-0.5 * ((midi - REGISTER_CENTRE_MIDI) / REGISTER_SIGMA_SEMIS) ** 2)
        return fold_chroma(whiten_semitones(self.semitones) * weight[:, None])


class FeatureStream:
    """Streaming extractor: ``process(block)`` with (frames, channels) float blocks, then
    ``finish()`` -> ``Features``. sample_rate in Hz; loudness: also run the R128 meter."""

    def __init__(self, sample_rate: int, channels: int, loudness: bool = True):
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.hop, self.n_fft = frame_params(self.sample_rate)
        self.n_big = self.n_fft * CHROMA_STEP
        self.window = np.hanning(self.n_fft + 1)[:-1]
        self.window_big = np.hanning(self.n_big + 1)[:-1]
        self.scale = (2.0 / self.window.sum()) ** 2
        self.scale_big = (2.0 / self.window_big.sum()) ** 2
        self.mel_fb = _sparse(_mel_filters(self.sample_rate, self.n_fft))
        self.mel_fb_big = _sparse(_mel_filters(self.sample_rate, self.n_big))
        centres = np.array([0.0] + list(_mel_centres(self.sample_rate)))
        self.low_bands = np.flatnonzero(centres[1:] < LOW_BAND_HZ)
        self.semitone_fb = _sparse(_semitone_filters(self.sample_rate, self.n_big))
        # the buffer starts with n_big/2 zeros so that frame k is centred on sample k*hop
        self.pad = self.n_big // 2
        self.buf = np.zeros(self.pad)
        self.buf_start = -self.pad  # sample index of buf[0]
        self.next_frame = 0
        self.frames_in = 0
        self.prev_db = None
        self.onset: list[np.ndarray] = []
        self.onset_low: list[np.ndarray] = []
        self.semitones: list[np.ndarray] = []
        self.mel_db: list[np.ndarray] = []
        self.levels = LevelFrames(self.hop, self.channels)
        self.loudness = MomentaryLog(self.sample_rate, self.channels) if loudness else None

    def process(self, x: np.ndarray) -> None:
        """x: (frames, channels) float64 (or float32); NaN, Inf and absurd samples count as 0."""
        x = sanitised(np.asarray(x, dtype=np.float64))[0]
        self.levels.process(x)
        if self.loudness is not None:
            self.loudness.process(x)
        self.frames_in += x.shape[0]
        self.buf = np.concatenate((self.buf, x.mean(axis=1)))
        self._frames(final=False)

    def _frames(self, final: bool) -> None:
        # frame k needs samples up to k*hop + n_big/2 (its chroma window, when k is a chroma frame)
        end = self.buf_start + self.buf.size
        if final:
            last = (self.frames_in - 1) // self.hop if self.frames_in else -1
        else:
            last = (end - self.pad) // self.hop
        k = np.arange(self.next_frame, last + 1)
        if k.size == 0:
            return
        need = k[-1] * self.hop + self.pad
        if need > end:
            self.buf = np.concatenate((self.buf, np.zeros(need - end)))
        centres = k * self.hop - self.buf_start
        half = self.n_fft // 2
        idx = centres[:, None] - half + np.arange(self.n_fft)[None, :]
        frames = self.buf[idx] * self.window
        # floored: denormal powers (decays into digital silence) make the products crawl
        power = np.maximum(np.abs(np.fft.rfft(frames, axis=1)) ** 2 * self.scale, 1e-20)
        mel_db = 10.0 * np.log10(np.maximum(self.mel_fb @ power.T, 1e-10))
        mel_db = np.maximum(mel_db, FLOOR_DB).T
        prev = np.full((1, N_MELS), FLOOR_DB) if self.prev_db is None else self.prev_db[None, :]
        rise = np.maximum(np.diff(np.concatenate((prev, mel_db)), axis=0), 0.0)
        self.prev_db = mel_db[-1].copy()
        self.onset.append(rise.mean(axis=1))
        self.onset_low.append(rise[:, self.low_bands].mean(axis=1) if self.low_bands.size else np.zeros(k.size))
        ck = k[(k % CHROMA_STEP) == 0]
        if ck.size:
            cc = ck * self.hop - self.buf_start
            hb = self.n_big // 2
            idxb = cc[:, None] - hb + np.arange(self.n_big)[None, :]
            pb = np.maximum(np.abs(np.fft.rfft(self.buf[idxb] * self.window_big, axis=1)) ** 2 * self.scale_big, 1e-20)
            semis = self.semitone_fb @ pb.T
            self.semitones.append(semis.astype(np.float32))
            mdb = 10.0 * np.log10(np.maximum(self.mel_fb_big @ pb.T, 1e-10))
            self.mel_db.append(np.maximum(mdb, FLOOR_DB).astype(np.float32))
        self.next_frame = int(k[-1]) + 1
        # keep what the next frame's widest window reaches back to
        keep_from = self.next_frame * self.hop - self.pad - self.buf_start
        if keep_from > 0:
            self.buf = self.buf[keep_from:]
            self.buf_start += keep_from

    def finish(self) -> Features:
        """The series; see the module docstring."""
        self._frames(final=True)
        if self.loudness is not None:
            m_times, momentary, integrated = self.loudness.finish()
        else:
            m_times, momentary, integrated = np.zeros(0), np.zeros(0), -math.inf
        cat = (lambda parts, shape: np.concatenate(parts, axis=-1) if parts else np.zeros(shape))
        semitones = cat(self.semitones, (self.semitone_fb.shape[0], 0))  # the chroma is their fold
        return Features(
            sample_rate=self.sample_rate, channels=self.channels, hop=self.hop, n_fft=self.n_fft,
            frames=self.frames_in, duration_s=self.frames_in / self.sample_rate,
            onset=cat(self.onset, (0,)), onset_low=cat(self.onset_low, (0,)),
            chroma=fold_chroma(semitones), semitones=semitones,
            mel_db=cat(self.mel_db, (N_MELS, 0)).astype(np.float64),
            levels=self.levels.finish(), momentary_times_s=m_times, momentary_lufs=momentary,
            integrated_lufs=integrated)


def _sparse(m: np.ndarray):
    from scipy.sparse import csr_matrix

    return csr_matrix(m)


def _mel_centres(sample_rate: int) -> np.ndarray:
    return mel.mel_frequencies(N_MELS + 2, 30.0, min(16000.0, sample_rate / 2.0))[1:-1]


def extract(x: np.ndarray, sample_rate: int, block_frames: int = 1 << 16, loudness: bool = True) -> Features:
    """Features of a whole array x: (frames, channels) or (frames,) float, streamed in blocks."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    fs = FeatureStream(sample_rate, x.shape[1], loudness=loudness)
    for start in range(0, x.shape[0], block_frames):
        fs.process(x[start:start + block_frames])
    return fs.finish()
