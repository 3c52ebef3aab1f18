"""PortAudio I/O: a duplex stream whose callback is a Numba cfunc that never takes the GIL.

PortAudio calls the cfunc on its audio thread with raw pointers; the cfunc wraps them
and the engine's state (through a table of addresses passed as userData) as numpy views
and runs ``engine_block``. No Python object is touched, so a Python thread holding the
GIL (a server, the inference glue, a garbage collection) cannot delay the audio. A
Python callback is kept as a fallback (``callback="python"``), for comparison.
"""

import ctypes
import hashlib
import importlib.util
import os
import sys
import threading

import numpy as np
from numba import types

from auracore.errors import AudioDeviceError

from .engine import Engine


# sounddevice's private names this module reaches PortAudio through (its cffi handle, the
# library path, its init/terminate bookkeeping). pyproject bounds sounddevice below 0.6, and
# _portaudio() checks them, so a release that renames one fails with one clear line.
SOUNDDEVICE_PRIVATE = ("_libname", "_ffi", "_lib", "_initialize", "_terminate", "_initialized", "_exit_handler")


def _portaudio():
    """sounddevice, imported late: PortAudio enumerates JACK only if it runs at import."""
    try:
        import sounddevice as sd
    except OSError as exc:  # libportaudio2 missing
        raise AudioDeviceError(f"PortAudio is not available ({exc}); install libportaudio2") from None
    missing = [name for name in SOUNDDEVICE_PRIVATE if not hasattr(sd, name)]
    if missing:
        raise AudioDeviceError(f"sounddevice {getattr(sd, '__version__', '?')} lacks {', '.join(missing)}, which the "
                               "compiled callback needs; install a release below 0.6 (pip install 'sounddevice<0.6')")
    return sd


def reinitialise(client_name: str | None = None) -> None:
    """Restart PortAudio so it sees audio servers started since import; with client_name,
    the name JACK shows for our ports (PaJack_SetClientName must precede initialisation)."""
    sd = _portaudio()
    terminate()
    if client_name:
        lib = ctypes.CDLL(sd._libname)
        reinitialise.name_buffer = ctypes.create_string_buffer(client_name.encode())  # must outlive the stream
        lib.PaJack_SetClientName(reinitialise.name_buffer)
    sd._initialize()


def terminate() -> None:
    """Shut PortAudio down (before stopping the audio server it talks to); safe to repeat."""
    sd = _portaudio()
    while sd._initialized > 0:
        sd._terminate()


def list_devices() -> list[dict]:
    """Every device: index, name, host API, input/output channels, default rate."""
    sd = _portaudio()
    out = []
    for i, d in enumerate(sd.query_devices()):
        out.append({"index": i, "name": d["name"], "hostapi": sd.query_hostapis(d["hostapi"])["name"],
                    "inputs": d["max_input_channels"], "outputs": d["max_output_channels"],
                    "default_samplerate": d["default_samplerate"]})
    return out


def find_device(device: str | int | None, hostapi: str | None, channels: int) -> int:
    """Index of a duplex-capable device by index, name substring and/or host API name."""
    devices = [d for d in list_devices() if d["inputs"] >= channels and d["outputs"] >= channels]
    if hostapi:
        devices = [d for d in devices if hostapi.lower() in d["hostapi"].lower()]
    if device is not None and str(device).isdigit():
        devices = [d for d in devices if d["index"] == int(device)]
    elif device:
        devices = [d for d in devices if str(device).lower() in d["name"].lower()]
    if not devices:
        what = f"device '{device}'" if device is not None else "audio device"
        where = f" on host API '{hostapi}'" if hostapi else ""
        raise AudioDeviceError(
            f"no duplex {what}{where} with {channels} channels in and out "
            "(see `auracore devices`; without a sound card use --backend file or --backend null, "
            "or start a JACK server)")
    if device is None and not hostapi:
        sd = _portaudio()
        default_in, default_out = sd.default.device
        for d in devices:
            if d["index"] in (default_in, default_out):
                return d["index"]
    return devices[0]["index"]


