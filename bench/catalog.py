"""Speed and memory of ``auracore catalog``: add on music, search and similar-region search on many regions.

- add: generated electronic tracks (models/sources.py: kick, snare, hats, saw bass, pad
  chords; 6 s clips joined into tracks with 1 s silences between them, 48 kHz stereo) added
  with every available plugin on; the figure is CPU seconds (this process and its plugin
  worker) per second of audio ("x real time per core", target <= 0.05) and the peak RSS of
  the two processes (target < 1 GB for 500 MB of audio: --add-mb sets how much is made).
- search: a catalog of --regions synthetic regions (random class, tempo, key, duration,
  loudness, tags, 64-float fingerprint and 32-float embedding) in SQLite on disk; p50/p99
  of random filter searches (target p99 < 20 ms) and of similar-region searches by region
  id with the matrix loaded once (target p99 < 50 ms).

    nice -n 10 .venv/bin/python bench/catalog.py [--json] [--add-mb 20] [--regions 100000] [--queries 300]
"""

import argparse
import json
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import time

import numpy as np

CLASSES = ("speech", "acoustic", "band", "noise", "silence")
KEYS = [f"{p} {m}" for p in ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B") for m in ("major", "minor")]


def make_synthetic(db: str, n: int, seed: int = 0, files: int | None = None) -> None:
    """A catalog at db with n random regions over n // 20 files (no audio behind them)."""
    from auracore.offline.catalog.schema import connect

    rng = np.random.default_rng(seed)
    con = connect(db)
    nf = files or max(1, n // 20)
    now = time.time()
    with con:
        con.executemany("INSERT INTO files (id, path, name, content_sha256, duration_s, sample_rate, channels, added_at) "
                        "VALUES (?,?,?,?,?,?,?,?)",
                        [(i + 1, f"/synthetic/track_{i:06d}.wav", f"track_{i:06d}.wav", f"{i:064x}", 180.0, 48000, 2, now)
                         for i in range(nf)])
        con.executemany("INSERT INTO file_text (rowid, name, tags) VALUES (?,?,?)",
                        [(i + 1, f"track_{i:06d}.wav", "") for i in range(nf)])
        fid = rng.integers(1, nf + 1, n)
        start = rng.uniform(0, 170, n)
        dur = rng.uniform(0.5, 60, n)
        cls = rng.integers(0, len(CLASSES), n)
        tempo = rng.uniform(60, 180, n)
        key = rng.integers(0, len(KEYS), n)
        lufs = rng.uniform(-40, -6, n)
        con.executemany("INSERT INTO regions (id, file_id, idx, start_s, end_s, duration_s, class, tempo_bpm, key, "
                        "loudness_lufs, true_peak_dbtp) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        [(i + 1, int(fid[i]), 0, float(start[i]), float(start[i] + dur[i]), float(dur[i]),
                          CLASSES[cls[i]], float(tempo[i]), KEYS[key[i]], float(lufs[i]), float(lufs[i] + 10))
                         for i in range(n)])
        # clustered vectors, so that neighbours mean something
        centres = rng.standard_normal((50, 96)).astype(np.float32)
        v = centres[rng.integers(0, 50, n)] + 0.3 * rng.standard_normal((n, 96)).astype(np.float32)
        con.executemany("INSERT INTO region_vectors (region_id, fingerprint, embedding) VALUES (?,?,?)",
                        [(i + 1, v[i, :64].tobytes(), v[i, 64:].tobytes()) for i in range(n)])
        tagged = rng.choice(n, size=n // 10, replace=False)
        con.executemany("INSERT OR IGNORE INTO tags (file_id, region_id, tag) VALUES (?,?,?)",
                        [(int(fid[i]), int(i + 1), f"tag{int(rng.integers(0, 50))}") for i in tagged])
    con.close()


def bench_search(n: int, queries: int, seed: int = 3) -> dict:
    from auracore.offline.catalog import search as S
    from auracore.offline.catalog.store import Catalog

    work = tempfile.mkdtemp(prefix="auracore-bench-catalog-")
    try:
        db = os.path.join(work, "big.sqlite")
        t0 = time.perf_counter()
        make_synthetic(db, n, seed=seed)
        build_s = time.perf_counter() - t0
        rng = np.random.default_rng(seed + 1)
        with Catalog(db, readonly=True) as cat:
            times = []
            for q in range(queries):
                kind = q % 6
                lo = float(rng.uniform(60, 170))
                f = [dict(class_=CLASSES[q % 5], tempo=(lo, lo + 10)), dict(key=KEYS[q % 24], duration=(5.0, 20.0)),
                     dict(loudness=(-20.0 - q % 10, -18.0 - q % 10)), dict(tag=f"tag{q % 50}"),
                     dict(text=f"track_{int(rng.integers(0, n // 20)):06d}"),
                     dict(class_=CLASSES[q % 5], key=KEYS[(q * 7) % 24], tempo=(lo, lo + 30))][kind]
                t = time.perf_counter()
                S.search(cat.con, limit=50, **f)
                times.append(time.perf_counter() - t)
            index = S.VectorIndex()
            t = time.perf_counter()
            index.load(cat.con)
            load_s = time.perf_counter() - t
            sim = []
            for q in range(queries):
                rid = int(rng.integers(1, n + 1))
                t = time.perf_counter()
                vec = index.vector_of(cat.con, rid)
                S.search(cat.con, limit=20, index=index, like_vector=vec, exclude_region=rid)
                sim.append(time.perf_counter() - t)
        ms = lambda a, p: round(1e3 * float(np.percentile(a, p)), 3)  # noqa: E731
        return {"regions": n, "queries": queries, "build_s": round(build_s, 2), "matrix_load_s": round(load_s, 3),
                "search_p50_ms": ms(times, 50), "search_p99_ms": ms(times, 99),
                "similar_p50_ms": ms(sim, 50), "similar_p99_ms": ms(sim, 99),
                "db_mb": round(os.path.getsize(db) / 1e6, 1)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def make_music(folder: str, megabytes: float, seed: int = 11) -> float:
    """Write generated electronic tracks (48 kHz stereo, 16-bit WAV) totalling about
    megabytes into folder; returns their seconds of audio."""
    import soundfile as sf

    from auracore.models.sources import electronic_piece

    rate = 48000
    per_s = rate * 2 * 2
    total_s = megabytes * 1e6 / per_s
    made, k, track = 0.0, 0, 0
    while made < total_s:
        parts = []
        for _ in range(10):  # a track: ten 6 s clips with 1 s silences: 70 s
            clip, _ = electronic_piece(seed + k)
            k += 1
            parts += [np.asarray(clip, dtype=np.float64).reshape(len(clip), -1), np.zeros((rate, 2))]
        x = np.concatenate([p if p.shape[1] == 2 else np.repeat(p, 2, axis=1) for p in parts])
        x *= 0.5 / max(1e-9, np.max(np.abs(x)))
        sf.write(os.path.join(folder, f"track{track:03d}.wav"), x, rate, subtype="PCM_16")
        made += x.shape[0] / rate
        track += 1
    return made


def bench_add(megabytes: float) -> dict:
    from auracore.offline.catalog.plugins import default_plugins
    from auracore.offline.catalog.store import Catalog

    work = tempfile.mkdtemp(prefix="auracore-bench-catalog-add-")
    try:
        media = os.path.join(work, "media")
        os.mkdir(media)
        audio_s = make_music(media, megabytes)
        size = sum(os.path.getsize(os.path.join(media, f)) for f in os.listdir(media))
        plugins = default_plugins()
        r0s, r0c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        with Catalog(os.path.join(work, "c.sqlite")) as cat:
            res = cat.add([media], plugins=plugins)
        wall = time.perf_counter() - t0
        r1s, r1c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1s.ru_utime + r1s.ru_stime - r0s.ru_utime - r0s.ru_stime
               + r1c.ru_utime + r1c.ru_stime - r0c.ru_utime - r0c.ru_stime)
        return {"plugins": [p.name for p in plugins], "audio_mb": round(size / 1e6, 1), "audio_s": round(audio_s, 1),
                "files": res.added, "regions": res.regions, "plugin_errors": res.plugin_errors,
                "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                "x_realtime_per_core": round(cpu / audio_s, 4), "x_realtime_wall": round(wall / audio_s, 4),
                "peak_rss_mb_main": round(r1s.ru_maxrss / 1024, 1), "peak_rss_mb_worker": round(r1c.ru_maxrss / 1024, 1)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--add-mb", type=float, default=20.0, help="MB of 16-bit 48 kHz stereo WAV to add (default 20)")
    ap.add_argument("--regions", type=int, default=100000)
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    out = {"add": bench_add(args.add_mb) if args.add_mb > 0 else None,
           "search": bench_search(args.regions, args.queries)}
    if args.json:
        print(json.dumps(out))
        return 0
    a, s = out["add"], out["search"]
    print("| figure | value | target |\n|---|---|---|")
    if a:
        print(f"| add: audio | {a['audio_mb']} MB, {a['audio_s']} s, {a['files']} files, {a['regions']} regions | |")
        print(f"| add: plugins | {', '.join(a['plugins'])} ({a['plugin_errors']} errors) | every one available |")
        print(f"| add: CPU per audio second | {a['x_realtime_per_core']} x real time per core (wall {a['x_realtime_wall']}) | <= 0.05 |")
        print(f"| add: peak RSS | main {a['peak_rss_mb_main']} MB, worker {a['peak_rss_mb_worker']} MB | < 1000 MB for 500 MB |")
    print(f"| search p50 / p99 ({s['regions']} regions) | {s['search_p50_ms']} / {s['search_p99_ms']} ms | p99 < 20 ms |")
    print(f"| similar p50 / p99 | {s['similar_p50_ms']} / {s['similar_p99_ms']} ms (matrix load {s['matrix_load_s']} s) | p99 < 50 ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
