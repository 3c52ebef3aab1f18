"""Search the catalog: filters (class, tempo, key, duration, loudness, tag, text) and similar regions.

Similarity: every region's fingerprint (64 floats) and embedding (32) side by side, each
column standardised over the catalog (mean 0, standard deviation 1), and the Euclidean
distance to the query's vector over the columns both have. The matrix is read once and
kept (``VectorIndex``) until the catalog's vectors change.
"""

import math
import re
import threading

import numpy as np

from .schema import CatalogError

FP_DIM = 64
EMB_DIM = 32
TEXT_RE = re.compile(r"[\w]+", re.UNICODE)
MAX_LIMIT = 10000


def parse_range(text: str, what: str) -> tuple[float | None, float | None]:
    """"A-B", "A-", "-B" or "A" (exactly) -> (low, high); CatalogError otherwise. Negative
    numbers work: "-20--10" is -20 to -10."""
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)?\s*(?:(-|\.\.)\s*(-?\d+(?:\.\d+)?)?)?\s*", str(text))
    if not m or (m.group(1) is None and m.group(3) is None):
        raise CatalogError(f"{what} {str(text)[:40]!r}: give a range like 90-130, 90-, -130 or one number")
    lo = float(m.group(1)) if m.group(1) is not None else None
    hi = float(m.group(3)) if m.group(3) is not None else (lo if m.group(2) is None else None)
    if lo is not None and hi is not None and lo > hi:
        raise CatalogError(f"{what} {text!r}: the low end is above the high end")
    return lo, hi


def _fts_query(text: str) -> str:
    words = TEXT_RE.findall(str(text))
    if not words:
        raise CatalogError(f"text {str(text)[:40]!r}: give at least one word")
    return " AND ".join(f'"{w}"*' for w in words[:16])


def filter_sql(class_=None, tempo=None, key=None, duration=None, loudness=None, tag=None, text=None):
    """(WHERE clause, parameters) over regions r joined to files f."""
    where, args = [], []
    if class_:
        where.append("r.class = ?")
        args.append(class_)
    for col, rng, what in (("r.tempo_bpm", tempo, "tempo"), ("r.duration_s", duration, "duration"),
                           ("r.loudness_lufs", loudness, "loudness")):
        if rng is not None:
            lo, hi = parse_range(rng, what) if isinstance(rng, str) else rng
            if lo is not None:
                where.append(f"{col} >= ?")
                args.append(lo)
            if hi is not None:
                where.append(f"{col} <= ?")
                args.append(hi)
    if key:
        where.append("r.key = ? COLLATE NOCASE")
        args.append(str(key).strip())
    if tag:
        where.append("(r.id IN (SELECT region_id FROM tags WHERE tag = ? AND region_id IS NOT NULL) OR "
                     "r.file_id IN (SELECT file_id FROM tags WHERE tag = ? AND region_id IS NULL))")
        args += [tag, tag]
    if text:
        where.append("r.file_id IN (SELECT rowid FROM file_text WHERE file_text MATCH ?)")
        args.append(_fts_query(text))
    return (" AND ".join(where) or "1"), args


COLUMNS = ("r.id AS region_id, r.file_id, f.path, r.idx, r.start_s, r.end_s, r.duration_s, r.class, "
           "r.tempo_bpm, r.key, r.loudness_lufs, r.true_peak_dbtp")


def search(con, limit: int = 50, index=None, like_vector=None, exclude_region=None, **filters) -> list[dict]:
    """Regions matching the filters; with like_vector (from ``query_vector``), the nearest
    first with their ``distance``, else by path and start time."""
    limit = int(limit)
    if not 1 <= limit <= MAX_LIMIT:
        raise CatalogError(f"limit {limit}: give 1 to {MAX_LIMIT}")
    where, args = filter_sql(**filters)
    if like_vector is None:
        sql = f"SELECT {COLUMNS} FROM regions r JOIN files f ON f.id = r.file_id WHERE {where} ORDER BY r.id LIMIT ?"
        return [dict(r) for r in con.execute(sql, args + [limit])]
    index = index or VectorIndex()
    ids, dist = index.nearest(con, like_vector, limit + 1 if exclude_region else limit,
                              allowed=None if where == "1" else _allowed(con, where, args), exclude=exclude_region)
    if not len(ids):
        return []
    marks = ",".join("?" * len(ids))
    rows = {r["region_id"]: dict(r) for r in con.execute(
        f"SELECT {COLUMNS} FROM regions r JOIN files f ON f.id = r.file_id WHERE r.id IN ({marks})",
        [int(i) for i in ids])}
    out = []
    for i, d in zip(ids, dist):
        if int(i) in rows:
            row = rows[int(i)]
            row["distance"] = round(float(d), 5)
            out.append(row)
    return out[:limit]


def _allowed(con, where, args) -> np.ndarray:
    return np.fromiter((r[0] for r in con.execute(f"SELECT r.id FROM regions r WHERE {where}", args)), dtype=np.int64)


