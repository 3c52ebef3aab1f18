"""The kernels' compiler: machine code built ahead of time where it exists, Numba's JIT where not.

Every kernel is declared with this module's ``njit`` (the same options as Numba's) and is a
``Kernel`` until Numba is needed. Calling a kernel from Python:

1. runs the ahead-of-time build (``kernels/aot.py``, made by ``scripts/install`` through
   ``python -m auracore.control.warm``) when it holds a compiled export for exactly these
   argument types, and that build matches the sources, Numba's version and this CPU. Such a
   call imports neither Numba nor llvmlite: a command whose kernels are all built ahead of
   time starts 0.35-0.45 s sooner and about 110 MB smaller (bench/cli.py, bench/master.py).
2. otherwise imports Numba once (``materialize``): every declared kernel becomes its Numba
   dispatcher, and the module globals that held the kernels hold the dispatchers, so jitted
   code calls jitted code exactly as if ``numba.njit`` had been used directly, and later
   calls from Python go straight to Numba's dispatch.

The two give the same samples: the build compiles the same functions with the same options
for this CPU (tests/test_aot.py compares them bit for bit). A kernel reading a constant from
another module must read it from a module under ``kernels/`` or its own: those are the files
whose contents key the build (Numba's own cache has the same blind spot, narrower).

``AURACORE_NO_AOT=1`` in the environment turns the ahead-of-time build off;
``AURACORE_AOT_DIR`` names the one directory to look for it in (tests).
"""

import functools
import hashlib
import os
import pickle
import sys
import threading

import numpy as np

from auracore.stopping import held_back

AOT_MODULE = "_auracore_aot"
MANIFEST = AOT_MODULE + ".manifest"

_lock = threading.RLock()
_kernels: list = []          # every Kernel and LazyIntrinsic declared, in order
_numba = None                # the numba module, once materialized
_aot = None                  # {qualified name: {type key: compiled function}}, once loaded
_no_blas = False


def _qualified(fn) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


class _Declared:
    """A function declared for Numba, made by it when the process switches to Numba."""

    def __init__(self, py_func, options: dict):
        functools.update_wrapper(self, py_func)
        self.py_func = py_func
        self.options = options
        self.dispatcher = None
        with _lock:
            _kernels.append(self)

    def make(self, numba):
        """What Numba makes of the function (its dispatcher, its intrinsic)."""
        raise NotImplementedError


class Kernel(_Declared):
    """A function to be compiled by Numba with ``options``; see the module docstring."""

    def __init__(self, py_func, options: dict):
        super().__init__(py_func, options)
        self.qualified = _qualified(py_func)
        self._compiled = None    # {type key: AOT function} once looked up

    def make(self, numba):
        """The Numba dispatcher, whose compiling and cache loading hold the stop signals back
        on the main thread (``held_back``; a kernel's callees compile inside its own compile).
        llvmlite frees compiled modules in destructors, where Python swallows a stop's raise
        (auracore.stopping), and Numba then carries on with an engine in a state it never
        expects: the fuzz suite saw a SIGHUP that landed while a kernel's cached machine code
        loaded end in a segmentation fault inside Numba's ``set_env``."""
        dispatcher = numba.njit(**self.options)(self.py_func)
        dispatcher.compile = held_back(dispatcher.compile)
        return dispatcher

    def __call__(self, *args, **kwargs):
        if self._compiled is None:
            self._compiled = _aot_table().get(self.qualified, {})
        if self._compiled and not kwargs:
            fn = self._compiled.get(type_key(args))
            if fn is not None:
                return fn(*args)
        return (self.dispatcher or materialize(self))(*args, **kwargs)

    @property
    def _numba_type_(self):
        """What Numba types this object as when jitted code outside the auracore modules
        (a user's, a test's) calls the kernel: its dispatcher."""
        from numba.core import types

        return types.Dispatcher(self.dispatcher or materialize(self))

    def __repr__(self):
        return f"<kernel {self.qualified}>"


class LazyIntrinsic(_Declared):
    """A ``numba.extending.intrinsic`` made when Numba is imported (only jitted code calls it)."""

    def make(self, numba):
        from numba.extending import intrinsic as real

        return real(**self.options)(self.py_func) if self.options else real(self.py_func)

    @property
    def _numba_type_(self):
        """The intrinsic's Numba type, for jitted code outside the auracore modules."""
        if self.dispatcher is None:
            materialize()
        from numba.core.registry import cpu_target

        return cpu_target.typing_context.resolve_value_type(self.dispatcher)


def njit(fn=None, **options):
    """``numba.njit`` without importing Numba: ``@njit`` or ``@njit(cache=True, ...)``."""
    if fn is None:
        return lambda f: njit(f, **options)
    kernel = Kernel(fn, options)
    if _numba is not None:   # declared after the switch to Numba: plain Numba from the start
        kernel.dispatcher = kernel.make(_numba)
        return kernel.dispatcher
    return kernel


def intrinsic(fn=None, **options):
    """``numba.extending.intrinsic`` without importing Numba."""
    if fn is None:
        return lambda f: intrinsic(f, **options)
    declared = LazyIntrinsic(fn, options)
    if _numba is not None:
        declared.dispatcher = declared.make(_numba)
        return declared.dispatcher
    return declared


