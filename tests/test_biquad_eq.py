"""Tests of the biquad kernels and the 8-band EQ: cascade vs scipy, designed magnitudes, and
the EQ as the chain applies it."""

import numpy as np
import pytest
import scipy.signal as ss
from conftest import aligned, neutral_params, render, settled_chain, sine, tone_amplitude

from auracore.kernels import params as P
from auracore.kernels.biquad import (SHAPE_HIGHSHELF, SHAPE_LOWSHELF, SHAPE_PEAKING, cascade_process,
                                     design_biquad)

RATES = (44100, 48000, 96000)


def designed(shape, fs, freq_hz, gain_db, q):
    out = np.zeros(5)
    design_biquad(shape, float(fs), float(freq_hz), float(gain_db), float(q), out)
    return out


def to_sos(coefs):
    """[b0, b1, b2, a1, a2] rows to scipy sos rows [b0, b1, b2, 1, a1, a2]."""
    coefs = np.atleast_2d(coefs)
    return np.column_stack([coefs[:, :3], np.ones(len(coefs)), coefs[:, 3:]])


def response_db(coefs, fs, freqs_hz):
    _, h = ss.sosfreqz(to_sos(coefs), worN=np.asarray(freqs_hz, dtype=float), fs=fs)
    return 20.0 * np.log10(np.abs(h))


def eq_bank(fs, gains_db):
    """The chain's 8 bands (default freqs and Qs) with the given gains: (8, 5)."""
    rows = []
    for b in range(P.EQ_BANDS):
        shape = SHAPE_LOWSHELF if b == 0 else SHAPE_HIGHSHELF if b == P.EQ_BANDS - 1 else SHAPE_PEAKING
        rows.append(designed(shape, fs, P.EQ_DEFAULT_FREQS_HZ[b], gains_db[b], P.EQ_DEFAULT_Q[b]))
    return np.array(rows)


