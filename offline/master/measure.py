"""Streaming measurement of one signal for mastering by reference: loudness, peaks, mid/side spectra.

``Measurer`` takes (frames, channels) blocks one at a time and keeps only fixed-size state
(the loudness meter, two Welch spectra, running moments), so any length measures in flat
memory.
"""

import math
from dataclasses import dataclass

import numpy as np

from auracore.kernels.jit import njit
from auracore.kernels.loudness import HIST_BINS_PER_LU, HIST_LOW_LUFS, LoudnessMeter
from auracore.kernels.sane import sanitised_peak
from auracore.kernels.truepeak import TP_DELAY
from auracore.offline.fft32 import add_power, power_of, rfft32

SPECTRUM_FFT_S = 0.17            # Welch segment length: 8192 frames at 48 kHz (5.9 Hz bins)


@dataclass(frozen=True)
class Measurement:
    """What the fit needs from one signal. Levels in dB(FS), loudness in LUFS/LU.

    mid_power, side_power: (bins,) Welch power spectra of M = (L+R)/2 and S = (L-R)/2 at
    freqs_hz (a mono signal is all mid); st_hist: (bins,) counts of short-term loudness
    values (one per second, 0.01 LU bins from -70 LUFS).
    """

    sample_rate: int
    channels: int
    frames: int
    integrated_lufs: float
    loudness_range_lu: float
    true_peak_dbtp: float
    sample_peak_dbfs: float
    rms_dbfs: float
    side_mid_ratio: float | None     # side energy over mid energy (None: mono, or no mid)
    freqs_hz: np.ndarray
    mid_power: np.ndarray
    side_power: np.ndarray
    st_hist: np.ndarray

    @property
    def crest_factor_db(self) -> float:
        """Sample peak over RMS (dB)."""
        return self.sample_peak_dbfs - self.rms_dbfs

    @property
    def plr_db(self) -> float:
        """True peak over integrated loudness (dB)."""
        return self.true_peak_dbtp - self.integrated_lufs