def answer_no_blas() -> None:
    """When Numba loads (if it does), answer its BLAS check "none" (see control/entry.py)."""
    global _no_blas
    _no_blas = True


@held_back
def _import_numba():
    """Import Numba with the stop signals held back on the main thread (``held_back``):
    Numba's C extension turns an exception raised inside its imports (a KeyboardInterrupt)
    into an ImportError with a traceback."""
    import numba
    import numba.extending  # noqa: F401
    if _no_blas and "numba.np.arraymath" not in sys.modules:
        import numba.np.linalg

        def no_blas():
            raise ImportError("the auracore program's kernels use no BLAS")

        numba.np.linalg.ensure_blas = no_blas
    return numba


def materialize(kernel=None):
    """Switch every declared kernel to Numba (once); returns kernel's dispatcher (kernel
    itself if it is one already)."""
    global _numba
    with _lock:
        if _numba is None:
            numba = _import_numba()
            for k in _kernels:
                if k.dispatcher is None:
                    k.dispatcher = k.make(numba)
            # every namespace that may hold a declared kernel: the defining modules' and
            # every auracore module's (jitted code resolves its callees there)
            spaces = {id(k.py_func.__globals__): k.py_func.__globals__ for k in _kernels}
            for name, module in list(sys.modules.items()):
                if name.startswith("auracore.") and module is not None:
                    spaces[id(module.__dict__)] = module.__dict__
            for space in spaces.values():
                for name, value in list(space.items()):
                    if isinstance(value, _Declared):
                        space[name] = value.dispatcher
            _numba = numba
    return getattr(kernel, "dispatcher", kernel)


def declared() -> list:
    """Every kernel declared so far (not the intrinsics)."""
    with _lock:
        return [k for k in _kernels if isinstance(k, Kernel)]


# --- argument types --------------------------------------------------------------------------

# Python and numpy scalars by the Numba type they get
SCALARS = {float: "float64", np.float64: "float64", np.float32: "float32", int: "int64", np.int64: "int64",
           np.int32: "int32", bool: "bool", np.bool_: "bool"}


def type_key(value):
    """A key equal for two values only if Numba types them alike: arrays by dtype,
    dimensions, layout and writability (as numba.typeof: a record's alignment is its dtype's); plain tuples member by member; scalars
    by the Numba type they get. None for anything else (such a call goes to Numba)."""
    t = type(value)
    if t is np.ndarray:
        f = value.flags
        layout = "C" if f.c_contiguous else ("F" if f.f_contiguous else "A")
        return (value.dtype, value.ndim, layout, f.writeable)
    if t is tuple:
        keys = []
        for v in value:
            k = type_key(v)
            if k is None:
                return None
            keys.append(k)
        return tuple(keys)
    return SCALARS.get(t)


# --- the ahead-of-time build -------------------------------------------------------------------

def aot_dirs() -> list[str]:
    """Where the build may live, in the order looked at: ``AURACORE_AOT_DIR`` if set (alone),
    else beside the kernels' sources (as Numba's cache), then the user's cache directory."""
    if os.environ.get("AURACORE_AOT_DIR"):
        return [os.environ["AURACORE_AOT_DIR"]]
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
    user = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "auracore")
    return [here, user]


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return line
    except OSError:
        pass
    import platform
    return platform.processor() + platform.machine()


def _numba_version() -> str:
    import importlib.util

    spec = importlib.util.find_spec("numba")
    if spec is None or not spec.submodule_search_locations:
        return ""
    path = os.path.join(list(spec.submodule_search_locations)[0], "_version.py")
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return ""


def build_key(sources: list[str]) -> str:
    """What the build depends on: the sources' contents, Python's and Numba's versions, the CPU."""
    h = hashlib.sha256()
    h.update(sys.version.encode())
    h.update(_numba_version().encode())
    h.update(_cpu_flags().encode())
    for path in sources:
        h.update(path.encode())
        try:
            with open(os.path.join(_package_root(), path), "rb") as f:
                h.update(f.read())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


def _package_root() -> str:
    """The directory holding the kernels/ folder (sources are named relative to it)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _aot_table() -> dict:
    global _aot
    if _aot is None:
        with _lock:
            if _aot is None:
                _aot = _load_aot()
    return _aot


def _load_aot() -> dict:
    if os.environ.get("AURACORE_NO_AOT"):
        return {}
    for d in aot_dirs():
        table = _load_from(d)
        if table:
            return table
    return {}


def _load_from(directory: str) -> dict:
    import importlib.machinery
    import importlib.util

    try:
        with open(os.path.join(directory, MANIFEST), "rb") as f:
            manifest = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return {}
    if manifest.get("key") != build_key(manifest.get("sources", [])):
        return {}
    path = os.path.join(directory, manifest["file"])
    try:
        # a module file cut short or damaged is not handed to the dynamic loader, which
        # would die of SIGBUS on a truncated one
        with open(path, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != manifest.get("sha256"):
                return {}
        loader = importlib.machinery.ExtensionFileLoader(AOT_MODULE, path)
        spec = importlib.util.spec_from_file_location(AOT_MODULE, path, loader=loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except (ImportError, OSError):
        return {}
    table: dict = {}
    for qualified, key, export in manifest["exports"]:
        table.setdefault(qualified, {})[key] = getattr(module, export)
    return table
