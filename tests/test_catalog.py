"""The region catalog: silence split, plugins (and their failures), the SQLite store, search,
export and the CLI, on real files in real formats and SQLite files on disk.

Tolerances: region edges within one 50 ms level frame; loudness within 0.1 LU of the
sine's analytic value; tempo within 1 BPM of a 120 BPM click track.
"""

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from auracore.offline.catalog import plugins as P
from auracore.offline.catalog import search as S
from auracore.offline.catalog.regions import split_regions
from auracore.offline.catalog.schema import SCHEMA_VERSION, CatalogError, connect
from auracore.offline.catalog.store import Catalog, file_loudness

SR = 44100
AUR = [sys.executable, "-m", "auracore.control.cli"]
FRAME_S = 0.05


def sine(seconds, freq_hz=997.0, amp=0.1, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return amp * np.sin(2 * np.pi * freq_hz * t)


def clicks(seconds, bpm=120.0, sr=SR):
    x = np.zeros(int(seconds * sr))
    n = np.arange(2000)
    for b in np.arange(0, seconds, 60.0 / bpm):
        i = int(b * sr)
        k = min(2000, x.size - i)
        x[i:i + k] += 0.8 * np.sin(2 * np.pi * 1000 * n[:k] / sr) * np.exp(-n[:k] / 300)
    return x


def make_media(folder):
    """tone.wav: silence 1 s, 997 Hz at -20 dBFS 3 s, silence 1 s, white noise 2 s, silence 0.5 s
    (stereo); tone48.flac: 0.5 s silence then the sine 3 s (mono, 48 kHz); sub/clicks.ogg: a
    120 BPM click track, 10 s; corrupt.wav, empty.wav (no frames), song.m4a (M4A)."""
    os.makedirs(os.path.join(folder, "sub"), exist_ok=True)
    rng = np.random.default_rng(7)
    z = lambda s: np.zeros(int(s * SR))  # noqa: E731
    x = np.concatenate([z(1), sine(3), z(1), 0.1 * rng.standard_normal(2 * SR), z(0.5)])
    sf.write(os.path.join(folder, "tone.wav"), np.stack([x, x], 1), SR, subtype="FLOAT")
    y = np.concatenate([np.zeros(24000), sine(3, sr=48000)])
    sf.write(os.path.join(folder, "tone48.flac"), y, 48000, subtype="PCM_24")
    sf.write(os.path.join(folder, "sub", "clicks.ogg"), clicks(10), SR)
    with open(os.path.join(folder, "corrupt.wav"), "wb") as f:
        f.write(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40))
    sf.write(os.path.join(folder, "empty.wav"), np.zeros((0, 1)), SR)
    with open(os.path.join(folder, "song.m4a"), "wb") as f:
        f.write(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A mp42isom" + bytes(64))


def cli(*args, db, check=True, timeout=120):
    p = subprocess.run(AUR + ["catalog", "--db", db] + list(args), capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    return p


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalog")
    media = str(root / "media")
    make_media(media)
    db = str(root / "c.sqlite")
    p = cli("add", media, "--json", db=db)
    return {"media": media, "db": db, "add": json.loads(p.stdout)}


# ---- the silence split --------------------------------------------------------------------
def test_split_regions_edges_gap_and_min_length():
    z = lambda s: np.zeros(int(s * SR))  # noqa: E731
    x = np.concatenate([z(1.0), sine(2.0), z(0.3), sine(1.0), z(1.2), sine(0.2), z(1.0), sine(1.5)])[:, None]
    lufs, _ = file_loudness(x.astype(np.float32), SR)
    split = split_regions(x, SR, lufs, threshold_db=-30, min_region_s=0.5, min_gap_s=0.5)
    # the 0.3 s gap is joined, the 0.2 s burst dropped
    want = [(1.0, 4.3), (6.7, 8.2)]
    got = [(r.start_s, r.end_s) for r in split.regions]
    assert len(got) == len(want), got
    for (a, b), (c, d) in zip(got, want):
        assert abs(a - c) <= FRAME_S + 1e-9 and abs(b - d) <= FRAME_S + 1e-9, (got, want)
    # a smaller gap setting splits at the 0.3 s silence
    split2 = split_regions(x, SR, lufs, min_gap_s=0.2)
    assert len(split2.regions) == 3
    assert split_regions(np.zeros((SR, 1)), SR, -math.inf).regions == ()


# ---- add ----------------------------------------------------------------------------------
def test_add_files_regions_and_plugin_values(built):
    db, media = built["db"], built["media"]
    assert built["add"]["files_added"] == 3 and built["add"]["files_failed"] == 3
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    files = {os.path.basename(r["path"]): r for r in con.execute("SELECT * FROM files")}
    assert set(files) == {"tone.wav", "tone48.flac", "clicks.ogg", "corrupt.wav", "empty.wav", "song.m4a"}
    assert "M4A/AAC cannot be decoded here" in files["song.m4a"]["error"]
    assert files["corrupt.wav"]["error"] and files["empty.wav"]["error"]
    regs = con.execute("SELECT r.*, f.path FROM regions r JOIN files f ON f.id = r.file_id WHERE f.path LIKE '%tone.wav' "
                       "ORDER BY start_s").fetchall()
    assert [v for r in regs for v in (r["start_s"], r["end_s"])] == pytest.approx([1.0, 4.0, 5.0, 7.0], abs=FRAME_S)
    # stereo 997 Hz sine at -20 dBFS peak: -20.0 LUFS (BS.1770: a full-scale sine per channel is -3.01 LUFS each)
    assert regs[0]["loudness_lufs"] == pytest.approx(-20.0, abs=0.1)
    assert regs[0]["true_peak_dbtp"] == pytest.approx(-20.0, abs=0.1)
    assert regs[1]["class"] == "noise" and regs[0]["class"] != "noise"
    analyses = con.execute("SELECT plugin, result_json, error FROM region_analysis WHERE region_id = ?",
                           (regs[0]["id"],)).fetchall()
    names = {a["plugin"] for a in analyses}
    assert {"loudness", "model", "profile"} <= names and all(a["error"] is None for a in analyses)
    model = json.loads(next(a["result_json"] for a in analyses if a["plugin"] == "model"))
    assert len(model["embedding"]) == 32 and sum(model["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    click = con.execute("SELECT r.tempo_bpm FROM regions r JOIN files f ON f.id = r.file_id WHERE f.path LIKE '%clicks.ogg'").fetchall()
    assert len(click) == 1 and click[0][0] == pytest.approx(120.0, abs=1.0)
    flac = con.execute("SELECT r.start_s, r.loudness_lufs FROM regions r JOIN files f ON f.id = r.file_id "
                       "WHERE f.path LIKE '%tone48.flac'").fetchall()
    # mono: -20 dBFS peak sine = -23.01 LUFS
    assert len(flac) == 1 and flac[0][0] == pytest.approx(0.5, abs=FRAME_S) and flac[0][1] == pytest.approx(-23.01, abs=0.1)
    summ = con.execute("SELECT s.* FROM file_summary s JOIN files f ON f.id = s.file_id WHERE f.path LIKE '%tone.wav'").fetchone()
    assert summ["regions"] == 2 and summ["content_s"] == pytest.approx(5.0, abs=2 * FRAME_S)


def test_fingerprint_plugin_present_or_honestly_absent(tmp_path, built):
    rows = json.loads(cli("plugins", "--json", db=built["db"]).stdout)
    fp = next(r for r in rows if r["name"] == "fingerprint")
    try:
        import auracore.offline.fingerprint as F
    except ImportError:
        assert fp["available"] is False and "auracore.offline.fingerprint" in fp["absent_reason"]
        con = sqlite3.connect(built["db"])
        assert con.execute("SELECT count(*) FROM region_analysis WHERE plugin = 'fingerprint'").fetchone()[0] == 0
        return
    assert fp["available"] is True
    con = sqlite3.connect(built["db"])
    rid, blob = con.execute("SELECT region_id, fingerprint FROM region_vectors ORDER BY region_id").fetchone()
    assert blob is not None and len(blob) == 4 * len(F.FEATURE_NAMES) == 4 * 64
    r = con.execute("SELECT f.path, r.start_s, r.end_s FROM regions r JOIN files f ON f.id = r.file_id WHERE r.id = ?",
                    (rid,)).fetchone()
    x, rate = sf.read(r[0], always_2d=True)
    seg = x[int(round(r[1] * rate)):int(round(r[2] * rate))].astype(np.float32).astype(np.float64)
    ref = F.fingerprint(seg, rate).values  # the catalog analyses the float32 samples it holds
    np.testing.assert_allclose(np.frombuffer(blob, np.float32), ref, rtol=1e-4, atol=1e-4)


def _boom(x, sr):
    raise RuntimeError("plugin exploded")


def _hang(x, sr):
    time.sleep(60)
    return {}


def _nan(x, sr):
    return {"value": float("nan")}


def test_failing_plugins_become_error_rows_and_the_batch_goes_on(tmp_path, built):
    media = built["media"]
    plugins = [P.Plugin("boom", 1, _boom, 5.0), P.Plugin("hang", 1, _hang, 1.0), P.Plugin("nan", 1, _nan, 5.0),
               P.BUILTIN["loudness"]]
    t0 = time.monotonic()
    with Catalog(str(tmp_path / "f.sqlite")) as cat:
        res = cat.add([os.path.join(media, "tone.wav"), os.path.join(media, "tone48.flac")], plugins=plugins)
        con = cat.con
        assert res.added == 2 and res.regions == 3
        errs = {(r[0], r[1]): r[2] for r in con.execute("SELECT region_id, plugin, error FROM region_analysis")}
        assert len(errs) == 3 * 4
        for rid in (1, 2, 3):
            assert "RuntimeError: plugin exploded" in errs[(rid, "boom")]
            assert "time limit of 1 s" in errs[(rid, "hang")]
            assert errs[(rid, "nan")] == "returned NaN"
            assert errs[(rid, "loudness")] is None
        assert res.plugin_errors == 9 and cat.stats()["errors"] == 9
    assert time.monotonic() - t0 < 30  # three hangs of 1 s each, not 60 s


def test_readd_unchanged_does_nothing_changed_is_reanalysed(tmp_path):
    media = tmp_path / "m"
    media.mkdir()
    path = str(media / "a.wav")
    z = np.zeros(SR)
    sf.write(path, np.concatenate([z, sine(2), z]), SR)
    db = str(tmp_path / "r.sqlite")
    with Catalog(db) as cat:
        assert cat.add([str(media)], plugins=[P.BUILTIN["loudness"]]).added == 1
        before = cat.con.execute("SELECT id, added_at FROM files").fetchall()
        again = cat.add([str(media)], plugins=[P.BUILTIN["loudness"]])
        assert (again.added, again.skipped, again.regions) == (0, 1, 0)
        assert cat.con.execute("SELECT id, added_at FROM files").fetchall() == before
        sf.write(path, np.concatenate([z, sine(2), z, sine(2), z]), SR)
        changed = cat.add([path], plugins=[P.BUILTIN["loudness"]])
        assert changed.added == 1
        assert cat.con.execute("SELECT count(*) FROM files").fetchone()[0] == 1
        assert cat.con.execute("SELECT count(*) FROM regions").fetchone()[0] == 2
        assert cat.con.execute("SELECT count(*) FROM region_analysis").fetchone()[0] == 2


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return text.encode() in fh.read()
    except OSError:
        return False


def test_sigkill_mid_add_leaves_a_consistent_db_and_rerun_resumes(tmp_path):
    media = tmp_path / "m"
    media.mkdir()
    for i in range(6):
        x = np.concatenate([np.zeros(SR // 2), sine(15, freq_hz=200 + 50 * i), np.zeros(SR // 2)])
        sf.write(str(media / f"f{i}.wav"), x, SR)
    db = str(tmp_path / "k.sqlite")
    proc = subprocess.Popen(AUR + ["catalog", "--db", db, "add", str(media), "--plugins", "loudness,model,profile"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and done < 2:
        time.sleep(0.05)
        if os.path.exists(db):
            try:
                with sqlite3.connect(db, timeout=1) as c:
                    done = c.execute("SELECT count(*) FROM files").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert 2 <= done < 6, f"the add finished {done} files before it was killed; the test needs it mid-way"
    # nothing of the killed add lives on (its plugin worker dies with it)
    left = []
    for _ in range(50):
        left = [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline_has(pid, db)]
        if not left:
            break
        time.sleep(0.1)
    assert not left, f"processes of the killed add still running: {left}"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    n_files = con.execute("SELECT count(*) FROM files").fetchone()[0]
    assert n_files < 6
    # every stored file is whole: a summary, its regions, every plugin for every region
    bad = con.execute("SELECT count(*) FROM files f LEFT JOIN file_summary s ON s.file_id = f.id WHERE s.regions IS NULL "
                      "OR s.regions != (SELECT count(*) FROM regions r WHERE r.file_id = f.id)").fetchone()[0]
    assert bad == 0
    assert con.execute("SELECT count(*) FROM region_analysis").fetchone()[0] == 3 * con.execute(
        "SELECT count(*) FROM regions").fetchone()[0]
    con.close()
    p = cli("add", str(media), "--json", "--plugins", "loudness", db=db)
    d = json.loads(p.stdout)
    assert d["files_unchanged"] == n_files and d["files_added"] == 6 - n_files


_STOP_AT_COMMIT = """
import os, signal, sqlite3, sys
from auracore.control.entry import install_signal_handlers
from auracore.offline.catalog.store import Catalog
from auracore.stopping import Terminated, finish
install_signal_handlers()
db, wav, late = sys.argv[1], sys.argv[2], sys.argv[3] == "late"
def hook():  # runs with the stops held, just before the last file's commit
    if late:
        finish()
    os.kill(os.getpid(), signal.SIGTERM)
try:
    with Catalog(db) as cat:
        res = cat.add([wav], plugins=[], before_last_commit=hook)
    outcome = f"finished {res.to_dict()['files_added']}"
except Terminated as exc:
    outcome = f"stopped {exc.signum}"
n = sqlite3.connect(db).execute("SELECT count(*) FROM files WHERE error IS NULL").fetchone()[0]
print(outcome, n)
"""


@pytest.mark.parametrize("late", [False, True])
def test_a_stop_at_the_last_commit_keeps_the_file_and_after_finish_is_too_late(tmp_path, late):
    """A SIGTERM that lands while a file's transaction commits is held over the commit: the
    file is stored whole, and the stop is then raised (not an SQLite "no transaction is
    active" from a rollback after the commit). Once the command line has called finish (it
    does for the last file: a stop there is too late to undo the add), the add ends normally."""
    wav = tmp_path / "a.wav"
    sf.write(str(wav), sine(2, freq_hz=300), SR)
    db = tmp_path / "c.sqlite"
    r = subprocess.run([sys.executable, "-c", _STOP_AT_COMMIT, str(db), str(wav), "late" if late else "now"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    expect = "finished 1 1" if late else f"stopped {int(signal.SIGTERM)} 1"
    assert r.stdout.split("\n")[-2] == expect, r.stdout + r.stderr[-2000:]


# ---- search, tag, stats, export -------------------------------------------------------------
def test_search_filters_and_json(built):
    db = built["db"]
    q = lambda *a: json.loads(cli("search", "--json", *a, db=db).stdout)  # noqa: E731
    allr = q("--limit", "100")
    assert len(allr) == 4 and all({"path", "region_id", "start_s", "end_s"} <= set(r) for r in allr)
    noise = q("--class", "noise")
    assert len(noise) == 1 and noise[0]["start_s"] == pytest.approx(5.0, abs=FRAME_S)
    assert [os.path.basename(r["path"]) for r in q("--tempo", "110-130")] == ["clicks.ogg"]
    loud = q("--loudness=-20.5--19.5")
    assert len(loud) == 1 and loud[0]["loudness_lufs"] == pytest.approx(-20.0, abs=0.1)
    assert {round(r["duration_s"]) for r in q("--duration", "2.9-3.1")} == {3}
    key = allr[0]["key"]
    assert key and all(r["key"] == key for r in q("--key", key)) and q("--key", key)
    assert [os.path.basename(r["path"]) for r in q("--text", "tone4")] == ["tone48.flac"]
    cli("tag", str(os.path.join(built["media"], "tone.wav")), "drums", "take-2", db=db)
    tagged = q("--tag", "take-2")
    assert len(tagged) == 2 and all(r["path"].endswith("tone.wav") for r in tagged)
    assert len(q("--text", "take")) == 2
    cli("tag", f"r{noise[0]['region_id']}", "hiss", db=db)
    assert [r["region_id"] for r in q("--tag", "hiss")] == [noise[0]["region_id"]]
    cli("tag", str(os.path.join(built["media"], "tone.wav")), "take-2", "--remove", db=db)
    assert q("--tag", "take-2") == []
    p = cli("search", "--tempo", "abc", db=db, check=False)
    assert p.returncode == 2 or (p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1)


def test_similar_regions(built):
    db = built["db"]
    q = lambda *a: json.loads(cli("search", "--json", *a, db=db).stdout)  # noqa: E731
    con = sqlite3.connect(db)
    tone_rid = con.execute("SELECT r.id FROM regions r JOIN files f ON f.id = r.file_id WHERE f.path LIKE '%tone.wav' "
                           "ORDER BY r.start_s").fetchone()[0]
    like = q("--like-region", str(tone_rid), "--limit", "3")
    # the same sine in another file (other rate, mono) is nearer than the click track or the noise
    assert os.path.basename(like[0]["path"]) == "tone48.flac"
    assert like[0]["distance"] < like[1]["distance"] and tone_rid not in [r["region_id"] for r in like]
    ex = q("--like", os.path.join(built["media"], "tone.wav") + ":5.0-7.0", "--limit", "2")
    assert ex[0]["start_s"] == pytest.approx(5.0, abs=FRAME_S) and ex[0]["distance"] < 0.2 * ex[1]["distance"]
    with_filter = q("--like-region", str(tone_rid), "--class", "noise")
    assert len(with_filter) == 1 and with_filter[0]["class"] == "noise"


def test_stats_export_remove(tmp_path, built):
    db = str(tmp_path / "s.sqlite")
    import shutil

    shutil.copy(built["db"], db)
    st = json.loads(cli("stats", "--json", db=db).stdout)
    assert (st["files"], st["files_failed"], st["regions"]) == (6, 3, 4)
    assert st["errors"] == 3 and st["duration_s"] == pytest.approx(7.5 + 3.5 + 10.0, abs=0.01)
    cli("export", "--parquet", str(tmp_path / "e.parquet"), db=db)
    cli("export", "--csv", str(tmp_path / "e.csv"), db=db)
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    t = pq.read_table(str(tmp_path / "e.parquet"))
    assert t.num_rows == 4 + 3 and {"path", "region_id", "start_s", "end_s", "class", "tempo_bpm"} <= set(t.column_names)
    c = pcsv.read_csv(str(tmp_path / "e.csv"))
    assert c.num_rows == t.num_rows
    assert sorted(x for x in c.column("loudness_lufs").to_pylist() if x is not None) == pytest.approx(
        sorted(x for x in t.column("loudness_lufs").to_pylist() if x is not None), abs=1e-3)
    cli("remove", os.path.join(built["media"], "tone.wav"), db=db)
    st2 = json.loads(cli("stats", "--json", db=db).stdout)
    assert (st2["files"], st2["regions"]) == (5, 2)
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM region_analysis WHERE region_id NOT IN (SELECT id FROM regions)").fetchone()[0] == 0


def test_bad_catalogs_and_options_are_one_line_errors(tmp_path):
    newer = str(tmp_path / "newer.sqlite")
    c = sqlite3.connect(newer)
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    c.close()
    other = str(tmp_path / "other.sqlite")
    c = sqlite3.connect(other)
    c.execute("CREATE TABLE x (a)")
    c.close()
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    for db, args in ((newer, ["stats"]), (other, ["stats"]), (str(junk), ["stats"]), (str(tmp_path / "none.sqlite"), ["stats"]),
                     (str(tmp_path), ["stats"]), (newer, ["add", str(tmp_path)]), (str(tmp_path / "x.sqlite"), ["add", "/nonexistent"]),
                     (other, ["tag", "123", "t"]), (str(tmp_path / "x.sqlite"), ["add", str(tmp_path), "--plugins", "nope"])):
        p = cli(*args, db=db, check=False)
        assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, (db, args, p.stderr)
    with pytest.raises(CatalogError):
        connect(newer)


def test_search_scales_to_many_regions(tmp_path):
    """Filters use the indexes and the vector scan stays in memory (the bench measures 100k)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_catalog", os.path.join(os.path.dirname(__file__), "..", "bench", "catalog.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    make_synthetic = bench.make_synthetic
    db = str(tmp_path / "big.sqlite")
    make_synthetic(db, 5000, seed=1)
    with Catalog(db, readonly=True) as cat:
        plan = " ".join(r[-1] for r in cat.con.execute(
            "EXPLAIN QUERY PLAN SELECT r.id FROM regions r WHERE r.tempo_bpm >= 100 AND r.tempo_bpm <= 101"))
        assert "INDEX regions_tempo" in plan
        index = S.VectorIndex()
        vec = index.vector_of(cat.con, 17)
        ids, dist = index.nearest(cat.con, vec, 5)
        assert ids[0] == 17 and dist[0] == pytest.approx(0.0, abs=1e-3)
        # brute force in float64 agrees on the order
        m = np.stack([np.concatenate([np.frombuffer(a, np.float32), np.frombuffer(b, np.float32)])
                      for a, b in cat.con.execute("SELECT fingerprint, embedding FROM region_vectors ORDER BY region_id")])
        z = (m - m.mean(0)) / m.std(0)
        ref = np.argsort(((z - z[16]) ** 2).sum(1))[:5] + 1
        assert list(ids) == list(ref)


def test_absurd_samples_are_a_file_error_row(tmp_path):
    """A float WAV holding 1e300 (far beyond +80 dBFS, and beyond float32) is stored as a file
    with its error, with no warning on the way, as NaN and infinite content are."""
    x = 0.1 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)
    x[1000] = 1e300
    sf.write(str(tmp_path / "huge.wav"), x, SR, subtype="DOUBLE")
    db = str(tmp_path / "c.sqlite")
    p = cli("add", str(tmp_path / "huge.wav"), "--json", "--plugins", "loudness", db=db)
    assert "Warning" not in p.stderr, p.stderr
    assert json.loads(p.stdout)["files_failed"] == 1
    con = sqlite3.connect(db)
    (err,) = con.execute("SELECT error FROM files").fetchone()
    assert "absurd" in err and con.execute("SELECT count(*) FROM regions").fetchone()[0] == 0
