"""The live daemon on a real JACK server (dummy driver: a clocked audio server, no hardware).

Each test starts its own named server, the daemon on it (`auracore serve`, native
callback), and a JACK peer in a process of its own that plays a known signal into the
daemon and records what comes out; then stops the daemon, then the server, by PID.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from auracore.offline.params import build_vector
from auracore.kernels.chain import ChainState, process
from auracore.offline.demo import demo_track

pytestmark = pytest.mark.skipif(shutil.which("jackd") is None, reason="needs jackd (Debian jackd2)")

HERE = os.path.dirname(os.path.abspath(__file__))
RATE = 48000
SETTINGS = ["--preset", "neutral", "--set", "comp.ratio=3", "--set", "comp.threshold_db=-24",
            "--set", "eq.3.gain_db=4", "--set", "eq.7.gain_db=-3", "--set", "width.amount=1.3"]


def _clear_stale_jack_registry():
    """JACK's shared-memory registry holds 8 servers; a server that was killed (not stopped)
    leaves its entry behind, and after 8 of those no server starts on this machine again.
    With no jackd running, every entry is stale: remove them."""
    if subprocess.run(["pgrep", "-x", "jackd"], capture_output=True).returncode == 0:
        return
    for name in os.listdir("/dev/shm"):
        if name.startswith(("jack-", "jack_")):
            try:
                os.unlink(os.path.join("/dev/shm", name))
            except OSError:
                pass


class Jack:
    """A jackd dummy server of its own name; stop() by PID."""

    def __init__(self, period: int):
        _clear_stale_jack_registry()
        self.name = f"ac{uuid.uuid4().hex[:8]}"
        self.period = period
        self.proc = subprocess.Popen(["jackd", "-n", self.name, "--no-realtime", "-d", "dummy", "-r", str(RATE),
                                      "-p", str(period)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1")
        deadline = time.time() + 10
        while time.time() < deadline:
            r = subprocess.run(["jack_lsp", "-s", self.name], capture_output=True, text=True, env=self.env)
            if "system:playback_1" in r.stdout:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("jackd did not come up")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Daemon:
    """`auracore serve` on a JACK server, read line by line from its stderr."""

    def __init__(self, jack: Jack, blocksize: int, extra=(), client="aurad"):
        args = [sys.executable, "-m", "auracore.control.cli", "serve", "--hostapi", "jack", "--blocksize",
                str(blocksize), "--client-name", client, "--models", "off", "--status-interval", "1", "--no-surface"]
        self.client = client
        self.proc = subprocess.Popen(args + list(extra), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     text=True, env=jack.env)
        self.lines = []
        self.wait_for("streaming on", 60)

    def wait_for(self, text, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                if self.proc.poll() is not None:
                    raise AssertionError("daemon exited:\n" + "".join(self.lines))
                continue
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no '{text}' from the daemon:\n" + "".join(self.lines))

    def stop(self) -> float:
        """SIGTERM; returns seconds until the process was gone."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rest = self.proc.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest = self.proc.communicate()[1]
        self.lines += rest.splitlines(keepends=True)
        return time.monotonic() - t0

    def last_status(self) -> dict:
        for line in reversed(self.lines):
            m = re.search(r"blocks (\d+) \| xruns (\d+) .*faults (\d+)", line)
            if m:
                return {"blocks": int(m.group(1)), "xruns": int(m.group(2)), "faults": int(m.group(3))}
        raise AssertionError("no status line:\n" + "".join(self.lines))


