"""auracore batch on real Dask processes: a worker killed mid-run, a corrupt file, resume, LocalCluster."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from auracore.offline.analyze import analyze_file, json_safe
from auracore.offline.batch import output_name
from auracore.offline.params import build_params
from auracore.offline.render import render_file

AURACORE = [sys.executable, "-m", "auracore.control.cli"]
DASK = os.path.join(os.path.dirname(sys.executable), "dask")
RATE = 44100


def run_cli(*args, timeout=240, env=None):
    return subprocess.run(AURACORE + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tone(seconds: float, seed: int) -> np.ndarray:
    """A stereo chord and noise, different per seed: (frames, 2) float64."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 110.0 * 2 ** (seed % 12 / 12)
    x = sum(0.15 * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in (1, 2, 3, 5))
    left = x + 0.03 * rng.standard_normal(t.size)
    right = 0.8 * x + 0.03 * rng.standard_normal(t.size)
    return np.stack([left, right], axis=1)


def make_inputs(folder, count: int, seconds: float, seed0: int = 0) -> list[str]:
    """count files in two subfolders with the same base names (a/x0.wav, b/x0.wav ...)."""
    paths = []
    for i in range(count):
        sub = os.path.join(folder, "ab"[i % 2])
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, f"x{i // 2}.wav")
        sf.write(path, tone(seconds, seed0 + i), RATE, subtype="PCM_24")
        paths.append(path)
    return paths


