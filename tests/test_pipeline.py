"""offline/pipeline.py: stages on threads give the same results, in order; errors and stops reach the caller."""

import threading
import time

import numpy as np
import pytest

from auracore.offline.pipeline import pipelined


def test_results_are_in_order_and_equal_to_running_the_stages_in_turn():
    rng = np.random.default_rng(3)
    blocks = [rng.standard_normal((int(n), 2)) for n in rng.integers(1, 5000, 200)]
    a = [2.0 * b + 1.0 for b in blocks]
    b = [np.cumsum(x, axis=0) for x in a]
    got = list(pipelined(iter(blocks), lambda x: 2.0 * x + 1.0, lambda x: np.cumsum(x, axis=0)))
    assert len(got) == len(b)
    for g, want in zip(got, b):
        np.testing.assert_array_equal(g, want)  # bit for bit: 0 difference


def test_a_stage_error_is_raised_in_the_caller_and_no_thread_is_left():
    before = threading.active_count()

    def stage(x):
        if x == 7:
            raise ValueError("block 7 is bad")
        return x

    seen = []
    with pytest.raises(ValueError, match="block 7"):
        for x in pipelined(range(100), stage):
            seen.append(x)
    assert seen == list(range(7))
    assert threading.active_count() == before


def test_a_source_error_is_raised_in_the_caller():
    def source():
        yield 1
        raise OSError("read failed part-way")

    with pytest.raises(OSError, match="part-way"):
        list(pipelined(source(), lambda x: x))


def test_the_caller_stopping_stops_the_threads_within_a_second():
    before = threading.active_count()

    def endless():
        while True:
            yield 0

    gen = pipelined(endless(), lambda x: x + 1)
    assert next(gen) == 1
    t = time.monotonic()
    gen.close()  # what an exception in the caller's loop does
    assert time.monotonic() - t < 1.0
    assert threading.active_count() == before


def test_threads_off_gives_the_same_results_in_the_callers_thread():
    from auracore.offline.pipeline import set_threaded

    names = []

    def stage(x):
        names.append(threading.current_thread().name)
        return x * 3

    set_threaded(False)
    try:
        got = list(pipelined(range(50), stage))
    finally:
        set_threaded(True)
    assert got == [3 * x for x in range(50)]
    assert set(names) == {threading.current_thread().name}
    names.clear()
    assert list(pipelined(range(50), stage)) == got
    assert threading.current_thread().name not in names


def test_blas_on_this_thread_limits_on_the_main_thread_and_restores():
    """In a fresh process whose BLAS count nobody set: inside the context on the main thread
    BLAS runs on one thread, and the count comes back after; a worker thread's context
    changes nothing (OpenBLAS ignores counts set there once the main thread has set one)."""
    import json
    import os
    import subprocess
    import sys

    code = r"""
import json, threading, numpy
from threadpoolctl import threadpool_info
from auracore.offline.pipeline import blas_on_this_thread
counts = lambda: sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
before = counts()
with blas_on_this_thread():
    inside = counts()
after = counts()
seen = {}
def worker():
    with blas_on_this_thread():
        seen["worker"] = counts()
t = threading.Thread(target=worker); t.start(); t.join(10)
print(json.dumps([before, inside, after, seen["worker"], counts()]))
"""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    before, inside, after, worker, last = json.loads(r.stdout.strip().splitlines()[-1])
    assert inside == [1] and after == before == worker == last, r.stdout + r.stderr
