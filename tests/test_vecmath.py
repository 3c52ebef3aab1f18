"""The vectorisable log and exp against numpy's (the C library's), over the ranges the kernels use."""

import numpy as np
from numba import njit

from auracore.kernels.vecmath import EXP_LIMIT, muladd, vexp, vlog


@njit(error_model="numpy")
def _logs(x, out):
    for i in range(x.shape[0]):
        out[i] = vlog(x[i])


@njit(error_model="numpy")
def _exps(y, out):
    for i in range(y.shape[0]):
        out[i] = vexp(y[i])


def test_log_matches_numpy_across_the_normal_range():
    rng = np.random.default_rng(7)
    x = np.concatenate([10.0 ** rng.uniform(-307, 307, 200_000),
                        1.0 + rng.uniform(-1e-3, 1e-3, 50_000),       # near 1, where ln is small
                        np.sqrt(0.5) * (1.0 + rng.uniform(-1e-12, 1e-12, 1000)),  # the split point
                        np.sqrt(2.0) * (1.0 + rng.uniform(-1e-12, 1e-12, 1000)),
                        [np.finfo(float).tiny, np.finfo(float).max, 1.0, 2.0, 0.5]])
    got = np.empty_like(x)
    _logs(x, got)
    want = np.log(x)
    # relative where |ln x| > 1, absolute (in the units of ln) under it
    err = np.abs(got - want) / np.maximum(np.abs(want), 1.0)
    assert err.max() < 4e-16, f"error {err.max():.3g} (limit 4e-16)"
    assert got[-3] == 0.0  # ln 1


def test_exp_matches_numpy_and_is_exact_at_zero():
    rng = np.random.default_rng(8)
    y = np.concatenate([rng.uniform(-EXP_LIMIT, EXP_LIMIT, 200_000), rng.uniform(-5.0, 5.0, 200_000),
                        [0.0, -0.0, 1.0, -1.0, np.log(2.0)]])
    got = np.empty_like(y)
    _exps(y, got)
    want = np.exp(y)
    rel = np.abs(got / want - 1.0)
    assert rel.max() < 3e-16, f"relative error {rel.max():.3g} (limit 3e-16)"
    assert got[-5] == 1.0 and got[-4] == 1.0


def test_exp_clamps_instead_of_overflowing():
    y = np.array([-1e6, -800.0, 800.0, 1e6])
    got = np.empty_like(y)
    _exps(y, got)
    assert np.all(np.isfinite(got))
    assert np.allclose(got, np.exp(np.clip(y, -EXP_LIMIT, EXP_LIMIT)), rtol=1e-15)


@njit
def _muladds(a, b, c, out):
    for i in range(a.shape[0]):
        out[i] = muladd(a[i], b[i], c[i])


def test_muladd_is_a_times_b_plus_c_rounded_once_or_twice():
    """Fused or not, the result is within one rounding of the exact a*b + c (computed in
    exact rational arithmetic on a sample)."""
    from fractions import Fraction
    rng = np.random.default_rng(9)
    a, b, c = (rng.standard_normal(2000) for _ in range(3))
    got = np.empty_like(a)
    _muladds(a, b, c, got)
    for k in range(0, 2000, 10):
        exact = Fraction(a[k]) * Fraction(b[k]) + Fraction(c[k])
        ulp = np.spacing(max(abs(float(exact)), abs(a[k] * b[k]), abs(c[k])))
        assert abs(Fraction(got[k]) - exact) <= 1.0 * ulp, (a[k], b[k], c[k], got[k])