class MidSideSpectrum:
    """Averaged power spectra of rows of a (rows, frames) stream (mid and side): Hann windows
    of fft_size, end to end (no overlap: over the seconds a match averages, overlap would
    double the FFTs for a variance nobody sees), every complete segment of a block in one
    FFT call. Power is
    scaled so a sine of amplitude A on a bin reads A**2; a stream shorter than one window
    gets one Hann window of its own length, zero-padded."""

    def __init__(self, sample_rate: int, rows: int, fft_size: int):
        self.sample_rate = sample_rate
        self.fft_size = fft_size
        self.hop = fft_size
        self.window = np.hanning(fft_size + 1)[:-1].astype(np.float32)   # periodic Hann
        self.pending = np.zeros((rows, 0))
        self.power_sum = np.zeros((rows, fft_size // 2 + 1))
        self.segments = 0

    def process(self, xt: np.ndarray) -> None:
        """xt: (rows, frames) float64."""
        buf = np.concatenate([self.pending, xt], axis=1)
        count = 0 if buf.shape[1] < self.fft_size else 1 + (buf.shape[1] - self.fft_size) // self.hop
        if count:
            segs = np.lib.stride_tricks.sliding_window_view(buf, self.fft_size, axis=1)[:, ::self.hop][:, :count]
            # single-precision FFTs: the averaged power needs no more; through pocketfft's own
            # float32 path where it loads (numpy 2's float32 FFT runs slower than its float64)
            add_power(power_of(rfft32(np.multiply(segs, self.window, dtype=np.float32))), self.power_sum)
            self.segments += count
        self.pending = buf[:, count * self.hop:].copy()

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(freqs_hz (bins,), power (rows, bins))."""
        window = self.window
        if self.segments == 0 and self.pending.shape[1] > 0:
            n = self.pending.shape[1]
            window = np.zeros(self.fft_size)
            window[:n] = np.hanning(n + 1)[:-1] if n > 1 else 1.0
            padded = np.zeros((self.pending.shape[0], self.fft_size))
            padded[:, :n] = self.pending
            spec = np.fft.rfft(padded * window, axis=1)
            self.power_sum += spec.real ** 2 + spec.imag ** 2
            self.segments = 1
        scale = 4.0 / (window.sum() ** 2 * max(self.segments, 1))
        return np.fft.rfftfreq(self.fft_size, 1.0 / self.sample_rate), self.power_sum * scale


@njit(cache=True, nogil=True)
def _add_products(x, sums):
    """sums += (sum L*L, sum R*R, sum L*R) of x: (frames, 2), or (sum x*x, 0, 0) of a mono x,
    in one pass."""
    ll = rr = lr = 0.0
    if x.shape[1] == 2:
        for i in range(x.shape[0]):
            a = x[i, 0]
            b = x[i, 1]
            ll += a * a
            rr += b * b
            lr += a * b
    else:
        for i in range(x.shape[0]):
            ll += x[i, 0] * x[i, 0]
    sums[0] += ll
    sums[1] += rr
    sums[2] += lr


@njit(cache=True, nogil=True)
def mid_side(x, out):
    """out: (2, frames) float64 receives M = (L + R) / 2 and S = (L - R) / 2 of x: (frames, 2)."""
    for i in range(x.shape[0]):
        out[0, i] = 0.5 * (x[i, 0] + x[i, 1])
        out[1, i] = 0.5 * (x[i, 0] - x[i, 1])


@njit(cache=True, nogil=True)
def add_row_energies(rows, sums):
    """sums[k] += the sum of squares of rows[k], for rows: (k, frames), in one pass."""
    for k in range(rows.shape[0]):
        e = 0.0
        for i in range(rows.shape[1]):
            e += rows[k, i] * rows[k, i]
        sums[k] += e


def _db(power_or_amp: float, scale: float) -> float:
    return scale * math.log10(power_or_amp) if power_or_amp > 0.0 else -math.inf


class Measurer:
    """Streaming measurement of one signal: process(block) for each block, then finish().

    sample_rate in Hz; channels 1 or 2; spectra=False skips the spectra (empty).
    """

    def __init__(self, sample_rate: int, channels: int, spectra: bool = True):
        self.sample_rate = int(sample_rate)
        self.channels = channels
        self.meter = LoudnessMeter(sample_rate, channels)
        fft = 1 << max(8, int(round(math.log2(SPECTRUM_FFT_S * sample_rate))))
        self.spectrum = MidSideSpectrum(self.sample_rate, channels, fft) if spectra else None
        self.products = np.zeros(3)   # sums of L*L, R*R, L*R (mono: x*x in the first)
        self.frames = 0
        self.sample_peak = 0.0

    def process(self, x: np.ndarray) -> None:
        """x: (frames, channels) float64 block."""
        self.spectra_of(self.levels_of(x))

    def levels_of(self, x: np.ndarray) -> np.ndarray:
        """The first half of ``process``: loudness, peaks, energies; returns x
        as the chain's sanitiser will see it (NaN, Inf and absurd values as 0), for
        ``spectra_of``. The halves may run on two threads, each in block order."""
        x, _, peak = sanitised_peak(np.ascontiguousarray(x, dtype=np.float64))
        self.frames += x.shape[0]
        self.meter.process(x)
        _add_products(x, self.products)   # one pass (np.dot's BLAS threads stall on a busy machine)
        self.sample_peak = max(self.sample_peak, peak)
        return x

    def spectra_of(self, x: np.ndarray) -> None:
        """The second half of ``process``: the mid/side spectra of ``levels_of``'s output."""
        if self.spectrum is not None:
            if self.channels == 2:
                ms = np.empty((2, x.shape[0]))
                mid_side(x, ms)
                self.spectrum.process(ms)
            else:
                self.spectrum.process(np.ascontiguousarray(x.T))

    def finish(self) -> Measurement:
        """The measurement; the measurer is spent afterwards."""
        self.meter.process(np.zeros((TP_DELAY + 1, self.channels)))  # the true-peak estimate's lag
        if self.spectrum is not None:
            freqs, power = self.spectrum.finish()
            mid, side = power[0], (power[1] if self.channels == 2 else np.zeros_like(power[0]))
        else:
            freqs = mid = side = np.zeros(0)
        ll, rr, lr = self.products
        mean_sq = (ll + rr) / (self.frames * self.channels) if self.frames else 0.0
        side_mid = None
        if self.channels == 2 and (ll + rr + 2.0 * lr) > 1e-12 * (ll + rr):
            side_mid = max(ll + rr - 2.0 * lr, 0.0) / (ll + rr + 2.0 * lr)
        tp = self.meter.true_peak_dbtp
        return Measurement(
            sample_rate=self.sample_rate, channels=self.channels, frames=self.frames,
            integrated_lufs=self.meter.integrated_lufs, loudness_range_lu=self.meter.loudness_range_lu,
            true_peak_dbtp=float(np.max(tp)), sample_peak_dbfs=_db(self.sample_peak, 20.0),
            rms_dbfs=_db(mean_sq, 10.0), side_mid_ratio=side_mid,
            freqs_hz=freqs, mid_power=mid, side_power=side, st_hist=self.meter.lra_count.copy())


def hist_levels_lufs(hist: np.ndarray) -> np.ndarray:
    """Bin centres (LUFS) of a short-term histogram from ``Measurement.st_hist``."""
    return HIST_LOW_LUFS + (np.arange(hist.shape[0]) + 0.5) / HIST_BINS_PER_LU


def measure(x: np.ndarray, sample_rate: int, spectra: bool = True, blocksize: int = 65536) -> Measurement:
    """Measure a whole array x: (frames, channels) float64 (see ``Measurer``)."""
    m = Measurer(sample_rate, x.shape[1], spectra)
    for start in range(0, x.shape[0], blocksize):
        m.process(x[start:start + blocksize])
    return m.finish()
