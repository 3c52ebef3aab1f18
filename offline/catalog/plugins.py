"""The catalog's analysis plugins, and the worker process that runs them with a time limit.

A plugin is a name, a version, a time limit and a function ``(x, sample_rate) -> dict``
on one region, x: (frames, channels) float32. The built-in ones: ``loudness`` (the meter:
integrated loudness, range, true and sample peak), ``fingerprint`` (the 64-float
fingerprint of ``auracore.offline.fingerprint``, when that module is installed),
``model`` (the shipped extractor's mean 32-float embedding and the decider's content class)
and ``profile`` (tempo, metre and key from the profile step's functions).

``PluginWorker`` runs them in a child process: a plugin that raises, returns NaN or runs
past its time limit becomes an error for that region and plugin; a hung child is killed
and a new one started (the models load again, about 0.2 s), and the other plugins go on.
"""

import importlib
import math
import multiprocessing as mp
import os
import time
import traceback
from dataclasses import dataclass

import numpy as np

MODEL_RATE_HZ = 48000


@dataclass(frozen=True)
class Plugin:
    name: str
    version: int
    func: object           # (x: (frames, channels) float32, sample_rate) -> dict
    timeout_s: float = 60.0
    description: str = ""


def _fin(v, digits=4):
    """A JSON-ready float: None for +-inf (silence), NaN kept (so it is caught as an error)."""
    v = float(v)
    if math.isinf(v):
        return None
    return v if math.isnan(v) else round(v, digits)


def loudness(x: np.ndarray, sample_rate: int) -> dict:
    """Integrated loudness (LUFS), loudness range (LU), true peak (dBTP), sample peak (dBFS)."""
    from auracore.offline.chain import Meter

    m = Meter(sample_rate, x.shape[1])
    for i in range(0, x.shape[0], 1 << 16):
        m.process(x[i:i + (1 << 16)].astype(np.float64))
    return {"integrated_lufs": _fin(m.integrated_lufs, 3), "loudness_range_lu": _fin(m.loudness_range_lu, 3),
            "true_peak_dbtp": _fin(m.true_peak_dbtp, 3), "sample_peak_dbfs": _fin(m.sample_peak_dbfs, 3)}


def fingerprint_available() -> str | None:
    """None when the fingerprint module imports, else why not (one line)."""
    try:
        importlib.import_module("auracore.offline.fingerprint")
        return None
    except ImportError as exc:
        return f"auracore.offline.fingerprint is not installed ({exc})"


def fingerprint(x: np.ndarray, sample_rate: int) -> dict:
    """The 64-float fingerprint (``auracore.offline.fingerprint``)."""
    fp = importlib.import_module("auracore.offline.fingerprint").fingerprint(x.astype(np.float64), sample_rate)
    return {"values": [float(v) for v in np.asarray(fp.values, dtype=np.float32)]}


def _runner():
    from auracore.models.runtime import shared_runner

    return shared_runner()


