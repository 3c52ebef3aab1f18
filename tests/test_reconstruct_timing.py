"""offline/reconstruct/timing.py: a program's onset lag, read by synthesis, and the notes moved back by it."""

import numpy as np
import pytest

from auracore.models import fluid
from auracore.offline.reconstruct import timing
from auracore.offline.reconstruct.core import _onset_reader

RATE = 44100


def _line(program, notes, seconds):
    return fluid.render_tracks(fluid.SOUNDFONT, [fluid.Track(program, 64, notes)], seconds, sample_rate=RATE,
                               sample_format="float")


def _errors(notes, found):
    found = np.asarray(found)
    err = np.array([found[np.argmin(np.abs(found - s))] - s for s, _, _, _ in notes])
    return err[np.abs(err) <= timing.MATCH_S]


def test_the_lag_of_a_program_is_read_and_taken_back_out():
    """A synth bass (GM 38) read by the bass line's reader comes out 13-17 ms early (median);
    onset_lag reads that lag within 3 ms of the median error, and the notes read, moved back
    by it, are on time within 3 ms (median)."""
    rng = np.random.default_rng(3)
    notes = tuple((0.2 + 0.3 * k + float(rng.uniform(0, 0.02)), 0.25, int(rng.integers(31, 48)), 100) for k in range(20))
    read = _onset_reader("bass")
    y = _line(38, notes, 7.0)
    err = _errors(notes, read(y, RATE))
    assert -0.025 < np.median(err) < -0.008, np.median(err)
    lag = timing.onset_lag(notes, y, RATE, read)
    assert abs(lag - np.median(err)) < 0.003, (lag, np.median(err))
    # the notes as the transcriber read them, moved back by the lag: on time within 3 ms (median)
    heard = tuple((t, 0.25, 40, 100) for t in read(y, RATE))
    moved = [s for s, _, _, _ in timing.shifted(heard, lag)]
    assert abs(np.median(_errors(notes, moved))) < 0.003


def test_no_lag_is_claimed_on_too_few_notes_and_a_large_one_is_held():
    notes = ((0.5, 0.3, 40, 100), (1.0, 0.3, 42, 100), (1.5, 0.3, 43, 100))
    assert timing.onset_lag(notes, np.zeros((RATE, 2)), RATE, lambda y, r: [0.51, 1.01, 1.51]) == 0.0
    many = tuple((0.5 * k, 0.3, 40, 100) for k in range(1, 9))
    assert timing.onset_lag(many, np.zeros((RATE, 2)), RATE, lambda y, r: [s + 0.07 for s, _, _, _ in many]) \
        == timing.MAX_LAG_S
    assert timing.onset_lag(many, np.zeros((RATE, 2)), RATE, lambda y, r: [s - 0.012 for s, _, _, _ in many]) \
        == pytest.approx(-0.012)
    assert abs(timing.shifted(many, -0.012)[0][0] - 0.512) < 1e-12
    assert timing.shifted(((0.005, 0.3, 40, 100),), 0.01)[0][0] == 0.0
