"""A stream of blocks through stages on threads of their own, in order: decoding, the chain
and writing overlap on two cores.

The kernels (chain, meters, quantiser) release the GIL, and so do libsndfile's reads and
writes and numpy's FFTs, so a file pass split into stages runs them side by side: ``pipelined``
runs the source and each stage on a thread of its own with a short queue between them
and yields the last stage's results, in order, to the caller, who does the last step (the
sink) on its own thread. The results are the very same as running the stages one after
another; only the wall time changes.

An exception in any stage (a truncated file) is raised in the caller, and a stop in the
caller (Ctrl-C, SIGTERM, an exception of its own) stops the threads: nothing outlives the
generator.
"""

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator

DEPTH = 2            # blocks waiting between two stages, at most: memory stays a few blocks
_POLL_S = 0.05       # how often a blocked stage looks at the stop flag

_END = object()
_threaded = True


def set_threaded(flag: bool) -> None:
    """Threads on (the default) or off for this process. Off, ``pipelined`` runs every stage
    in the caller's thread: for processes that already have a core each (batch workers),
    where the threads would only add their overhead."""
    global _threaded
    _threaded = bool(flag)


def model_threads() -> int:
    """ONNX Runtime intra-op threads for an offline model (separation, transcription): two
    (both cores of the machine this was measured on: the separation model 1.25x, the
    transcription model 1.9x faster than on one), or one where the process's threads are off
    (a batch worker, a core each)."""
    return 2 if _threaded else 1


_blas = None  # threadpoolctl's controller, made on first use


@contextlib.contextmanager
def blas_on_this_thread():
    """A context in which numpy's BLAS (matrix products) runs on the calling thread alone.
    BLAS's worker threads busy-wait after each product; in a process whose stages already
    share the cores (pipelines, ONNX Runtime's threads) that spinning takes the time the
    stages need (transcribing 3 minutes: 1.9 s of CPU and 0.8 s of wall time).

    The count is the process's, and OpenBLAS does not reliably take a new count from other
    threads (measured: a count set on a worker thread was ignored after the main thread had
    set one): so only the main thread changes it, and puts the caller's count back on the
    way out; elsewhere this does nothing. The command line sets OPENBLAS_NUM_THREADS=1 at
    start (control/entry.py), which covers every thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController()
    limiter = _blas.limit(limits=1, user_api="blas")
    try:
        yield
    finally:
        limiter.restore_original_limits()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Put item on q unless stop is set first; whether it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event):
    while not stop.is_set():
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            continue
    return _END


def _feed(source: Iterable, out: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in source:
            if not _put(out, item, stop):
                return
    except BaseException as exc:  # handed to the caller, raised there
        _put(out, _Failure(exc), stop)
        return
    _put(out, _END, stop)


def _stage(fn: Callable, inp: queue.Queue, out: queue.Queue, stop: threading.Event) -> None:
    while True:
        item = _get(inp, stop)
        if item is _END or isinstance(item, _Failure):
            _put(out, item, stop)
            return
        try:
            result = fn(item)
        except BaseException as exc:
            _put(out, _Failure(exc), stop)
            return
        if not _put(out, result, stop):
            return


def pipelined(source: Iterable, *stages: Callable, depth: int = DEPTH) -> Iterator:
    """Yield stages[-1](...stages[0](item)) for each item of source, in order. The source
    is iterated on a thread of its own and each stage runs on its own thread; the caller's
    loop body is the last step. With no stages it still reads ahead on a thread. With
    threads off (``set_threaded``) the same results come from the caller's thread."""
    if not _threaded:
        return _in_turn(source, stages)
    return _threaded_run(source, stages, depth)


def _in_turn(source: Iterable, stages) -> Iterator:
    for item in source:
        for fn in stages:
            item = fn(item)
        yield item


def _threaded_run(source: Iterable, stages, depth: int) -> Iterator:
    stop = threading.Event()
    queues = [queue.Queue(maxsize=depth) for _ in range(len(stages) + 1)]
    threads = [threading.Thread(target=_feed, args=(source, queues[0], stop), name="auracore-read", daemon=True)]
    threads += [threading.Thread(target=_stage, args=(fn, queues[k], queues[k + 1], stop),
                                 name=f"auracore-stage-{k + 1}", daemon=True) for k, fn in enumerate(stages)]
    for t in threads:
        t.start()
    last = queues[-1]
    try:
        while True:
            item = last.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        for t in threads:
            t.join()