class VectorIndex:
    """The standardised region vectors, loaded once and reloaded when the catalog's change."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key = None
        self.ids = np.zeros(0, np.int64)
        self.matrix = np.zeros((0, FP_DIM + EMB_DIM), np.float32)
        self.present = np.zeros((0, 2), bool)
        self.mean = np.zeros(FP_DIM + EMB_DIM, np.float32)
        self.std = np.ones(FP_DIM + EMB_DIM, np.float32)

    def load(self, con) -> None:
        key = con.execute("SELECT value FROM catalog_meta WHERE key = 'vectors_version'").fetchone()[0]
        with self._lock:
            if key == self._key:
                return
            n = con.execute("SELECT count(*) FROM region_vectors").fetchone()[0]
            ids = np.zeros(n, np.int64)
            m = np.full((n, FP_DIM + EMB_DIM), np.nan, np.float32)
            for k, (rid, fp, emb) in enumerate(con.execute(
                    "SELECT region_id, fingerprint, embedding FROM region_vectors ORDER BY region_id")):
                if k >= n:
                    break
                ids[k] = rid
                if fp is not None and len(fp) == 4 * FP_DIM:
                    m[k, :FP_DIM] = np.frombuffer(fp, np.float32)
                if emb is not None and len(emb) == 4 * EMB_DIM:
                    m[k, FP_DIM:] = np.frombuffer(emb, np.float32)
            with np.errstate(all="ignore"):
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mean = np.nanmean(m, axis=0) if n else np.zeros(m.shape[1], np.float32)
                    std = np.nanstd(m, axis=0) if n else np.ones(m.shape[1], np.float32)
            mean = np.where(np.isfinite(mean), mean, 0.0).astype(np.float32)
            std = np.where(np.isfinite(std) & (std > 1e-9), std, 1.0).astype(np.float32)
            z = (m - mean) / std
            self.present = np.stack([np.isfinite(z[:, 0]), np.isfinite(z[:, FP_DIM])], axis=1) if n else np.zeros((0, 2), bool)
            self.matrix = np.nan_to_num(z, nan=0.0).astype(np.float32)
            # each column set the query may use, contiguous, with its rows' squared norms
            self.parts = {}
            for use in ((True, True), (True, False), (False, True)):
                cols = slice(0 if use[0] else FP_DIM, FP_DIM + EMB_DIM if use[1] else FP_DIM)
                sub = np.ascontiguousarray(self.matrix[:, cols])
                ok = np.ones(n, bool)
                if use[0]:
                    ok &= self.present[:, 0]
                if use[1]:
                    ok &= self.present[:, 1]
                self.parts[use] = (cols, sub, np.einsum("ij,ij->i", sub, sub), ok)
            self.ids, self.mean, self.std, self._key = ids, mean, std, key

    def vector_of(self, con, region_id: int) -> np.ndarray:
        """The raw (fingerprint, embedding) vector of a stored region, NaN where absent."""
        row = con.execute("SELECT fingerprint, embedding FROM region_vectors WHERE region_id = ?",
                          (int(region_id),)).fetchone()
        if row is None:
            raise CatalogError(f"region {region_id}: not in the catalog, or it has no fingerprint or embedding")
        return make_vector(None if row[0] is None else np.frombuffer(row[0], np.float32),
                           None if row[1] is None else np.frombuffer(row[1], np.float32))

    def nearest(self, con, vector: np.ndarray, k: int, allowed=None, exclude=None):
        """(region ids, distances) of the k nearest regions to vector (raw, 96 floats, NaN
        where absent)."""
        self.load(con)
        with self._lock:
            ids, present, mean, std, parts = self.ids, self.present, self.mean, self.std, self.parts
        if not len(ids):
            return ids, np.zeros(0)
        q = (np.asarray(vector, np.float32) - mean) / std
        use_fp = bool(np.isfinite(q[0])) and present[:, 0].any()
        use_emb = bool(np.isfinite(q[FP_DIM])) and present[:, 1].any()
        if not (use_fp or use_emb):
            raise CatalogError("the query has neither a fingerprint nor an embedding that the catalog has")
        cols, sub, norms, ok = parts[(use_fp, use_emb)]
        qq = np.nan_to_num(q[cols])
        d2 = norms - 2.0 * (sub @ qq) + float(qq @ qq)
        if allowed is not None or exclude is not None:
            ok = ok.copy()
        if allowed is not None:
            ok &= np.isin(ids, allowed)
        if exclude is not None:
            ok &= ids != int(exclude)
        d2 = np.where(ok, np.maximum(d2, 0.0), np.inf)
        k = min(k, int(ok.sum()))
        if k <= 0:
            return ids[:0], np.zeros(0)
        part = np.argpartition(d2, k - 1)[:k]
        order = part[np.argsort(d2[part], kind="stable")]
        return ids[order], np.sqrt(d2[order]) / math.sqrt(cols.stop - cols.start)


def make_vector(fingerprint=None, embedding=None) -> np.ndarray:
    """The raw 96-float query vector, NaN where a part is absent."""
    v = np.full(FP_DIM + EMB_DIM, np.nan, np.float32)
    if fingerprint is not None:
        v[:FP_DIM] = np.asarray(fingerprint, np.float32)[:FP_DIM]
    if embedding is not None:
        v[FP_DIM:] = np.asarray(embedding, np.float32)[:EMB_DIM]
    return v


def parse_like(text: str) -> tuple[str, float | None, float | None]:
    """"FILE" or "FILE:START-END" (seconds) -> (path, start_s, end_s)."""
    m = re.fullmatch(r"(.*):(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)", str(text), re.S)
    if m and float(m.group(2)) < float(m.group(3)):
        return m.group(1), float(m.group(2)), float(m.group(3))
    if m:
        raise CatalogError(f"{text}: the excerpt's start is not before its end")
    return str(text), None, None


def excerpt_vector(x: np.ndarray, sample_rate: int, plugins) -> np.ndarray:
    """The query vector of an excerpt x: (frames, channels), from the fingerprint and model
    plugins among plugins (run here, in this process)."""
    from .plugins import run_plugin

    fp = emb = None
    for p in plugins:
        if p.name in ("fingerprint", "model"):
            result, error, _ = run_plugin(p, x, sample_rate)
            if error:
                raise CatalogError(f"the query excerpt: the {p.name} plugin failed: {error}")
            if p.name == "fingerprint":
                fp = result["values"]
            else:
                emb = result["embedding"]
    return make_vector(fp, emb)
