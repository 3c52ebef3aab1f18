"""The catalog's SQLite schema: tables, indexes, FTS5, and migrations by ``PRAGMA user_version``.

One writer at a time (WAL mode lets readers, such as the HTTP server, read while ``add``
writes). Each migration is a list of statements run in one transaction that also sets
``user_version``; a database newer than this code is refused.
"""

import os
import sqlite3
import urllib.parse

from auracore.errors import AuraCoreError


class CatalogError(AuraCoreError):
    """A catalog database, query or option that cannot be used (one line)."""


MIGRATIONS = [
    # 1: the first schema
    [
        """CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            content_sha256 TEXT,
            size_bytes INTEGER,
            format TEXT,
            sample_rate INTEGER,
            channels INTEGER,
            duration_s REAL,
            error TEXT,
            added_at REAL NOT NULL)""",
        """CREATE TABLE regions (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            start_s REAL NOT NULL,
            end_s REAL NOT NULL,
            duration_s REAL NOT NULL,
            class TEXT,
            tempo_bpm REAL,
            key TEXT,
            loudness_lufs REAL,
            true_peak_dbtp REAL)""",
        """CREATE TABLE region_analysis (
            region_id INTEGER NOT NULL REFERENCES regions(id) ON DELETE CASCADE,
            plugin TEXT NOT NULL,
            version INTEGER NOT NULL,
            result_json TEXT,
            error TEXT,
            elapsed_s REAL,
            PRIMARY KEY (region_id, plugin))""",
        """CREATE TABLE region_vectors (
            region_id INTEGER PRIMARY KEY REFERENCES regions(id) ON DELETE CASCADE,
            fingerprint BLOB,
            embedding BLOB)""",
        """CREATE TABLE file_summary (
            file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
            regions INTEGER NOT NULL,
            content_s REAL NOT NULL,
            errors INTEGER NOT NULL,
            loudness_lufs REAL,
            true_peak_dbtp REAL,
            threshold_dbfs REAL,
            analysis_s REAL,
            waveform BLOB)""",
        """CREATE TABLE tags (
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            region_id INTEGER REFERENCES regions(id) ON DELETE CASCADE,
            tag TEXT NOT NULL)""",
        "CREATE UNIQUE INDEX tags_unique ON tags(file_id, IFNULL(region_id, 0), tag)",
        "CREATE INDEX tags_tag ON tags(tag)",
        "CREATE INDEX files_sha ON files(content_sha256)",
        "CREATE INDEX regions_file ON regions(file_id, start_s)",
        # one index per filter column, each covering the other filter columns, so a search
        # walks one index and reads a table row only for the regions it returns
        "CREATE INDEX regions_class ON regions(class, tempo_bpm, key, duration_s, loudness_lufs, file_id)",
        "CREATE INDEX regions_tempo ON regions(tempo_bpm, class, key, duration_s, loudness_lufs, file_id)",
        "CREATE INDEX regions_key ON regions(key COLLATE NOCASE, class, tempo_bpm, duration_s, loudness_lufs, file_id)",
        "CREATE INDEX regions_duration ON regions(duration_s, class, tempo_bpm, key, loudness_lufs, file_id)",
        "CREATE INDEX regions_loudness ON regions(loudness_lufs, class, tempo_bpm, key, duration_s, file_id)",
        "CREATE INDEX analysis_errors ON region_analysis(plugin) WHERE error IS NOT NULL",
        # a counter the similarity index polls to know when to reload its matrix
        "CREATE TABLE catalog_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO catalog_meta (key, value) VALUES ('vectors_version', 0)",
        "CREATE TRIGGER vectors_added AFTER INSERT ON region_vectors BEGIN "
        "UPDATE catalog_meta SET value = value + 1 WHERE key = 'vectors_version'; END",
        "CREATE TRIGGER vectors_removed AFTER DELETE ON region_vectors BEGIN "
        "UPDATE catalog_meta SET value = value + 1 WHERE key = 'vectors_version'; END",
        "CREATE INDEX tags_region ON tags(region_id)",
        # names and tags of a file (its regions' tags too), rowid = files.id
        "CREATE VIRTUAL TABLE file_text USING fts5(name, tags, tokenize='unicode61')",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: str, create: bool = True, readonly: bool = False) -> sqlite3.Connection:
    """Open (and create or migrate, unless readonly) the catalog at path; WAL mode,
    foreign keys on. CatalogError for a file that is not a catalog or is newer than this code."""
    if os.path.isdir(path):
        raise CatalogError(f"{path}: is a folder; give a catalog file name (e.g. catalog.sqlite)")
    exists = os.path.exists(path)
    if os.path.lexists(path) and not exists:
        raise CatalogError(f"{path}: a symbolic link to a file that does not exist")
    if exists and not os.path.isfile(path):
        raise CatalogError(f"{path}: not a regular file (a pipe or a device?); give a catalog file name")
    if exists and os.path.getsize(path) == 0:
        raise CatalogError(f"{path}: an empty file, not a catalog; give a new file name or an existing catalog")
    if not exists and (readonly or not create):
        raise CatalogError(f"{path}: no such catalog; create it with `auracore catalog add`")
    if not exists:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise CatalogError(f"{path}: the folder {folder} does not exist")
    try:
        if readonly:
            uri = "file:" + urllib.parse.quote(os.fsencode(os.path.abspath(path))) + "?mode=ro"
            con = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        else:
            con = sqlite3.connect(os.fsencode(path), timeout=30, check_same_thread=False)
        con.execute("PRAGMA foreign_keys = ON")
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if not readonly:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as exc:
        if exists and "not a database" in str(exc):
            raise CatalogError(f"{path}: not a catalog database ({exc})") from None
        raise CatalogError(f"{path}: cannot open the catalog ({exc})") from None
    if version > SCHEMA_VERSION:
        con.close()
        raise CatalogError(f"{path}: catalog schema {version} is newer than this auracore reads "
                           f"({SCHEMA_VERSION}); upgrade auracore")
    if version == 0 and exists:
        tables = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            con.close()
            raise CatalogError(f"{path}: an SQLite file that is not a catalog (it has other tables)")
    if version < SCHEMA_VERSION:
        if readonly:
            con.close()
            raise CatalogError(f"{path}: catalog schema {version} needs migrating; run any writing catalog command")
        try:
            migrate(con, version)
        except sqlite3.Error as exc:
            con.close()
            raise CatalogError(f"{path}: cannot write the catalog ({exc})") from None
    return con


def migrate(con: sqlite3.Connection, version: int) -> None:
    """Apply the migrations after version, each in its own transaction."""
    for v in range(version, SCHEMA_VERSION):
        try:
            con.execute("BEGIN IMMEDIATE")
            for stmt in MIGRATIONS[v]:
                con.execute(stmt)
            con.execute(f"PRAGMA user_version = {v + 1}")
            con.execute("COMMIT")
        except sqlite3.Error:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
