"""offline/reconstruct/place.py: a render balanced left/right as the stem it replaces."""

import numpy as np

from auracore.offline.reconstruct.place import MAX_GAIN_DB, place


def _db(x):
    return 10.0 * np.log10(np.sum(np.square(x, dtype=np.float64)))


def test_a_centred_render_takes_the_stems_balance_and_keeps_its_energy():
    """Stem panned left (left 6 dB over right); a centred render: placed, its left/right
    energy ratio is 6 dB within 0.01 dB and its total energy moves under 0.01 dB."""
    rng = np.random.default_rng(0)
    mono = rng.standard_normal(48000)
    stem = np.stack([mono * 10 ** (3 / 20), mono * 10 ** (-3 / 20)], axis=1) * 0.1
    render = np.stack([mono, mono], axis=1) * 0.3
    out = place(render, stem)
    assert abs((_db(out[:, 0]) - _db(out[:, 1])) - 6.0) < 0.01
    assert abs(_db(out) - _db(render)) < 0.01
    # already balanced as the stem: unchanged
    assert np.allclose(place(out, stem), out, atol=1e-12)


def test_extremes_are_held_and_mono_or_silence_pass_through():
    rng = np.random.default_rng(1)
    render = rng.standard_normal((4800, 2))
    stem = np.zeros((4800, 2))
    stem[:, 0] = rng.standard_normal(4800)  # all left: the right channel's cut held to MAX_GAIN_DB
    out = place(render, stem)
    assert abs((_db(render[:, 1]) - _db(out[:, 1])) - MAX_GAIN_DB) < 0.01
    assert np.array_equal(place(render[:, :1], stem[:, :1]), render[:, :1])
    assert np.array_equal(place(render, np.zeros((4800, 2))), render)
    assert np.array_equal(place(np.zeros((4800, 2)), stem), np.zeros((4800, 2)))
