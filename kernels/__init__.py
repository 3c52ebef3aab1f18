"""The pure DSP core: Numba kernels over preallocated numpy state (no threads, no I/O)."""

import sys


def _skip_numba_blas_check() -> None:
    """Numba looks for a BLAS the first time it compiles or loads any function, by importing
    scipy.linalg (0.15-0.2 s of every command's start-up and 15 MB resident), so that np.dot
    and np.linalg work in jitted code. No kernel of ours calls them (an inner product falls
    back to a loop, which is what ours are): the check is answered "no BLAS" instead.
    tests/test_render_cli.py fails if Numba stops reading this name."""
    if "numba.np.arraymath" in sys.modules:  # too late: the check has run
        return
    import numba.np.linalg

    def no_blas():
        raise ImportError("AuraCore's kernels use no BLAS")

    numba.np.linalg.ensure_blas = no_blas


_skip_numba_blas_check()
