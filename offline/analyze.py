"""Whole-file analysis: loudness, peaks, dynamics, stereo, DC, clipping, spectrum and a quality score.

Everything is computed streaming, one block at a time, so memory stays flat whatever the file
length; only the series kept for the plot grow, by 24 bytes per 100 ms (under 1 MB per hour).
``FileAnalyzer`` holds the state and is driven either by ``analyze_file`` (a file on disk) or
by a test with synthetic blocks; the figures do not depend on the block size.

Measurements (JSON keys in brackets; dB values of silence are -inf, written as null in JSON)
- From the loudness meter (``auracore.kernels.loudness.LoudnessMeter``, EBU R128 / ITU-R
  BS.1770-4, its default channel weights: 5.1 = L R C LFE Ls Rs weighs LFE 0 and surrounds
  1.41): [integrated_lufs], [loudness_range_lu], [momentary_max_lufs],
  [short_term_max_lufs]; [true_peak_dbtp] the maximum over channels and
  [true_peak_dbtp_per_channel] (4x oversampled; the last ``truepeak.TP_DELAY`` frames of a
  file count with their samples only); [sample_peak_dbfs] / [sample_peak_dbfs_per_channel],
  the largest |sample|. [true_peak_overs] counts runs of consecutive complete meter hops
  (10 ms: 480 frames at 48 kHz) whose true peak is at or above -1 dBTP, per channel, summed.
- [rms_dbfs] / [rms_dbfs_per_channel]: root mean square (all channels pooled for the single
  value). [crest_factor_db] = sample peak (max over channels) minus that pooled RMS.
- [plr_db]: peak-to-loudness ratio, true peak minus integrated loudness.
- [stereo_correlation]: Pearson correlation of channels 1 and 2; [stereo_width]: side energy
  over mid energy, M = (L+R)/2, S = (L-R)/2 (0 for dual mono, 1 for uncorrelated equal
  channels, null when the mid energy is zero: exact anti-phase, or silence). Both are null
  for mono; for more than two channels they describe channels 1 and 2.
- [dc_offset]: mean sample value per channel (linear, full scale = 1).
- [clipping_events] / [clipping_events_per_channel]: runs of 3 or more consecutive samples at
  or above -0.01 dBFS in one channel, counted across block boundaries, summed over channels.
- [band_levels_db]: octave bands with nominal centres 31.5 Hz .. 16 kHz (exact centres
  1000 * 2**k Hz, edges centre / sqrt 2 .. centre * sqrt 2), the power in the band relative to
  the total power of the averaged spectrum (all bins, DC included), in dB; null for a band
  wholly above Nyquist or holding no power. The spectrum is Welch's average: Hann windows of
  ``SPECTRUM_FFT_SIZE`` frames, 50 % overlap, power averaged over channels (a file shorter than
  one window gets one Hann window of its own length, zero-padded); the transforms run in single
  precision where ``fft32`` loads, the sums in double (band levels within 1e-5 dB of double).
- [duration_s], [frames], [sample_rate], [channels], [path], [target_lufs].
- [sanitised_samples]: NaN, Inf and absurd (above +80 dBFS) samples, measured as 0 (as the
  chain's sanitiser replaces them).

Quality score [quality_score], 0..100: start at 100, subtract each term's penalty (each
listed with its measured value and rule under [quality_terms], rounded to 0.01 point),
floor at 0, round to 0.1:
- loudness:  2 points per LU between integrated loudness and the target (default -14 LUFS,
  ``target_lufs``), at most 30; 30 when no gated loudness was measured (silence).
- true_peak: 10 points per dB of true peak above -1 dBTP, at most 20.
- clipping:  2 points per clipping event, at most 20.
- dc_offset: 0.5 points per dB of the largest |DC offset| above -60 dBFS (20 log10 |mean|),
  at most 10 (reached at -40 dBFS, i.e. |DC| = 0.01).
- plr:       2 points per dB of PLR below 8 dB, at most 10; 0 when PLR is unknown (silence).
- lra:       2 points per LU of loudness range below 3 LU, at most 6.
- stereo:    20 points times the negated correlation when the correlation is negative (exact
  anti-phase costs 20), 0 for mono or correlation >= 0.
"""

import math
import os
from dataclasses import dataclass, fields

import numpy as np