GAINS_DB = (4.0, -3.0, 6.0, -6.0, 3.0, -4.5, 5.0, 2.5)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("stages", [1, 5, 8])
@pytest.mark.parametrize("split", ["whole", "64", "irregular"])
def test_cascade_matches_sosfilt(channels, stages, split):
    fs = 48000
    rng = np.random.default_rng(7)
    coefs = eq_bank(fs, (9.0, -7.0, 12.0, -12.0, 8.0, -10.0, 6.0, -9.0))[:stages]
    x = rng.standard_normal((6000, channels)) * 0.5
    want = ss.sosfilt(to_sos(coefs), x, axis=0)
    y = x.copy()
    state = np.zeros((channels, stages, 2))
    if split == "whole":
        bounds = [0, len(y)]
    elif split == "64":
        bounds = list(range(0, len(y), 64)) + [len(y)]
    else:
        cuts = np.cumsum(rng.integers(0, 700, 40))  # zero sizes give empty ranges
        bounds = [0] + [int(c) for c in cuts if c < len(y)] + [len(y)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        cascade_process(y, a, b, coefs, state)
    err = np.abs(y - want).max()
    assert err <= 1e-9, f"cascade differs from sosfilt by {err:.3g} (limit 1e-9)"


@pytest.mark.parametrize("channels", [1, 2])
def test_zero_db_bands_are_skipped_exactly(channels):
    """A band at 0 dB designs to the identity (numerator = denominator): the cascade with
    it gives exactly (0.0 difference) what the cascade without it gives, and its state
    stays zero."""
    fs = 48000
    rng = np.random.default_rng(3)
    gains = (4.0, 0.0, -3.0, 0.0, 0.0, 2.0, -1.0, 0.0)
    coefs = eq_bank(fs, gains)
    live = [k for k, g in enumerate(gains) if g != 0.0]
    x = rng.standard_normal((3000, channels)) * 0.5
    y = x.copy()
    state = np.zeros((channels, len(gains), 2))
    cascade_process(y, 0, len(y), coefs, state)
    want = x.copy()
    cascade_process(want, 0, len(want), coefs[live].copy(), np.zeros((channels, len(live), 2)))
    assert np.array_equal(y, want)
    assert not np.any(state[:, [k for k in range(len(gains)) if k not in live], :])
    assert np.abs(y - ss.sosfilt(to_sos(coefs[live]), x, axis=0)).max() <= 1e-9


def test_cascade_touches_only_its_rows():
    fs = 48000
    coefs = eq_bank(fs, GAINS_DB)
    x = np.random.default_rng(3).standard_normal((1000, 2))
    y = x.copy()
    cascade_process(y, 300, 700, coefs, np.zeros((2, 8, 2)))
    assert np.array_equal(y[:300], x[:300]) and np.array_equal(y[700:], x[700:])
    want = ss.sosfilt(to_sos(coefs), x[300:700], axis=0)
    assert np.abs(y[300:700] - want).max() <= 1e-9


@pytest.mark.parametrize("fs", RATES)
@pytest.mark.parametrize("freq_hz", [160.0, 400.0, 1000.0, 2500.0, 5000.0, 8000.0, 15000.0, 20000.0])
def test_peaking_centre_gain(fs, freq_hz):
    for gain_db in (-18.0, -12.0, -3.0, 0.5, 6.0, 12.0, 18.0):
        for q in (0.3, 0.707, 1.0, 4.0, 10.0):
            got = response_db(designed(SHAPE_PEAKING, fs, freq_hz, gain_db, q), fs, [freq_hz])[0]
            assert abs(got - gain_db) <= 0.01, (
                f"peaking {freq_hz} Hz Q {q} at {fs} Hz: {got:.4f} dB at centre, wanted {gain_db} +- 0.01 dB")


@pytest.mark.parametrize("fs", RATES)
def test_shelves_reach_their_gain(fs):
    for gain_db in (-18.0, -12.0, -6.0, 6.0, 12.0, 18.0):
        for freq_hz in (50.0, 80.0):
            got = response_db(designed(SHAPE_LOWSHELF, fs, freq_hz, gain_db, 0.707), fs, [10.0])[0]
            assert abs(got - gain_db) <= 0.1, (
                f"low shelf {freq_hz} Hz {gain_db} dB at {fs} Hz reads {got:.4f} dB at 10 Hz (+-0.1 dB)")
        for freq_hz, q in ((8000.0, 0.707), (12000.0, 0.707), (16000.0, 1.0)):
            got = response_db(designed(SHAPE_HIGHSHELF, fs, freq_hz, gain_db, q), fs, [0.499 * fs])[0]
            assert abs(got - gain_db) <= 0.1, (
                f"high shelf {freq_hz} Hz {gain_db} dB at {fs} Hz reads {got:.4f} dB at 0.499 fs (+-0.1 dB)")
            # and the shelf leaves the far side alone
            low = response_db(designed(SHAPE_HIGHSHELF, fs, freq_hz, gain_db, q), fs, [20.0])[0]
            assert abs(low) <= 0.01, f"high shelf {freq_hz} Hz reads {low:.4f} dB at 20 Hz (0 +- 0.01 dB)"


@pytest.mark.parametrize("fs", RATES)
def test_chain_eq_matches_design(fs):
    """With every other stage neutral, -30 dBFS sines through the chain come out scaled by
    exactly the designed 8-band response."""
    overrides = {f"eq.{b + 1}.gain_db": g for b, g in enumerate(GAINS_DB)}
    params = neutral_params(overrides)
    coefs = eq_bank(fs, GAINS_DB)
    amp = 10.0 ** (-30.0 / 20.0)
    for freq_hz in (40.0, 160.0, 700.0, 1000.0, 3100.0, 8000.0, 15000.0):
        x = sine(fs, 0.6, freq_hz, amp, phase=0.3)
        x[:, 1] *= 0.5
        st = settled_chain(fs, 2, params)
        y = aligned(render(x, st, params), st, len(x))
        steady = slice(int(0.2 * fs), len(x))  # past the EQ's own transient
        want = response_db(coefs, fs, [freq_hz])[0]
        for ch, a in enumerate((amp, 0.5 * amp)):
            got = 20.0 * np.log10(tone_amplitude(y[steady, ch], fs, freq_hz) / a)
            assert abs(got - want) <= 0.05, (
                f"{freq_hz} Hz at {fs} Hz, channel {ch}: chain gives {got:.4f} dB, design {want:.4f} dB (+-0.05 dB)")