def mono_48k(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """The mono mix of x at the models' 48 kHz (float32)."""
    mono = x.mean(axis=1, dtype=np.float64)
    if sample_rate != MODEL_RATE_HZ:
        from scipy.signal import resample_poly

        g = math.gcd(MODEL_RATE_HZ, int(sample_rate))
        mono = resample_poly(mono, MODEL_RATE_HZ // g, int(sample_rate) // g)
    return mono.astype(np.float32)


def model(x: np.ndarray, sample_rate: int, max_windows: int = 8) -> dict:
    """The extractor's embedding of every 1024-sample mono block at 48 kHz, averaged (32
    floats), and the decider's class probabilities averaged over up to max_windows windows
    of context_blocks blocks (the class is the most probable)."""
    r = _runner()
    y = mono_48k(x, sample_rate)
    n = y.size // r.block
    if n < 2:
        raise ValueError(f"region too short for the models: {y.size} samples at 48 kHz, need {2 * r.block}")
    blocks = y[:n * r.block].reshape(n, r.block)
    emb = np.concatenate([r.embed_batch(blocks[i:i + 512]) for i in range(0, n, 512)], axis=0)
    w = min(r.context_blocks, n)
    starts = np.unique(np.linspace(0, n - w, min(max_windows, n - w + 1)).astype(int))
    probs = np.mean([r.decide(emb[s:s + w])[0] for s in starts], axis=0)
    return {"class": r.classes[int(np.argmax(probs))],
            "probabilities": {c: round(float(p), 4) for c, p in zip(r.classes, probs)},
            "embedding": [float(v) for v in emb.mean(axis=0)]}


def profile(x: np.ndarray, sample_rate: int) -> dict:
    """Tempo (BPM, confidence), time signature and key (with confidence) of the region."""
    from auracore.offline.profile import features, harmony, tempo

    feat = features.extract(x.astype(np.float64), sample_rate, loudness=False)
    tb = tempo.from_features(feat)
    kc = harmony.from_features(feat, tb)
    return {"tempo_bpm": None if tb.tempo_bpm is None else round(float(tb.tempo_bpm), 3),
            "tempo_confidence": round(float(tb.tempo_confidence), 3), "time_signature": tb.time_signature,
            "key": kc.key, "key_confidence": round(float(kc.key_confidence), 3)}


BUILTIN = {
    "loudness": Plugin("loudness", 1, loudness, 60.0, "loudness and peaks (the meter)"),
    "fingerprint": Plugin("fingerprint", 1, fingerprint, 120.0, "the 64-float fingerprint"),
    "model": Plugin("model", 1, model, 120.0, "content class and 32-float embedding (the shipped models)"),
    "profile": Plugin("profile", 1, profile, 120.0, "tempo, metre and key (the profile step)"),
}


def available_plugins() -> list[dict]:
    """Every built-in plugin with whether it can run here and why not."""
    out = []
    for p in BUILTIN.values():
        why = fingerprint_available() if p.name == "fingerprint" else None
        out.append({"name": p.name, "version": p.version, "timeout_s": p.timeout_s, "description": p.description,
                    "available": why is None, "absent_reason": why})
    return out


def default_plugins() -> list[Plugin]:
    """The built-in plugins that can run here (fingerprint only when its module imports)."""
    return [p for p in BUILTIN.values() if p.name != "fingerprint" or fingerprint_available() is None]


def check_result(result) -> str | None:
    """Why a plugin's result cannot be stored (not a dict, NaN anywhere), or None."""
    if not isinstance(result, dict):
        return f"returned {type(result).__name__}, not a dict"
    stack = [result]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, float) and math.isnan(v):
            return "returned NaN"
    return None


def run_plugin(plugin: Plugin, x: np.ndarray, sample_rate: int) -> tuple[dict | None, str | None, float]:
    """(result, error, elapsed_s) of one plugin on one region, in this process."""
    t0 = time.perf_counter()
    try:
        result = plugin.func(x, sample_rate)
        error = check_result(result)
    except Exception as exc:  # a plugin's failure is data, stored as an error row
        result, error = None, f"{type(exc).__name__}: {str(exc)[:300]}"
    return (None if error else result), error, time.perf_counter() - t0


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a killed `catalog add` must
    not leave its worker running a plugin forever); elsewhere the pipe's EOF ends it."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(0)


def _worker_main(conn, plugins: dict, parent_end, parent_pid: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; Ctrl-C there ends us
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})  # held over the fork
    parent_end.close()  # our copy of the parent's end: holding it, we would never see EOF
    _die_with_parent(parent_pid)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        names, shape, sample_rate = msg
        try:
            x = np.frombuffer(conn.recv_bytes(), dtype=np.float32).reshape(shape)
        except (EOFError, OSError):
            return
        for name in names:
            try:
                result, error, elapsed = run_plugin(plugins[name], x, sample_rate)
                conn.send((name, result, error, elapsed))
            except Exception:  # sending failed (a result that does not pickle): report it
                conn.send((name, None, "result could not be sent: " + traceback.format_exc(limit=1)[-200:], 0.0))


class PluginWorker:
    """One child process that runs plugins on regions; killed and restarted on a hang."""

    def __init__(self, plugins: list[Plugin]):
        self.plugins = {p.name: p for p in plugins}
        self.restarts = 0
        self._proc = None
        self._conn = None

    def _start(self) -> None:
        import signal

        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker_main, args=(child, self.plugins, parent, os.getpid()), daemon=True)
        # a stop signal that lands in fork's after-fork hooks (logging's) would be printed and
        # dropped there: hold them over the fork, and take them here, after it
        stops = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        held = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        try:
            self._proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        child.close()
        self._conn = parent

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
            self._conn.close()
        self._proc = None

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._conn.send(None)
                self._proc.join(2)
            except OSError:
                pass
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
            self._conn.close()
            self._proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def run(self, x: np.ndarray, sample_rate: int) -> dict:
        """{plugin name: (result, error, elapsed_s)} for region x: (frames, channels)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        todo = list(self.plugins)
        out = {}
        while todo:
            if self._proc is None or not self._proc.is_alive():
                if self._proc is not None:
                    self._kill()
                self._start()
            self._conn.send((todo, x.shape, int(sample_rate)))
            self._conn.send_bytes(x.data)
            while todo:
                name = todo[0]
                limit = self.plugins[name].timeout_s
                t0 = time.perf_counter()
                got = None
                try:
                    if self._conn.poll(limit):
                        got = self._conn.recv()
                except (EOFError, OSError):
                    got = None
                if got is None:
                    dead = not self._proc.is_alive()
                    why = (f"the worker process died (exit code {self._proc.exitcode})" if dead
                           else f"no result within its time limit of {limit:g} s; the worker was restarted")
                    out[name] = (None, why, time.perf_counter() - t0)
                    todo.pop(0)
                    self._kill()
                    self.restarts += 1
                    break
                got_name, result, error, elapsed = got
                out[got_name] = (result, error, elapsed)
                todo.remove(got_name)
        return out
