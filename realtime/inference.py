"""The inference thread: it listens to the analysis ring and publishes the models' targets.

Every 1024-frame block it reads goes through the feature extractor; about ten times a
second the classifier and predictor turn the recent embeddings into targets, which glide
(seconds) and are published through the engine's target mailbox, latest wins. The audio
never waits for any of it. A watchdog restarts the thread when it raises or stalls; the
engine keeps the last targets meanwhile. ONNX Runtime releases the GIL while it runs.
"""

import threading
import time
from collections import deque

import numpy as np

from auracore.kernels import params as P

from .engine import Engine

BLOCK = 1024


class InferenceThread:
    """Run runner (models.runtime.ModelRunner or anything with its embed/decide API) on
    the engine's analysis ring."""

    def __init__(self, engine: Engine, runner, decide_hz: float = 10.0, glide_s: float = 3.0,
                 stall_s: float = 2.0):
        self.engine = engine
        self.runner = runner
        self.decide_every = max(1, int(round(engine.sample_rate / BLOCK / decide_hz)))
        self.glide_s = glide_s
        self.stall_s = stall_s
        self.target_index = np.array([P.INDEX[t] for t in runner.target_ids], dtype=np.int64)
        engine.ai_mask[:] = 0.0
        engine.ai_mask[self.target_index] = 1.0
        self.latencies_ms = deque(maxlen=4096)
        self.failures = 0
        self.restarts = 0
        self.last_error = ""
        self.class_probs = np.zeros(len(runner.classes))
        self.smoothed = None
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
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return {"provider": getattr(self.runner, "provider", "?"),
                "latency_ms_p50": float(np.percentile(lat, 50)), "latency_ms_p99": float(np.percentile(lat, 99)),
                "failures": self.failures, "restarts": self.restarts, "last_error": self.last_error,
                "classes": {c: float(p) for c, p in zip(self.runner.classes, self.class_probs)},
                "targets": {} if self.smoothed is None else
                {t: float(v) for t, v in zip(self.runner.target_ids, self.smoothed)}}

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
        block = np.zeros(BLOCK, dtype=np.float32)
        context = deque(maxlen=self.runner.context_blocks)
        since = 0
        vec = engine.params.copy()
        decide_s = self.decide_every * BLOCK / engine.sample_rate
        alpha = 1.0 - np.exp(-decide_s / self.glide_s)
        try:
            while not self._stop.is_set() and generation == self._generation:
                self._heartbeat = time.monotonic()
                fault, self._fault = self._fault, None
                if fault == "raise":
                    raise RuntimeError("injected inference fault")
                if fault == "stall":
                    time.sleep(self.stall_s * 3)
                    continue
                if not engine.ring.read(block):
                    time.sleep(0.005)
                    continue
                t0 = time.perf_counter()
                context.append(self.runner.embed(block))
                since += 1
                if since >= self.decide_every and len(context) == context.maxlen:
                    since = 0
                    probs, targets = self.runner.decide(np.stack(context))
                    if np.all(np.isfinite(targets)):
                        self.class_probs = probs
                        if self.smoothed is None:
                            self.smoothed = np.array(targets, dtype=np.float64)
                        else:
                            self.smoothed = self.smoothed + alpha * (targets - self.smoothed)
                        vec[self.target_index] = self.smoothed
                        engine.targets.publish(vec)
                self.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        except Exception as exc:  # the watchdog sees the thread gone and starts another
            self.last_error = f"{type(exc).__name__}: {exc}"
