"""The daemon: an engine on a backend, the inference thread, status logging, clean stops.

Start-up compiles every kernel (cached after the first run) and loads the models before
the stream opens; SIGINT/SIGTERM stop everything within a second. If the audio server
goes away under a live stream (its callbacks stop), the daemon notices within a second,
says so and exits instead of hanging in PortAudio's stop.
"""

import dataclasses
import math
import signal
import sys
import threading
import time

import numpy as np

from auracore.errors import ConfigError
from auracore.realtime import engine as E
from auracore.realtime.clocked import ClockedLoop, silence_source, tone_source
from auracore.realtime.engine import Engine

STALL_S = 1.0


@dataclasses.dataclass
class ServeConfig:
    """Everything `auracore serve` takes (flags or a TOML config file)."""

    backend: str = "portaudio"      # portaudio | file | null
    device: str | None = None
    hostapi: str | None = None
    samplerate: int = 48000
    blocksize: int = 1024
    channels: int = 2
    callback: str = "native"        # native (Numba cfunc, no GIL) | python
    client_name: str = "auracore"
    input: str | None = None        # file backend
    output: str | None = None       # file backend
    subtype: str | None = None
    realtime: bool = True           # file backend: pace at real time
    signal: str = "tone"            # null backend: tone | silence
    seconds: float | None = None    # stop after this long (None: run until stopped)
    models: str | None = None       # a model folder, "off", or None for the shipped models
    status_interval: float = 10.0
    stress_gil: bool = False        # diagnostic: a pure-Python busy thread competing for the GIL
    surface: bool = True            # the OSC and WebSocket control surface (control/surface.py)
    bind: str = "127.0.0.1"         # its address; anything but loopback needs a token
    osc_port: int = 9000
    ws_port: int = 8765             # the meter page and /ws
    token: str | None = None        # WebSocket clients must present it (?token= or Authorization: Bearer)
    osc_allow: list = dataclasses.field(default_factory=list)  # networks whose OSC senders are accepted

    def validate(self) -> None:
        """ConfigError with one line for a value of the wrong type or outside its range, or a
        combination that cannot run (messages name the option as flag and config key)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _type_ok(value, f.type):
                raise ConfigError(f"{f.name} = {value!r}: expected {_type_text(f.type)}")
        if self.backend not in ("portaudio", "file", "null"):
            raise ConfigError(f"backend = {self.backend!r}: use portaudio, file or null")
        if self.callback not in ("native", "python"):
            raise ConfigError(f"callback = {self.callback!r}: use native or python")
        if self.signal not in ("tone", "silence"):
            raise ConfigError(f"signal = {self.signal!r}: use tone or silence")
        if self.channels not in (1, 2):
            raise ConfigError(f"channels = {self.channels}: use 1 or 2")
        if self.backend != "portaudio" and not 64 <= self.blocksize <= 8192:
            raise ConfigError(f"--blocksize {self.blocksize}: the {self.backend} backend takes 64 to 8192 frames")
        if self.backend == "portaudio" and self.blocksize and not 64 <= self.blocksize <= 2048:
            raise ConfigError(f"--blocksize {self.blocksize}: use 64 to 2048 frames, or 0 for the host's period")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ConfigError(f"seconds = {self.seconds}: give a positive number of seconds "
                              "(leave it out to run until stopped)")
        if not (math.isfinite(self.status_interval) and self.status_interval >= 0):
            raise ConfigError(f"status_interval = {self.status_interval}: give 0 (off) or a positive number of seconds")
        for name in ("osc_port", "ws_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ConfigError(f"{name} = {getattr(self, name)}: a port is 0 (any free port) to 65535")
        if self.backend == "file" and not (self.input and self.output):
            raise ConfigError("--backend file needs --input IN and --output OUT")


def _type_names(annotation) -> list[str]:
    """["str", "None"] for the annotation str | None, ["int"] for int."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return [a.strip() for a in text.replace("typing.", "").split("|")]


def _type_ok(value, annotation) -> bool:
    """Whether value fits a ServeConfig field's annotation (int for a float is fine)."""
    options = _type_names(annotation)
    for opt in options:
        if opt == "None" and value is None:
            return True
        if opt == "bool" and isinstance(value, bool):
            return True
        if opt == "int" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if opt == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if opt == "str" and isinstance(value, str):
            return True
        if opt == "list" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return True
    return False


def _type_text(annotation) -> str:
    words = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
             "list": "a list of strings", "None": "nothing"}
    return " or ".join(words.get(a, a) for a in _type_names(annotation))


