"""Natural log and exp that loops can vectorise, for the kernels' per-sample gain math, and a
fused multiply-add for recursions.

Numba lowers ``math.log`` and ``math.exp`` to calls into the C library, one sample at a
time. These are written in plain arithmetic on the float's bits (two bit casts emitted as
LLVM intrinsics), so a loop over them compiles to SIMD code. Accuracy over the ranges the
kernels use (tests/test_vecmath.py measures it against numpy):

- ``vlog(x)`` for normal x > 0: error under 4e-16 x max(1, |ln x|).
  x <= 0, denormals, inf and NaN give finite garbage: callers select such lanes away.
- ``vexp(y)`` for |y| <= EXP_LIMIT: relative error under 3e-16; y is clamped to that range
  (exp(-700) = 1e-304, a gain of nothing), and ``vexp(0.0) == 1.0`` exactly.

Callers must be compiled with ``error_model="numpy"``: Python's error model puts a
division-by-zero branch in every loop that divides, which stops vectorisation.
"""

import math

from .jit import intrinsic, njit

EXP_LIMIT = 700.0
LN2_HI = 6.93147180369123816490e-01   # ln 2 split so that k * LN2_HI is exact for |k| < 2^21
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.0 / math.log(2.0)
# adding this to the bits of x moves the exponent's step from 1.0 down to sqrt(0.5), so the
# mantissa left over lies in [sqrt(0.5), sqrt(2)) where the series below converges fast
SQRT_HALF_SHIFT = 0x3FF0000000000000 - 0x3FE6A09E667F3BCD
EXP_FIELD = 0x7FF0000000000000
ONE_BITS = 0x3FF0000000000000
TWO52_BITS = 0x4330000000000000   # bits of 2^52: or-ing a small integer in gives 2^52 + it
TWO52 = 4503599627370496.0


@intrinsic
def _reinterpret(typingctx, x):
    """The same 64 bits read as the other type: float64 -> int64, int64 -> float64."""
    from numba import types  # typing runs only while Numba compiles

    if isinstance(x, types.Float):
        sig = types.int64(types.float64)
    elif isinstance(x, types.Integer):
        sig = types.float64(types.int64)
    else:
        return None

    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[0], signature.args[0], sig.args[0])
        return builder.bitcast(value, context.get_value_type(signature.return_type))

    return sig, codegen


@intrinsic
def muladd(typingctx, a, b, c):
    """a * b + c, fused into one FMA instruction (one rounding) where the CPU has one, else a
    multiply and an add (LLVM's llvm.fmuladd). In a recursion this shortens the critical
    path: the FMA's latency instead of a multiply's plus an add's."""
    from llvmlite import ir
    from numba import types

    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        f64 = context.get_value_type(types.float64)
        fn = builder.module.declare_intrinsic("llvm.fmuladd", [f64], ir.FunctionType(f64, [f64, f64, f64]))
        return builder.call(fn, args)

    return sig, codegen


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def vlog(x):
    """ln x for normal x > 0 (see the module docstring)."""
    bits = _reinterpret(x)
    field = (bits + SQRT_HALF_SHIFT) & EXP_FIELD     # x = m * 2^e, m in [sqrt .5, sqrt 2)
    m = _reinterpret(bits - field + ONE_BITS)
    e = _reinterpret((field >> 52) | TWO52_BITS) - (TWO52 + 1023.0)
    # ln m = 2 atanh f = 2 (f + f^3/3 + f^5/5 + ...), f = (m - 1)/(m + 1), |f| < 0.172
    f = (m - 1.0) / (m + 1.0)
    s = f * f
    p = 1.0 / 21.0
    p = p * s + 1.0 / 19.0
    p = p * s + 1.0 / 17.0
    p = p * s + 1.0 / 15.0
    p = p * s + 1.0 / 13.0
    p = p * s + 1.0 / 11.0
    p = p * s + 1.0 / 9.0
    p = p * s + 1.0 / 7.0
    p = p * s + 1.0 / 5.0
    p = p * s + 1.0 / 3.0
    return e * LN2_HI + (2.0 * f + (2.0 * f * s * p + e * LN2_LO))


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def vexp(y):
    """e^y, y clamped to +-EXP_LIMIT (see the module docstring)."""
    y = min(max(y, -EXP_LIMIT), EXP_LIMIT)
    k = math.floor(y * INV_LN2 + 0.5)
    r = (y - k * LN2_HI) - k * LN2_LO          # |r| <= ln(2)/2
    p = 1.0 / 6227020800.0                      # Taylor series to r^13
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _reinterpret((int(k) + 1023) << 52)