from auracore.errors import AudioArrayError
from auracore.kernels.sane import sanitised_peak
from auracore.kernels.loudness import LoudnessMeter, hop_frames
from auracore.offline.audio_io import AudioFileError, open_input, read_blocks
from auracore.offline.fft32 import add_power, power_of, rfft32
from auracore.offline.pipeline import pipelined

BLOCK_FRAMES = 32768
MAX_CHANNELS = 8
TARGET_LUFS = -14.0
CLIP_THRESHOLD_DBFS = -0.01
CLIP_MIN_RUN = 3
TP_OVER_DBTP = -1.0
SPECTRUM_FFT_SIZE = 8192
ENVELOPE_COLUMNS = 2000
# the meter's hop log holds this many hops (about 10 s) and is drained whenever it fills
LOG_HOPS = 1000
MOMENTARY_STEPS = 4    # 400 ms in 100 ms steps
SHORT_TERM_STEPS = 30  # 3 s
# Nominal labels of the octave bands, in the order of the exact centres 1000 * 2**k, k = -5..4.
OCTAVE_LABELS = ("31.5", "63", "125", "250", "500", "1000", "2000", "4000", "8000", "16000")
OCTAVE_CENTRES_HZ = tuple(1000.0 * 2.0 ** k for k in range(-5, 5))


def db_amplitude(x: float) -> float:
    """20 log10 x; -inf for 0."""
    return 20.0 * math.log10(x) if x > 0.0 else -math.inf


def db_power(x: float) -> float:
    """10 log10 x; -inf for 0."""
    return 10.0 * math.log10(x) if x > 0.0 else -math.inf


class RunCounter:
    """Counts, per channel, runs of >= min_run consecutive values at or above a threshold.

    Runs are followed across block boundaries: a run is counted once, when it ends (or at
    ``finish``), whatever blocks it spans.
    """

    def __init__(self, channels: int, threshold: float, min_run: int):
        self.threshold = threshold
        self.min_run = min_run
        self.open_len = np.zeros(channels, dtype=np.int64)
        self.counts = np.zeros(channels, dtype=np.int64)

    def process(self, mag: np.ndarray) -> None:
        """mag: (channels, n) values in the threshold's unit (|sample|, or dBTP per hop)."""
        above = mag >= self.threshold
        frames = above.shape[1]
        for c in range(above.shape[0]):
            edges = np.diff(np.concatenate(([0], above[c].view(np.int8), [0])))
            starts = np.flatnonzero(edges == 1)
            ends = np.flatnonzero(edges == -1)
            if starts.size == 0:
                self._close(c)
                continue
            lengths = ends - starts
            if starts[0] == 0:
                lengths[0] += self.open_len[c]  # the run carried from the previous block goes on
            else:
                self._close(c)
            self.open_len[c] = 0
            if ends[-1] == frames:  # still open at the block end: decide when it ends
                self.open_len[c] = lengths[-1]
                lengths = lengths[:-1]
            self.counts[c] += np.count_nonzero(lengths >= self.min_run)

    def below(self) -> None:
        """A block with nothing at or over the threshold (``process`` would find no run):
        the open runs end."""
        for c in range(self.counts.size):
            self._close(c)

    def finish(self) -> np.ndarray:
        """Close open runs; return the counts: (channels,) int64."""
        for c in range(self.counts.size):
            self._close(c)
        return self.counts

    def _close(self, c: int) -> None:
        if self.open_len[c] >= self.min_run:
            self.counts[c] += 1
        self.open_len[c] = 0


