"""The reconstruction's tone match per stem (offline/reconstruct/tone.py), against known filters."""

import numpy as np
import scipy.signal as ss

from auracore.offline.reconstruct import tone

RATE = 48000


def _peaking(x, f0, gain_db, q):
    """RBJ peaking EQ at f0 (Hz), gain_db, q: an EQ written here, independent of the chain's."""
    a_ = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / RATE
    alpha = np.sin(w0) / (2 * q)
    b = [1 + alpha * a_, -2 * np.cos(w0), 1 - alpha * a_]
    a = [1 + alpha / a_, -2 * np.cos(w0), 1 - alpha / a_]
    return ss.lfilter(b, a, x, axis=0)


def _band_db(x, centres):
    """Level (dB) of x in 1/3-octave bands at centres, from one long periodogram."""
    f, p = ss.welch(x.sum(axis=1), RATE, nperseg=16384)
    return np.array([10 * np.log10(p[(f >= c * 2 ** (-1 / 6)) & (f < c * 2 ** (1 / 6))].mean()) for c in centres])


def test_a_render_takes_the_tonal_balance_of_the_stem_it_replaces():
    """Noise matched to noise through +8 dB at 400 Hz (Q 1) and -8 dB at 5 kHz (Q 1): in
    1/3-octave bands from 100 Hz to 12.5 kHz the result follows the target within 1.5 dB
    (after the level), where the unmatched render is 8 dB off; its length and channels kept."""
    rng = np.random.default_rng(3)
    render = rng.standard_normal((RATE * 8, 2)).astype(np.float32)
    target = _peaking(_peaking(rng.standard_normal((RATE * 8, 2)), 400, 8.0, 1.0), 5000, -8.0, 1.0)
    y = tone.match_tone(render, target, RATE)
    assert y.shape == render.shape and y.dtype == np.float32
    centres = 1000 * 2 ** (np.arange(-10, 12) / 3)
    want = _band_db(target, centres)
    before = _band_db(render, centres) - want
    after = _band_db(y, centres) - want
    assert np.ptp(before) > 14.0
    assert np.max(np.abs(after - np.median(after))) < 1.5, np.round(after - np.median(after), 2)


def test_what_the_original_lacks_is_cut_by_at_most_the_limit_and_silence_is_not_boosted():
    """A target low-passed at 1 kHz (8th order): the render's band at 8 kHz is cut by
    MAX_GAIN_DB (within 1 dB), not chased 100 dB down; a render silent above 2 kHz is not
    boosted there (gain 0 dB where it has no content)."""
    rng = np.random.default_rng(4)
    noise = rng.standard_normal((RATE * 6, 2))
    target = ss.sosfilt(ss.butter(8, 1000, fs=RATE, output="sos"), noise, axis=0)
    y = tone.match_tone(rng.standard_normal((RATE * 6, 2)), target, RATE)
    lows, highs = _band_db(y, [250.0])[0], _band_db(y, [8000.0])[0]
    assert abs((lows - highs) - tone.MAX_GAIN_DB) < 1.0, lows - highs
    dull = ss.sosfilt(ss.butter(8, 2000, fs=RATE, output="sos"), rng.standard_normal((RATE * 6, 2)), axis=0)
    grid, gain = tone.gain_curve_db(dull, noise, RATE)
    assert np.all(gain[grid > 6000] == 0.0)


def test_each_section_takes_its_own_balance_with_no_seam():
    """Noise matched section by section to a target boosted +8 dB at 400 Hz for its first
    3 s and cut -8 dB at 5 kHz for its last 5 s: in each section, 0.1 s from the boundary on,
    the error against its own target (1/3-octave bands 100 Hz-12.5 kHz, after the level) spans
    1.5 dB or less (measured 0.87 and 1.03), where one match over the whole spans 2.5 dB or
    more (3.2 and 5.5); the level across the boundary moves smoothly (no 10 ms step over
    1.5 dB beyond the two sections' own difference); a target equal to the render leaves it
    within 1e-6; one section is ``match_tone`` over the whole."""
    rng = np.random.default_rng(4)
    n = RATE * 8
    render = (0.1 * rng.standard_normal((n, 2))).astype(np.float32)
    noise = 0.1 * rng.standard_normal((n, 2))
    cut = 3 * RATE
    target = np.concatenate([_peaking(noise[:cut], 400, 8.0, 1.0), _peaking(noise[cut:], 5000, -8.0, 1.0)])
    spans = [(0.0, 3.0), (3.0, 8.0)]
    y = tone.match_tone_spans(render, target, RATE, spans)
    whole = tone.match_tone(render, target, RATE)
    assert y.shape == render.shape and y.dtype == np.float32
    centres = 1000 * 2 ** (np.arange(-10, 12) / 3)
    guard = RATE // 10
    for a, b in ((0, cut - guard), (cut + guard, n)):
        want = _band_db(target[a:b], centres)
        err = _band_db(y[a:b], centres) - want
        err_whole = _band_db(whole[a:b], centres) - want
        assert np.ptp(err) <= 1.5, (a, err)
        assert np.ptp(err_whole) >= 2.5, (a, err_whole)
    hop = RATE // 100
    level = 10 * np.log10(np.array([np.mean(y[i:i + hop] ** 2) for i in range(cut - 20 * hop, cut + 20 * hop, hop)]))
    own = abs(np.mean(level[-10:]) - np.mean(level[:10]))
    assert np.max(np.abs(np.diff(level))) <= own + 1.5, level
    assert np.max(np.abs(tone.match_tone_spans(render, render, RATE, spans) - render)) <= 1e-6
    assert np.array_equal(tone.match_tone_spans(render, target, RATE, [(0.0, 8.0)]), whole)
