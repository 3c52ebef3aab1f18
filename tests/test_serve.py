"""`auracore serve` without an audio server: file and null backends, config files, errors,
and the engine's lock-free plumbing (mailboxes, ring) driven directly."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from auracore.offline.params import build_vector
from auracore.kernels import params as P
from auracore.offline.demo import demo_track
from auracore.realtime.engine import Engine
from auracore.realtime.ring import AnalysisRing, ring_write

CLI = [sys.executable, "-m", "auracore.control.cli"]


def cli(*args, env=None, timeout=300):
    args = [str(a) for a in args]
    if args[0] == "serve":  # these tests need no control surface (and its ports)
        args.append("--no-surface")
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def demo_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "demo.wav"
    sf.write(path, demo_track(48000, 5.0), 48000, subtype="PCM_24")
    return path


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_file_backend_equals_render(demo_wav, tmp_path, subtype):
    """The daemon's file backend writes exactly what `auracore render` writes (dither included)."""
    a, b = tmp_path / "render.wav", tmp_path / "serve.wav"
    r = cli("render", demo_wav, a, "--preset", "club", "--subtype", subtype)
    assert r.returncode == 0, r.stderr
    r = cli("serve", "--backend", "file", "--input", demo_wav, "--output", b, "--preset", "club",
            "--subtype", subtype, "--fast", "--models", "off", "--status-interval", "0")
    assert r.returncode == 0, r.stderr
    x, _ = sf.read(a, dtype="float64")
    y, _ = sf.read(b, dtype="float64")
    assert x.shape == y.shape
    assert np.array_equal(x, y), f"max difference {np.max(np.abs(x - y))}"


def test_file_backend_paces_at_real_time(demo_wav, tmp_path):
    t0 = time.monotonic()
    r = cli("serve", "--backend", "file", "--input", demo_wav, "--output", tmp_path / "o.wav",
            "--models", "off", "--status-interval", "0")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert took >= 5.0, f"a 5 s file took {took:.2f} s: not paced"


