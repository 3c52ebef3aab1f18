"""The ahead-of-time build of the kernels (see kernels/jit.py for how it is used).

``build(workload)`` runs workload (a function that calls the commands' kernels the way the
commands do, on small inputs) with every kernel on Numba's JIT, then compiles one export
per kernel and argument types Numba compiled it for (kernels inlined into their callers
excepted) with Numba's ``pycc`` into a Python extension module for this CPU. Each export is a
one-line forwarder to the kernel's own dispatcher, so the kernel and everything it calls
compile with their own options (fastmath, error model, inlining) exactly as under the JIT;
the exports release the GIL as the kernels' ``nogil=True`` asks. A manifest beside the
module maps (kernel, argument types) to the export and records the build's key
(``jit.build_key``). Both are written atomically: a command running meanwhile keeps the
module it loaded.
"""

import glob
import hashlib
import os
import pickle
import tempfile
import time
import warnings

from . import jit


def key_of(numba_type):
    """``jit.type_key`` of the values Numba types as numba_type; None where no value is
    typed so that key can say (named tuples, optionals, literals, ...)."""
    from numba.core import types
    from numba.np.numpy_support import as_dtype

    t = numba_type
    if type(t) is types.Array:
        return (as_dtype(t.dtype), t.ndim, t.layout, t.mutable)
    if type(t) in (types.UniTuple, types.Tuple):
        keys = [key_of(m) for m in t]
        return None if any(k is None for k in keys) else tuple(keys)
    return {types.float64: "float64", types.float32: "float32", types.int64: "int64", types.int32: "int32",
            types.boolean: "bool"}.get(t)


def _forwarder(target, n: int):
    """def forward(a0, ..., an-1): return target(a0, ..., an-1), as a real function."""
    names = ", ".join(f"a{i}" for i in range(n))
    space = {"target": target}
    exec(f"def forward({names}):\n    return target({names})\n", space)
    return space["forward"]


def _relative(path: str) -> str | None:
    root = jit._package_root()
    path = os.path.abspath(path)
    return os.path.relpath(path, root) if path.startswith(root + os.sep) else None


def _sources(kernels) -> list[str]:
    """The files the build depends on: every module under kernels/ and every file that
    declares an exported kernel, relative to the package root."""
    here = os.path.dirname(os.path.abspath(__file__))
    files = {_relative(p) for p in glob.glob(os.path.join(here, "*.py"))}
    for k in kernels:
        files.add(_relative(k.py_func.__code__.co_filename))
    return sorted(f for f in files if f)


def build(workload, directory: str | None = None) -> dict:
    """Run workload on Numba's JIT, then compile every kernel entry Numba compiled for it (see
    the module docstring); returns {"exports", "seconds", "path"}. directory: where to put the build (default: the first of ``jit.aot_dirs()``
    that can be written)."""
    import numba.pycc.compiler as pycc_compiler
    from numba.core.compiler import Flags
    from numba.pycc import CC

    t0 = time.perf_counter()
    jit.materialize()
    workload()
    entries = []
    for kernel in jit.declared():
        if kernel.options.get("inline") == "always" or _relative(kernel.py_func.__code__.co_filename) is None:
            continue
        for argtypes, overload in list(kernel.dispatcher.overloads.items()):
            keys = [key_of(t) for t in argtypes]
            if all(k is not None for k in keys):
                entries.append((kernel, tuple(keys), tuple(argtypes), overload.signature.return_type))
    exports = []
    directory = directory or _writable(jit.aot_dirs())
    if directory is None:
        raise OSError("no writable directory for the kernels' build: " + ", ".join(jit.aot_dirs()))
    os.makedirs(directory, exist_ok=True)
    sources = _sources(k for k, *_ in entries)
    key = jit.build_key(sources)

    class ReleaseGil(Flags):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.release_gil = True

    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
        cc = CC(jit.AOT_MODULE)
        cc.output_dir = tmp
        cc.target_cpu = "host"
        cc.verbose = False
        for i, (kernel, type_key, argtypes, restype) in enumerate(entries):
            name = f"k{i}"
            cc.export(name, restype(*argtypes))(_forwarder(kernel.dispatcher, len(argtypes)))
            exports.append((kernel.qualified, type_key, name))
        saved = pycc_compiler.Flags
        pycc_compiler.Flags = ReleaseGil
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pycc's deprecation notice and distutils' chatter
                cc.compile()
        finally:
            pycc_compiler.Flags = saved
        built = glob.glob(os.path.join(tmp, jit.AOT_MODULE + "*.so")) + glob.glob(os.path.join(tmp, jit.AOT_MODULE + "*.pyd"))
        if not built:
            raise OSError("pycc wrote no module")
        ext = os.path.splitext(built[0])[1]
        file = f"{jit.AOT_MODULE}-{key[:16]}{ext}"
        os.replace(built[0], os.path.join(directory, file))
        with open(os.path.join(directory, file), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        manifest = {"key": key, "sources": sources, "file": file, "sha256": digest, "exports": exports}
        staged = os.path.join(tmp, jit.MANIFEST)
        with open(staged, "wb") as f:
            pickle.dump(manifest, f)
        os.replace(staged, os.path.join(directory, jit.MANIFEST))
    for old in glob.glob(os.path.join(directory, jit.AOT_MODULE + "-*")):
        if os.path.basename(old) != file:
            try:
                os.remove(old)  # a process that mapped it keeps it until it exits
            except OSError:
                pass
    return {"exports": len(exports), "seconds": time.perf_counter() - t0, "path": os.path.join(directory, file)}


def _writable(candidates) -> str | None:
    for d in candidates:
        try:
            os.makedirs(d, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            return d
    return None
