"""Stop requests by signal, remembered as well as raised.

The command line's handlers raise ``Terminated`` (SIGTERM, SIGHUP) or KeyboardInterrupt
(SIGINT) in the main thread, and also record the signal here. Python delivers a handler's
exception into whatever frame runs at that moment; when that frame is a ``__del__`` or a
weakref callback (llvmlite frees compiled modules that way), the interpreter prints
"Exception ignored in ..." and carries on, and the stop would be lost: a render that was
told to stop would finish and exit 0. ``raise_if_stopped`` raises the recorded stop again;
atomic outputs call it before they rename a temporary file into place, and the command line
calls it when a command returns, and ``quiet_unraisable`` keeps the swallowed raise from
printing a traceback. A stop can also land between a file's open and the ``with`` that
would close it (in the standard library's own importlib too: the fuzz suite caught it in an
import); the collector then closes the file and warns. The process is stopping, so from the
stop on ResourceWarnings are not shown. ``held_back`` runs a step that a stop must not cut in
two (a temporary file made but not yet known to its cleanup, Numba loading machine code)
with the signals held (``holding_stops`` for a block). This module imports only the standard
library's ``contextlib``, ``functools``, ``signal``, ``sys``, ``threading`` and ``warnings``,
so every layer may use it.
"""

import contextlib
import functools
import signal
import sys
import threading
import warnings

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)   # besides SIGINT: what asks a command to stop
_pending: int = 0
_holding: int = 0  # depth of holding_stops blocks on the main thread
_held: int = 0     # a stop that came in while holding, raised when the outermost block ends
_finished: bool = False  # the command's result is committed: a stop is too late (see finish)


class Terminated(BaseException):
    """The process was asked to stop by a signal (not an error: BaseException, like
    KeyboardInterrupt, so that ``except Exception`` does not swallow it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _exception_for(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def handle(signum, frame) -> None:
    """A signal handler: record the stop, then raise it (KeyboardInterrupt for SIGINT,
    Terminated for the others)."""
    global _pending, _held
    if _finished:
        return
    _pending = int(signum)
    warnings.filterwarnings("ignore", category=ResourceWarning)  # files a stop left open
    if _holding:
        _held = int(signum)
        return
    raise _exception_for(signum)


def quiet_unraisable(unraisable) -> None:
    """A ``sys.unraisablehook`` that says nothing of a stop raised inside a destructor (it
    is recorded, and raised again where it counts) and hands everything else to Python's
    default hook."""
    if isinstance(unraisable.exc_value, (KeyboardInterrupt, Terminated)):
        return
    sys.__unraisablehook__(unraisable)


def raise_if_stopped() -> None:
    """Raise the recorded stop, if a signal asked for one (also when its first raise was
    swallowed by a destructor)."""
    if _pending and not _finished:
        raise _exception_for(_pending)


def finish() -> None:
    """The command's result is committed, or its last commit runs now with the stops held:
    a stop from here on is too late to undo it, and is neither raised nor recorded; the
    command ends with its result and exit code. Without it, a stop that lands between a
    command's last commit and its exit says "nothing was written" with the result in place
    (the fuzz suite caught it in ``catalog add``). For a command line's last steps only: an
    API never calls it, since it holds for the rest of the process."""
    global _finished
    _finished = True


def begin() -> None:
    """A command begins (the command line's handlers are installed): a stop is no longer
    too late, whatever an earlier command run in the same process called ``finish``."""
    global _finished
    _finished = False


@contextlib.contextmanager
def holding_stops():
    """The block runs with the stop signals (SIGINT, SIGTERM, SIGHUP) held back when it runs
    on the main thread; a stop that came in meanwhile is raised as the block ends: after its
    last assignment, so what it made is already bound to a name a cleanup can see. Three
    holds: ``handle`` (the program's handler) records a stop instead of raising it; any other
    Python handler (Python's own KeyboardInterrupt one, for an API user) is swapped for one
    that records the signal, and is called with it when the block ends; and the main thread's
    signal mask, for what no Python handler sees. The first two work whichever thread the
    kernel gives the signal to: the mask alone does not when the process has other threads
    (Numba's, a user's), because the kernel then hands the signal to one of those."""
    global _holding, _held
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    swapped = {}
    deferred = []
    if not _holding:
        for signum in (signal.SIGINT, *STOP_SIGNALS):
            handler = signal.getsignal(signum)
            if callable(handler) and handler is not handle:
                swapped[signum] = handler
                signal.signal(signum, lambda n, frame: deferred.append(n))
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, *STOP_SIGNALS})
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        for signum, handler in swapped.items():
            signal.signal(signum, handler)
        if not _holding and _held:
            signum, _held = _held, 0
            if not _finished:
                raise _exception_for(signum)
        for signum in deferred[:1]:   # the first stop, as an unheld handler would have seen it
            swapped[signum](signum, None)


def held_back(fn):
    """fn, run inside ``holding_stops``. For steps a stop must not cut in two."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with holding_stops():
            return fn(*args, **kwargs)
    return run