def test_sigterm_before_the_end_leaves_no_output(demo_wav, tmp_path):
    """A file stream stopped part-way writes nothing (no partial OUT, no temporary file) and
    exits 143; the stop is prompt (a hang fails: 10 s bound, timing lives in bench/)."""
    out = tmp_path / "o.wav"
    proc = subprocess.Popen(CLI + ["serve", "--backend", "file", "--input", str(demo_wav), "--output", str(out),
                                   "--models", "off", "--status-interval", "0", "--no-surface"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stderr.readline()
        if "file backend" in line:
            break
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    rest = proc.stderr.read()
    assert proc.returncode == 143, rest
    assert "nothing was written" in rest, rest
    assert not out.exists()
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)


def test_null_backend_and_config_file(tmp_path):
    cfg = tmp_path / "serve.toml"
    cfg.write_text('backend = "null"\nblocksize = 256\nseconds = 1.5\nstatus_interval = 0.5\nmodels = "off"\n'
                   'preset = "broadcast"\n[set]\n"comp.ratio" = 4\n')
    r = cli("serve", "--config", cfg)
    assert r.returncode == 0, r.stderr
    assert "null backend" in r.stderr and "256-frame blocks" in r.stderr
    blocks = [int(ln.split("blocks ")[1].split()[0]) for ln in r.stderr.splitlines() if "stopped;" in ln]
    assert blocks and abs(blocks[0] - 1.5 * 48000 / 256) < 40, r.stderr


@pytest.mark.parametrize("args,words", [
    (["--backend", "file"], "needs --input IN and --output OUT"),
    (["--backend", "null", "--blocksize", "17"], "--blocksize 17"),
    (["--config", "/nonexistent.toml"], "config file /nonexistent.toml"),
    (["--backend", "null", "--set", "eq.1.gain_db=99"], "out of range"),
])
def test_bad_serve_options_give_one_line(args, words):
    r = cli("serve", *args, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert words in r.stderr.strip().splitlines()[-1], r.stderr


def test_no_device_says_so(tmp_path):
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER="none-here")
    r = cli("serve", "--hostapi", "jack", "--models", "off", env=env, timeout=60)
    assert r.returncode == 1
    line = r.stderr.strip().splitlines()[-1]
    assert "no duplex audio device" in line and "--backend file" in line, r.stderr


def test_control_pairs_land_together_at_a_block_boundary():
    """Pairs posted in one call are applied before the same block, all of them."""
    engine = Engine(48000, 2, build_vector("neutral", {}))
    block = np.zeros((256, 2), dtype=np.float32)
    engine.run_block(block, block.copy())
    pairs = [(P.INDEX[f"eq.{b}.gain_db"], float(b)) for b in range(1, 9)]
    posted = threading.Event()

    def post():
        assert engine.control.post(pairs)
        posted.set()

    threading.Thread(target=post).start()
    posted.wait(5)
    engine.run_block(block, block.copy())
    got = [engine.params[i] for i, _ in pairs]
    assert got == [v for _, v in pairs]
    assert engine.stats["control_applied"] == len(pairs)


def test_control_mailbox_refuses_when_full_and_never_blocks():
    engine = Engine(48000, 2)
    cap = engine.control.buf.shape[0]
    assert engine.control.post([(0, 1.0)] * cap)
    t0 = time.perf_counter()
    assert not engine.control.post([(0, 2.0)])
    assert time.perf_counter() - t0 < 2.0  # refuses at once (microseconds); a wait for room would hang
    assert engine.control.rejected == 1


def test_ring_drops_oldest_and_counts():
    ring = AnalysisRing(1024)
    x = np.arange(3000, dtype=np.float32)[:, None]
    for i in range(0, 3000, 100):
        ring_write(ring.data, ring.idx, x[i:i + 100])
    out = np.zeros(512, dtype=np.float32)
    assert ring.read(out)
    assert ring.dropped == 3000 - 1024
    assert out[0] == 3000 - 1024 and out[-1] == 3000 - 1024 + 511


def _gr_engine():
    """An engine whose limiter works on every block: a -1 dBTP ceiling, input at +6 dBFS."""
    params = build_vector("neutral", {"limiter.ceiling_dbtp": -1.0})
    return Engine(48000, 2, params)


def _gr_blocks(n_blocks, frames=256, seed=0):
    """Blocks of a sine whose level steps block by block (so each block's gain reduction differs)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_blocks * frames) / 48000.0
    x = np.sin(2 * np.pi * 997.0 * t) * np.repeat(rng.uniform(1.0, 4.0, n_blocks), frames)
    return np.repeat(x[:, None], 2, axis=1).astype(np.float32).reshape(n_blocks, frames, 2)


def test_gain_reduction_windows_partition_the_blocks():
    """Read after every block, each window is one block's lowest limiter gain; read every
    1-4 blocks, each window is exactly the lowest of the blocks since the previous window
    (0.0 dB difference): no block is lost or counted twice."""
    blocks = _gr_blocks(60)
    out = np.zeros_like(blocks[0])
    dense = _gr_engine()
    per_block = []
    for b in blocks:
        dense.run_block(b, out)
        per_block.append(dense.take_gain_reduction()[1])
    # a read after block k returns the window answered at block k, which is block k - 1
    # alone here: shift so that per_block[j] is block j's own lowest gain
    per_block = per_block[1:] + [None]
    assert min(v for v in per_block if v is not None) < -3.0  # the limiter works hard
    sparse = _gr_engine()
    rng = np.random.default_rng(1)
    windows, covered, start, k = [], [], 0, 0
    sparse.take_gain_reduction()  # the first request
    while k < len(blocks) - 1:
        step = int(rng.integers(1, 5))
        for _ in range(step):
            if k < len(blocks) - 1:
                sparse.run_block(blocks[k], out)
                k += 1
        windows.append(sparse.take_gain_reduction()[1])
        covered.append((start, k - 1))
        start = k
    # a request is answered at the first block after it, with the blocks since the previous
    # answer; the next read returns it: read j + 1 gives the blocks that ran between reads
    # j - 1 and j (read 1 an empty window)
    assert windows[0] == 0.0
    got = windows[1:]
    want = [min(per_block[a:b + 1]) for a, b in covered[:-1]]
    assert got == want, list(zip(got, want))


def test_gain_reduction_is_never_lost_to_a_concurrent_reader():
    """A reader thread takes windows as fast as it can while blocks run: the lowest gain over
    its windows is the lowest over all blocks (exactly), 20 times over."""
    blocks = _gr_blocks(40, seed=3)
    out = np.zeros_like(blocks[0])
    for trial in range(20):
        engine = _gr_engine()
        truth = _gr_engine()
        low_truth = 0.0
        seen = []
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                seen.append(engine.take_gain_reduction()[1])

        thread = threading.Thread(target=reader)
        thread.start()
        for b in blocks:
            engine.run_block(b, out)
            truth.run_block(b, out)
            low_truth = min(low_truth, truth.take_gain_reduction()[1])
        stop.set()
        thread.join()
        for _ in range(2):  # the window still open: a silent block hands it over, a read takes it
            engine.run_block(np.zeros_like(blocks[0]), out)
            seen.append(engine.take_gain_reduction()[1])
        truth.run_block(np.zeros_like(blocks[0]), out)
        low_truth = min(low_truth, truth.take_gain_reduction()[1])
        assert min(seen) == low_truth, (trial, min(seen), low_truth)


def test_fault_falls_back_to_dry_and_recovers():
    engine = Engine(48000, 2, build_vector("streaming", {}))
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(4096) / 48000)).astype(np.float32)
    block = np.stack([x, x], axis=1)
    out = np.zeros_like(block)
    engine.run_block(block, out)
    engine.stats["inject_fault"] = 1.0
    engine.run_block(block, out)
    assert engine.stats["faults"] == 1
    assert np.array_equal(out, block), "a faulted block plays the (sanitised) dry input"
    engine.run_block(block, out)
    assert np.all(np.isfinite(out)) and engine.stats["faults"] == 1


def test_render_ai_is_deterministic_and_block_size_independent(demo_wav, tmp_path):
    outs = []
    for blocksize in (1024, 700, 1024):
        out = tmp_path / f"ai{len(outs)}.wav"
        r = cli("render", demo_wav, out, "--preset", "streaming", "--ai", "--set", "ai.amount=1",
                "--subtype", "FLOAT", "--blocksize", blocksize)
        assert r.returncode == 0, r.stderr
        outs.append(sf.read(out)[0])
    manual = tmp_path / "manual.wav"
    assert cli("render", demo_wav, manual, "--preset", "streaming", "--subtype", "FLOAT").returncode == 0
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])
    diff_db = 20 * np.log10(np.max(np.abs(outs[0] - sf.read(manual)[0])))
    assert diff_db > -40, f"the models changed the render by only {diff_db:.1f} dBFS"


def test_bad_model_folder_is_one_line(demo_wav, tmp_path):
    r = cli("render", demo_wav, tmp_path / "o.wav", "--ai", "--models", tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "model file missing" in r.stderr.strip().splitlines()[-1], r.stderr
    r = cli("serve", "--backend", "null", "--seconds", "1", "--models", tmp_path, "--status-interval", "0")
    assert r.returncode == 0, r.stderr
    assert "model file missing" in r.stderr and "manual mode" in r.stderr


def test_inference_fault_is_survived():
    """SIGUSR2 makes the inference thread raise: the watchdog restarts it, the audio runs on."""
    proc = subprocess.Popen(CLI + ["serve", "--backend", "null", "--seconds", "6", "--status-interval", "1",
                                   "--set", "ai.enabled=1", "--no-surface"], stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if "models loaded" in line or not line:
            break
    assert "models loaded on CPUExecutionProvider" in lines[-1], "".join(lines)
    time.sleep(1.5)
    proc.send_signal(signal.SIGUSR2)
    rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0, rest
    final = [ln for ln in rest.splitlines() if "stopped;" in ln][0]
    assert "inference" in final and "failures 1" in final, final
    blocks = int(final.split("blocks ")[1].split()[0])
    assert blocks > 5.5 * 48000 / 1024 - 10, final


def test_sounddevice_still_has_the_private_names_the_callback_uses():
    """realtime/portaudio.py reaches PortAudio through sounddevice's private cffi handle;
    a sounddevice release that renames any of these names must fail here, loudly."""
    import sounddevice as sd

    from auracore.realtime import portaudio as pa

    assert [n for n in pa.SOUNDDEVICE_PRIVATE if not hasattr(sd, n)] == []
    assert callable(sd._lib.Pa_OpenStream) and sd._ffi.sizeof("PaStreamParameters") > 0
    assert pa._portaudio() is sd
