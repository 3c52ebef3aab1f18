"""Single-precision real FFTs, forward and inverse, for the offline measurements and the
mastering FIRs, where numpy's is double only in effect (numpy 2.4 runs float32 input 2.5x
slower than float64 here).

It is scipy's own pocketfft extension (``scipy.fft._pocketfft.pypocketfft``, the C++
pocketfft that numpy's FFT also builds on), loaded from its file by itself: importing
``scipy.fft`` costs 0.18-0.24 s of start-up, this 3 ms. For 2 x 3228 transforms of 8192
points (300 s of stereo at 44.1 kHz, analyze's spectrum) it takes 0.09 s against numpy's
0.28 s in float64. Where the file is not there or will not load (another scipy layout),
``rfft32`` is numpy's float64 transform of the same samples instead (complex128, slower),
and ``irfft32`` numpy's inverse, so callers never branch.

``add_power`` sums the power of such spectra in double, in a kernel (the Welch spectra of
analyze and of master's measurements).
"""

import glob
import importlib.machinery
import importlib.util
import os

import numpy as np

from auracore.kernels.jit import njit


def _numpy_rfft(x):
    """The fallback: numpy's float64 transform (its float32 one is slower still)."""
    return np.fft.rfft(np.asarray(x, dtype=np.float64), axis=-1)


def _numpy_irfft(spec, n):
    """The fallback's inverse: numpy's (float64)."""
    return np.fft.irfft(spec, n, axis=-1)


def _load():
    try:
        spec = importlib.util.find_spec("scipy")
        if spec is None or spec.origin is None:
            return _numpy_rfft, _numpy_irfft
        pattern = os.path.join(os.path.dirname(spec.origin), "fft", "_pocketfft", "pypocketfft*.so")
        paths = glob.glob(pattern)
        if not paths:
            return _numpy_rfft, _numpy_irfft
        loader = importlib.machinery.ExtensionFileLoader("pypocketfft", paths[0])
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader("pypocketfft", loader))
        loader.exec_module(module)
        r2c, c2r = module.r2c, module.c2r
    except Exception:  # noqa: BLE001 - any failure means: use numpy
        return _numpy_rfft, _numpy_irfft

    def rfft32(x):
        """The forward real FFT of x: (..., n) float32 along its last axis: (..., n//2 + 1)
        complex64, unnormalised (numpy.fft.rfft's convention)."""
        return r2c(x, (x.ndim - 1,), True, 0, None, 1)

    def irfft32(spec, n):
        """The inverse of ``rfft32``: spec (..., n//2 + 1) complex64 -> (..., n) float32,
        scaled by 1/n (numpy.fft.irfft's convention)."""
        return c2r(spec, (spec.ndim - 1,), n, False, 2, None, 1)

    return rfft32, irfft32


rfft32, irfft32 = _load()


@njit(cache=True, nogil=True)
def add_power(spec, power):
    """power[r, k] += the sum over segments j of |X[r, j, k]|^2, in double, for spec:
    (rows, segments, 2 * bins) float32, complex64 spectra (``rfft32``'s, made contiguous)
    seen as (re, im) pairs, and power: (rows, bins) float64. One pass, none of numpy's
    temporaries, and the GIL released (the measurements run beside other stages)."""
    bins = power.shape[1]
    for r in range(spec.shape[0]):
        for j in range(spec.shape[1]):
            for k in range(bins):
                re = np.float64(spec[r, j, 2 * k])
                im = np.float64(spec[r, j, 2 * k + 1])
                power[r, k] += re * re + im * im


def power_of(spec) -> np.ndarray:
    """``spec`` (rows, segments, bins) complex as the float32 (re, im) view ``add_power`` takes."""
    return np.ascontiguousarray(spec, dtype=np.complex64).view(np.float32)
