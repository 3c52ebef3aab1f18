"""The catalog's HTTP API and page (Starlette on uvicorn): read, search, stream, analyse, upload.

Bound to loopback by default; any other address needs a token of 12+ characters (the
control surface's rule), which every API request must then carry (``Authorization: Bearer``
or ``?token=``). Uploads are size-limited, written atomically into the media folder and
nowhere else; analyse-by-path takes only paths inside the media folder. Every failure is a
JSON ``{"error": "..."}`` with a 4xx status.
"""

import asyncio
import hmac
import json
import math
import os
import re
import socket
import tempfile
import threading
from dataclasses import dataclass

import numpy as np
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from auracore.errors import AuraCoreError
from auracore.network import is_loopback
from auracore.offline import audio_io

from .schema import CatalogError, connect
from . import search as S

MIN_TOKEN_CHARS = 12
WEB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,150}")
MIME = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".mp3": "audio/mpeg",
        ".aif": "audio/aiff", ".aiff": "audio/aiff", ".aifc": "audio/aiff"}
MAX_WAVE_COLUMNS = 4000
CHUNK = 1 << 16


@dataclass(frozen=True)
class ServeOptions:
    db: str
    bind: str = "127.0.0.1"
    port: int = 8770
    token: str | None = None
    media: str = ""
    max_upload_bytes: int = 200_000_000


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def check_options(opts: ServeOptions) -> None:
    """CatalogError for a short token or a non-loopback bind without one."""
    if opts.token is not None and len(opts.token) < MIN_TOKEN_CHARS:
        raise CatalogError(f"the token must be at least {MIN_TOKEN_CHARS} characters "
                           "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(16))'`)")
    if not is_loopback(opts.bind) and opts.token is None:
        raise CatalogError(f"binding {opts.bind} exposes the catalog beyond this machine: give a token too")
    if not 0 <= opts.port <= 65535:
        raise CatalogError(f"port {opts.port}: give 0 to 65535")


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _row(row) -> dict:
    return {k: _jsonable(row[k]) for k in row.keys()}


