"""The control surface's hub: the parameter targets, their listeners, and the meter snapshots.

One ``Hub`` sits between the engine and every remote client (OSC, WebSocket). It holds the
authoritative target value of every parameter on the Python side, validates changes
against the registry, posts each accepted change set to the engine's control mailbox in
one call (so it lands on one block boundary) and tells every parameter listener what
changed. A meter thread builds one snapshot at ``meter_hz`` (loudness, peaks, gain
reduction, a 1/3-octave spectrum of the output, the models' view, status counters) and
hands it to the meter listeners; it is the only reader of the engine's output ring.

Nothing here waits on the audio: the mailbox post never blocks, and engine state is only
read, apart from the status slots the engine gives its reader (clearing the gain-reduction
minima, asking for a meter reset).
"""

import dataclasses
import math
import threading
import time

import numpy as np

from auracore.kernels import params as P
from auracore.realtime import engine as E

from auracore.offline.analyze import finite_or_none
from auracore.offline.params import PresetError, build_vector, preset_names

METER_HZ = 30.0
SPECTRUM_FLOOR_DB = -120.0
SPECTRUM_WINDOW_S = 0.17          # analysis window: resolves the 25 Hz band, still follows a mix
THIRD_OCTAVE_STEPS = range(-16, 14)  # centres 1 kHz * 2^(k/3): 25 Hz ... 20 kHz
RING_CHUNK_FRAMES = 512


class ThrottledLog:
    """At most one line per key and interval: floods (10,000 bad packets) make one line a second."""

    def __init__(self, log, interval_s: float = 1.0):
        self._log = log
        self._interval_s = interval_s
        self._last = {}
        self._suppressed = {}
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -math.inf) < self._interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._last[key] = now
            extra = self._suppressed.pop(key, 0)
        self._log(message + (f" ({extra} more like it since the last report)" if extra else ""))


@dataclasses.dataclass
class SetResult:
    """What became of a change set: applied {id: value}, clamped {id: (asked, applied)},
    errors (one line each; their ids were left unchanged)."""

    applied: dict
    clamped: dict
    errors: list


def third_octave_centres_hz(sample_rate: float) -> np.ndarray:
    """Centres of the 1/3-octave bands (base-2, 1 kHz reference) whose lower edge is below
    Nyquist: (bands,) float64, 24.8 Hz to 20.2 kHz at 44.1 kHz and above."""
    centres = 1000.0 * 2.0 ** (np.array(list(THIRD_OCTAVE_STEPS)) / 3.0)
    return centres[centres * 2.0 ** (-1.0 / 6.0) < sample_rate / 2.0]


class Spectrum:
    """1/3-octave band levels of a mono signal's most recent window, in dB re a full-scale
    sine (a 0 dBFS sine inside a band reads 0 dB there)."""

    def __init__(self, sample_rate: float):
        n = 1 << int(math.ceil(math.log2(SPECTRUM_WINDOW_S * sample_rate)))
        self.frames = np.zeros(n, dtype=np.float32)
        self.window = np.hanning(n)
        self.centres_hz = third_octave_centres_hz(sample_rate)
        freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
        lo = np.searchsorted(freqs, self.centres_hz * 2.0 ** (-1.0 / 6.0))
        hi = np.searchsorted(freqs, self.centres_hz * 2.0 ** (1.0 / 6.0))
        # bands narrower than a bin take the bin nearest their centre
        near = np.minimum(np.round(self.centres_hz / (freqs[1] - freqs[0])).astype(int), len(freqs) - 1)
        empty = hi <= lo
        lo[empty], hi[empty] = near[empty], near[empty] + 1
        self.lo, self.hi = lo, hi
        # a sine of amplitude A puts N*A^2/4*sum(w^2) into the positive-frequency bins
        self.scale = 4.0 / (n * float(np.sum(self.window ** 2)))
        self.chunk = np.zeros(RING_CHUNK_FRAMES, dtype=np.float32)

    def feed(self, ring) -> float:
        """Take every whole chunk waiting in ring (an AnalysisRing); returns the largest
        absolute sample taken (0.0 if none)."""
        peak = 0.0
        c = self.chunk.shape[0]
        while ring.read(self.chunk):
            self.frames[:-c] = self.frames[c:]
            self.frames[-c:] = self.chunk
            peak = max(peak, float(np.max(np.abs(self.chunk))))
        return peak

    def levels_db(self) -> np.ndarray:
        """(bands,) band levels in dB, floored at SPECTRUM_FLOOR_DB."""
        power = np.abs(np.fft.rfft(self.frames * self.window)) ** 2
        cum = np.concatenate(([0.0], np.cumsum(power)))
        band = (cum[self.hi] - cum[self.lo]) * self.scale
        return np.maximum(10.0 * np.log10(np.maximum(band, 1e-30)), SPECTRUM_FLOOR_DB)