class MomentStats:
    """Streaming mean and co-moments per channel (Chan's pairwise merge).

    Block statistics are centred on the block mean and merged, so a DC offset or hours of
    audio lose no precision to cancellation.
    """

    def __init__(self, channels: int):
        self.frames = 0
        self.mean = np.zeros(channels)
        self.comoment = np.zeros((channels, channels))

    def process(self, xt: np.ndarray) -> None:
        """xt: (channels, frames) float64."""
        nb = xt.shape[1]
        mean_b = xt.mean(axis=1)
        d = xt - mean_b[:, None]
        delta = mean_b - self.mean
        total = self.frames + nb
        self.comoment += d @ d.T + np.outer(delta, delta) * (self.frames * nb / total)
        self.mean += delta * (nb / total)
        self.frames = total

    def raw_moment(self) -> np.ndarray:
        """Mean of x_a * x_b over frames (DC included): (channels, channels)."""
        return self.comoment / self.frames + np.outer(self.mean, self.mean)

    def correlation(self) -> float | None:
        """Pearson correlation of channels 0 and 1; None for mono or a constant channel."""
        if self.mean.size < 2:
            return None
        den = math.sqrt(self.comoment[0, 0] * self.comoment[1, 1])
        return float(self.comoment[0, 1] / den) if den > 0.0 else None

    def width(self) -> float | None:
        """Side energy over mid energy of channels 0 and 1; None for mono or when the mid
        energy is zero (below 1e-12 of the two channels' energy: rounding residue)."""
        if self.mean.size < 2:
            return None
        r = self.raw_moment()
        mid = r[0, 0] + r[1, 1] + 2.0 * r[0, 1]
        side = r[0, 0] + r[1, 1] - 2.0 * r[0, 1]
        if not mid > 1e-12 * (r[0, 0] + r[1, 1]):
            return None
        # identical channels can leave a rounding residue of either sign; energy is >= 0
        return float(max(side, 0.0) / mid)


def periodic_hann(n: int) -> np.ndarray:
    """scipy.signal.get_window("hann", n), bit for bit (the same operations), without
    importing scipy.signal (half a second of start-up, most of it parsing docstrings)."""
    fac = np.linspace(-np.pi, np.pi, n + 1)
    w = np.zeros(n + 1)
    for k, a in enumerate((0.5, 0.5)):
        w += a * np.cos(k * fac)
    return w[:n]