CALLBACK_SIG = types.int32(types.voidptr, types.voidptr, types.uint64, types.voidptr, types.uint64,
                            types.voidptr)


def _flatten(value, arrays: list, imports: dict) -> str:
    """The source expression that rebuilds value (engine_block's state: NamedTuples of
    arrays and constants) inside the generated cfunc; arrays are appended to arrays (each
    becomes a{k}), NamedTuple classes to imports."""
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        cls = type(value)
        imports[cls.__name__] = cls.__module__
        return f"{cls.__name__}(" + ", ".join(_flatten(v, arrays, imports) for v in value) + ")"
    if isinstance(value, np.ndarray):
        arrays.append(value)
        return f"a{len(arrays) - 1}"
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return repr(value.item() if isinstance(value, np.generic) else value)
    raise TypeError(f"engine state holds a {type(value).__name__}, which the native callback cannot rebuild")


CALLBACK_CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "auracore",
                              "callbacks")


def build_native_callback(engine: Engine):
    """A cfunc for PortAudio that runs engine_block on this engine's state.

    Returns (cfunc, user_data array of addresses); keep both alive while the stream runs.
    Shapes and dtypes are compiled in, so the source is generated per engine layout; it is
    written to a module in CALLBACK_CACHE named by its hash, so that Numba caches the
    compiled callback and the next start with the same layout loads it.
    """
    arrays, imports = [], {}
    expr = _flatten(engine.kernel_arrays(), arrays, imports)
    for a in arrays:
        if not a.flags.c_contiguous:
            raise ValueError("engine state must be C-contiguous")
    table = np.array([a.ctypes.data for a in arrays], dtype=np.int64)
    lines = ['"""Generated by auracore.realtime.portaudio.build_native_callback: do not edit."""',
             "import numpy as np",
             "from numba import carray, cfunc, from_dtype",
             "from auracore.realtime.atomics import as_pointer, typed_pointer",
             "from auracore.realtime.engine import engine_block",
             "from auracore.realtime.portaudio import CALLBACK_SIG"]
    lines += [f"from {module} import {name}" for name, module in sorted(imports.items())]
    dtypes = {}
    for a in arrays:
        if a.dtype.names and a.dtype.descr not in dtypes.values():
            dtypes[f"R{len(dtypes)}"] = a.dtype.descr
    lines += [f"{name} = from_dtype(np.dtype({descr!r}))" for name, descr in dtypes.items()]
    lines += ["", "",
              "@cfunc(CALLBACK_SIG, nopython=True, cache=True)",
              "def callback(inp, out, frames, time_info, flags, user):",
              f"    t = carray(user, {len(arrays)}, np.int64)"]
    for k, a in enumerate(arrays):
        if a.dtype.names:  # a record array: a typed pointer (carray takes no record dtype with a void pointer)
            rec = next(name for name, descr in dtypes.items() if descr == a.dtype.descr)
            lines.append(f"    a{k} = carray(typed_pointer(t[{k}], {rec}), {tuple(a.shape)!r})")
        else:
            lines.append(f"    a{k} = carray(as_pointer(t[{k}]), {tuple(a.shape)!r}, np.{a.dtype.name})")
    ch = engine.channels
    lines.append(f"    i = carray(inp, (frames, {ch}), np.float32)")
    lines.append(f"    o = carray(out, (frames, {ch}), np.float32)")
    lines.append(f"    engine_block(i, o, flags, {expr})")
    lines.append("    return 0")
    source = "\n".join(lines) + "\n"
    name = "auracore_cb_" + hashlib.sha256(source.encode()).hexdigest()[:16]
    os.makedirs(CALLBACK_CACHE, exist_ok=True)
    path = os.path.join(CALLBACK_CACHE, name + ".py")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(source)
        os.replace(tmp, path)
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # Numba's cache finds the module again by this name
        spec.loader.exec_module(module)
    return module.callback, table


