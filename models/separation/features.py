"""The spectral front end shared by training and the ONNX runtime (numpy only, no torch).

The model hears 44.1 kHz audio through an STFT of ``N_FFT`` points (square-root Hann
window, hop ``HOP``: perfect reconstruction), pooled into ``N_BANDS`` bands: one band per
bin up to ``LINEAR_BINS`` (about 690 Hz, where bass lives), then log-spaced bands up to
Nyquist. It predicts one mask per stem and band, a softmax over the stems; ``expand``
turns band masks back into masks on every bin with hat-function weights that sum to one
in every bin, so the bin masks of the stems still sum to one and the stems add back to
the mixture. The masks cover the whole band, up to Nyquist.
"""

import numpy as np

SAMPLE_RATE = 44100
N_FFT = 2048
HOP = 512
N_BINS = N_FFT // 2 + 1
N_BANDS = 128
LINEAR_BINS = 32
STEMS6 = ("drums", "bass", "vocals", "piano", "guitar", "other")
STEMS4 = ("drums", "bass", "vocals", "other")


def band_centres(n_bins: int = N_BINS, n_bands: int = N_BANDS, linear: int = LINEAR_BINS) -> np.ndarray:
    """Centres of the bands in bin units: 0, 1, ..., linear-1, then log-spaced to n_bins-1."""
    lin = np.arange(linear, dtype=np.float64)
    log = np.geomspace(linear, n_bins - 1, n_bands - linear)
    return np.concatenate([lin, log])


def expansion_matrix(n_bins: int = N_BINS, n_bands: int = N_BANDS, linear: int = LINEAR_BINS) -> np.ndarray:
    """(n_bins, n_bands) float32: bin mask = E @ band mask; every row sums to one (linear
    interpolation between the two nearest band centres)."""
    c = band_centres(n_bins, n_bands, linear)
    k = np.arange(n_bins, dtype=np.float64)
    e = np.zeros((n_bins, n_bands))
    j = np.clip(np.searchsorted(c, k, side="right") - 1, 0, n_bands - 2)
    frac = np.clip((k - c[j]) / (c[j + 1] - c[j]), 0.0, 1.0)
    e[np.arange(n_bins), j] = 1.0 - frac
    e[np.arange(n_bins), j + 1] += frac
    return e.astype(np.float32)


def interpolation(n_bins: int = N_BINS, n_bands: int = N_BANDS, linear: int = LINEAR_BINS):
    """(index (n_bins,), weight (n_bins,)) with E[k, index[k]] = 1 - weight[k] and
    E[k, index[k] + 1] = weight[k]: expansion_matrix as two gathers (expand() uses it)."""
    c = band_centres(n_bins, n_bands, linear)
    k = np.arange(n_bins, dtype=np.float64)
    j = np.clip(np.searchsorted(c, k, side="right") - 1, 0, n_bands - 2)
    frac = np.clip((k - c[j]) / (c[j + 1] - c[j]), 0.0, 1.0)
    return j, frac.astype(np.float32)


_INTERP = None


def expand_bins(masks: np.ndarray, start: int = 0, stop: int = N_BINS) -> np.ndarray:
    """(..., n_bands) band masks -> bins [start, stop) of their (..., N_BINS) bin masks
    (the same as @ expansion_matrix().T, sliced)."""
    global _INTERP
    if _INTERP is None:
        _INTERP = expansion_matrix().T.copy()
    return masks.astype(np.float32, copy=False) @ _INTERP[:, start:stop]


def expand(masks: np.ndarray) -> np.ndarray:
    """(..., n_bands) band masks -> (..., N_BINS) bin masks (the same as @ expansion_matrix().T)."""
    return expand_bins(masks)


def pooling_matrix(n_bins: int = N_BINS, n_bands: int = N_BANDS, linear: int = LINEAR_BINS) -> np.ndarray:
    """(n_bands, n_bins) float32: band magnitude = P @ bin magnitude, a weighted mean."""
    e = expansion_matrix(n_bins, n_bands, linear).T.astype(np.float64)
    return (e / np.maximum(e.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


def window(n_fft: int = N_FFT) -> np.ndarray:
    """Periodic square-root Hann: analysis and synthesis windows alike."""
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft))


def stft(x: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """x: (frames, channels) real -> (channels, T, n_fft//2+1) complex64. The signal is
    padded with n_fft zeros on both sides, so every sample is covered by full frames."""
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    total = n + 2 * n_fft
    n_frames = 1 + int(np.ceil(max(total - n_fft, 0) / hop))
    padded = np.zeros(((n_frames - 1) * hop + n_fft, x.shape[1]), dtype=np.float32)
    padded[n_fft:n_fft + n] = x
    w = window(n_fft).astype(np.float32)
    out = np.empty((x.shape[1], n_frames, n_fft // 2 + 1), dtype=np.complex64)
    for c in range(x.shape[1]):
        frames = np.lib.stride_tricks.sliding_window_view(padded[:, c], n_fft)[::hop]
        out[c] = np.fft.rfft(frames * w, axis=1)
    return out


def istft(spec: np.ndarray, length: int, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """The inverse of stft: (..., channels, T, bins) -> (..., length, channels) float64."""
    lead = spec.shape[:-3]
    channels, n_frames = spec.shape[-3], spec.shape[-2]
    w = window(n_fft)
    total = (n_frames - 1) * hop + n_fft
    frames = np.fft.irfft(spec.reshape(-1, n_frames, spec.shape[-1]), n=n_fft, axis=-1)
    frames *= w.astype(frames.dtype)
    if n_fft % hop == 0:  # overlap-add as n_fft/hop shifted sums
        r = n_fft // hop
        acc = np.zeros((frames.shape[0], n_frames + r - 1, hop), dtype=frames.dtype)
        pieces = frames.reshape(frames.shape[0], n_frames, r, hop)
        for j in range(r):
            acc[:, j:j + n_frames] += pieces[:, :, j]
        out = acc.reshape(frames.shape[0], total)
        wacc = np.zeros((n_frames + r - 1, hop))
        for j in range(r):
            wacc[j:j + n_frames] += (w * w).reshape(r, hop)[j]
        norm = wacc.reshape(total)
    else:
        out = np.zeros((frames.shape[0], total))
        norm = np.zeros(total)
        for t in range(n_frames):
            out[:, t * hop:t * hop + n_fft] += frames[:, t]
            norm[t * hop:t * hop + n_fft] += w * w
    out = out[:, n_fft:n_fft + length].astype(np.float64) / np.maximum(norm[n_fft:n_fft + length], 1e-8)
    return np.moveaxis(out.reshape(*lead, channels, length), -2, -1)
