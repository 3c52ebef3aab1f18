"""The catalog: add files (split, analyse, store one file per transaction), tag, remove, stats, export.

``add`` takes files or folders (recursive). A file whose path and content hash are already
stored is skipped; a changed one is analysed again and replaces its old rows. An unreadable
or corrupt file becomes a row with its error. Each file is written in one transaction, so a
killed ``add`` leaves every file either complete or absent, and running it again resumes.
"""

import hashlib
import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass

import numpy as np

from auracore.errors import AuraCoreError
from auracore.kernels.sane import SANE_LIMIT
from auracore.offline import audio_io
from auracore.stopping import holding_stops, raise_if_stopped

from .plugins import PluginWorker, default_plugins
from .regions import split_regions
from .schema import CatalogError, connect

# what add reads: every format render reads; M4A/AAC are refused with a clear line (neither
# this libsndfile nor any decoder here reads them)
EXTENSIONS = audio_io.AUDIO_EXTENSIONS
UNSUPPORTED = (".m4a", ".aac", ".mp4", ".alac")
READ_BLOCK = 1 << 16
WAVEFORM_COLUMNS = 2000


@dataclass(frozen=True)
class AddResult:
    added: int
    skipped: int
    failed: int
    regions: int
    plugin_errors: int
    audio_s: float
    elapsed_s: float

    def to_dict(self) -> dict:
        return {"files_added": self.added, "files_unchanged": self.skipped, "files_failed": self.failed,
                "regions": self.regions, "plugin_errors": self.plugin_errors,
                "audio_s": round(self.audio_s, 3), "elapsed_s": round(self.elapsed_s, 3)}


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def collect_paths(paths) -> list[str]:
    """The files named by paths (folders walked recursively, audio and M4A/AAC names only),
    absolute, sorted, each once. CatalogError for a path that does not exist."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for n in sorted(files):
                    if n.lower().endswith(EXTENSIONS + UNSUPPORTED) and not n.startswith(audio_io.TEMP_PREFIX):
                        out.append(os.path.abspath(os.path.join(root, n)))
        elif os.path.lexists(p):
            out.append(os.path.abspath(p))
        else:
            raise CatalogError(f"{p}: no such file or folder")
    seen = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def read_audio(path: str) -> tuple[np.ndarray, int, str]:
    """(x: (frames, channels) float32, sample_rate, format) of a file; AuraCoreError if it
    cannot be read."""
    if path.lower().endswith(UNSUPPORTED):
        raise CatalogError(f"{path}: M4A/AAC cannot be decoded here (this libsndfile reads no MP4 "
                           "container and no ffmpeg is installed); convert it to FLAC first")
    with audio_io.open_input(path) as f:
        fmt = f.format
        x = np.empty((f.frames, f.channels), dtype=np.float32)
        pos = 0
        for block in audio_io.read_blocks(f, READ_BLOCK, path):
            k = min(block.shape[0], x.shape[0] - pos)
            if not np.all(np.abs(block[:k]) <= SANE_LIMIT):  # checked before the float32 cast
                raise audio_io.AudioFileError(f"{path}: the audio holds NaN, infinite or absurd (beyond +80 dBFS) samples")
            x[pos:pos + k] = block[:k]
            pos += k
        if pos < x.shape[0]:
            raise audio_io.AudioFileError(f"{path}: only part of the file could be read; it is truncated")
        return x, f.samplerate, fmt


def file_loudness(x: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of the whole file (the meter)."""
    from auracore.offline.chain import Meter

    m = Meter(sample_rate, x.shape[1])
    for i in range(0, x.shape[0], 1 << 16):
        m.process(x[i:i + (1 << 16)].astype(np.float64))
    return m.integrated_lufs, m.true_peak_dbtp