class PortAudioStream:
    """A running duplex stream on a device; ``callback`` "native" (cfunc) or "python"."""

    def __init__(self, engine: Engine, device: int, blocksize: int, callback: str = "native"):
        sd = _portaudio()
        self.engine = engine
        self._sd = sd
        self.callback_kind = callback
        self.blocksize = blocksize
        self._stream = None
        self._pa_stream = None
        self._lock = threading.Lock()
        if callback == "native":
            self._open_native(device)
        else:
            self._open_python(device)

    def _open_native(self, device):
        sd, ffi, lib = self._sd, self._sd._ffi, self._sd._lib
        self._cfunc, self._table = build_native_callback(self.engine)
        params = []
        for _ in range(2):
            params.append(ffi.new("PaStreamParameters*", {
                "device": device, "channelCount": self.engine.channels, "sampleFormat": lib.paFloat32,
                "suggestedLatency": sd.query_devices(device)["default_low_output_latency"],
                "hostApiSpecificStreamInfo": ffi.NULL}))
        handle = ffi.new("PaStream**")
        self._cb_ptr = ffi.cast("PaStreamCallback*", self._cfunc.address)
        err = lib.Pa_OpenStream(handle, params[0], params[1], float(self.engine.sample_rate), self.blocksize,
                                0, self._cb_ptr, ffi.cast("void*", self._table.ctypes.data))
        if err:
            raise AudioDeviceError(f"cannot open the stream: {ffi.string(lib.Pa_GetErrorText(err)).decode()}")
        self._pa_stream = handle[0]
        self._params = params

    def _open_python(self, device):
        sd = self._sd
        engine = self.engine
        stats = engine.stats

        def callback(indata, outdata, frames, time_info, flags):
            # the wait before this Python callback could run: mostly the GIL
            try:
                wait_us = (self._stream.time - time_info.currentTime) * 1e6
                if wait_us > stats["wait_us_max"]:
                    stats["wait_us_max"] = wait_us
                engine.run_block(indata, outdata, flags._flags)
            except Exception as exc:  # the callback never raises: count it and pass the input
                self.last_error = repr(exc)
                stats["faults"] += 1
                outdata[:] = indata

        try:
            self._stream = sd.Stream(device=device, samplerate=engine.sample_rate, blocksize=self.blocksize,
                                     channels=engine.channels, dtype="float32", callback=callback,
                                     latency="low")
        except sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot open the stream: {exc}") from None

    def start(self) -> None:
        if self._pa_stream is not None:
            err = self._sd._lib.Pa_StartStream(self._pa_stream)
            if err:
                raise AudioDeviceError("cannot start the stream: "
                                       + self._sd._ffi.string(self._sd._lib.Pa_GetErrorText(err)).decode())
        else:
            self._stream.start()

    @property
    def active(self) -> bool:
        """True while PortAudio is calling us (False when, e.g., the JACK server died)."""
        if self._pa_stream is not None:
            return self._sd._lib.Pa_IsStreamActive(self._pa_stream) == 1
        return bool(self._stream.active)

    def latency_s(self) -> tuple[float, float]:
        """PortAudio's reported (input, output) latency in seconds."""
        if self._pa_stream is not None:
            info = self._sd._lib.Pa_GetStreamInfo(self._pa_stream)
            return float(info.inputLatency), float(info.outputLatency)
        lat = self._stream.latency
        return float(lat[0]), float(lat[1])

    def time(self) -> float:
        if self._pa_stream is not None:
            return float(self._sd._lib.Pa_GetStreamTime(self._pa_stream))
        return float(self._stream.time)

    def abandon(self) -> None:
        """Forget a stream whose audio server died: PortAudio's stop and terminate can block
        forever then, so neither runs (not even sounddevice's exit handler)."""
        import atexit

        self._pa_stream = None
        self._stream = None
        atexit.unregister(self._sd._exit_handler)

    def close(self) -> None:
        """Stop and close; safe to call twice. PortAudio's stop waits for the last callback."""
        with self._lock:
            if self._pa_stream is not None:
                lib = self._sd._lib
                lib.Pa_StopStream(self._pa_stream)
                lib.Pa_CloseStream(self._pa_stream)
                self._pa_stream = None
            elif self._stream is not None:
                self._stream.stop()
                self._stream.close()
                self._stream = None
