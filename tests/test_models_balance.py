"""The DSP spectral-balance baseline of the model card (models/balance.py)."""

import numpy as np

from auracore.models import balance, dsp
from auracore.models.labels import CLASSES


def _curve():
    f = dsp.THIRD_OCTAVE_HZ
    return -4.0 * np.log2(f / 1000.0) / 3.0 + 2.0 * np.sin(np.log2(f / 40.0))


def test_match_undoes_a_known_eq_on_the_class_curve():
    """A clip whose spectrum is its class curve through a known 8-band EQ: with strength 1 and
    no ridge the match asks the inverse gains within 0.3 dB; the ridge shrinks them (a smaller norm, the same direction within cos 0.9)."""
    curve = _curve()
    curves = {k: curve for k in balance.MATCHED}
    g0 = np.array([3.0, -2.0, 1.5, 0.0, -3.0, 2.0, 0.0, -2.5])
    levels = curve + dsp.cascade_response_db(dsp.eq_coefs(g0), dsp.THIRD_OCTAVE_HZ) + 7.0
    probs = np.zeros(len(CLASSES))
    probs[CLASSES.index("band")] = 1.0
    exact = balance.match_gains(levels, probs, curves, strength=1.0, limit_db=12.0, ridge=0.0)
    np.testing.assert_allclose(exact, -g0, atol=0.3)
    shrunk = balance.match_gains(levels, probs, curves, strength=1.0, limit_db=12.0)
    assert np.linalg.norm(shrunk) < np.linalg.norm(exact)
    assert shrunk @ exact / (np.linalg.norm(shrunk) * np.linalg.norm(exact)) > 0.9
    # on the curve itself it asks nothing; noise and silence weigh toward no change
    np.testing.assert_allclose(balance.match_gains(curve - 3.0, probs, curves), 0.0, atol=1e-9)
    half = probs * 0.5
    half[CLASSES.index("noise")] = 0.5
    np.testing.assert_allclose(balance.match_gains(levels, half, curves, strength=1.0, limit_db=12.0, ridge=0.0),
                               0.5 * exact, atol=1e-9)
