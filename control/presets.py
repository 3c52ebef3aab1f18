"""Presets: TOML tables of parameter id = value, shipped in the package or given as a path."""

import os
import tomllib
from importlib import resources

import numpy as np

from auracore.errors import PresetError, clip_text
from auracore.kernels import params as P

PRESET_DIR = "presets"




def preset_names() -> list[str]:
    """Names of the presets shipped in the package, sorted."""
    folder = resources.files("auracore.control").joinpath(PRESET_DIR)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def flatten_table(table: dict, prefix: str = "") -> dict:
    """{"eq": {"3": {"gain_db": 2}}} -> {"eq.3.gain_db": 2}: nested TOML tables as dotted ids."""
    out = {}
    for key, value in table.items():
        pid = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_table(value, pid + "."))
        else:
            out[pid] = value
    return out


MAX_TOML_BYTES = 64 * 1024   # a full preset is under 3 KB
MAX_KEY_PARTS = 4            # "eq.3.gain_db" has 3
MAX_KEYS = 1000


def _check_toml_shape(text: str, where: str) -> None:
    """Refuse, before parsing, what no preset or config holds and what would make the
    TOML parser take minutes or gigabytes (thousands of dotted parts, deep nesting)."""
    depth = deepest = 0
    for ch in text:  # bracket nesting, strings included: a preset never needs it deep
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
    if deepest > 8:
        raise PresetError(f"{where}: arrays or tables nested {deepest} deep; a preset or config holds "
                          "flat tables of values")
    for line in text.splitlines():
        key = line.split("=", 1)[0] if "=" in line else line
        key = key.split("#", 1)[0]
        if key.count(".") >= MAX_KEY_PARTS + 2:  # a table header plus a dotted key, with slack
            raise PresetError(f"{where}: a key with {key.count('.') + 1} dotted parts "
                              f"('{clip_text(key.strip(), 40)}'); parameter ids have at most {MAX_KEY_PARTS - 1}")


def read_toml(path: str, what: str = "preset file") -> dict:
    """Parse a small TOML file (a preset or a config) safely: PresetError with one line for a
    path that is not a readable regular file, a file over MAX_TOML_BYTES, a pathological
    shape, or invalid TOML."""
    if not os.path.lexists(path):
        raise PresetError(f"{what} {path} does not exist")
    if os.path.isdir(path):
        raise PresetError(f"{what} {path} is a folder; give a .toml file")
    if not os.path.isfile(path):
        raise PresetError(f"{what} {path} is not a regular file (a pipe or a device?); give a .toml file")
    try:
        size = os.path.getsize(path)
        if size > MAX_TOML_BYTES:
            raise PresetError(f"{what} {path} is {size} bytes; a {what.split()[0]} is at most "
                              f"{MAX_TOML_BYTES // 1024} KiB")
        with open(path, "rb") as fh:
            data = fh.read(MAX_TOML_BYTES + 1)
    except OSError as exc:
        raise PresetError(f"{what} {path} cannot be read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PresetError(f"{what} {path} is not UTF-8 text") from None
    _check_toml_shape(text, f"{what} {path}")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{what} {path} is not valid TOML ({clip_text(exc, 120)})") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # e.g. an integer of a million digits
        raise PresetError(f"{what} {path} holds a value TOML cannot read here ({clip_text(exc, 80)})") from None


def load_preset(name_or_path: str) -> dict[str, float]:
    """Parameter values of a preset: {id: value}, validated against the registry.

    name_or_path: a shipped preset name (see preset_names) or a path to a TOML file whose
    tables spell parameter ids (``[eq.3] gain_db = 2`` or ``"eq.3.gain_db" = 2``). A
    top-level ``description`` string is allowed and ignored here.
    """
    if not name_or_path or not name_or_path.strip():
        raise PresetError("the preset name is empty; shipped presets: " + ", ".join(preset_names()))
    shipped = preset_names()
    if (os.path.sep in name_or_path or name_or_path.endswith(".toml")
            or (name_or_path not in shipped and os.path.lexists(name_or_path))):
        table = read_toml(name_or_path)
        where = name_or_path
    else:
        if name_or_path not in shipped:
            raise PresetError(f"unknown preset '{clip_text(name_or_path, 60)}'; shipped presets: "
                              + ", ".join(shipped) + " (or give a path to a .toml file)")
        text = resources.files("auracore.control").joinpath(PRESET_DIR, name_or_path + ".toml").read_text()
        table = tomllib.loads(text)
        where = f"preset '{name_or_path}'"
    flat = flatten_table(table)
    if len(flat) > MAX_KEYS:
        raise PresetError(f"{where}: {len(flat)} keys; the registry has {P.N_PARAMS} parameters")
    values = {}
    for pid, value in flat.items():
        if pid == "description":
            continue
        try:
            values[pid] = P.check_in_range(pid, value)
        except P.ParamError as exc:
            raise PresetError(f"{where}: {exc}") from None
    return values


def preset_description(name: str) -> str:
    """The one-line description of a shipped preset."""
    text = resources.files("auracore.control").joinpath(PRESET_DIR, name + ".toml").read_text()
    return str(tomllib.loads(text).get("description", ""))


def parse_assignments(items: list[str]) -> dict[str, float]:
    """Parse repeated ``ID=VALUE`` strings (from --set) into validated {id: value}."""
    out = {}
    for item in items:
        if "=" not in item:
            raise P.ParamError(f"--set {clip_text(item, 60)}: expected ID=VALUE, e.g. eq.3.gain_db=2.5")
        pid, value = item.split("=", 1)
        if not value.strip():
            raise P.ParamError(f"--set {clip_text(item, 60)}: no value after '='")
        out[pid.strip()] = P.check_in_range(pid.strip(), value)
    return out


def build_vector(preset: str | None, assignments: dict[str, float]) -> np.ndarray:
    """The parameter vector: registry defaults, then the preset, then the assignments."""
    vec = P.default_vector()
    values = load_preset(preset) if preset is not None else {}
    values.update(assignments)
    for pid, value in values.items():
        vec[P.INDEX[pid]] = value
    return vec