def status_line(engine: Engine, blocksize: int, inference=None) -> str:
    """One line of the engine's health: xruns, callback time, drops, faults, inference."""
    st = engine.stats
    times = engine.callback_times_us()
    deadline_us = blocksize / engine.sample_rate * 1e6 if blocksize else float("nan")
    if times.size:
        p50, p99 = np.percentile(times, [50, 99])
        cb = f"callback p50 {p50:.0f} us p99 {p99:.0f} us max {st['max_us']:.0f} us"
        if blocksize:
            cb += f" ({100 * p99 / deadline_us:.1f}% of {deadline_us:.0f} us)"
    else:
        cb = "no callbacks yet"
    xruns = engine.xruns()
    line = (f"up {engine.uptime_s():.0f} s | blocks {int(st['callbacks'])} | xruns {xruns} | {cb} | "
            f"ring drops {engine.ring.dropped} | faults {int(st['faults'])} | sanitised {int(st['sanitised'])}")
    if inference is not None:
        s = inference.stats()
        line += (f" | inference p50 {s['latency_ms_p50']:.2f} ms p99 {s['latency_ms_p99']:.2f} ms "
                 f"failures {s['failures']} on {s['provider']}")
    return line


class Daemon:
    """Build and run the whole live engine for a ServeConfig and a parameter vector."""

    def __init__(self, cfg: ServeConfig, params, log=None):
        """params: an auracore.Params (or the registry's (N_PARAMS,) vector) to start from."""
        self.cfg = cfg
        self.params = np.array(params, dtype=np.float64)
        self.log = log or (lambda msg: print(f"auracore serve: {msg}", file=sys.stderr, flush=True))
        self.engine = None
        self.inference = None
        self.stream = None
        self.loop = None
        self.filestream = None
        self.surface = None
        self.stop_event = threading.Event()
        self.stop_signal = None  # the signal number that stopped the daemon, if one did
        cfg.validate()

    # -- start-up ---------------------------------------------------------------------------
    def _make_engine(self, sample_rate: int, channels: int) -> Engine:
        from .warm import announce_if_slow, warm_engine

        engine = Engine(sample_rate, channels, self.params)
        # compile (or load from the cache) every kernel the threads will call, on a scratch
        # engine, before any audio flows: a first control change must not wait for a compile
        with announce_if_slow(self.log):
            warm_engine(sample_rate, channels, self.params)
        return engine

    def _start_models(self) -> None:
        if self.cfg.models == "off":
            self.log("models off: manual mode")
            return
        from auracore.models.runtime import ModelError, ModelRunner, Steering
        from auracore.realtime.inference import InferenceThread

        try:
            runner = ModelRunner(self.cfg.models)
        except ModelError as exc:
            self.log(f"{exc}; running in manual mode")
            return
        self.inference = InferenceThread(self.engine, Steering(runner))
        self.inference.start()
        self.log(f"models loaded on {runner.provider}")

    def start(self) -> None:
        """Build the engine on the configured backend, start the models and the audio, then
        the control surface."""
        {"file": self._start_file, "null": self._start_null, "portaudio": self._start_portaudio}[self.cfg.backend]()
        if self.cfg.surface:
            from .surface import start_surface

            self.surface = start_surface(self, self.cfg)

    def _start_file(self) -> None:
        from .filebackend import FileBackend

        cfg = self.cfg
        backend = FileBackend(self._make_engine, cfg.input, cfg.output, cfg.blocksize, cfg.subtype,
                              realtime=cfg.realtime)
        self.engine = backend.engine
        self.filestream = backend.open()  # close() finishes it: OUT is kept only if complete
        self._start_models()
        self.loop = backend.loop
        self.loop.start()
        self.log(f"file backend: {cfg.input} -> {cfg.output} at {self.engine.sample_rate} Hz"
                 + (" (real-time pace)" if cfg.realtime else " (as fast as possible)"))

    def _start_null(self) -> None:
        cfg = self.cfg
        self.engine = self._make_engine(cfg.samplerate, cfg.channels)
        self._start_models()
        source = (tone_source(cfg.samplerate, cfg.channels, cfg.blocksize) if cfg.signal == "tone"
                  else silence_source(cfg.channels, cfg.blocksize))
        self.loop = ClockedLoop(self.engine, cfg.blocksize, source)
        self.loop.start()
        self.log(f"null backend: {cfg.signal} at {cfg.samplerate} Hz, {cfg.blocksize}-frame blocks")

    def _start_portaudio(self) -> None:
        from auracore.realtime import portaudio as pa

        cfg = self.cfg
        pa.reinitialise(cfg.client_name)
        device = pa.find_device(cfg.device, cfg.hostapi, cfg.channels)
        self.engine = self._make_engine(cfg.samplerate, cfg.channels)
        self._start_models()
        self.stream = pa.PortAudioStream(self.engine, device, cfg.blocksize, cfg.callback)
        self.stream.start()
        lat_in, lat_out = self.stream.latency_s()
        total_ms = (lat_in + lat_out) * 1e3 + self.engine.latency / self.engine.sample_rate * 1e3
        info = pa.list_devices()[device]
        self.log(f"streaming on '{info['name']}' ({info['hostapi']}), "
                 f"{cfg.samplerate} Hz, {cfg.blocksize or 'host'}-frame blocks, {cfg.callback} callback; latency "
                 f"in {lat_in * 1e3:.2f} ms + limiter {self.engine.latency} frames + out {lat_out * 1e3:.2f} ms "
                 f"= {total_ms:.2f} ms")

    # -- running ----------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM stop; SIGUSR1 injects a chain fault and SIGUSR2 an inference fault
        (drills: both are answered, counted and survived)."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_stop_signal)
        signal.signal(signal.SIGUSR1, lambda *_: self.inject_fault("chain"))
        signal.signal(signal.SIGUSR2, lambda *_: self.inject_fault("inference"))

    def _on_stop_signal(self, signum, frame) -> None:
        self.stop_signal = signum
        self.stop_event.set()

    def inject_fault(self, where: str) -> None:
        """Poison the chain once (the callback falls back to the dry input, counts it and resets
        the chain) or make the inference thread raise (the watchdog restarts it)."""
        if where == "chain" and self.engine is not None:
            self.engine.stats["inject_fault"] = 1.0
        elif where == "inference" and self.inference is not None:
            self.inference.inject_fault("raise")

    def _stress_gil(self) -> None:
        """Hold the GIL as much as a busy pure-Python thread can, until stopped."""
        n = 0
        while not self.stop_event.is_set():
            for i in range(10000):
                n += i % 7

    def run(self) -> int:
        """Wait until stopped, the file ends, the time is up or the audio server dies."""
        if self.cfg.stress_gil:
            threading.Thread(target=self._stress_gil, name="auracore-gil-hog", daemon=True).start()
            self.log("stress: a pure-Python thread is spinning on the GIL")
        started = time.monotonic()
        last_log = started
        last_count, last_progress = -1.0, started
        code = 0
        while not self.stop_event.wait(0.1):
            now = time.monotonic()
            if self.loop is not None and self.loop.finished.is_set():
                if self.loop.error is not None:
                    self.log(f"stopped: {self.loop.error}")
                    code = 1
                break
            if self.stream is not None:
                count = self.engine.stats["callbacks"]
                if count != last_count:
                    last_count, last_progress = count, now
                elif now - last_progress > STALL_S or not self.stream.active:
                    self.log("the audio stream stopped (the audio server went away?); exiting")
                    self.stream.abandon()
                    self.stream = None
                    code = 1
                    break
            if self.cfg.seconds and now - started >= self.cfg.seconds:
                break
            if self.cfg.status_interval and now - last_log >= self.cfg.status_interval:
                last_log = now
                self.log(status_line(self.engine, self.cfg.blocksize, self.inference))
        if self.filestream is not None:
            self.loop.stop()
            if not self.filestream.complete and code == 0:
                why = (f"{signal.Signals(self.stop_signal).name}" if self.stop_signal is not None
                       else f"the {self.cfg.seconds:g} s limit")
                self.log(f"stopped by {why} before the end of {self.cfg.input}; nothing was written "
                         f"to {self.cfg.output}")
                code = 128 + self.stop_signal if self.stop_signal is not None else 1
        return code

    def close(self) -> None:
        """Stop the control surface, then the stream (with a deadline), then the threads, then
        finalise files."""
        if self.surface is not None:
            self.surface.close()
            self.surface = None
        if self.stream is not None:
            closer = threading.Thread(target=self.stream.close, daemon=True)
            closer.start()
            closer.join(0.8)
            if closer.is_alive():
                self.log("the audio device did not stop in time; leaving it")
            self.stream = None
        if self.loop is not None:
            self.loop.stop()
        if self.inference is not None:
            self.inference.stop(0.3)
        if self.filestream is not None:
            self.filestream.finish()
            self.filestream = None
        if self.engine is not None:
            self.log("stopped; " + status_line(self.engine, self.cfg.blocksize, self.inference))
