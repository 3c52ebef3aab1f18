"""The ``auracore catalog`` subcommand: add files to a region catalog, search, tag, remove, stats, export, serve.

The catalog is one SQLite file (``--db``, default ./auracore-catalog.sqlite). Exit codes as
``auracore.control.cli``: 0 done, 1 a file, catalog or option problem (one line), 2 usage,
3 internal error, 130/143/129 interrupted (``add`` keeps every file it finished).
"""

import argparse
import json
import os
import sys

from auracore.errors import AuraCoreError

DEFAULT_DB = "auracore-catalog.sqlite"


def _float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


def _positive(text):
    v = _float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give zero or more")
    return v


def _above_zero(text):
    v = _float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number above zero")
    return v


def _limit(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= v <= 10000:
        raise argparse.ArgumentTypeError(f"{text}: give 1 to 10000")
    return v


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``catalog`` and its subcommands; sets func."""
    p = subparsers.add_parser(
        "catalog", help="a searchable catalog of audio regions (SQLite), with an HTTP API and page",
        description="Split audio files into content regions by silence, analyse each region (loudness and "
                    "peaks, fingerprint, content class and embedding, tempo, metre and key), keep everything in "
                    "one SQLite file, and search it by value or by similarity. See docs/catalog.md.")
    p.add_argument("--db", metavar="FILE", default=DEFAULT_DB, help=f"the catalog file (default ./{DEFAULT_DB})")
    sub = p.add_subparsers(dest="catalog_command", metavar="ACTION")
    sub.required = True

    a = sub.add_parser("add", help="add files or folders (recursive)")
    a.add_argument("paths", nargs="+", metavar="PATH")
    a.add_argument("--threshold-db", type=_float, default=-30.0,
                   help="silence threshold relative to the file's integrated loudness, dB (default -30)")
    a.add_argument("--min-region-s", type=_positive, default=0.5, help="shortest region kept, s (default 0.5)")
    a.add_argument("--min-gap-s", type=_positive, default=0.5, help="shortest silence that splits, s (default 0.5)")
    a.add_argument("--plugins", metavar="NAMES", default=None,
                   help="comma-separated plugins to run (default: every available one; see `catalog plugins`)")
    a.add_argument("--timeout-s", type=_above_zero, default=None,
                   help="time limit per plugin and region, s (default: each plugin's own, 60-120 s)")
    a.add_argument("--json", action="store_true", help="print a JSON summary")
    a.set_defaults(func=run_add)

    s = sub.add_parser("search", help="find regions by class, tempo, key, duration, loudness, tag, text or similarity")
    s.add_argument("--class", dest="class_", metavar="NAME", help="content class (speech acoustic band noise silence)")
    s.add_argument("--tempo", metavar="LO-HI", help="tempo range, BPM (e.g. 90-130)")
    s.add_argument("--key", metavar="KEY", help='key, e.g. "A minor"')
    s.add_argument("--duration", metavar="LO-HI", help="region duration range, s")
    s.add_argument("--loudness", metavar="LO-HI", help="integrated loudness range, LUFS (e.g. -20--10)")
    s.add_argument("--tag", metavar="TAG")
    s.add_argument("--text", metavar="WORDS", help="words in file names and tags (prefixes match)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--like", metavar="FILE[:START-END]", help="regions similar to this file or excerpt (seconds)")
    g.add_argument("--like-region", metavar="ID", type=_limit_id, help="regions similar to this stored region")
    s.add_argument("--limit", type=_limit, default=20, help="most results (default 20)")
    s.add_argument("--json", action="store_true", help="print a JSON list, best first")
    s.set_defaults(func=run_search)

    t = sub.add_parser("tag", help="tag a file (id or path) or region (r<id>)")
    t.add_argument("ref", metavar="FILE|r<REGION>")
    t.add_argument("tags", nargs="+", metavar="TAG")
    t.add_argument("--remove", action="store_true", help="remove these tags instead")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=run_tag)

    r = sub.add_parser("remove", help="remove files (id or path) from the catalog")
    r.add_argument("refs", nargs="+", metavar="FILE")
    r.set_defaults(func=run_remove)

    st = sub.add_parser("stats", help="counts of files, regions, errors and duration")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=run_stats)

    e = sub.add_parser("export", help="every region as Parquet or CSV")
    eg = e.add_mutually_exclusive_group(required=True)
    eg.add_argument("--parquet", metavar="OUT")
    eg.add_argument("--csv", metavar="OUT")
    e.set_defaults(func=run_export)

    pl = sub.add_parser("plugins", help="the analysis plugins and whether each can run here")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=run_plugins)

    v = sub.add_parser("serve", help="the HTTP API and page")
    v.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others need --token)")
    v.add_argument("--port", type=int, default=8770, help="TCP port (default 8770; 0 picks a free one)")
    v.add_argument("--token", default=None, help="secret (12+ characters) required of every API request")
    v.add_argument("--media", metavar="DIR", default=None,
                   help="folder for uploads and the root of analyse-by-path (default: <db>-media beside the catalog)")
    v.add_argument("--max-upload-mb", type=_positive, default=200.0, help="largest upload, MB (default 200)")
    v.set_defaults(func=run_serve)
    return p


def _limit_id(text):
    try:
        v = int(text.lstrip("rR"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a region id") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a region id")
    return v


def _catalog(args, readonly=False):
    from auracore.offline.catalog.store import Catalog

    return Catalog(args.db, readonly=readonly)


def _plugins(args):
    from auracore.offline.catalog import plugins as P

    chosen = P.default_plugins()
    if args.plugins is not None:
        names = [n.strip() for n in args.plugins.split(",") if n.strip()]
        for n in names:
            if n not in P.BUILTIN:
                raise AuraCoreError(f"plugin {n[:40]!r}: unknown; the plugins are {', '.join(P.BUILTIN)}")
            if n == "fingerprint" and P.fingerprint_available():
                raise AuraCoreError(f"plugin fingerprint: absent here ({P.fingerprint_available()})")
        chosen = [P.BUILTIN[n] for n in names]
    if args.timeout_s:
        from dataclasses import replace

        chosen = [replace(p, timeout_s=args.timeout_s) for p in chosen]
    return chosen


def _bar():
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return lambda total, label: tqdm(total=total, desc=label, unit="B", unit_scale=True, file=sys.stderr, leave=False)


def _sqlite_errors(fn):
    """Run fn(args); an SQLite failure (a full or read-only disk, a locked or damaged file)
    becomes one line naming the catalog."""
    import functools
    import sqlite3

    @functools.wraps(fn)
    def wrapped(args):
        try:
            return fn(args)
        except sqlite3.Error as exc:
            raise AuraCoreError(f"{args.db}: the catalog could not be read or written ({exc})") from None
    return wrapped


def _remove_if_empty(db: str) -> None:
    """Remove a catalog this run created when it holds no file (a stop or failure before the
    first file was finished leaves nothing behind)."""
    import sqlite3

    try:
        con = sqlite3.connect(os.fsencode(db), timeout=5)
        try:
            n = con.execute("SELECT count(*) FROM files").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        n = 0
    if n == 0:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(db + suffix)
            except OSError:
                pass


@_sqlite_errors
def run_add(args) -> int:
    from auracore.offline.catalog.store import collect_paths
    from auracore.stopping import finish  # a stop after the last file's commit is too late to undo it

    plugins = _plugins(args)
    files = collect_paths(args.paths)  # a missing path is refused before a catalog is made
    if os.path.exists(args.db):
        for f in files:
            if os.path.exists(f) and os.path.samefile(f, args.db):
                raise AuraCoreError(f"{args.db}: this is one of the files to add; give the catalog another name")
    created = not os.path.lexists(args.db)
    try:
        with _catalog(args) as cat:
            res = cat.add(args.paths, plugins=plugins, threshold_db=args.threshold_db,
                          min_region_s=args.min_region_s, min_gap_s=args.min_gap_s, progress=_bar(),
                          log=None if args.json else (lambda line: print(line, flush=True)),
                          before_last_commit=finish)
    except BaseException as exc:
        if created and os.path.isfile(args.db):
            _remove_if_empty(args.db)
        from .entry import Terminated

        if isinstance(exc, (KeyboardInterrupt, Terminated)):
            how = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"stopped by {exc.name}"
            print(f"auracore catalog: {how}; the files finished are kept, and running the same add again resumes",
                  file=sys.stderr)
            return 130 if isinstance(exc, KeyboardInterrupt) else exc.exit_code
        raise
    d = res.to_dict()
    if args.json:
        print(json.dumps(d))
    else:
        print(f"{d['files_added']} added, {d['files_unchanged']} unchanged, {d['files_failed']} failed; "
              f"{d['regions']} regions, {d['plugin_errors']} plugin errors; {d['audio_s']:.1f} s of audio "
              f"in {d['elapsed_s']:.1f} s")
    return 0


@_sqlite_errors
def run_search(args) -> int:
    from auracore.offline.catalog import search as S

    filters = dict(class_=args.class_, tempo=args.tempo, key=args.key, duration=args.duration,
                   loudness=args.loudness, tag=args.tag, text=args.text)
    with _catalog(args, readonly=True) as cat:
        vec = exclude = None
        if args.like_region:
            vec, exclude = S.VectorIndex().vector_of(cat.con, args.like_region), args.like_region
        elif args.like:
            vec = like_file_vector(args.like)
        rows = S.search(cat.con, limit=args.limit, like_vector=vec, exclude_region=exclude, **filters)
    if args.json:
        print(json.dumps(rows, allow_nan=False))
    else:
        for r in rows:
            dist = f"  d={r['distance']:.3f}" if "distance" in r else ""
            tempo = f"{r['tempo_bpm']:.1f} BPM" if r["tempo_bpm"] else "-"
            lufs = f"{r['loudness_lufs']:.1f} LUFS" if r["loudness_lufs"] is not None else "-"
            print(f"r{r['region_id']:<6} {r['start_s']:8.2f}-{r['end_s']:<8.2f} {r['class'] or '-':8s} {tempo:>10s} "
                  f"{r['key'] or '-':9s} {lufs:>10s}{dist}  {r['path']}")
        if not rows:
            print("no regions match")
    return 0


def like_file_vector(spec: str):
    """The query vector of FILE[:START-END] (the fingerprint and model plugins, run here)."""
    from auracore.offline.catalog import plugins as P
    from auracore.offline.catalog import search as S
    from auracore.offline.catalog.store import read_audio

    path, a, b = S.parse_like(spec)
    x, rate, _ = read_audio(path)
    if a is not None:
        if a * rate >= x.shape[0]:
            raise AuraCoreError(f"{path}: the excerpt starts at {a:g} s, after the file's end ({x.shape[0] / rate:.2f} s)")
        x = x[int(a * rate):int(b * rate)]
    return S.excerpt_vector(x, rate, P.default_plugins())


@_sqlite_errors
def run_tag(args) -> int:
    with _catalog(args) as cat:
        d = cat.tag(args.ref, args.tags, remove=args.remove)
    print(json.dumps(d) if args.json else f"{args.ref}: tags {' '.join(d['tags']) or '(none)'}")
    return 0


@_sqlite_errors
def run_remove(args) -> int:
    with _catalog(args) as cat:
        n = cat.remove(args.refs)
    print(f"removed {n} file{'s' * (n != 1)}")
    return 0


@_sqlite_errors
def run_stats(args) -> int:
    with _catalog(args, readonly=True) as cat:
        d = cat.stats()
    if args.json:
        print(json.dumps(d))
    else:
        print(f"{d['files']} files ({d['files_failed']} unreadable), {d['regions']} regions, {d['errors']} errors, "
              f"{d['duration_s'] / 3600:.2f} h of audio ({d['region_duration_s'] / 3600:.2f} h in regions)")
        for c, n in sorted(d["classes"].items()):
            print(f"  {c:10s} {n}")
    return 0


@_sqlite_errors
def run_export(args) -> int:
    fmt, out = ("parquet", args.parquet) if args.parquet else ("csv", args.csv)
    with _catalog(args, readonly=True) as cat:
        n = cat.export(out, fmt)
    print(f"{out}: {n} rows")
    return 0


def run_plugins(args) -> int:
    from auracore.offline.catalog.plugins import available_plugins

    rows = available_plugins()
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            state = "available" if r["available"] else f"absent: {r['absent_reason']}"
            print(f"{r['name']:12s} v{r['version']}  {r['description']} ({state})")
    return 0


def run_serve(args) -> int:
    from auracore.offline.catalog.http import ServeOptions, serve

    media = args.media or (os.path.splitext(os.path.abspath(args.db))[0] + "-media")
    serve(ServeOptions(db=args.db, bind=args.bind, port=args.port, token=args.token, media=media,
                       max_upload_bytes=int(args.max_upload_mb * 1e6)))
    return 0
