"""Parameter sets: ``Params`` over the registry, and presets (TOML tables of id = value,
shipped in the package or given as a path), read safely and written back."""

import os
import tomllib
from importlib import resources

import numpy as np

from auracore.errors import PresetError, clip_text
from auracore.kernels import params as P

from .audio_io import input_problem

PRESET_DIR = "presets"


def preset_names() -> list[str]:
    """Names of the presets shipped in the package, sorted."""
    folder = resources.files("auracore.offline").joinpath(PRESET_DIR)
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
    problem = input_problem(path, "a .toml file")
    if problem:
        raise PresetError(f"{what} {path}: {problem}")
    try:
        size = os.path.getsize(path)
        if size > MAX_TOML_BYTES:
            raise PresetError(f"{what} {path} is {size} bytes; a {what.split()[0]} is at most "
                              f"{MAX_TOML_BYTES // 1024} KiB")
        # a raw descriptor, not a file object: a Ctrl-C between open and the with block
        # would leave a file object to the collector, and its ResourceWarning on stderr
        fd = os.open(path, os.O_RDONLY)
        try:
            chunks, left = [], MAX_TOML_BYTES + 1
            while left > 0:
                chunk = os.read(fd, left)
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            data = b"".join(chunks)
        finally:
            os.close(fd)
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
        text = resources.files("auracore.offline").joinpath(PRESET_DIR, name_or_path + ".toml").read_text()
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
    text = resources.files("auracore.offline").joinpath(PRESET_DIR, name + ".toml").read_text()
    return str(tomllib.loads(text).get("description", ""))


def build_params(preset: str | None, assignments: dict | None = None) -> "Params":
    """Registry defaults, then the preset (a name or a path; None for none), then the
    assignments {id: value}, every value validated."""
    params = Params.preset(preset) if preset is not None else Params()
    for pid, value in (assignments or {}).items():
        params.set(pid, value)
    return params


def build_vector(preset: str | None, assignments: dict | None = None) -> np.ndarray:
    """build_params as the kernels' (N_PARAMS,) float64 vector."""
    return build_params(preset, assignments).vector


class Params:
    """A value for every parameter of the registry (``auracore params`` lists them), each
    validated against its range on the way in.

    ``Params()`` holds the defaults; ``Params({"comp.ratio": 3})`` or
    ``Params.preset("streaming").set("eq.3.gain_db", 2.5)`` (chainable) change some;
    ``p["comp.ratio"]`` reads one. ``to_dict()`` gives {id: value} for all, ``to_toml()`` a
    preset file that ``Params.from_toml`` reads back to the same values. Booleans are 0.0
    or 1.0. ``np.asarray(p)`` (or ``p.vector``) is the kernels' (N_PARAMS,) float64 vector.
    Raises ParamError (a PresetError for files) naming the id, the value and the range.
    """

    __slots__ = ("_vector",)

    def __init__(self, values=None):
        self._vector = P.default_vector()
        for pid, value in dict(values or {}).items():
            self.set(pid, value)

    @classmethod
    def preset(cls, name_or_path: str) -> "Params":
        """A shipped preset by name (see ``preset_names()``) or a TOML preset file by path."""
        return cls(load_preset(name_or_path))

    @classmethod
    def from_toml(cls, path: str) -> "Params":
        """The preset file at path (tables of parameter ids, as ``to_toml`` writes)."""
        if not path:
            raise PresetError("no preset file given")
        return cls(load_preset(path if (os.path.sep in path or path.endswith(".toml")) else "./" + path))

    @classmethod
    def from_vector(cls, vector) -> "Params":
        """From a (N_PARAMS,) vector in registry order, each value checked."""
        vector = np.asarray(vector, dtype=np.float64)
        if vector.shape != (P.N_PARAMS,):
            raise P.ParamError(f"a parameter vector has {P.N_PARAMS} values, not shape {vector.shape}")
        return cls({p.id: float(v) for p, v in zip(P.PARAMS, vector)})

    def set(self, pid: str, value) -> "Params":
        """Set one parameter (validated, never clamped); returns self for chaining."""
        self._vector[P.INDEX[P.lookup(pid).id]] = P.check_in_range(pid, value)
        return self

    def __getitem__(self, pid: str) -> float:
        return float(self._vector[P.INDEX[P.lookup(pid).id]])

    def __setitem__(self, pid: str, value) -> None:
        self.set(pid, value)

    def __iter__(self):
        return (p.id for p in P.PARAMS)

    def __len__(self) -> int:
        return P.N_PARAMS

    def __eq__(self, other) -> bool:
        return isinstance(other, Params) and bool(np.array_equal(self._vector, other._vector))

    __hash__ = None

    def __array__(self, dtype=None, copy=None):
        return self.vector if dtype is None else self.vector.astype(dtype)

    def __repr__(self) -> str:
        changed = ", ".join(f"{k!r}: {v:g}" for k, v in self.changed().items())
        return f"Params({{{changed}}})"

    @property
    def vector(self) -> np.ndarray:
        """A copy of the values as the kernels' (N_PARAMS,) float64 vector, registry order."""
        return self._vector.copy()

    def copy(self) -> "Params":
        new = Params()
        new._vector[:] = self._vector
        return new

    def to_dict(self) -> dict[str, float]:
        """{id: value} for every parameter, in registry order."""
        return {p.id: float(v) for p, v in zip(P.PARAMS, self._vector)}

    def changed(self) -> dict[str, float]:
        """{id: value} of the parameters that differ from the registry's defaults."""
        return {p.id: float(v) for p, v in zip(P.PARAMS, self._vector) if v != p.default}

    def to_toml(self, description: str | None = None, only_changed: bool = False) -> str:
        """A preset file holding every value (or only those that differ from the defaults),
        one table per group (``[eq.3]`` / ``gain_db = 2.5``); loads back to equal values."""
        values = self.changed() if only_changed else self.to_dict()
        lines = []
        if description:
            lines.append(f"description = {_toml_string(description)}")
        tables = {}
        for pid, value in values.items():
            head, key = pid.rsplit(".", 1) if "." in pid else ("", pid)
            tables.setdefault(head, []).append((key, value))
        for head, items in sorted(tables.items(), key=lambda kv: kv[0] != ""):  # bare keys before any table
            if head:
                lines.append("")
                lines.append(f"[{head}]")
            for key, value in items:
                kind = P.lookup(f"{head}.{key}" if head else key).kind
                lines.append(f"{key} = {int(value) if kind == 'bool' else repr(float(value))}")
        return "\n".join(lines).lstrip("\n") + "\n"


def _toml_string(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