class CatalogApp:
    """The request handlers over one catalog file (a read connection per request; writes
    serialised by one lock: one writer)."""

    def __init__(self, opts: ServeOptions):
        self.opts = opts
        self.media = os.path.realpath(opts.media)
        os.makedirs(self.media, exist_ok=True)
        connect(opts.db).close()  # create or migrate once, up front
        self.index = S.VectorIndex()
        self.write_lock = threading.Lock()

    def read(self):
        import sqlite3

        con = connect(self.opts.db, readonly=True)
        con.row_factory = sqlite3.Row
        return con

    # ---- helpers ----------------------------------------------------------------------
    @staticmethod
    def _int(value, what, lo=1, hi=2 ** 62):
        try:
            v = int(value)
        except (TypeError, ValueError):
            raise HttpError(400, f"{what}: a whole number is needed") from None
        if not lo <= v <= hi:
            raise HttpError(400, f"{what}: out of range")
        return v

    @staticmethod
    def _float(value, what):
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise HttpError(400, f"{what}: a number is needed") from None
        if not math.isfinite(v):
            raise HttpError(400, f"{what}: a finite number is needed")
        return v

    def _file_row(self, con, fid):
        row = con.execute("SELECT * FROM files WHERE id = ?", (fid,)).fetchone()
        if row is None:
            raise HttpError(404, f"file {fid}: not in the catalog")
        return row

    # ---- endpoints ----------------------------------------------------------------------
    def health(self, q):
        with self.read() as con:
            v = con.execute("PRAGMA user_version").fetchone()[0]
        return {"ok": True, "schema_version": v}

    def stats(self, q):
        from .store import Catalog

        cat = Catalog.__new__(Catalog)
        cat.path, cat.con = self.opts.db, self.read()
        try:
            return cat.stats()
        finally:
            cat.con.close()

    def files(self, q):
        limit = self._int(q.get("limit", 500), "limit", 1, 10000)
        where, args = "1", []
        if q.get("text"):
            try:
                where, args = "f.id IN (SELECT rowid FROM file_text WHERE file_text MATCH ?)", [S._fts_query(q["text"])]
            except CatalogError as exc:
                raise HttpError(400, str(exc)) from None
        with self.read() as con:
            rows = con.execute(
                f"SELECT f.id, f.path, f.name, f.duration_s, f.sample_rate, f.channels, f.error, s.regions, "
                f"s.loudness_lufs, s.errors FROM files f LEFT JOIN file_summary s ON s.file_id = f.id "
                f"WHERE {where} ORDER BY f.path LIMIT ?", args + [limit]).fetchall()
        return [_row(r) for r in rows]

    def search(self, q):
        allowed = {"class", "tempo", "key", "duration", "loudness", "tag", "text", "like_region", "limit", "token"}
        unknown = set(q) - allowed
        if unknown:
            raise HttpError(400, f"unknown parameter {sorted(unknown)[0][:40]!r}")
        limit = self._int(q.get("limit", 50), "limit", 1, 10000)
        filters = dict(class_=q.get("class") or None, tempo=q.get("tempo") or None, key=q.get("key") or None,
                       duration=q.get("duration") or None, loudness=q.get("loudness") or None,
                       tag=q.get("tag") or None, text=q.get("text") or None)
        with self.read() as con:
            vec = exclude = None
            if q.get("like_region"):
                exclude = self._int(q["like_region"].lstrip("rR"), "like_region")
                try:
                    vec = self.index.vector_of(con, exclude)
                except CatalogError as exc:
                    raise HttpError(404, str(exc)) from None
            try:
                rows = S.search(con, limit=limit, index=self.index, like_vector=vec, exclude_region=exclude, **filters)
            except CatalogError as exc:
                raise HttpError(400, str(exc)) from None
        return [{k: _jsonable(v) for k, v in r.items()} for r in rows]

    def _regions(self, con, where, args):
        out = []
        for r in con.execute(f"SELECT * FROM regions WHERE {where} ORDER BY file_id, start_s", args).fetchall():
            d = _row(r)
            d["analysis"] = {}
            for a in con.execute("SELECT plugin, version, result_json, error, elapsed_s FROM region_analysis "
                                 "WHERE region_id = ? ORDER BY plugin", (r["id"],)):
                d["analysis"][a["plugin"]] = {"version": a["version"], "error": a["error"],
                                              "elapsed_s": a["elapsed_s"],
                                              "result": None if a["result_json"] is None else json.loads(a["result_json"])}
            d["tags"] = [t[0] for t in con.execute("SELECT tag FROM tags WHERE region_id = ? ORDER BY tag", (r["id"],))]
            out.append(d)
        return out

    def file_detail(self, q, fid):
        fid = self._int(fid, "file id")
        with self.read() as con:
            f = _row(self._file_row(con, fid))
            s = con.execute("SELECT regions, content_s, errors, loudness_lufs, true_peak_dbtp, threshold_dbfs, "
                            "analysis_s FROM file_summary WHERE file_id = ?", (fid,)).fetchone()
            f["summary"] = None if s is None else _row(s)
            f["tags"] = [t[0] for t in con.execute(
                "SELECT tag FROM tags WHERE file_id = ? AND region_id IS NULL ORDER BY tag", (fid,))]
            f["regions"] = self._regions(con, "file_id = ?", (fid,))
        return f

    def region_detail(self, q, rid):
        rid = self._int(rid, "region id")
        with self.read() as con:
            rows = self._regions(con, "id = ?", (rid,))
            if not rows:
                raise HttpError(404, f"region {rid}: not in the catalog")
            rows[0]["path"] = con.execute("SELECT path FROM files WHERE id = ?", (rows[0]["file_id"],)).fetchone()[0]
        return rows[0]

    def waveform(self, q, fid):
        fid = self._int(fid, "file id")
        columns = self._int(q.get("columns", 1000), "columns", 1, MAX_WAVE_COLUMNS)
        with self.read() as con:
            f = self._file_row(con, fid)
        if f["error"] or not f["duration_s"]:
            raise HttpError(404, f"file {fid}: it has no audio ({f['error'] or 'empty'})")
        dur = float(f["duration_s"])
        a = self._float(q.get("start_s", 0.0), "start_s")
        b = self._float(q.get("end_s", dur), "end_s")
        a, b = max(0.0, a), min(dur, b)
        if not b > a:
            raise HttpError(400, "start_s must be before end_s, within the file")
        try:
            with audio_io.open_input(f["path"]) as sf_:
                rate = sf_.samplerate
                f0, f1 = int(a * rate), max(int(a * rate) + 1, int(b * rate))
                edges = np.linspace(f0, f1, min(columns, f1 - f0) + 1).astype(np.int64)
                lo = np.full(len(edges) - 1, np.inf)
                hi = np.full(len(edges) - 1, -np.inf)
                sf_.seek(f0)
                pos = f0
                for block in audio_io.read_blocks(sf_, CHUNK, f["path"]):
                    mono = block.mean(axis=1)[:max(0, f1 - pos)]
                    if mono.size:
                        col = np.searchsorted(edges, pos + np.arange(mono.size), side="right") - 1
                        np.minimum.at(lo, col, mono)
                        np.maximum.at(hi, col, mono)
                    pos += block.shape[0]
                    if pos >= f1:
                        break
        except AuraCoreError as exc:
            raise HttpError(404, f"file {fid}: {exc}") from None
        lo = np.where(np.isfinite(lo), lo, 0.0)
        hi = np.where(np.isfinite(hi), hi, 0.0)
        return {"file_id": fid, "start_s": f0 / rate, "end_s": f1 / rate, "columns": len(lo),
                "min": [round(float(v), 5) for v in lo], "max": [round(float(v), 5) for v in hi]}

    def audio_path(self, fid):
        fid = self._int(fid, "file id")
        with self.read() as con:
            f = self._file_row(con, fid)
        path = f["path"]
        if audio_io.input_problem(path, "an audio file"):
            raise HttpError(404, f"file {fid}: {audio_io.input_problem(path, 'an audio file')}")
        return path

    def inside_media(self, path: str) -> str:
        """The real path of path if it lies inside the media folder; else HttpError 403."""
        if not isinstance(path, str) or not path or "\0" in path or len(path) > 4096:
            raise HttpError(400, "path: give a file name or path inside the media folder")
        full = os.path.realpath(os.path.join(self.media, path))
        if os.path.commonpath([full, self.media]) != self.media or full == self.media:
            raise HttpError(403, "path: outside the media folder; only files inside it can be analysed")
        return full

    def analyse(self, path: str) -> dict:
        from .store import Catalog

        full = self.inside_media(path)
        if not os.path.exists(full):
            raise HttpError(404, "path: no such file in the media folder")
        with self.write_lock, Catalog(self.opts.db) as cat:
            res = cat.add([full])
            fid = cat.con.execute("SELECT id FROM files WHERE path = ?", (full,)).fetchone()
        d = res.to_dict()
        d["file_ids"] = [] if fid is None else [fid[0]]
        return d