def utf8_problem(path: str):
    """(the name as shown, why) when path is not UTF-8 (SQLite holds UTF-8 text), else None."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return shown, "the file name is not UTF-8; rename the file to add it"
    return None


def analyse_file(path: str, worker: PluginWorker, threshold_db: float = -30.0, min_region_s: float = 0.5,
                 min_gap_s: float = 0.5, sha: str | None = None) -> dict:
    """One file's catalog analysis, without the database: read, split into regions, run the
    plugins on each. A JSON-able record (``Catalog.insert`` stores it), so that analysis can
    run anywhere (a batch worker) and one writer inserts. An unreadable file gives a record
    with its error."""
    t0 = time.perf_counter()
    problem = audio_io.input_problem(path, "an audio file")
    size = None
    if problem is None:
        try:
            size = os.path.getsize(path)
            sha = sha or file_sha256(path)
        except OSError as exc:
            problem = f"cannot read it ({exc.strerror})"
    x = rate = fmt = None
    if problem is not None:
        error = f"{path}: {problem}"
    else:
        try:
            x, rate, fmt = read_audio(path)
            error = None
        except AuraCoreError as exc:
            error = str(exc)
    record = {"path": path, "name": os.path.basename(path), "sha": sha, "size_bytes": size, "format": fmt,
              "sample_rate": rate, "channels": None if x is None else x.shape[1],
              "duration_s": None if x is None else x.shape[0] / rate, "error": error, "regions": [],
              "versions": {name: p.version for name, p in worker.plugins.items()},
              "loudness_lufs": None, "true_peak_dbtp": None, "threshold_dbfs": None, "waveform": None}
    if x is not None:
        lufs, tp = file_loudness(x, rate)
        split = split_regions(x, rate, lufs, threshold_db, min_region_s, min_gap_s)
        for i, r in enumerate(split.regions):
            seg = x[int(round(r.start_s * rate)):int(round(r.end_s * rate))]
            results = {k: list(v) for k, v in worker.run(seg, rate).items()}
            record["regions"].append({"idx": i, "start_s": r.start_s, "end_s": r.end_s,
                                      "duration_s": r.duration_s, "results": results})
        record.update(loudness_lufs=_num(lufs), true_peak_dbtp=_num(tp), threshold_dbfs=_num(split.threshold_dbfs),
                      waveform=_waveform(x).ravel().tolist())
    record["analysis_s"] = time.perf_counter() - t0
    return record


def _num(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def _blob(values) -> bytes | None:
    return None if values is None else np.asarray(values, dtype=np.float32).tobytes()


def _commit_step(before_commit) -> None:
    """Before a file's transaction commits (stops held): a stop whose first raise a
    destructor swallowed is raised, so nothing is committed; then the caller's hook."""
    raise_if_stopped()
    if before_commit is not None:
        before_commit()


