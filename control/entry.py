"""The `auracore` program's entry point: signal handling first, then the command line.

SIGTERM and SIGHUP (what `timeout`, systemd, Dask and batch systems send) raise
``Terminated`` in the main thread, as SIGINT raises KeyboardInterrupt, so every atomic
output removes its temporary file on the way out. The handlers are installed before the
heavy imports, so a signal during start-up is a clean exit too, never a traceback.
"""

import os
import signal
import sys

from auracore.stopping import STOP_SIGNALS, Terminated, begin, finish, handle, quiet_unraisable

__all__ = ["Terminated", "install_signal_handlers", "main", "run"]


def install_signal_handlers() -> None:
    """SIGINT raises KeyboardInterrupt, SIGTERM and SIGHUP raise Terminated, and each is
    recorded (auracore.stopping: a raise swallowed by a destructor is raised again before an
    output is committed, and says nothing on stderr); then the three are unblocked.

    A parent that starts the program with them blocked (a forking supervisor, the fuzz
    suite) gets any signal it sent early delivered here, inside main's ``try``: a signal
    can never land between a handler inherited from the parent and that ``try``."""
    begin()
    for sig in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(sig, handle)
    sys.unraisablehook = quiet_unraisable
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, *STOP_SIGNALS})


def _blas_on_one_thread() -> None:
    """numpy's BLAS on one thread unless the user set its count. The commands share the
    cores between their own stages (pipelines, ONNX Runtime's threads), and OpenBLAS's
    worker threads busy-wait after each matrix product, taking the time those stages need
    (separate, 3 minutes: 9.4 s -> 8.2 s; transcribe: docs/transcribe.md#measured). OpenBLAS
    reads it when numpy loads, so before that; child processes (batch workers) inherit it."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _tune_malloc() -> None:
    """glibc's malloc, tuned for the block pipelines: blocks of up to 16 MB come from the
    heap, and up to 8 MB freed at its top stays there for the next block, instead of each
    ~1 MB block buffer being mapped fresh and unmapped again (a page fault per 4 KiB).
    analyze of 300 s of 44.1 kHz stereo spent 0.55 s of system time in those faults; 0.15 s
    tuned. The same as starting with MALLOC_MMAP_THRESHOLD_=16777216
    MALLOC_TRIM_THRESHOLD_=8388608 MALLOC_TOP_PAD_=0 (which, when set, win). The trim
    threshold was 64 MB with a 16 MB top pad at first: as fast, but every thread's arena
    then kept its freed memory, and master of 3 minutes peaked at 147-151 MB resident
    against 109-111 MB with these (analyze and render of 600 s: the same times, 48 and 56
    MB). What the heap holds stays bounded, so memory stays flat. Nothing where the C
    library is not glibc."""
    if not sys.platform.startswith("linux") or any(
            k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")):
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 16 << 20)
    mallopt(m_trim_threshold, 8 << 20)
    mallopt(m_top_pad, 0)


def _import_core_extensions() -> None:
    """Import numpy with the stop signals held back, then let any that came in be
    delivered (a C extension's import is no place for a KeyboardInterrupt; Numba's is
    treated the same way where it loads, kernels/jit.py). And tell the kernels that, if
    Numba loads in this program, its BLAS check is answered "none": Numba looks for a BLAS
    the first time it compiles or loads a function by importing scipy.linalg (0.15-0.2 s and
    15 MB), for np.dot and np.linalg in jitted code, which no kernel of ours calls (not on
    ``import auracore``: a user's own jitted code in the same process may want BLAS).
    tests/test_render_cli.py fails if Numba stops reading that name."""
    stops = {signal.SIGINT, *STOP_SIGNALS}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        import numpy  # noqa: F401

        from auracore.kernels import jit

        jit.answer_no_blas()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)


def main(argv=None) -> int:
    """Run the command line; returns the exit code."""
    try:
        return _command(argv)
    except KeyboardInterrupt:  # before the command took over, or while it was reporting
        print("auracore: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Terminated as stop:
        print(f"auracore: stopped by {stop.name}; nothing was written", file=sys.stderr)
        return stop.exit_code
    finally:
        finish()  # the command has ended: a stop from here on does not change its exit code


def _command(argv) -> int:
    """The command line's code, argparse's exits included. Apart from main's stop handlers,
    so a stop that lands while an exit is being turned into a code (the fuzz suite's SIGHUP
    did) still reaches them."""
    try:
        install_signal_handlers()
        _blas_on_one_thread()
        _tune_malloc()
        _import_core_extensions()
        from auracore.control import cli

        return cli.main(argv)
    except SystemExit as exc:  # argparse's usage errors and --help: their code, returned here
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


def run() -> None:
    """The console script: exit with main's code. The stop signals are ignored from main's
    return on: Python gives them their default action back while it shuts down, and a
    SIGTERM then killed a run whose output was written (exit -15 instead of its code)."""
    code = main()
    for sig in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)
