"""The kernels' ahead-of-time build (kernels/aot.py, kernels/jit.py): the commands run on it
without loading Numba, and it gives the JIT's samples bit for bit."""

import json
import os
import pickle
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf

from auracore.kernels import chain, jit
from auracore.kernels import params as P

BUILD = ("import sys; from auracore.kernels import aot; from auracore.control.warm import workload;"
         "r = aot.build(workload, directory=sys.argv[1]); print(r['exports'])")


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """A build made the way scripts/install makes it (control/warm.py's workload), in a
    directory of its own (in a child: the workload runs the command line)."""
    d = tmp_path_factory.mktemp("aot")
    r = subprocess.run([sys.executable, "-c", BUILD, str(d)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert int(r.stdout.split()[-1]) >= 10
    return d


def _chain_params():
    p = P.default_vector()
    for pid, v in (("eq.2.gain_db", 5.0), ("eq.6.gain_db", -4.0), ("comp.ratio", 4.0), ("comp.threshold_db", -24.0),
                   ("width.amount", 1.4), ("loudness.auto", 1.0), ("output.gain_db", 9.0)):
        p[P.INDEX[pid]] = v
    return p


def _music(seconds: float, rate: int, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.4 * np.sin(2 * np.pi * 110 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
    return (tone[:, None] + 0.2 * rng.standard_normal((t.size, 2))).astype(np.float64)


def test_the_built_chain_and_meter_give_the_jits_samples_bit_for_bit(build):
    """The chain over 20 s of loud material (EQ, compression, width, the loudness follower,
    the limiter working hard), in 65536-frame calls: the build's export and Numba's
    dispatcher give identical samples and identical meter state."""
    table = jit._load_from(str(build))
    chain_built = table["auracore.kernels.chain._process_flat"]
    x = _music(20, 44100)
    params = _chain_params()
    outs = []
    for use_build in (True, False):
        st = chain.ChainState(44100.0, 2)
        y = x.copy()
        call = None
        for s in range(0, len(y), 65536):
            args = (y[s:s + 65536], params, st.sample_rate, st.latency, st.flat[0], st.flat[1])
            if call is None:
                call = chain_built[jit.type_key(args)] if use_build else jit.materialize(chain._process_flat)
            call(*args)
        outs.append((y, st.scalars.copy()))
    (a, sa), (b, sb) = outs
    assert np.abs(a).max() > 0.5  # the chain really did something
    assert np.array_equal(a, b)
    assert sa.tobytes() == sb.tobytes()

    from auracore.kernels.loudness import LoudnessMeter, _meter_flat
    meters = []
    for use_build in (True, False):
        m = LoudnessMeter(44100.0, 2)
        args = (x, m.flat)
        fn = table["auracore.kernels.loudness._meter_flat"][jit.type_key(args)] if use_build else jit.materialize(_meter_flat)
        fn(*args)
        meters.append([arr.tobytes() for arr in m.flat])
    assert meters[0] == meters[1]


def test_an_export_releases_the_gil(build):
    """The main thread keeps running Python while a thread is inside an export (the file
    passes' pipelines overlap their stages on that): it counts at least 1000 turns of a loop
    while a 60 s chain call runs; with the GIL held it would count none."""
    table = jit._load_from(str(build))
    x = _music(60, 44100)
    st = chain.ChainState(44100.0, 2)
    args = (x, _chain_params(), st.sample_rate, st.latency, st.flat[0], st.flat[1])
    fn = table["auracore.kernels.chain._process_flat"][jit.type_key(args)]
    done = threading.Event()
    worker = threading.Thread(target=lambda: (fn(*args), done.set()))
    turns = 0
    worker.start()
    while not done.is_set():
        turns += 1
    worker.join()
    assert turns >= 1000


def _run(argv, env):
    code = ("import sys; from auracore.control.entry import main; rc = main(sys.argv[1:]);"
            "print('RC', rc, 'numba' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300, env=env)
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("RC")][-1].split()
    return int(line[1]), line[2] == "True", r.stdout


def test_the_commands_run_on_the_build_without_numba_and_as_on_the_jit(build, tmp_path):
    """A fresh process running render, analyze, master, transcribe or profile on the build
    never imports Numba; the outputs are byte for byte those of the same commands on
    Numba's JIT (AURACORE_NO_AOT=1), which does import it."""
    src, ref = tmp_path / "in.wav", tmp_path / "ref.wav"
    sf.write(src, _music(12, 44100), 44100, subtype="PCM_24")
    sf.write(ref, 0.5 * _music(12, 44100, seed=9)[:, ::-1], 44100, subtype="PCM_24")
    on_build = {**os.environ, "AURACORE_AOT_DIR": str(build)}
    on_jit = {**os.environ, "AURACORE_NO_AOT": "1"}
    for name, argv in (("render", ["render", str(src), "{out}", "--preset", "streaming"]),
                       ("analyze", ["analyze", str(src), "--json"]),
                       ("master", ["master", str(src), "{out}", "--reference", str(ref), "--json"]),
                       ("transcribe", ["transcribe", str(src), "{out}.mid"]),
                       ("profile", ["profile", str(src), "--json"])):
        results = []
        for env, tag in ((on_build, "aot"), (on_jit, "jit")):
            out = tmp_path / f"{name}-{tag}.wav"
            argv_run = [a.replace("{out}", str(out)) for a in argv]
            rc, numba_loaded, stdout = _run(argv_run, env)
            assert rc == 0, stdout
            assert numba_loaded == (tag == "jit"), (name, tag)
            written = out if out.exists() else tmp_path / f"{name}-{tag}.wav.mid"
            results.append((written.read_bytes() if written.exists() else b"", stdout.replace(str(out), "OUT")))
        assert results[0][0] == results[1][0], name
        if name in ("analyze", "profile"):
            assert json.loads(results[0][1]) == json.loads(results[1][1])
        if name == "master":  # (its JSON also says how long it took)
            assert json.loads(results[0][1])["params"] == json.loads(results[1][1])["params"]


def test_a_stale_build_is_not_used(build, tmp_path):
    """A build whose key no longer matches (another source, Numba or CPU) is ignored."""
    d = tmp_path / "stale"
    shutil.copytree(build, d)
    with open(d / jit.MANIFEST, "rb") as f:
        manifest = pickle.load(f)
    assert jit._load_from(str(d))
    manifest["key"] = "0" * 64
    with open(d / jit.MANIFEST, "wb") as f:
        pickle.dump(manifest, f)
    assert jit._load_from(str(d)) == {}


def test_arguments_the_build_has_no_export_for_go_to_numba():
    """A non-contiguous block (no export takes one) runs on Numba's dispatch and gives the
    samples of its contiguous copy."""
    x = _music(2, 48000)
    wide = np.zeros((x.shape[0], 4))
    wide[:, ::2] = x
    view = wide[:, ::2]
    assert jit.type_key(view)[2] == "A"
    results = []
    for block in (view, x.copy()):
        st = chain.ChainState(48000.0, 2)
        chain.process(block, st, _chain_params())
        results.append(np.array(block))
    assert np.array_equal(results[0], results[1])


def test_type_keys_follow_numbas_types():
    """Two values share a key only where numba.typeof gives them one type (the export's
    arguments are unboxed on that trust)."""
    import numba

    from auracore.kernels import aot
    rec = np.zeros(1, dtype=chain.SCALARS)
    values = [1.0, np.float64(1.0), np.float32(1.0), 3, True, np.zeros((4, 2)), np.zeros((4, 2), np.float32),
              np.zeros((4, 2))[:, :1], np.asfortranarray(np.zeros((4, 2))), np.zeros(3, np.int64), rec,
              (np.zeros(2), 1.0), (np.zeros(2), np.zeros(2))]
    ro = np.zeros(3)
    ro.flags.writeable = False
    values.append(ro)
    for v in values:
        assert aot.key_of(numba.typeof(v)) == jit.type_key(v), v
    assert jit.type_key("text") is None and jit.type_key([1.0]) is None


def test_a_damaged_build_is_not_used(build, tmp_path):
    """A module file cut short (a full disk, a copy interrupted) is not loaded: the JIT serves."""
    d = tmp_path / "damaged"
    shutil.copytree(build, d)
    with open(d / jit.MANIFEST, "rb") as f:
        module = d / pickle.load(f)["file"]
    module.write_bytes(module.read_bytes()[:4096])
    assert jit._load_from(str(d)) == {}
    (d / jit.MANIFEST).write_bytes(b"not a manifest")
    assert jit._load_from(str(d)) == {}


def test_without_a_c_compiler_the_warm_up_says_so_in_one_line_and_the_jit_serves(tmp_path):
    """No gcc on PATH: the build fails, and the warm-up exits 0 with one line saying why
    (and what to install) and writes no build; the commands then run on the JIT, as
    AURACORE_NO_AOT=1 does above."""
    env = {**os.environ, "PATH": str(tmp_path / "nothing"), "AURACORE_AOT_DIR": str(tmp_path / "aot")}
    r = subprocess.run([sys.executable, "-m", "auracore.control.warm"], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and "ahead-of-time build failed" in lines[1] and "C compiler" in lines[1], r.stderr
    assert not any((tmp_path / "aot").glob(jit.AOT_MODULE + "*"))


@pytest.mark.parametrize("other_thread", [False, True])
def test_a_stop_that_lands_while_numba_compiles_a_kernel_is_raised_after_it(other_thread):
    """A SIGINT sent while a kernel's dispatcher compiles (or loads its cache) is held back
    until the compile returns, then raised in the caller: Numba's state is never left
    half made (a SIGHUP inside a cache load once ended in a segmentation fault). Under
    Python's own handler too, with another thread alive (the kernel may hand the signal to
    that thread, which the main thread's mask does not block: this failed in CI)."""
    import signal
    import time

    done = []
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    if other_thread:
        other.start()

    class FakeDispatcher:
        def compile(self, sig):
            if other_thread:   # where the kernel may send a process's signal
                signal.pthread_kill(other.ident, signal.SIGINT)
            else:
                os.kill(os.getpid(), signal.SIGINT)
            end = time.monotonic() + 0.05
            while time.monotonic() < end:  # Python code runs on: an unheld handler fires here
                pass
            done.append(sig)
            return "compiled"

    class FakeNumba:
        @staticmethod
        def njit(**options):
            return lambda fn: FakeDispatcher()

    kernel = jit.Kernel(lambda x: x, {})
    try:
        dispatcher = kernel.make(FakeNumba)
    finally:
        jit._kernels.remove(kernel)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            dispatcher.compile(("int64",))
    finally:
        release.set()
        signal.signal(signal.SIGINT, previous)
    assert signal.getsignal(signal.SIGINT) is previous
    assert done == [("int64",)]  # the compile ran to its end before the stop was raised
