"""The fingerprint table on disk: Parquet or CSV by extension, written atomically, and feature_metadata.json beside it."""

import csv
import json
import os

from auracore.errors import AuraCoreError
from auracore.offline.audio_io import atomic_file

from .features import FEATURES, FEATURE_NAMES, GATE_DBFS, MODEL_EXCERPTS, REFERENCE_LUFS, VERSION, frame_params

# metadata columns, before the 64 features: (name, type, meaning)
META_COLUMNS = (
    ("path", "string", "the input file as given"),
    ("region_index", "int", "the region's number in its file from 0 (with --regions; else -1)"),
    ("start_s", "float", "the region's start in seconds (0 for a whole file)"),
    ("end_s", "float", "the region's end in seconds (the file's duration for a whole file)"),
    ("duration_s", "float", "end_s - start_s"),
    ("sample_rate", "int", "the file's rate in Hz"),
    ("channels", "int", "the file's channel count"),
    ("class", "string", "the content classifier's most probable class"),
)
META_NAMES = tuple(c[0] for c in META_COLUMNS)
COLUMNS = META_NAMES + FEATURE_NAMES
METADATA_FILE = "feature_metadata.json"
FORMATS = (".parquet", ".csv")


class TableError(AuraCoreError, ValueError):
    """A table path of an unknown format, or a table that cannot be read back."""


def table_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise TableError(f"{path}: the table is written as .parquet or .csv; name it so")
    return ext


def metadata() -> dict:
    """What feature_metadata.json holds: the version, how the features were measured and every column."""
    return {"version": VERSION, "reference_lufs": REFERENCE_LUFS, "gate_dbfs": GATE_DBFS,
            "frame": {"n_fft_at_44100": frame_params(44100)[0], "hop_at_44100": frame_params(44100)[1]},
            "model_excerpts": MODEL_EXCERPTS,
            "metadata_columns": [{"name": n, "type": t, "description": d} for n, t, d in META_COLUMNS],
            "features": [{"name": n, "unit": u, "description": d} for n, u, d in FEATURES]}


def write_table(path: str, rows: list[dict], inputs: tuple = ()) -> str:
    """Write rows (dicts holding every name in COLUMNS) to path (.parquet or .csv) and
    feature_metadata.json beside it, each atomically. Returns the metadata file's path."""
    ext = table_format(path)
    with atomic_file(path, inputs=inputs) as tmp:
        if ext == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            types = {"string": pa.string(), "int": pa.int64(), "float": pa.float64()}
            fields = [pa.field(n, types[t]) for n, t, _ in META_COLUMNS] + [pa.field(n, pa.float32()) for n in FEATURE_NAMES]
            table = pa.table({n: [r[n] for r in rows] for n in COLUMNS}, schema=pa.schema(fields))
            pq.write_table(table, tmp)
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(COLUMNS)
                for r in rows:
                    w.writerow([repr(float(r[n])) if n in FEATURE_NAMES else r[n] for n in COLUMNS])
    meta_path = os.path.join(os.path.dirname(os.path.abspath(path)), METADATA_FILE)
    with atomic_file(meta_path, inputs=inputs) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(metadata(), fh, indent=2)
            fh.write("\n")
    return meta_path


def read_table(path: str) -> list[dict]:
    """The rows of a table written by write_table (features as float, ints as int)."""
    ext = table_format(path)
    if ext == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    kinds = {n: t for n, t, _ in META_COLUMNS}
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            row = {}
            for n in COLUMNS:
                v = r[n]
                row[n] = int(v) if kinds.get(n) == "int" else float(v) if kinds.get(n, "float") == "float" else v
            out.append(row)
    return out
