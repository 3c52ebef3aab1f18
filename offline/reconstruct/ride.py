"""The band ride: a render's level in each octave band ridden toward its stem's, over time.

The level ride (``core.level_match``) moves a whole render's short-time level toward its
stem's, as a fader would. The band ride does the same per octave band, as an automated
equaliser would: a note that brightens as it swells, a part that thins out in a quiet bar,
a chord that opens up. The transcription keeps the notes, not how their colour moves.

Coarse on purpose, so that it shapes the render and does not carry the stem's sound into
it: eight octave bands (under 125 Hz, then octaves to 8 kHz, then the rest), levels read
over ``WINDOW_S`` (0.4 s, the momentary loudness's; the loop rides the stems in 0.2 s and
the drums in 50 ms, ``core.FINE_WINDOW_S`` and ``DRUM_WINDOW_S``), each band's gain
within +-``RANGE_DB``, interpolated across frequency in log frequency. Bands where the
render is near silent are left alone (a gain cannot make a note the render does not play).

Applied through a short-time Fourier transform (Hann windows of about 46 ms, hops of a
quarter window, weighted overlap-add normalised by the windows' sum of squares: 0 dB
everywhere gives the render back), in batches of frames, so memory stays a few arrays of
the input's length (``models.separation.features.stft`` holds a whole track's spectrogram:
about 250 MB for a 3-minute stereo stem at this frame size).
"""

import math

import numpy as np

BAND_EDGES_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
WINDOW_S = 0.4
RANGE_DB = 10.0
FRAME_S = 0.046          # about 2048 samples at 44.1 kHz
SILENT_DB = 50.0         # a band more than this under the render's loudest band-frame is left alone
_BATCH = 1024


def _nfft(sample_rate: int) -> int:
    return 1 << max(8, int(round(math.log2(FRAME_S * sample_rate))))


def _frames(x: np.ndarray, nfft: int, hop: int):
    """Batches (start frame, frames (k, nfft)) of x (n,) padded so that every sample lies in
    nfft / hop frames; the number of frames."""
    pad = np.concatenate([np.zeros(nfft - hop, x.dtype), x, np.zeros(nfft, x.dtype)])
    n_frames = (x.shape[0] + nfft - hop) // hop + 1
    view = np.lib.stride_tricks.sliding_window_view(pad, nfft)[::hop][:n_frames]
    return ((j, view[j:j + _BATCH]) for j in range(0, n_frames, _BATCH)), n_frames


def _band_matrix(sample_rate: int, nfft: int) -> np.ndarray:
    """(bins, bands) 0/1: which band each bin belongs to."""
    f = np.fft.rfftfreq(nfft, 1.0 / sample_rate)
    idx = np.searchsorted(np.asarray(BAND_EDGES_HZ), f, side="right")
    m = np.zeros((f.size, len(BAND_EDGES_HZ) + 1))
    m[np.arange(f.size), idx] = 1.0
    return m


def _interp_matrix(sample_rate: int, nfft: int) -> np.ndarray:
    """(bins, bands): a band gain per bin, linear in log frequency between the bands' centres."""
    f = np.maximum(np.fft.rfftfreq(nfft, 1.0 / sample_rate), 1.0)
    edges = [30.0, *BAND_EDGES_HZ, max(sample_rate / 2.0, BAND_EDGES_HZ[-1] * 1.5)]
    centres = np.log([math.sqrt(a * b) for a, b in zip(edges[:-1], edges[1:])])
    eye = np.eye(len(centres))
    return np.stack([np.interp(np.log(f), centres, eye[b]) for b in range(len(centres))], axis=1)


def _band_power(x: np.ndarray, sample_rate: int, nfft: int, hop: int) -> np.ndarray:
    """(frames, bands) power of mono x."""
    win = np.hanning(nfft + 1)[:-1]
    bands = _band_matrix(sample_rate, nfft)
    batches, n_frames = _frames(x, nfft, hop)
    out = np.empty((n_frames, bands.shape[1]))
    for j, fr in batches:
        out[j:j + fr.shape[0]] = (np.abs(np.fft.rfft(fr * win, axis=1)) ** 2) @ bands
    return out


def band_gains_db(render: np.ndarray, target: np.ndarray, sample_rate: int, window_s: float = WINDOW_S,
                  range_db: float = RANGE_DB) -> np.ndarray:
    """(frames, bands) the gain in dB that takes mono render's band levels toward target's,
    each band's power averaged over window_s, within +-range_db; 0 where the render's band
    is near silent."""
    nfft = _nfft(sample_rate)
    hop = nfft // 4
    pr = _band_power(render.astype(np.float64, copy=False), sample_rate, nfft, hop)
    pt = _band_power(target.astype(np.float64, copy=False), sample_rate, nfft, hop)
    k = max(1, int(round(window_s * sample_rate / hop)))
    ker = np.ones(k)
    norm = np.convolve(np.ones(pr.shape[0]), ker, mode="same")
    pr = np.stack([np.convolve(c, ker, mode="same") for c in pr.T], axis=1) / norm[:, None]
    pt = np.stack([np.convolve(c, ker, mode="same") for c in pt.T], axis=1) / norm[:, None]
    floor = max(float(pr.max()), 1e-30) * 10 ** (-SILENT_DB / 10)
    live = (pr > floor) & (pt > 0)
    db = np.where(live, 10.0 * np.log10(np.maximum(pt, 1e-30) / np.maximum(pr, 1e-30)), 0.0)
    return np.clip(db, -range_db, range_db)


def band_ride(render: np.ndarray, target: np.ndarray, sample_rate: int, window_s: float = WINDOW_S,
              range_db: float = RANGE_DB) -> np.ndarray:
    """render (frames, channels) with each octave band's level ridden toward target's (same
    shape; the gains are read on the channels' mean and applied to every channel), as
    render's dtype."""
    n = render.shape[0]
    nfft = _nfft(sample_rate)
    hop = nfft // 4
    mono = lambda y: y.mean(axis=1) if y.ndim == 2 else y  # noqa: E731
    g_db = band_gains_db(mono(render), mono(target), sample_rate, window_s, range_db)
    if not np.any(g_db):
        return render
    spread = _interp_matrix(sample_rate, nfft).T                          # (bands, bins)
    win = np.hanning(nfft + 1)[:-1]
    q = nfft // hop
    n_frames = g_db.shape[0]
    # the windows' sum of squares at every sample, the same for every channel
    wsum = np.zeros((n_frames + q, hop))
    for i, w2 in enumerate((win * win).reshape(q, hop)):
        wsum[i:i + n_frames] += w2
    x2 = render[:, None] if render.ndim == 1 else render
    out = np.empty(x2.shape, dtype=render.dtype)
    for c in range(x2.shape[1]):
        batches, _ = _frames(x2[:, c].astype(np.float64), nfft, hop)
        acc = np.zeros((n_frames + q, hop))
        for j, fr in batches:
            gain = 10.0 ** ((g_db[j:j + fr.shape[0]] @ spread) / 20.0)    # (frames, bins)
            y = (np.fft.irfft(np.fft.rfft(fr * win, axis=1) * gain, n=nfft, axis=1) * win).reshape(-1, q, hop)
            for i in range(q):
                acc[j + i:j + i + y.shape[0]] += y[:, i]
        out[:, c] = (acc / np.maximum(wsum, 1e-12)).reshape(-1)[nfft - hop:nfft - hop + n]
    return out[:, 0] if render.ndim == 1 else out