class Hub:
    """The parameter store and meter source for one running daemon.

    engine: realtime.engine.Engine; inference: a callable returning the daemon's
    InferenceThread or None; log: one-line logger.
    """

    def __init__(self, engine, inference=lambda: None, log=print, meter_hz: float = METER_HZ):
        self.engine = engine
        self._inference = inference
        self.log = log
        self.log_throttled = ThrottledLog(log)
        self.meter_hz = float(meter_hz)
        self._values = engine.params.copy()
        self._lock = threading.Lock()
        self._param_listeners = []
        self._meter_listeners = []
        self._spectrum = Spectrum(engine.sample_rate)
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run_meters, name="auracore-meters", daemon=True)
        self.latest_meters = None

    # -- parameters -------------------------------------------------------------------------
    def values(self, ids=None) -> dict:
        """Current targets {id: value} for ids (all when None); ParamError for an unknown id."""
        with self._lock:
            if ids is None:
                return {p.id: float(self._values[i]) for i, p in enumerate(P.PARAMS)}
            return {pid: float(self._values[P.INDEX[P.lookup(pid).id]]) for pid in ids}

    def set(self, changes: dict, source: str) -> SetResult:
        """Validate {id: value} against the registry (clamping out-of-range values) and apply
        every valid change together at one block boundary. Unknown ids and non-finite or
        non-numeric values are errors and leave their parameter unchanged."""
        accepted, clamped, errors = {}, {}, []
        for pid, raw in changes.items():
            try:
                value, was_clamped = P.coerce(pid, raw)
            except P.ParamError as exc:
                errors.append(str(exc))
                continue
            except OverflowError:  # a JSON integer too big for a float
                errors.append(f"{pid}: {str(raw)[:20]}... is not a finite number")
                continue
            accepted[pid] = value
            if was_clamped:
                clamped[pid] = (raw, value)
        with self._lock:
            changed = {pid: v for pid, v in accepted.items() if self._values[P.INDEX[pid]] != v}
            if changed:
                if not self.engine.control.post([(P.INDEX[pid], v) for pid, v in changed.items()]):
                    return SetResult({}, {}, errors + ["the engine's control queue is full; nothing was applied, "
                                                       "try again"])
                for pid, v in changed.items():
                    self._values[P.INDEX[pid]] = v
                # inside the lock: listeners see change sets in the order the engine does
                for listener in list(self._param_listeners):
                    listener(changed, source)
        for pid, (raw, value) in clamped.items():
            p = P.lookup(pid)
            unit = f" {p.unit}" if p.unit else ""
            self.log_throttled(f"clamp:{source}", f"{source}: {pid}={raw} is outside [{p.minimum:g}, "
                                                  f"{p.maximum:g}]{unit}; clamped to {value:g}")
        return SetResult(accepted, clamped, errors)

    @staticmethod
    def preset_values(name: str) -> dict:
        """The full vector a shipped preset means (registry defaults, then the preset), as
        {id: value}. Only shipped names: remote clients cannot make the daemon read files."""
        if name not in preset_names():
            raise PresetError(f"unknown preset '{name}'; shipped presets: {', '.join(preset_names())}")
        vec = build_vector(name, {})
        return {p.id: float(vec[i]) for i, p in enumerate(P.PARAMS)}

    def reset_integrated(self) -> None:
        """Restart integrated loudness, LRA and the peak maxima (the callback does it at its
        next block: only the audio thread writes the meter)."""
        self.engine.request_meter_reset()

    def add_param_listener(self, fn) -> None:
        """fn(changed {id: value}, source) after every applied change set; it must not block
        (it runs under the store's lock, on the thread that made the change)."""
        with self._lock:
            self._param_listeners.append(fn)

    def remove_param_listener(self, fn) -> None:
        with self._lock:
            self._param_listeners.remove(fn)

    def add_meter_listener(self, fn) -> None:
        """fn(snapshot dict) on the meter thread, meter_hz times a second; it must not block."""
        self._meter_listeners.append(fn)

    # -- description and meters -------------------------------------------------------------
    def describe(self) -> dict:
        """What a client needs once: the engine's format, the registry, presets, bands."""
        inference = self._inference()
        return {
            "sample_rate": self.engine.sample_rate,
            "channels": self.engine.channels,
            "latency_frames": int(self.engine.latency),
            "meter_hz": self.meter_hz,
            "models": inference is not None,
            "presets": preset_names(),
            "spectrum_hz": [round(float(f), 1) for f in self._spectrum.centres_hz],
            "registry": [{"id": p.id, "osc": p.osc_address, "unit": p.unit, "min": p.minimum, "max": p.maximum,
                          "default": p.default, "kind": p.kind, "description": p.description} for p in P.PARAMS],
        }

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout_s: float = 0.2) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run_meters(self) -> None:
        period_s = 1.0 / self.meter_hz
        deadline = time.monotonic()
        while not self._stop.is_set():
            try:
                snapshot = self.snapshot()
                for listener in list(self._meter_listeners):
                    listener(snapshot)
            except Exception as exc:  # a meter glitch must not end the meters
                self.log_throttled("meters", f"meters: {type(exc).__name__}: {exc}")
            deadline += period_s
            delay = deadline - time.monotonic()
            if delay < -period_s:  # stalled (e.g. the machine slept): restart the clock, do not race
                deadline = time.monotonic()
            elif delay > 0:
                self._stop.wait(delay)

    def snapshot(self) -> dict:
        """One meters message (see control/schema/messages.schema.json, "meters"). Call it
        from the meter thread only: it consumes the output ring."""
        engine = self.engine
        st = engine.stats
        comp_gr, lim_gr = engine.take_gain_reduction()
        peak = self._spectrum.feed(engine.out_ring)
        r = engine.meter.readings()
        times_us = engine.callback_times_us()
        p50, p99 = np.percentile(times_us, [50, 99]) if times_us.size else (math.nan, math.nan)
        self._seq += 1
        snap = {
            "type": "meters",
            "seq": self._seq,
            "time_s": round(engine.uptime_s(), 3),
            "momentary_lufs": finite_or_none(r["momentary_lufs"]),
            "short_term_lufs": finite_or_none(r["short_term_lufs"]),
            "integrated_lufs": finite_or_none(r["integrated_lufs"]),
            "lra_lu": finite_or_none(r["loudness_range_lu"]),
            "true_peak_dbtp": [finite_or_none(v) for v in r["true_peak_dbtp"]],
            "output_peak_dbfs": finite_or_none(20.0 * math.log10(peak)) if peak > 0.0 else None,
            "comp_gr_db": round(-comp_gr, 2),
            "limiter_gr_db": round(-lim_gr, 2),
            "loudness_gain_db": finite_or_none(st["loudness_gain_db"]),
            "spectrum_db": [round(float(v), 1) for v in self._spectrum.levels_db()],
            "ai": self._ai_view(),
            "status": {
                "blocks": int(st["callbacks"]),
                "xruns": engine.xruns(),
                "callback_us_p50": finite_or_none(p50, 1),
                "callback_us_p99": finite_or_none(p99, 1),
                "callback_us_max": finite_or_none(st["max_us"], 1),
                "ring_drops": engine.ring.dropped,
                "sanitised": int(st["sanitised"]),
                "faults": int(st["faults"]),
                "control_rejected": engine.control.rejected,
            },
        }
        self.latest_meters = snap
        return snap

    def _ai_view(self):
        inference = self._inference()
        if inference is None:
            return None
        s = inference.stats()
        return {"enabled": bool(self.engine.params[P.P_AI_ENABLED] >= 0.5),
                "classes": {k: round(v, 3) for k, v in s["classes"].items()},
                "targets": {k: finite_or_none(v, 3) for k, v in s["targets"].items()},
                "failures": int(s["failures"])}
