"""Presets: TOML tables of parameter id = value, shipped in the package or given as a path."""

import os
import tomllib
from importlib import resources

import numpy as np

from auracore.errors import PresetError
from auracore.kernels import params as P

PRESET_DIR = "presets"




def preset_names() -> list[str]:
    """Names of the presets shipped in the package, sorted."""
    folder = resources.files("auracore.control").joinpath(PRESET_DIR)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _flatten(table: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in table.items():
        pid = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, pid + "."))
        else:
            out[pid] = value
    return out


def load_preset(name_or_path: str) -> dict[str, float]:
    """Parameter values of a preset: {id: value}, validated against the registry.

    name_or_path: a shipped preset name (see preset_names) or a path to a TOML file whose
    tables spell parameter ids (``[eq.3] gain_db = 2`` or ``"eq.3.gain_db" = 2``). A
    top-level ``description`` string is allowed and ignored here.
    """
    if os.path.sep in name_or_path or name_or_path.endswith(".toml"):
        path = name_or_path
        if not os.path.isfile(path):
            raise PresetError(f"preset file {path} does not exist")
        try:
            with open(path, "rb") as fh:
                table = tomllib.load(fh)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PresetError(f"preset file {path} is not valid TOML ({exc})") from None
        except OSError as exc:
            raise PresetError(f"preset file {path} cannot be read ({exc.strerror})") from None
        where = path
    else:
        if name_or_path not in preset_names():
            raise PresetError(f"unknown preset '{name_or_path}'; shipped presets: "
                              + ", ".join(preset_names()) + " (or give a path to a .toml file)")
        text = resources.files("auracore.control").joinpath(PRESET_DIR, name_or_path + ".toml").read_text()
        table = tomllib.loads(text)
        where = f"preset '{name_or_path}'"
    values = {}
    for pid, value in _flatten(table).items():
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
            raise P.ParamError(f"--set {item}: expected ID=VALUE, e.g. eq.3.gain_db=2.5")
        pid, value = item.split("=", 1)
        out[pid.strip()] = P.check_in_range(pid.strip(), value)
    return out


def build_vector(preset: str | None, assignments: dict[str, float]) -> np.ndarray:
    """The parameter vector: registry defaults, then the preset, then the assignments."""
    vec = P.default_vector()
    values = load_preset(preset) if preset else {}
    values.update(assignments)
    for pid, value in values.items():
        vec[P.INDEX[pid]] = value
    return vec