class SpectrumAccumulator:
    """Welch power spectrum: Hann windows of fft_size frames, 50 % overlap, channel-averaged."""

    def __init__(self, sample_rate: int, channels: int, fft_size: int = SPECTRUM_FFT_SIZE):
        self.sample_rate = sample_rate
        self.fft_size = fft_size
        self.hop = fft_size // 2
        self.window = periodic_hann(fft_size)
        self.window32 = self.window.astype(np.float32)
        self.buf = np.zeros((channels, fft_size))
        self.fill = 0
        self.power_sum = np.zeros(fft_size // 2 + 1)
        self.segments = 0

    def process(self, xt: np.ndarray) -> None:
        """xt: (channels, frames) float64. The segments a block completes go through the FFT
        eight at a time (one at a time spent a third of the time in Python), in single
        precision where ``fft32`` loads (0.09 s instead of 0.28 s for 300 s of stereo)."""
        frames = xt.shape[1]
        if self.fill + frames < self.fft_size:
            self.buf[:, self.fill:self.fill + frames] = xt
            self.fill += frames
            return
        data = np.concatenate((self.buf[:, :self.fill], xt), axis=1)
        n = (data.shape[1] - self.fft_size) // self.hop + 1  # segments complete in data
        segments = np.lib.stride_tricks.sliding_window_view(data, self.fft_size, axis=1)[:, :n * self.hop:self.hop]
        power = np.zeros((segments.shape[0], self.power_sum.shape[0]))
        for j in range(0, n, 16):  # 16 segments of every channel a transform call: ~1 MB in flight
            # single precision: the power to 1e-6 relative
            add_power(power_of(rfft32(np.multiply(segments[:, j:j + 16], self.window32, dtype=np.float32))), power)
        self.power_sum += power.sum(axis=0) / segments.shape[0]
        self.segments += n
        self.fill = data.shape[1] - n * self.hop  # the next segment's start onwards: under one segment
        self.buf[:, :self.fill] = data[:, n * self.hop:]

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(freqs_hz, power): (fft_size//2 + 1,) each; power scaled so a sine of amplitude A
        on a bin reads A**2 (so 10 log10 power is the sine's peak level in dBFS)."""
        window = self.window
        if self.segments == 0 and self.fill > 0:
            # shorter than one window: a Hann window of its own length, zero-padded, keeps
            # the level scale (a full-length window would read low by the padding)
            window = np.zeros(self.fft_size)
            window[:self.fill] = periodic_hann(self.fill) if self.fill > 1 else 1.0
            self._segment(window)
        scale = 4.0 / (window.sum() ** 2 * max(self.segments, 1))
        freqs_hz = np.fft.rfftfreq(self.fft_size, 1.0 / self.sample_rate)
        return freqs_hz, self.power_sum * scale

    def _segment(self, window: np.ndarray) -> None:
        spec = np.fft.rfft(self.buf * window, axis=1)
        self.power_sum += (spec.real ** 2 + spec.imag ** 2).mean(axis=0)
        self.segments += 1


def octave_band_levels_db(freqs_hz: np.ndarray, power: np.ndarray, sample_rate: int) -> dict:
    """Octave band power relative to the total power, in dB, keyed by nominal centre label.

    freqs_hz, power: (bins,) from ``SpectrumAccumulator.finish``. A band wholly above Nyquist,
    or with no power, is -inf.
    """
    total = float(power.sum())
    out = {}
    for label, centre_hz in zip(OCTAVE_LABELS, OCTAVE_CENTRES_HZ):
        lo_hz, hi_hz = centre_hz / math.sqrt(2.0), centre_hz * math.sqrt(2.0)
        if lo_hz >= sample_rate / 2.0 or total <= 0.0:
            out[label] = -math.inf
            continue
        band = float(power[(freqs_hz >= lo_hz) & (freqs_hz < hi_hz)].sum())
        out[label] = db_power(band / total)
    return out


class EnvelopeDecimator:
    """Streaming waveform envelope: min and max sample per column of frames.

    The column width starts at frames_hint / columns and doubles (merging column pairs)
    whenever 2 * columns are filled, so a wrong length hint still keeps memory bounded.
    """

    def __init__(self, channels: int, frames_hint: int, columns: int = ENVELOPE_COLUMNS):
        self.column_frames = max(1, -(-frames_hint // columns))
        self.capacity = 2 * columns
        self.lo = np.empty((channels, self.capacity))
        self.hi = np.empty((channels, self.capacity))
        self.count = 0
        self.part_frames = 0
        self.part_lo = np.full(channels, np.inf)
        self.part_hi = np.full(channels, -np.inf)

    def process(self, xt: np.ndarray) -> None:
        """xt: (channels, frames) samples."""
        i, n = 0, xt.shape[1]
        channels = xt.shape[0]
        while i < n:
            width = self.column_frames
            if self.part_frames == 0 and n - i >= width:
                k = min((n - i) // width, self.capacity - self.count)
                seg = slice(i, i + k * width)
                cols = slice(self.count, self.count + k)
                self.lo[:, cols] = xt[:, seg].reshape(channels, k, width).min(axis=2)
                self.hi[:, cols] = xt[:, seg].reshape(channels, k, width).max(axis=2)
                self.count += k
                i += k * width
            else:
                k = min(width - self.part_frames, n - i)
                np.minimum(self.part_lo, xt[:, i:i + k].min(axis=1), out=self.part_lo)
                np.maximum(self.part_hi, xt[:, i:i + k].max(axis=1), out=self.part_hi)
                self.part_frames += k
                i += k
                if self.part_frames == width:
                    self._push_partial()
            if self.count == self.capacity:
                self._halve()

    def finish(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(lo, hi, column_frames): lo, hi (columns, channels), column j starting at frame
        j * column_frames (the last may be shorter)."""
        if self.part_frames:
            self._push_partial()
        c = self.count
        return self.lo[:, :c].T.copy(), self.hi[:, :c].T.copy(), self.column_frames

    def _push_partial(self) -> None:
        self.lo[:, self.count] = self.part_lo
        self.hi[:, self.count] = self.part_hi
        self.count += 1
        self.part_frames = 0
        self.part_lo[:] = np.inf
        self.part_hi[:] = -np.inf

    def _halve(self) -> None:
        # capacity is even and full, so pairs align; a partial column keeps its start frame,
        # which is also the start of a doubled column.
        half = self.capacity // 2
        self.lo[:, :half] = np.minimum(self.lo[:, 0::2], self.lo[:, 1::2])
        self.hi[:, :half] = np.maximum(self.hi[:, 0::2], self.hi[:, 1::2])
        self.count = half
        self.column_frames *= 2


class MeterLog:
    """The loudness meter with its hop log drained into 100 ms series as the log fills.

    The log is re-armed only on a hop boundary (after a whole number of its hops), where
    nothing of a hop is in flight, so the series do not depend on the block size.
    """

    def __init__(self, sample_rate: int, channels: int, exact_series: bool = True):
        self.meter = LoudnessMeter(sample_rate, channels)
        self.hop_frames, step_frames = hop_frames(sample_rate)
        self.step_hops = step_frames // self.hop_frames
        # without the plot, a hop's true peak is needed only against the overs' threshold:
        # just under it, so a hop that reads the floor is not an over
        self.tp_floor_dbtp = None if exact_series else TP_OVER_DBTP - 1e-6
        self.meter.hop_log_enable(LOG_HOPS, self.tp_floor_dbtp)
        self.armed_frames = 0  # frames metered since the log was armed
        self.hops = 0          # hops drained so far
        self.overs = RunCounter(channels, TP_OVER_DBTP, 1)
        self.step_tp_dbtp = -math.inf  # true peak of the 100 ms step in progress
        self.chunks: list[tuple[np.ndarray, ...]] = []

    def process(self, x: np.ndarray) -> None:
        """x: (frames, channels) float64 or float32 (the meter widens each sample exactly)."""
        room = LOG_HOPS * self.hop_frames
        pos = 0
        while pos < x.shape[0]:
            k = min(room - self.armed_frames, x.shape[0] - pos)
            self.meter.process(x[pos:pos + k])
            pos += k
            self.armed_frames += k
            if self.armed_frames == room:
                self.drain()
                self.meter.hop_log_enable(LOG_HOPS, self.tp_floor_dbtp)
                self.armed_frames = 0

    def drain(self) -> None:
        """Move the logged hops into the series: at every 100 ms step end, the momentary and
        short-term loudness and the step's true peak (max over its hops and channels)."""
        log = self.meter.hop_log()
        hop_tp_dbtp = log["true_peak_dbtp"]  # (hops, channels)
        n = hop_tp_dbtp.shape[0]
        if n == 0:
            return
        self.overs.process(np.ascontiguousarray(hop_tp_dbtp.T))
        hop_no = np.arange(self.hops + 1, self.hops + n + 1)
        self.hops += n
        ends = np.flatnonzero(hop_no % self.step_hops == 0)
        hop_tp = hop_tp_dbtp.max(axis=1)
        if ends.size == 0:
            self.step_tp_dbtp = max(self.step_tp_dbtp, float(hop_tp.max()))
            return
        starts = np.concatenate(([0], ends[:-1] + 1))
        step_tp = np.maximum.reduceat(hop_tp[:ends[-1] + 1], starts)
        step_tp[0] = max(step_tp[0], self.step_tp_dbtp)
        tail = hop_tp[ends[-1] + 1:]
        self.step_tp_dbtp = float(tail.max()) if tail.size else -math.inf
        steps = hop_no[ends] // self.step_hops
        # windows reaching back before the stream are left out, as the meter's maxima do
        momentary = np.where(steps >= MOMENTARY_STEPS, log["momentary_lufs"][ends], np.nan)
        short_term = np.where(steps >= SHORT_TERM_STEPS, log["short_term_lufs"][ends], np.nan)
        self.chunks.append((log["time_s"][ends], momentary, short_term, step_tp))

    def series(self) -> tuple[np.ndarray, ...]:
        """(times_s, momentary_lufs, short_term_lufs, true_peak_dbtp): (steps,) each, one per
        completed 100 ms step, time = step end; NaN before the first full window."""
        if not self.chunks:
            return tuple(np.zeros(0) for _ in range(4))
        return tuple(np.concatenate(parts) for parts in zip(*self.chunks))


@dataclass
class PlotData:
    """What the figure needs, all small: envelope columns, 100 ms series, spectrum."""

    sample_rate: int
    envelope_lo: np.ndarray        # (columns, channels) min sample per column
    envelope_hi: np.ndarray        # (columns, channels) max sample per column
    column_frames: int             # column j starts at frame j * column_frames
    step_times_s: np.ndarray       # (steps,) end of each 100 ms step
    momentary_lufs: np.ndarray     # (steps,) NaN before the first full 400 ms
    short_term_lufs: np.ndarray    # (steps,) NaN before the first full 3 s
    step_true_peak_dbtp: np.ndarray  # (steps,) max true peak in the step over channels
    spectrum_freqs_hz: np.ndarray  # (bins,)
    spectrum_db: np.ndarray        # (bins,) dBFS, sine-peak scale


@dataclass(frozen=True)
class Analysis:
    """Every figure of one analysed signal, named as the JSON keys of the module docstring
    (dB values of silence are -inf; ``to_dict()`` writes them as None, and is exactly what
    ``auracore analyze --json`` prints for the file)."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    integrated_lufs: float
    loudness_range_lu: float
    momentary_max_lufs: float
    short_term_max_lufs: float
    true_peak_dbtp: float
    true_peak_dbtp_per_channel: list
    true_peak_overs: int
    sample_peak_dbfs: float
    sample_peak_dbfs_per_channel: list
    rms_dbfs: float
    rms_dbfs_per_channel: list
    plr_db: float
    crest_factor_db: float
    stereo_correlation: float | None
    stereo_width: float | None
    dc_offset: list
    clipping_events: int
    clipping_events_per_channel: list
    band_levels_db: dict
    target_lufs: float
    sanitised_samples: int
    quality_score: float
    quality_terms: dict

    def to_dict(self) -> dict:
        """The figures as JSON-ready Python values (-inf and NaN as None), in field order."""
        return json_safe({f.name: getattr(self, f.name) for f in fields(self)})


@dataclass
class FileAnalysis:
    """The result for one file: ``metrics`` (JSON keys of the module docstring, -inf where
    silent) and ``plot`` (series for ``auracore.offline.plot``)."""

    metrics: dict
    plot: PlotData

    @property
    def analysis(self) -> Analysis:
        return Analysis(**{f.name: self.metrics[f.name] for f in fields(Analysis)})


class FileAnalyzer:
    """The streaming state of every measurement for one stream of blocks."""

    def __init__(self, sample_rate: int, channels: int, frames_hint: int = 0, exact_series: bool = True):
        """exact_series=False: the plot's 100 ms true-peak series may read a floor (just
        under TP_OVER_DBTP, or the channel's maximum so far) for the steps under it, and
        the meter skips their interpolation; every metric stays exact."""
        self.sample_rate = sample_rate
        self.channels = channels
        self.meter = MeterLog(sample_rate, channels, exact_series)
        self.moments = MomentStats(channels)
        self.spectrum = SpectrumAccumulator(sample_rate, channels)
        self.clips = RunCounter(channels, 10.0 ** (CLIP_THRESHOLD_DBFS / 20.0), CLIP_MIN_RUN)
        self.envelope = EnvelopeDecimator(channels, frames_hint)
        self.frames = 0
        self.sanitised = 0

    def process(self, x: np.ndarray) -> None:
        """x: (frames, channels) float64, any number of frames."""
        self.measured(self.metered(self.prepared(x)))

    # process in three steps, which analyze_file runs in order on threads of their own (the first on the reader's)
    def prepared(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """The block sanitised (float32 as read, or float64), a channel-major float64 copy
        of it (numpy reduces along the contiguous axis many times faster) and its largest
        magnitude; the moments."""
        x = np.ascontiguousarray(x, dtype=x.dtype if x.dtype == np.float32 else np.float64)
        x, bad, top = sanitised_peak(x)
        self.sanitised += bad
        self.frames += x.shape[0]
        xt = np.ascontiguousarray(x.T, dtype=np.float64)
        self.moments.process(xt)  # here, not in measured: the two steps after this one weigh more
        return x, xt, top

    def metered(self, block: tuple) -> tuple:
        """The loudness meter's step (frame-major block), and the envelope's."""
        self.meter.process(block[0])
        self.envelope.process(block[1])
        return block

    def measured(self, block: tuple) -> tuple:
        """Spectrum and clipping (channel-major block)."""
        xt = block[1]
        self.spectrum.process(xt)
        if block[2] < self.clips.threshold:  # nothing near full scale: the usual case, no copy
            self.clips.below()
        else:
            self.clips.process(np.abs(xt))
        return block

    def finish(self, path: str = "", target_lufs: float = TARGET_LUFS) -> FileAnalysis:
        """Flush the streams and compute every figure; the analyzer is spent afterwards."""
        if self.frames == 0:
            raise AudioFileError(f"{path}: no audio frames were read")
        self.meter.drain()
        readings = self.meter.meter.readings()
        tp_dbtp = readings["true_peak_dbtp"]
        peaks_dbfs = readings["sample_peak_dbfs"]
        integrated = readings["integrated_lufs"]
        mean_sq = np.diag(self.moments.raw_moment())
        rms_dbfs = db_amplitude(math.sqrt(float(mean_sq.mean())))
        freqs_hz, power = self.spectrum.finish()
        clip_counts = self.clips.finish()
        metrics = {
            "path": path,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "frames": self.frames,
            "duration_s": self.frames / self.sample_rate,
            "integrated_lufs": integrated,
            "loudness_range_lu": readings["loudness_range_lu"],
            "momentary_max_lufs": readings["momentary_max_lufs"],
            "short_term_max_lufs": readings["short_term_max_lufs"],
            "true_peak_dbtp": max(tp_dbtp),
            "true_peak_dbtp_per_channel": tp_dbtp,
            "true_peak_overs": int(self.meter.overs.finish().sum()),
            "sample_peak_dbfs": max(peaks_dbfs),
            "sample_peak_dbfs_per_channel": peaks_dbfs,
            "rms_dbfs": rms_dbfs,
            "rms_dbfs_per_channel": [db_amplitude(math.sqrt(float(v))) for v in mean_sq],
            "plr_db": max(tp_dbtp) - integrated if math.isfinite(integrated) else math.nan,
            "crest_factor_db": (max(peaks_dbfs) - rms_dbfs if math.isfinite(rms_dbfs)
                                else math.nan),
            "stereo_correlation": self.moments.correlation(),
            "stereo_width": self.moments.width(),
            "dc_offset": [float(v) for v in self.moments.mean],
            "clipping_events": int(clip_counts.sum()),
            "clipping_events_per_channel": [int(v) for v in clip_counts],
            "band_levels_db": octave_band_levels_db(freqs_hz, power, self.sample_rate),
            "target_lufs": target_lufs,
            "sanitised_samples": self.sanitised,
        }
        terms = quality_terms(metrics, target_lufs)
        metrics["quality_score"] = quality_score(terms)
        metrics["quality_terms"] = terms
        lo, hi, column_frames = self.envelope.finish()
        with np.errstate(divide="ignore"):
            spectrum_db = 10.0 * np.log10(power)
        plot = PlotData(self.sample_rate, lo, hi, column_frames, *self.meter.series(),
                        freqs_hz, spectrum_db)
        return FileAnalysis(metrics, plot)


def quality_terms(metrics: dict, target_lufs: float = TARGET_LUFS) -> dict:
    """The penalties of the quality score, term by term (see the module docstring).

    metrics: needs integrated_lufs, true_peak_dbtp, clipping_events, dc_offset (list),
    plr_db, loudness_range_lu, stereo_correlation (None for mono). Returns
    {term: {"penalty": points, "measured": value, "rule": text}}.
    """
    integrated = metrics["integrated_lufs"]
    if math.isfinite(integrated):
        loud = min(30.0, 2.0 * abs(integrated - target_lufs))
    else:
        loud = 30.0
    tp = metrics["true_peak_dbtp"]
    true_peak = min(20.0, 10.0 * max(0.0, tp - TP_OVER_DBTP))
    clipping = min(20.0, 2.0 * metrics["clipping_events"])
    dc_dbfs = db_amplitude(max(abs(v) for v in metrics["dc_offset"]))
    dc = min(10.0, 0.5 * max(0.0, dc_dbfs + 60.0))
    plr_db = metrics["plr_db"]
    plr = min(10.0, 2.0 * max(0.0, 8.0 - plr_db)) if math.isfinite(plr_db) else 0.0
    lra_lu = metrics["loudness_range_lu"]
    lra = min(6.0, 2.0 * max(0.0, 3.0 - lra_lu)) if math.isfinite(lra_lu) else 0.0
    corr = metrics["stereo_correlation"]
    stereo = 20.0 * max(0.0, -corr) if corr is not None else 0.0
    # penalties are rounded to 0.01 point so the breakdown reads cleanly and sums to the score
    loud, true_peak, clipping, dc, plr, lra, stereo = (
        round(v, 2) for v in (loud, true_peak, clipping, dc, plr, lra, stereo))
    return {
        "loudness": {"penalty": loud, "measured": integrated,
                     "rule": f"2 per LU from {target_lufs:g} LUFS, max 30 (30 if silent)"},
        "true_peak": {"penalty": true_peak, "measured": tp,
                      "rule": f"10 per dB above {TP_OVER_DBTP:g} dBTP, max 20"},
        "clipping": {"penalty": clipping, "measured": metrics["clipping_events"],
                     "rule": "2 per clipping event, max 20"},
        "dc_offset": {"penalty": dc, "measured": dc_dbfs,
                      "rule": "0.5 per dB of largest |DC| above -60 dBFS, max 10"},
        "plr": {"penalty": plr, "measured": plr_db, "rule": "2 per dB of PLR below 8 dB, max 10"},
        "lra": {"penalty": lra, "measured": lra_lu, "rule": "2 per LU of LRA below 3 LU, max 6"},
        "stereo": {"penalty": stereo, "measured": corr,
                   "rule": "20 x -correlation when negative, max 20"},
    }


def quality_score(terms: dict) -> float:
    """100 minus the sum of the terms' penalties, floored at 0, rounded to 0.1."""
    return round(max(0.0, 100.0 - sum(t["penalty"] for t in terms.values())), 1)


def json_safe(value):
    """A copy of value with every non-finite float (-inf, inf, NaN) replaced by None and
    numpy scalars turned into Python numbers, so json.dumps(allow_nan=False) accepts it."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def finite_or_none(value, digits: int = 2) -> float | None:
    """value rounded to digits, or None for -inf, inf and NaN (JSON has no infinities)."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def analyze(x, sample_rate: int, target_lufs: float = TARGET_LUFS, path: str = "") -> Analysis:
    """Analyse a whole signal x: (frames, channels) or (frames,) float, 1 to MAX_CHANNELS
    channels, at sample_rate Hz (the figures do not depend on how it is split); path only
    labels the result. AudioArrayError for a bad shape, dtype or rate."""
    from auracore.offline.chain import as_audio, check_rate  # here: analyze_file (the command) skips it

    a = np.asarray(x)
    channels = 1 if a.ndim == 1 else (a.shape[1] if a.ndim == 2 else 0)
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioArrayError(f"audio: shape {a.shape}; analyze takes (frames, 1 to {MAX_CHANNELS} channels)")
    a = as_audio(a, channels)
    if a.shape[0] == 0:
        raise AudioArrayError("audio: no frames")
    analyzer = FileAnalyzer(check_rate(sample_rate), channels, frames_hint=a.shape[0], exact_series=False)
    for start in range(0, a.shape[0], BLOCK_FRAMES):
        analyzer.process(a[start:start + BLOCK_FRAMES])
    return analyzer.finish(path, target_lufs).analysis


def analyze_file(path: str, target_lufs: float = TARGET_LUFS, blocksize: int = BLOCK_FRAMES,
                 progress_factory=None, exact_series: bool = True) -> FileAnalysis:
    """Analyse one audio file (1 to MAX_CHANNELS channels) in blocks of blocksize frames;
    memory stays flat whatever the file length.

    progress_factory(total_frames, label) returns an object with update(n) and close(), or
    None (as ``auracore.control.progress.progress_factory`` makes). exact_series=False
    when the plot is not drawn (see FileAnalyzer): the same metrics, faster. Raises AudioFileError
    with a one-line reason when the file cannot be read or is cut short.
    """
    # open_input's channel message speaks for the stereo commands; analyze gives its own
    f = open_input(path, max_channels=1 << 16)
    with f:
        if f.channels > MAX_CHANNELS:
            raise AudioFileError(f"{path}: {f.channels} channels; analyze takes 1 to "
                                 f"{MAX_CHANNELS} channels")
        analyzer = FileAnalyzer(f.samplerate, f.channels, frames_hint=f.frames, exact_series=exact_series)
        bar = progress_factory(f.frames, os.path.basename(path)) if progress_factory else None
        try:
            # reading with the checks, the meter, and the rest each on a thread of their own (the
            # checks on a thread of their own cost more in handing blocks over than they took)
            # float32 where it holds the file exactly: the meter takes it as it is
            blocks = map(analyzer.prepared, read_blocks(f, blocksize, native=True))
            for block in pipelined(blocks, analyzer.metered, analyzer.measured,
                                   depth=1):  # one block waiting per step: flat and small
                if bar is not None:
                    bar.update(block[0].shape[0])
        finally:
            if bar is not None:
                bar.close()
        if analyzer.frames < f.frames:
            raise AudioFileError(f"{path}: only {analyzer.frames} of {f.frames} frames could be "
                                 "read; the file is truncated")
    return analyzer.finish(path, target_lufs)
