"""Output names for a batch: one path under the output folder per input, stable across runs.

An output is named ``<input stem>-<h8><suffix>``: the input's file name without its extension,
a dash, and the first 8 hex digits of the SHA-1 of the input's absolute path. Two inputs with
the same base name in different folders (or ``a.wav`` beside ``a.flac``) get different names,
and the same input gets the same name on every run, whatever else is in the batch: that is
what resume relies on (a finished output is found again by its name).
"""

import hashlib
import os

from auracore.errors import ConfigError


def output_name(input_path: str, suffix: str) -> str:
    """The output file (or folder, for suffix "") name for input_path: ``stem-h8suffix``."""
    absolute = os.path.abspath(input_path)
    digest = hashlib.sha1(os.fsencode(absolute)).hexdigest()[:8]
    stem = os.path.splitext(os.path.basename(absolute))[0] or "input"
    return f"{stem}-{digest}{suffix}"


def plan(inputs, out_dir: str, suffix: str) -> list[tuple[str, str]]:
    """[(absolute input, absolute output)] in input order, each input once. Raises
    ConfigError if two different inputs would get the same output (a SHA-1 prefix clash)."""
    pairs, seen, owner = [], set(), {}
    out_dir = os.path.abspath(out_dir)
    for path in inputs:
        absolute = os.path.abspath(path)
        if absolute in seen:
            continue
        seen.add(absolute)
        out = os.path.join(out_dir, output_name(absolute, suffix))
        if out in owner:
            raise ConfigError(f"{absolute} and {owner[out]} would both be written to {out}; rename one")
        owner[out] = absolute
        pairs.append((absolute, out))
    return pairs


def finished(output_path: str) -> bool:
    """True when output_path is present: outputs appear only complete (renamed into place)."""
    return os.path.lexists(output_path)
