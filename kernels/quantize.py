"""Word-length reduction in one pass: dither added, rounded to the step, clipped, converted.

``offline/audio_io.Quantizer`` draws the TPDF dither (numpy's generator, so a render repeats
exactly) and calls this for float64 blocks; it does in one loop what numpy does in five
passes and temporaries (multiply and add, rint, clip, astype and shift, divide), with the
same arithmetic, so the samples are the same.
"""

import numpy as np
from .jit import njit


@njit(cache=True, nogil=True)
def quantize(block, noise, full, shift, out_int, out_value):
    """For each sample: q = clip(rint(block * full + noise), -full, full - 1);
    out_int = q as an integer shifted left by shift (24-bit samples ride in the top of an
    int32), out_value = q / full. block, noise, out_value: (frames, channels) float64;
    out_int: int16 or int32 of the same shape."""
    top = full - 1.0
    for i in range(block.shape[0]):
        for c in range(block.shape[1]):
            q = np.rint(block[i, c] * full + noise[i, c])
            if q < -full:
                q = -full
            elif q > top:
                q = top
            out_int[i, c] = np.int64(q) << shift
            out_value[i, c] = q / full
