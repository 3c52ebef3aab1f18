"""Word-length reduction in one pass: TPDF dither drawn, added, rounded to the step, clipped, converted.

``offline/audio_io.Quantizer`` calls this for float64 blocks; it does in one loop what numpy
does in many passes and temporaries (two uniform draws, subtract, multiply and add, rint,
clip, astype and shift, divide).

The dither is counter-based: sample k of the stream (frames x channels, interleaved) gets
the difference of two 32-bit uniforms cut from SplitMix64 of the seed and k. No generator
state is carried, so a stream gets the same dither however it is split into blocks and a
render repeats exactly, and the draw costs a few integer operations per sample (numpy's
generator, drawing two doubles per sample, took as long as the rest of the loop twice over).
"""

import numpy as np
from .jit import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_TO_UNIT = 2.0 ** -32


@njit(cache=True, nogil=True, inline="always")
def _tpdf(seed, k):
    """Triangular noise in (-1, 1) for stream sample k: SplitMix64's finaliser of
    seed + k * golden, its two 32-bit halves as uniforms in [0, 1), subtracted."""
    z = seed + np.uint64(k) * _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return (np.float64(z >> _S32) - np.float64(z & _LOW32)) * _TO_UNIT


@njit(cache=True, nogil=True)
def tpdf_noise(seed, start, out):
    """out: (frames, channels) float64 receives the dither of stream samples start ..
    (start counts samples, frames x channels), as ``quantize`` draws it."""
    s = np.uint64(seed)
    channels = out.shape[1]
    for i in range(out.shape[0]):
        for c in range(channels):
            out[i, c] = _tpdf(s, start + i * channels + c)


@njit(cache=True, nogil=True)
def quantize(block, full, shift, seed, start, out_int, out_value):
    """For each sample: q = clip(rint(block * full + noise), -full, full - 1), noise the
    TPDF dither of stream sample start + i * channels + c (``tpdf_noise``); out_int = q as
    an integer shifted left by shift (24-bit samples ride in the top of an int32),
    out_value = q / full. block, out_value: (frames, channels) float64; out_int: int16 or
    int32 of the same shape; seed, start: int64."""
    s = np.uint64(seed)
    top = full - 1.0
    channels = block.shape[1]
    for i in range(block.shape[0]):
        for c in range(channels):
            q = np.rint(block[i, c] * full + _tpdf(s, start + i * channels + c))
            if q < -full:
                q = -full
            elif q > top:
                q = top
            out_int[i, c] = np.int64(q) << shift
            out_value[i, c] = q / full


@njit(cache=True, nogil=True)
def pack24(src, out):
    """The 24-bit little-endian bytes of src: (frames, channels) int32 carrying each sample
    in its top 24 bits (``quantize``'s shift of 8), into out: (frames * channels * 3,) uint8,
    interleaved as a WAV file holds them."""
    k = 0
    for i in range(src.shape[0]):
        for c in range(src.shape[1]):
            v = src[i, c]
            out[k] = (v >> 8) & 0xFF
            out[k + 1] = (v >> 16) & 0xFF
            out[k + 2] = (v >> 24) & 0xFF
            k += 3