class Catalog:
    """A catalog file: ``Catalog(path)``; close() or use as a context manager."""

    def __init__(self, path: str, readonly: bool = False):
        self.path = path
        self.con = connect(path, readonly=readonly)
        self.con.row_factory = sqlite3.Row

    def close(self) -> None:
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- add ---------------------------------------------------------------------------
    def add(self, paths, plugins=None, threshold_db: float = -30.0, min_region_s: float = 0.5,
            min_gap_s: float = 0.5, progress=None, log=None, before_last_commit=None) -> AddResult:
        """Add files and folders (see the module docstring). plugins: Plugin objects
        (default: the built-in ones that can run here); progress: a callable
        (total_s, label) -> bar with update(seconds)/close(), or None; log(line) for per-file
        notes; before_last_commit: called with the stop signals held, just before the last
        file's transaction commits (the command line's ``stopping.finish``)."""
        files = collect_paths(paths)
        plugins = default_plugins() if plugins is None else list(plugins)
        t0 = time.perf_counter()
        added = skipped = failed = n_regions = errors = 0
        audio_s = 0.0
        total = sum(os.path.getsize(p) for p in files if os.path.isfile(p))
        bar = progress(total, "catalog add") if progress else None
        worker = PluginWorker(plugins)
        try:
            for i, path in enumerate(files):
                size = os.path.getsize(path) if os.path.isfile(path) else 0
                hook = before_last_commit if i == len(files) - 1 else None
                status, regions, errs, dur = self._add_one(path, worker, threshold_db, min_region_s, min_gap_s, hook)
                added += status == "added"
                skipped += status == "unchanged"
                failed += status == "failed"
                n_regions += regions
                errors += errs
                audio_s += dur
                if log:
                    log(f"{status}: {path}" + (f" ({regions} regions, {errs} plugin errors)" if status == "added" else ""))
                if bar:
                    bar.update(size)
        finally:
            worker.close()
            if bar:
                bar.close()
        return AddResult(added, skipped, failed, n_regions, errors, audio_s, time.perf_counter() - t0)

    def _add_one(self, path, worker, threshold_db, min_region_s, min_gap_s, before_commit=None):
        name_error = utf8_problem(path)
        if name_error:
            return self._store_failure(*name_error, before_commit=before_commit)
        sha = None
        if audio_io.input_problem(path, "an audio file") is None:
            try:
                sha = file_sha256(path)
            except OSError:
                pass
        if sha is not None and self.unchanged(path, sha):
            return "unchanged", 0, 0, 0.0
        record = analyse_file(path, worker, threshold_db, min_region_s, min_gap_s, sha=sha)
        return self.insert(record, before_commit)

    def unchanged(self, path: str, sha: str) -> bool:
        """True when path is stored with this content hash (adding it again does nothing)."""
        old = self.con.execute("SELECT content_sha256 FROM files WHERE path = ?", (path,)).fetchone()
        return old is not None and old["content_sha256"] == sha

    def insert(self, record: dict, before_commit=None):
        """Store one file's analysis (``analyse_file``'s record) in one transaction, replacing
        the file's old rows: (status, regions, plugin errors, duration_s). before_commit:
        called with the stop signals held, just before the transaction commits."""
        path, x_ok = record["path"], record["sample_rate"] is not None
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        committed = False
        try:
            old = con.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
            if old is not None:
                con.execute("DELETE FROM files WHERE id = ?", (old["id"],))
                con.execute("DELETE FROM file_text WHERE rowid = ?", (old["id"],))
            cur = con.execute(
                "INSERT INTO files (path, name, content_sha256, size_bytes, format, sample_rate, channels, "
                "duration_s, error, added_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (path, record["name"], record["sha"], record["size_bytes"], record["format"], record["sample_rate"],
                 record["channels"], record["duration_s"], record["error"], time.time()))
            fid = cur.lastrowid
            n_err = 0
            content_s = 0.0
            for reg in record["regions"]:
                results = {k: tuple(v) for k, v in reg["results"].items()}
                cols = _region_columns(results)
                rid = con.execute(
                    "INSERT INTO regions (file_id, idx, start_s, end_s, duration_s, class, tempo_bpm, key, "
                    "loudness_lufs, true_peak_dbtp) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (fid, reg["idx"], reg["start_s"], reg["end_s"], reg["duration_s"], *cols)).lastrowid
                content_s += reg["duration_s"]
                for pname, (result, err, elapsed) in results.items():
                    n_err += err is not None
                    con.execute("INSERT INTO region_analysis (region_id, plugin, version, result_json, error, "
                                "elapsed_s) VALUES (?,?,?,?,?,?)",
                                (rid, pname, record["versions"][pname],
                                 None if result is None else json.dumps(result, allow_nan=False), err, elapsed))
                fp = results.get("fingerprint", (None,))[0]
                md = results.get("model", (None,))[0]
                fpv = fp.get("values") if isinstance(fp, dict) else None
                emv = md.get("embedding") if isinstance(md, dict) else None
                if fpv is not None or emv is not None:
                    con.execute("INSERT INTO region_vectors (region_id, fingerprint, embedding) VALUES (?,?,?)",
                                (rid, _blob(fpv), _blob(emv)))
            if x_ok:
                waveform = np.asarray(record["waveform"], dtype=np.float32).reshape(-1, 2)
                con.execute("INSERT INTO file_summary (file_id, regions, content_s, errors, loudness_lufs, "
                            "true_peak_dbtp, threshold_dbfs, analysis_s, waveform) VALUES (?,?,?,?,?,?,?,?,?)",
                            (fid, len(record["regions"]), content_s, n_err, _num(record["loudness_lufs"]),
                             _num(record["true_peak_dbtp"]), _num(record["threshold_dbfs"]), record["analysis_s"],
                             waveform.tobytes()))
            con.execute("INSERT INTO file_text (rowid, name, tags) VALUES (?, ?, '')", (fid, record["name"]))
            # a stop may not land between the commit and the flag: a rollback after a commit
            # fails ("no transaction is active") and hid the stop behind an SQLite error
            with holding_stops():
                _commit_step(before_commit)
                con.execute("COMMIT")
                committed = True
        except BaseException:
            if not committed:
                con.execute("ROLLBACK")
            raise
        return ("failed" if record["error"] else "added"), len(record["regions"]), n_err, (record["duration_s"] or 0.0)

    def _store_failure(self, path: str, why: str, before_commit=None):
        with holding_stops(), self.con:
            _commit_step(before_commit)
            old = self.con.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
            if old is not None:
                self.con.execute("DELETE FROM files WHERE id = ?", (old[0],))
                self.con.execute("DELETE FROM file_text WHERE rowid = ?", (old[0],))
            fid = self.con.execute("INSERT INTO files (path, name, error, added_at) VALUES (?,?,?,?)",
                                   (path, os.path.basename(path), f"{path}: {why}", time.time())).lastrowid
            self.con.execute("INSERT INTO file_text (rowid, name, tags) VALUES (?, ?, '')", (fid, os.path.basename(path)))
        return "failed", 0, 0, 0.0

    # ---- tags, remove ------------------------------------------------------------------
    def resolve(self, ref: str) -> tuple[int, int | None]:
        """(file_id, region_id or None) for "r123" (a region), "123" (a file id) or a path."""
        ref = str(ref)
        if ref[:1] in "rR" and ref[1:].isdigit():
            row = self.con.execute("SELECT file_id FROM regions WHERE id = ?", (int(ref[1:]),)).fetchone()
            if row is None:
                raise CatalogError(f"region {ref[1:]}: not in the catalog")
            return row[0], int(ref[1:])
        if ref.isdigit():
            row = self.con.execute("SELECT id FROM files WHERE id = ?", (int(ref),)).fetchone()
        else:
            row = self.con.execute("SELECT id FROM files WHERE path = ?", (os.path.abspath(ref),)).fetchone()
        if row is None:
            raise CatalogError(f"{ref}: not in the catalog (give a file id, a path that was added, or r<region id>)")
        return row[0], None

    def _refresh_text(self, fid: int) -> None:
        tags = " ".join(r[0] for r in self.con.execute("SELECT DISTINCT tag FROM tags WHERE file_id = ?", (fid,)))
        name = self.con.execute("SELECT name FROM files WHERE id = ?", (fid,)).fetchone()[0]
        self.con.execute("DELETE FROM file_text WHERE rowid = ?", (fid,))
        self.con.execute("INSERT INTO file_text (rowid, name, tags) VALUES (?,?,?)", (fid, name, tags))

    def tag(self, ref: str, tags, remove: bool = False) -> dict:
        """Add (or remove) tags on a file or region; returns its tags afterwards."""
        tags = [check_tag(t) for t in tags]
        fid, rid = self.resolve(ref)
        with self.con:
            for t in tags:
                if remove:
                    self.con.execute("DELETE FROM tags WHERE file_id = ? AND IFNULL(region_id, 0) = ? AND tag = ?",
                                     (fid, rid or 0, t))
                else:
                    self.con.execute("INSERT OR IGNORE INTO tags (file_id, region_id, tag) VALUES (?,?,?)",
                                     (fid, rid, t))
            self._refresh_text(fid)
        now = [r[0] for r in self.con.execute(
            "SELECT tag FROM tags WHERE file_id = ? AND IFNULL(region_id, 0) = ? ORDER BY tag", (fid, rid or 0))]
        return {"file_id": fid, "region_id": rid, "tags": now}

    def remove(self, refs) -> int:
        """Remove files (by id or path) and everything about them; returns how many."""
        ids = []
        for ref in refs:
            fid, rid = self.resolve(ref)
            if rid is not None:
                raise CatalogError(f"{ref}: remove takes files (an id or a path), not regions")
            ids.append(fid)
        with self.con:
            for fid in ids:
                self.con.execute("DELETE FROM files WHERE id = ?", (fid,))
                self.con.execute("DELETE FROM file_text WHERE rowid = ?", (fid,))
        return len(ids)

    # ---- stats, export -----------------------------------------------------------------
    def stats(self) -> dict:
        q = lambda sql: self.con.execute(sql).fetchone()[0]  # noqa: E731
        by_plugin = {r[0]: r[1] for r in self.con.execute(
            "SELECT plugin, count(*) FROM region_analysis WHERE error IS NOT NULL GROUP BY plugin")}
        classes = {r[0]: r[1] for r in self.con.execute(
            "SELECT class, count(*) FROM regions WHERE class IS NOT NULL GROUP BY class")}
        return {"files": q("SELECT count(*) FROM files"),
                "files_failed": q("SELECT count(*) FROM files WHERE error IS NOT NULL"),
                "regions": q("SELECT count(*) FROM regions"),
                "errors": q("SELECT count(*) FROM region_analysis WHERE error IS NOT NULL")
                + q("SELECT count(*) FROM files WHERE error IS NOT NULL"),
                "plugin_errors": by_plugin,
                "duration_s": round(q("SELECT IFNULL(sum(duration_s), 0) FROM files"), 3),
                "region_duration_s": round(q("SELECT IFNULL(sum(duration_s), 0) FROM regions"), 3),
                "classes": classes, "tags": q("SELECT count(DISTINCT tag) FROM tags"),
                "schema_version": q("PRAGMA user_version")}

    def export_rows(self):
        """One dict per region (files without regions: one row with null region columns)."""
        sql = ("SELECT f.id AS file_id, f.path, f.error AS file_error, f.sample_rate, f.duration_s AS file_duration_s, "
               "r.id AS region_id, r.start_s, r.end_s, r.duration_s, r.class, r.tempo_bpm, r.key, r.loudness_lufs, "
               "r.true_peak_dbtp, (SELECT group_concat(tag, ' ') FROM tags t WHERE t.file_id = f.id AND "
               "(t.region_id IS NULL OR t.region_id = r.id)) AS tags, (SELECT count(*) FROM region_analysis a "
               "WHERE a.region_id = r.id AND a.error IS NOT NULL) AS errors "
               "FROM files f LEFT JOIN regions r ON r.file_id = f.id ORDER BY f.path, r.start_s")
        for row in self.con.execute(sql):
            yield dict(row)

    def export(self, path: str, fmt: str) -> int:
        """Write every region (export_rows) to path as parquet or csv, atomically; returns the row count."""
        import pyarrow as pa

        rows = list(self.export_rows())
        cols = ["file_id", "path", "file_error", "sample_rate", "file_duration_s", "region_id", "start_s", "end_s",
                "duration_s", "class", "tempo_bpm", "key", "loudness_lufs", "true_peak_dbtp", "tags", "errors"]
        types = {"file_id": pa.int64(), "sample_rate": pa.int64(), "region_id": pa.int64(), "errors": pa.int64(),
                 "path": pa.string(), "file_error": pa.string(), "class": pa.string(), "key": pa.string(),
                 "tags": pa.string()}
        table = pa.table({c: pa.array([r[c] for r in rows], type=types.get(c, pa.float64())) for c in cols})
        with audio_io.atomic_file(path, inputs=(self.path,)) as tmp:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                pq.write_table(table, tmp)
            else:
                import pyarrow.csv as pcsv

                pcsv.write_csv(table, tmp)
        return len(rows)


def check_tag(tag: str) -> str:
    t = str(tag).strip()
    if not t or len(t) > 64 or any(c.isspace() or ord(c) < 32 for c in t):
        raise CatalogError(f"tag {t[:40]!r}: use 1-64 characters with no spaces or control characters")
    return t


def _region_columns(results: dict) -> tuple:
    """(class, tempo_bpm, key, loudness_lufs, true_peak_dbtp) from the plugins' results."""
    md = results.get("model", (None,))[0] or {}
    pr = results.get("profile", (None,))[0] or {}
    ld = results.get("loudness", (None,))[0] or {}
    return (md.get("class"), pr.get("tempo_bpm"), pr.get("key"), ld.get("integrated_lufs"), ld.get("true_peak_dbtp"))


def _waveform(x: np.ndarray, columns: int = WAVEFORM_COLUMNS) -> np.ndarray:
    """(columns, 2) float32 min/max of the mono mix over equal spans (the page's overview)."""
    n = x.shape[0]
    cols = max(1, min(columns, n))
    edges = np.linspace(0, n, cols + 1).astype(np.int64)
    mono = x.mean(axis=1)
    lo = np.minimum.reduceat(mono, edges[:-1])
    hi = np.maximum.reduceat(mono, edges[:-1])
    return np.stack([lo, hi], axis=1).astype(np.float32)