def run_peer(jack: Jack, *args, timeout=120):
    r = subprocess.run([sys.executable, os.path.join(HERE, "jack_peer.py"), *args, "--server", jack.name],
                       capture_output=True, text=True, env=jack.env, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def offline_render(x: np.ndarray) -> np.ndarray:
    """What `auracore render` computes for x with SETTINGS, latency removed."""
    pairs = [SETTINGS[i + 1] for i in range(2, len(SETTINGS), 2)]
    from auracore.control.cmd_render import parse_assignments

    params = build_vector("neutral", parse_assignments(pairs))
    state = ChainState(RATE, 2, params=params)
    y = np.concatenate([x.astype(np.float64), np.zeros((state.latency, 2))])
    for i in range(0, len(y), 1024):
        process(y[i:i + 1024], state, params)
    return y[state.latency:]


@pytest.fixture
def jack1024():
    server = Jack(1024)
    yield server
    server.stop()


def test_live_output_equals_offline_render(jack1024, tmp_path):
    """AI off: what the daemon plays is the offline render, delayed by whole periods plus
    the limiter's latency; residual below -90 dBFS."""
    daemon = Daemon(jack1024, 1024, SETTINGS)
    try:
        x = demo_track(RATE, 6.0).astype(np.float32)
        np.save(tmp_path / "in.npy", x)
        run_peer(jack1024, "play", "--target", daemon.client, "--signal", str(tmp_path / "in.npy"),
                 "--out", str(tmp_path / "rec.npz"))
    finally:
        daemon.stop()
    rec = np.load(tmp_path / "rec.npz")["recording"].astype(np.float64)
    ref = offline_render(x)
    # the recording is the reference delayed by the I/O path: find the lag
    corr = np.correlate(rec[:40000, 0], ref[:20000, 0], mode="valid")
    lag = int(np.argmax(corr))
    got = rec[lag:lag + len(ref)]
    residual_db = 20 * np.log10(np.max(np.abs(got - ref)) + 1e-30)
    assert residual_db < -90, f"residual {residual_db:.1f} dBFS at lag {lag}"
    latency = ChainState(RATE, 2).latency
    assert (lag - latency) % 1024 == 0, f"lag {lag} frames is not the limiter's {latency} plus whole periods"


def test_sigterm_stops_cleanly_and_promptly(jack1024):
    """SIGTERM: exit 0 and no hang. The daemon stops in well under a second on an idle
    machine; the bound is 5 s so a busy CI machine (3.8 s measured once) does not fail it,
    while a stop that waits on a blocked thread (no bound) still does."""
    daemon = Daemon(jack1024, 1024)
    time.sleep(1.0)
    took = daemon.stop()
    assert daemon.proc.returncode == 0, "".join(daemon.lines)
    assert took < 5.0, f"took {took:.2f} s"


def test_chain_fault_is_counted_and_audio_goes_on(jack1024, tmp_path):
    daemon = Daemon(jack1024, 1024, SETTINGS)
    try:
        x = demo_track(RATE, 4.0).astype(np.float32)
        np.save(tmp_path / "in.npy", x)
        daemon.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        run_peer(jack1024, "play", "--target", daemon.client, "--signal", str(tmp_path / "in.npy"),
                 "--out", str(tmp_path / "rec.npz"))
        daemon.wait_for("blocks", 5)
        daemon.wait_for("blocks", 5)
    finally:
        daemon.stop()
    status = daemon.last_status()
    assert status["faults"] == 1, status
    rec = np.load(tmp_path / "rec.npz")["recording"]
    assert np.all(np.isfinite(rec))
    assert np.max(np.abs(rec)) > 0.1, "the daemon went quiet after the fault"


def test_daemon_exits_when_the_server_dies(jack1024):
    daemon = Daemon(jack1024, 1024)
    jack1024.proc.terminate()  # gone under the live stream (SIGKILL would also leak its registry entry)
    jack1024.proc.wait(10)
    try:
        daemon.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        daemon.proc.kill()
        raise AssertionError("the daemon hung after its server died")
    rest = daemon.proc.stderr.read()
    assert "audio stream stopped" in rest, rest


def test_zero_xruns_at_1024_under_gil_load(jack1024):
    """30 s at 1024 frames with a pure-Python thread spinning on the GIL: no xruns once the
    stream runs (PortAudio flags an underflow/overflow pair while it primes its buffers)."""
    daemon = Daemon(jack1024, 1024, ["--stress-gil"])
    try:
        daemon.wait_for("blocks", 5)
        daemon.wait_for("blocks", 5)
        settled = daemon.last_status()
        time.sleep(30)
    finally:
        daemon.stop()
    status = daemon.last_status()
    assert status["blocks"] - settled["blocks"] > 1300, (settled, status)
    assert status["xruns"] - settled["xruns"] == 0, (settled, status)


SPIN = "import time\nt = time.time() + {s}\nwhile time.time() < t:\n    sum(range(1000))\n"


def test_xruns_at_256_no_worse_than_a_bare_client():
    """At 256 frames this VM itself wakes late now and then: judge the daemon (with a
    pure-Python thread spinning on its GIL) against a bare pass-through client (with a
    spinning process beside it), by the graph xruns JACK reports, in alternating slices
    so that both see the same machine."""
    server = Jack(256)
    slices, seconds = 2, 8
    bare = ours = flags = 0
    try:
        for _ in range(slices):
            spin = subprocess.Popen([sys.executable, "-c", SPIN.format(s=seconds + 1)])
            bare += run_peer(server, "passthrough", "--seconds", str(seconds))["xruns"]
            spin.wait()
            daemon = Daemon(server, 256, ["--stress-gil"])
            try:
                ours += run_peer(server, "count", "--seconds", str(seconds))["xruns"]
            finally:
                daemon.stop()
            flags += daemon.last_status()["xruns"]
    finally:
        server.stop()
    assert ours <= 1.5 * bare + 3, (f"graph xruns with the daemon {ours} vs bare client {bare} in "
                                    f"{slices * seconds} s (daemon's PortAudio flags: {flags})")
