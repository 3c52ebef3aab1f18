"""The inference thread: it listens to the analysis ring and publishes the models' targets.

Every 1024-frame block it reads (mid, with the side of a stereo input) goes to the models'
``Steering`` (the same code render --ai runs): the extractor on every block, the classifier
and predictor about ten times a second, targets gliding over seconds. After each block the
glided targets go out through the engine's target mailbox, latest wins; the callback blends
them by ``ai.amount``. The audio never waits for any of it. A watchdog restarts the thread when it raises or stalls;
the engine keeps the last targets meanwhile. ONNX Runtime releases the GIL while it runs.
"""

import threading
import time
from collections import deque

import numpy as np

from auracore.kernels import params as P

from .engine import Engine


class InferenceThread:
    """Run a models.runtime.Steering on the engine's analysis ring, under a watchdog."""

    def __init__(self, engine: Engine, steering, stall_s: float = 2.0):
        self.engine = engine
        self.steering = steering
        self.block = steering.runner.block
        self.stall_s = stall_s
        engine.ai_mask[:] = 0.0
        engine.ai_mask[steering.indices] = 1.0
        self.latencies_ms = deque(maxlen=4096)
        self.failures = 0
        self.restarts = 0
        self.last_error = ""
        self._heartbeat = time.monotonic()
        self._generation = 0
        self._fault = None
        self._stop = threading.Event()
        self._thread = None
        self._watchdog = threading.Thread(target=self._watch, name="auracore-watchdog", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._watchdog.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._watchdog.join(timeout)

    def inject_fault(self, kind: str) -> None:
        """For tests and drills: "raise" makes the thread raise, "stall" makes it hang."""
        self._fault = kind

    def stats(self) -> dict:
        """Latency (ms per block: extractor, and the decision when one falls due), failures,
        restarts, the provider, class probabilities and current targets."""
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        runner = self.steering.runner
        return {"provider": runner.provider,
                "latency_ms_p50": float(np.percentile(lat, 50)), "latency_ms_p99": float(np.percentile(lat, 99)),
                "failures": self.failures, "restarts": self.restarts, "last_error": self.last_error,
                "classes": {c: float(p) for c, p in zip(runner.classes, self.steering.probabilities)},
                "targets": {t: float(v) for t, v in zip(runner.target_ids, self.steering.targets)}}

    def _spawn(self) -> None:
        self._generation += 1
        self._heartbeat = time.monotonic()
        self._thread = threading.Thread(target=self._run, args=(self._generation,), name="auracore-inference",
                                        daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            dead = not self._thread.is_alive()
            stalled = time.monotonic() - self._heartbeat > self.stall_s
            if dead or stalled:
                self.failures += 1
                if stalled and not dead:
                    self.last_error = f"stalled for more than {self.stall_s:g} s"
                self.restarts += 1
                self._spawn()  # a stalled thread sees its generation is over when it wakes

    def _run(self, generation: int) -> None:
        engine = self.engine
        steering = self.steering
        block = np.zeros(self.block, dtype=np.float32)
        side = np.zeros(self.block, dtype=np.float32)
        stereo = engine.channels == 2  # the width model hears the side of a stereo input
        vec = np.zeros(P.N_PARAMS)
        try:
            while not self._stop.is_set() and generation == self._generation:
                self._heartbeat = time.monotonic()
                fault, self._fault = self._fault, None
                if fault == "raise":
                    raise RuntimeError("injected inference fault")
                if fault == "stall":
                    time.sleep(self.stall_s * 3)
                    continue
                if not engine.ring.read(block, side):
                    time.sleep(0.005)
                    continue
                t0 = time.perf_counter()
                steering.target_lufs = float(engine.params[P.P_LOUD_TARGET])
                steering.push(block, side if stereo else None)
                if np.all(np.isfinite(steering.targets)):
                    steering.write_targets(vec)
                    engine.targets.publish(vec)
                self.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        except Exception as exc:  # the watchdog sees the thread gone and starts another
            self.last_error = f"{type(exc).__name__}: {exc}"
