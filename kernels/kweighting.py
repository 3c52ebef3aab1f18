"""K-weighting filter of ITU-R BS.1770-4, designed for the actual sample rate."""

import numpy as np

# Analog prototype of the BS.1770 pre-filter (high shelf) and RLB high-pass, from which the
# 48 kHz coefficients in the Recommendation follow; designing from them keeps every rate exact.
_SHELF_F0_HZ = 1681.974450955533
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
_HP_F0_HZ = 38.13547087602444
_HP_Q = 0.5003270373238773


def design_kweighting(sample_rate: float) -> np.ndarray:
    """K-weighting as two biquads: (2, 5) float64 rows [b0, b1, b2, a1, a2] (a0 = 1)."""
    k = np.tan(np.pi * _SHELF_F0_HZ / sample_rate)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf = [
        (vh + vb * k / _SHELF_Q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / _SHELF_Q + k * k) / a0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / _SHELF_Q + k * k) / a0,
    ]
    k = np.tan(np.pi * _HP_F0_HZ / sample_rate)
    a0 = 1.0 + k / _HP_Q + k * k
    highpass = [1.0, -2.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _HP_Q + k * k) / a0]
    return np.array([shelf, highpass], dtype=np.float64)