def _audio_response(request: Request, path: str) -> Response:
    """The file's bytes, honouring one HTTP Range (206), so the player can seek."""
    size = os.path.getsize(path)
    mime = MIME.get(os.path.splitext(path)[1].lower(), "application/octet-stream")
    rng = request.headers.get("range")
    start, end = 0, size - 1
    status = 200
    if rng:
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
        if not m or (not m.group(1) and not m.group(2)):
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        if m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        else:
            start = max(0, size - int(m.group(2)))
        if start >= size or start > end:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        status = 206

    def body():
        with open(path, "rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start + 1), "Cache-Control": "no-store"}
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(body(), status_code=status, media_type=mime, headers=headers)


def build_app(opts: ServeOptions) -> Starlette:
    """The Starlette app for opts (checked: see check_options)."""
    from starlette.concurrency import run_in_threadpool

    check_options(opts)
    core = CatalogApp(opts)

    def err(status, message):
        return JSONResponse({"error": str(message)[:300]}, status_code=status)

    def guarded(fn):
        async def endpoint(request: Request):
            if opts.token is not None:
                auth = request.headers.get("authorization", "")
                given = auth[7:] if auth.lower().startswith("bearer ") else request.query_params.get("token", "")
                if not hmac.compare_digest(given.encode("utf-8", "replace"), opts.token.encode()):
                    return err(401, "a valid token is required (Authorization: Bearer TOKEN or ?token=TOKEN)")
            try:
                return await fn(request)
            except HttpError as exc:
                return err(exc.status, exc)
            except CatalogError as exc:
                return err(400, exc)
            except AuraCoreError as exc:
                return err(400, exc)
        return endpoint

    def reader(method, *keys):
        async def fn(request):
            q = dict(request.query_params)
            path_args = [request.path_params[k] for k in keys]
            return JSONResponse(await run_in_threadpool(method, q, *path_args))
        return guarded(fn)

    async def audio(request):
        path = await run_in_threadpool(core.audio_path, request.path_params["fid"])
        return _audio_response(request, path)

    async def analyse(request):
        body = await _read_body(request, 64 * 1024)
        try:
            data = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "the body must be JSON: {\"path\": \"NAME\"}") from None
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise HttpError(400, "the body must be JSON: {\"path\": \"NAME\"}")
        return JSONResponse(await run_in_threadpool(core.analyse, data["path"]))

    async def upload(request):
        name = request.query_params.get("name", "")
        if not NAME_RE.fullmatch(name) or ".." in name or not name.lower().endswith(audio_io.AUDIO_EXTENSIONS):
            raise HttpError(400, "name: a plain file name (letters, digits, . _ - space) with an audio extension "
                                 "(" + " ".join(audio_io.AUDIO_EXTENSIONS) + ")")
        target = core.inside_media(name)
        if os.path.exists(target):
            raise HttpError(409, f"{name}: already in the media folder; choose another name")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > opts.max_upload_bytes):
            raise HttpError(413, f"the upload is larger than the limit of {opts.max_upload_bytes} bytes")
        fd, tmp = tempfile.mkstemp(prefix=audio_io.TEMP_PREFIX, suffix=os.path.splitext(name)[1], dir=core.media)
        try:
            total = 0
            with os.fdopen(fd, "wb") as out:
                async for chunk in request.stream():
                    total += len(chunk)
                    if total > opts.max_upload_bytes:
                        raise HttpError(413, f"the upload is larger than the limit of {opts.max_upload_bytes} bytes")
                    out.write(chunk)
            if total == 0:
                raise HttpError(400, "the upload is empty")
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, target)  # never replaces a file that appeared meanwhile
            except FileExistsError:
                raise HttpError(409, f"{name}: already in the media folder; choose another name") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        d = await run_in_threadpool(core.analyse, name)
        d["name"] = name
        return JSONResponse(d, status_code=201)

    async def page(request):
        return FileResponse(os.path.join(WEB, "index.html"), headers={"Cache-Control": "no-store"})

    async def not_found(request, exc):
        return err(getattr(exc, "status_code", 404), getattr(exc, "detail", "not found"))

    async def no_icon(request):
        return Response(status_code=204)

    routes = [
        Route("/", page),
        Route("/favicon.ico", no_icon),
        Route("/api/health", reader(core.health)),
        Route("/api/stats", reader(core.stats)),
        Route("/api/files", reader(core.files)),
        Route("/api/search", reader(core.search)),
        Route("/api/files/{fid}", reader(core.file_detail, "fid")),
        Route("/api/files/{fid}/waveform", reader(core.waveform, "fid")),
        Route("/api/files/{fid}/audio", guarded(audio)),
        Route("/api/regions/{rid}", reader(core.region_detail, "rid")),
        Route("/api/analyse", guarded(analyse), methods=["POST"]),
        Route("/api/upload", guarded(upload), methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.core = core
    return app


async def _read_body(request: Request, limit: int) -> bytes:
    parts, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise HttpError(413, f"the body is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def serve(opts: ServeOptions, ready=None) -> None:
    """Run the server until SIGINT/SIGTERM; prints its URL on stdout. ready(url) is called
    once it listens (for tests)."""
    import uvicorn

    app = build_app(opts)
    family = socket.AF_INET6 if ":" in opts.bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((opts.bind, opts.port))
    except OSError as exc:
        sock.close()
        raise CatalogError(f"cannot listen on tcp {opts.bind}:{opts.port} ({exc.strerror})") from None
    sock.listen(128)
    port = sock.getsockname()[1]
    host = f"[{opts.bind}]" if family == socket.AF_INET6 else opts.bind
    url = f"http://{host}:{port}/"
    print(f"catalog: {url}{'?token=...' if opts.token else ''}  (db {opts.db}, media {app.state.core.media})",
          flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=5,
                            limit_concurrency=200, h11_max_incomplete_event_size=64 * 1024, lifespan="off")
    server = uvicorn.Server(config)
    if ready:
        ready(url)
    server.run(sockets=[sock])