class Cluster:
    """A `dask scheduler` and `dask worker` processes on loopback, each by its PID."""

    def __init__(self, tmp):
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.log = open(os.path.join(tmp, "dask.log"), "w")
        self.procs = []
        self.scheduler = self._start([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--no-dashboard"])
        self.workers = [self.add_worker(f"w{i}") for i in range(2)]
        self.wait_for(2)

    def _start(self, argv):
        p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def add_worker(self, name):
        return self._start([DASK, "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                            "--host", "127.0.0.1", "--name", name, "--memory-limit", "1GB"])

    def n_workers(self) -> int:
        from distributed import Client

        with Client(self.address, timeout="20s") as c:
            return len(c.scheduler_info(n_workers=-1)["workers"])

    def wait_for(self, n, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.n_workers() >= n:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the Dask workers did not start: see {self.log.name}")

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(str(tmp_path_factory.mktemp("dask")))
    try:
        yield c
    finally:
        c.close()


def summary_of(proc) -> dict:
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def analyze_json(path: str) -> str:
    """What `auracore analyze --json PATH` prints, computed in this process."""
    return json.dumps(json_safe(analyze_file(path).metrics), indent=2, allow_nan=False) + "\n"


def test_worker_killed_mid_run_every_render_identical(cluster, tmp_path):
    """30 renders on two workers; one worker is SIGKILLed after the first output appears.
    Every output is present and sample-identical (tolerance 0) to the single-process render."""
    inputs = make_inputs(str(tmp_path / "in"), 30, 1.5)
    out = tmp_path / "out"
    proc = subprocess.Popen(AURACORE + ["batch", "render", str(tmp_path / "in" / "a"), str(tmp_path / "in" / "b"),
                                        "--out", str(out), "--preset", "club", "--set", "eq.3.gain_db=2",
                                        "--scheduler", cluster.address, "--retries", "2", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = cluster.workers[1]
    deadline = time.monotonic() + 120
    written = []
    while time.monotonic() < deadline and proc.poll() is None:
        written = [n for n in os.listdir(out) if n.endswith(".wav")] if out.is_dir() else []
        if written:
            break
        time.sleep(0.01)
    assert 0 < len(written) < 30, "the batch finished (or never started) before the kill"
    print(f"killing a worker after {len(written)} outputs")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    s = json.loads(stdout)
    assert s["done"] == 30 and s["skipped"] == 0 and s["failed"] == 0, s
    names = sorted(n for n in os.listdir(out) if n.endswith(".wav"))
    assert len(names) == 30 and not [n for n in os.listdir(out) if n.startswith(".auracore-")]
    params = build_params("club", {"eq.3.gain_db": 2.0})
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    for i, path in enumerate(inputs):
        got = out / output_name(path, ".wav")
        ref = ref_dir / f"{i}.wav"
        if i == 0:  # the single command itself, as a user runs it
            r = run_cli("render", path, ref, "--preset", "club", "--set", "eq.3.gain_db=2")
            assert r.returncode == 0, r.stderr
        else:
            render_file(path, str(ref), params)
        a, ra = sf.read(got, dtype="int32")
        b, rb = sf.read(ref, dtype="int32")
        assert ra == rb == RATE and a.shape == b.shape == (int(1.5 * RATE), 2)
        assert np.array_equal(a, b), f"{path}: batch output differs from the single render"
    # the cluster goes on with a fresh second worker
    cluster.workers[1] = cluster.add_worker("w1b")
    cluster.wait_for(2)


def test_corrupt_file_reported_others_done_then_resume_skips(cluster, tmp_path):
    """A corrupt file: exit 1, in the summary's failures with its reason; the 7 good files (one
    named in bytes that are not UTF-8) hold exactly what `analyze --json` prints. A second run
    skips the 7 (mtimes unchanged)."""
    inputs = make_inputs(str(tmp_path / "in"), 6, 1.0, seed0=40)
    odd = os.fsdecode(os.path.join(os.fsencode(str(tmp_path / "in" / "b")), b"n\xffme.wav"))  # not UTF-8
    sf.write(os.fsencode(odd), tone(1.0, 47), RATE, subtype="PCM_24")
    inputs.append(odd)
    bad = tmp_path / "in" / "a" / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt this is not audio")
    out = tmp_path / "out"
    args = ["batch", "analyze", *inputs, str(bad), "--out", out, "--scheduler", cluster.address, "--json"]
    r = run_cli(*args)
    assert r.returncode == 1, r.stderr
    s = summary_of(r)
    assert (s["done"], s["skipped"], s["failed"], s["total"]) == (7, 0, 1, 8)
    assert s["failures"][0]["input"] == str(bad) and "not a readable audio file" in s["failures"][0]["reason"]
    assert f"{bad}: " in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (out / output_name(str(bad), ".json")).exists()
    single = run_cli("analyze", "--json", inputs[0])
    assert single.returncode == 0, single.stderr
    for i, path in enumerate(inputs):
        text = (out / output_name(path, ".json")).read_text()
        assert text == (single.stdout if i == 0 else analyze_json(path)), path
        assert json.loads(text)["path"] == path
    mtimes = {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out)}
    assert len(mtimes) == 7
    r2 = run_cli(*args)
    assert r2.returncode == 1, r2.stderr
    s2 = summary_of(r2)
    assert (s2["done"], s2["skipped"], s2["failed"]) == (0, 7, 1)
    assert {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out)} == mtimes
    # the same base name in two folders: two outputs
    assert output_name(inputs[0], ".json") != output_name(inputs[1], ".json")
    assert os.path.basename(inputs[0]) == os.path.basename(inputs[1])


def test_local_cluster_two_workers(tmp_path):
    """No address: a LocalCluster of --workers 2; profile JSON equal to `profile --json`."""
    inputs = make_inputs(str(tmp_path / "in"), 4, 1.0, seed0=80)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    r = run_cli("batch", "profile", tmp_path / "in" / "a", tmp_path / "in" / "b", "--out", out,
                "--workers", "2", "--json", env=env)
    assert r.returncode == 0, r.stderr
    s = summary_of(r)
    assert (s["done"], s["failed"], s["workers"]) == (4, 0, 2)
    assert s["scheduler"].startswith("tcp://127.0.0.1:")
    single = run_cli("profile", "--json", inputs[2])
    assert single.returncode == 0, single.stderr
    assert (out / output_name(inputs[2], ".json")).read_text() == single.stdout


def test_usage_and_start_errors(tmp_path):
    """Usage errors exit 2 with one line; options that cannot run fail once, up front (exit 1)."""
    wav = make_inputs(str(tmp_path / "in"), 1, 0.5)[0]
    r = run_cli("batch", "render", wav, "--out", tmp_path / "o", "--workers", "0")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run_cli("batch", "render", wav, "--out", tmp_path / "o", "--preset", "nosuchpreset")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "nosuchpreset" in r.stderr and not (tmp_path / "o" / output_name(wav, ".wav")).exists()


def test_timeout_reports_the_file_and_goes_on(tmp_path):
    """--timeout 1: a 200 s two-pass render (several seconds of work) fails as timed out,
    its worker restarts, the short file before it is done; the run ends well before the
    long render could have."""
    short = make_inputs(str(tmp_path / "in"), 1, 0.5, seed0=90)[0]
    long_path = str(tmp_path / "in" / "long.wav")
    x = np.tile(tone(2.0, 91), (100, 1))
    sf.write(long_path, x, RATE, subtype="PCM_16")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    t0 = time.monotonic()
    r = run_cli("batch", "render", short, long_path, "--out", out, "--two-pass", "--workers", "1",
                "--timeout", "1", "--json", env=env)
    elapsed = time.monotonic() - t0
    assert r.returncode == 1, r.stderr
    s = summary_of(r)
    assert (s["done"], s["failed"]) == (1, 1), s
    assert s["failures"] == [{"input": long_path, "reason": "timed out after 1 s"}]
    assert (out / output_name(short, ".wav")).is_file() and not (out / output_name(long_path, ".wav")).exists()
    assert not [n for n in os.listdir(out) if n.startswith(".auracore-")]
    assert s["files_s"] < 20.0 and elapsed < 60.0


def test_separate_and_master_equal_the_single_commands(cluster, tmp_path):
    """batch separate (DSP) gives one stem folder per input, and batch master one file per
    input; each file byte-identical to what the single command writes."""
    inputs = make_inputs(str(tmp_path / "in"), 2, 1.0, seed0=60)
    ref = make_inputs(str(tmp_path / "ref"), 1, 1.5, seed0=70)[0]
    r = run_cli("batch", "separate", *inputs, "--out", tmp_path / "sep", "--model", "dsp", "--scheduler",
                cluster.address, "--json")
    assert r.returncode == 0 and summary_of(r)["done"] == 2, r.stderr
    r = run_cli("batch", "master", *inputs, "--out", tmp_path / "mas", "--reference", ref, "--amount", "0.7",
                "--format", "flac", "--scheduler", cluster.address, "--json")
    assert r.returncode == 0 and summary_of(r)["done"] == 2, r.stderr
    single = run_cli("separate", inputs[1], tmp_path / "one_sep", "--model", "dsp")
    assert single.returncode == 0, single.stderr
    got = tmp_path / "sep" / output_name(inputs[1], "")
    assert sorted(os.listdir(got)) == sorted(os.listdir(tmp_path / "one_sep")) == [
        "bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    for name in os.listdir(got):
        assert (got / name).read_bytes() == (tmp_path / "one_sep" / name).read_bytes(), name
    single = run_cli("master", inputs[0], tmp_path / "one.flac", "--reference", ref, "--amount", "0.7")
    assert single.returncode == 0, single.stderr
    a, _ = sf.read(tmp_path / "mas" / output_name(inputs[0], ".flac"), dtype="int32")
    b, _ = sf.read(tmp_path / "one.flac", dtype="int32")
    assert a.shape == b.shape and np.array_equal(a, b)


def _catalog_rows(db: str) -> list:
    """Every stored region with its plugin results, in a form that compares across catalogs
    (ids and timings left out)."""
    import sqlite3

    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT f.path, f.content_sha256, f.error, r.idx, r.start_s, r.end_s, r.class, r.loudness_lufs, "
        "a.plugin, a.version, a.result_json, a.error FROM files f LEFT JOIN regions r ON r.file_id = f.id "
        "LEFT JOIN region_analysis a ON a.region_id = r.id ORDER BY f.path, r.idx, a.plugin").fetchall()
    vectors = con.execute("SELECT f.path, r.idx, v.fingerprint, v.embedding FROM region_vectors v JOIN regions r "
                          "ON r.id = v.region_id JOIN files f ON f.id = r.file_id ORDER BY f.path, r.idx").fetchall()
    con.close()
    return rows + vectors


def test_catalog_add_workers_analyse_one_writer_inserts(cluster, tmp_path):
    """batch catalog-add: the workers analyse (a JSON record per file under --out), this
    process inserts; the catalog equals what `catalog add` makes of the same files, row for
    row (plugin results and vectors exact), a corrupt file is an error row in both, and a rerun
    changes nothing."""
    inputs = make_inputs(str(tmp_path / "in"), 3, 1.5, seed0=80)
    bad = tmp_path / "in" / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    db = str(tmp_path / "batch.sqlite")
    args = ["batch", "catalog-add", *inputs, str(bad), "--out", tmp_path / "rec", "--db", db, "--plugins",
            "loudness,model", "--scheduler", cluster.address, "--json"]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr  # an unreadable file is a catalog row with its error, as in add
    s = summary_of(r)
    assert s["done"] == 4 and s["files_inserted"] == 4 and s["regions_inserted"] >= 3, s
    single = str(tmp_path / "single.sqlite")
    one = run_cli("catalog", "--db", single, "add", *inputs, str(bad), "--plugins", "loudness,model")
    assert one.returncode == 0, one.stderr
    got, want = _catalog_rows(db), _catalog_rows(single)
    assert len(got) == len(want) > 3
    assert got == want
    s = summary_of(run_cli(*args))
    assert s["skipped"] == 4 and s["files_inserted"] == 0 and s["files_unchanged"] == 4, s  # bad.wav too: same bytes
