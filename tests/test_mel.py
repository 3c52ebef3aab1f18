"""offline/mel.py: the mel scale and filter banks the profile and fingerprint features use,
equal bit for bit to librosa's (htk=False, norm=None), which they replace."""

import librosa
import numpy as np
import pytest

from auracore.offline import mel


@pytest.mark.parametrize("rate, n_fft, n_mels, fmin, fmax", [
    (44100, 2048, 64, 30.0, 16000.0),     # profile at 44.1 kHz
    (48000, 2048, 64, 30.0, 16000.0),
    (22050, 1024, 64, 30.0, 11025.0),     # fmax at Nyquist
    (8000, 256, 64, 30.0, 4000.0),
    (44100, 2048, 40, 20.0, 11025.0),     # fingerprint
    (96000, 4096, 40, 20.0, 11025.0),
])
def test_the_filter_bank_is_librosas(rate, n_fft, n_mels, fmin, fmax):
    ours = mel.filter_bank(rate, n_fft, n_mels, fmin, fmax)
    theirs = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm=None)
    assert ours.dtype == theirs.dtype == np.float32
    assert np.array_equal(ours, theirs)
    # each filter a triangle peaking near 1 (a bin falls near every centre above a few bins)
    assert ours.max() <= 1.0 and ours.min() >= 0.0


@pytest.mark.parametrize("fmin, fmax, n", [(30.0, 16000.0, 66), (20.0, 11025.0, 42), (0.0, 8000.0, 10),
                                            (1000.0, 1000.5, 3)])
def test_mel_frequencies_are_librosas(fmin, fmax, n):
    assert np.array_equal(mel.mel_frequencies(n, fmin, fmax), librosa.mel_frequencies(n_mels=n, fmin=fmin, fmax=fmax))


def test_the_scale_is_linear_below_1_khz_and_27_mels_per_factor_6_4_above():
    """Slaney's scale: 15 mels at 1 kHz, 200/3 Hz per mel below it, 27 mels per factor 6.4."""
    assert mel.hz_to_mel(1000.0) == pytest.approx(15.0, abs=1e-12)
    assert mel.hz_to_mel(500.0) == pytest.approx(7.5, abs=1e-12)
    assert mel.hz_to_mel(6400.0) - mel.hz_to_mel(1000.0) == pytest.approx(27.0, abs=1e-9)
    assert mel.mel_to_hz(np.array([7.5, 15.0, 42.0])) == pytest.approx([500.0, 1000.0, 6400.0], rel=1e-12)
