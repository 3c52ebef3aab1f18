"""The parameter registry: every live parameter declared once, and the engine's vector layout.

The engine holds one float64 vector indexed by this registry. The OSC address space, the
WebSocket messages, ``render --set``, the presets and the documentation table all derive
from ``PARAMS``. Booleans are 0.0 or 1.0 in the vector.
"""

import math
from dataclasses import dataclass

import numpy as np

from auracore.errors import ParamError, clip_text  # ParamError re-exported: the registry's own error


@dataclass(frozen=True)
class Param:
    """One parameter: dotted lowercase id with a unit suffix, range, default, glide time."""

    id: str
    unit: str
    minimum: float
    maximum: float
    default: float
    smoothing_ms: float
    description: str
    kind: str = "float"  # "float", "bool" or "choice" (an integer index)

    @property
    def osc_address(self) -> str:
        return "/auracore/" + self.id.replace(".", "/")

    @property
    def range_text(self) -> str:
        """The range as the generated docs write it: "0 or 1" for a bool, else "min to max"."""
        return "0 or 1" if self.kind == "bool" else f"{self.minimum:g} to {self.maximum:g}"


# The 8-band EQ: band 1 low shelf, bands 2-7 peaking, band 8 high shelf.
EQ_BANDS = 8
EQ_DEFAULT_FREQS_HZ = (80.0, 160.0, 400.0, 1000.0, 2500.0, 5000.0, 8000.0, 12000.0)
EQ_DEFAULT_Q = (0.707, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.707)
GLIDE_MS = 20.0


def _eq_params():
    out = []
    for b in range(1, EQ_BANDS + 1):
        shape = "low shelf" if b == 1 else "high shelf" if b == EQ_BANDS else "peaking"
        out += [
            Param(f"eq.{b}.gain_db", "dB", -18.0, 18.0, 0.0, GLIDE_MS,
                  f"EQ band {b} ({shape}) gain"),
            Param(f"eq.{b}.freq_hz", "Hz", 20.0, 20000.0, EQ_DEFAULT_FREQS_HZ[b - 1], GLIDE_MS,
                  f"EQ band {b} ({shape}) centre or corner frequency (held below 0.49 x the sample rate)"),
            Param(f"eq.{b}.q", "", 0.1, 10.0, EQ_DEFAULT_Q[b - 1], GLIDE_MS,
                  f"EQ band {b} ({shape}) quality factor"),
        ]
    return out


PARAMS = tuple(
    [Param("input.gain_db", "dB", -24.0, 24.0, 0.0, GLIDE_MS, "Gain before everything else")]
    + _eq_params()
    + [
        Param("comp.threshold_db", "dBFS", -60.0, 0.0, -18.0, GLIDE_MS, "Compressor threshold"),
        Param("comp.ratio", ":1", 1.0, 20.0, 2.0, GLIDE_MS, "Compressor ratio (1 = off)"),
        Param("comp.attack_ms", "ms", 0.1, 200.0, 10.0, GLIDE_MS,
              "Compressor attack time constant (63% of a step)"),
        Param("comp.release_ms", "ms", 5.0, 2000.0, 150.0, GLIDE_MS,
              "Compressor release time constant (63% of a step)"),
        Param("comp.knee_db", "dB", 0.0, 24.0, 6.0, GLIDE_MS, "Compressor soft-knee width"),
        Param("comp.makeup_db", "dB", -12.0, 24.0, 0.0, GLIDE_MS, "Compressor makeup gain"),
        Param("comp.rms", "bool", 0.0, 1.0, 0.0, 0.0,
              "Compressor detector: 0 = peak, 1 = RMS (10 ms)", "bool"),
        Param("width.amount", "x", 0.0, 2.0, 1.0, GLIDE_MS,
              "Stereo width as side gain (1 = unchanged, 0 = mono); mono input passes"),
        Param("loudness.auto", "bool", 0.0, 1.0, 0.0, 0.0,
              "Steer the running loudness toward loudness.target_lufs (slow, at most 12 dB)", "bool"),
        Param("loudness.target_lufs", "LUFS", -40.0, -5.0, -14.0, 0.0,
              "Loudness target for loudness.auto and render --two-pass"),
        Param("output.gain_db", "dB", -24.0, 24.0, 0.0, GLIDE_MS, "Gain before the limiter"),
        Param("limiter.ceiling_dbtp", "dBTP", -20.0, 0.0, -1.0, GLIDE_MS,
              "Limiter true-peak ceiling"),
        Param("limiter.release_ms", "ms", 1.0, 2000.0, 100.0, GLIDE_MS, "Limiter release time constant"),
        Param("ai.enabled", "bool", 0.0, 1.0, 0.0, 0.0, "Let the models steer the chain", "bool"),
        Param("ai.amount", "x", 0.0, 1.0, 0.5, GLIDE_MS,
              "Blend of the models' targets with the manual settings (0 = manual only)"),
        Param("bypass", "bool", 0.0, 1.0, 0.0, GLIDE_MS,
              "Pass the input through (latency-aligned, crossfaded)", "bool"),
    ]
)

INDEX = {p.id: i for i, p in enumerate(PARAMS)}
N_PARAMS = len(PARAMS)


def _i(pid):
    return INDEX[pid]


# Vector positions the kernels use (compile-time constants for Numba).
P_INPUT_GAIN = _i("input.gain_db")
P_EQ_GAIN = _i("eq.1.gain_db")  # band b (0-based): P_EQ_GAIN + 3*b; freq +1, q +2
P_COMP_THRESHOLD = _i("comp.threshold_db")
P_COMP_RATIO = _i("comp.ratio")
P_COMP_ATTACK = _i("comp.attack_ms")
P_COMP_RELEASE = _i("comp.release_ms")
P_COMP_KNEE = _i("comp.knee_db")
P_COMP_MAKEUP = _i("comp.makeup_db")
P_COMP_RMS = _i("comp.rms")
P_WIDTH = _i("width.amount")
P_LOUD_AUTO = _i("loudness.auto")
P_LOUD_TARGET = _i("loudness.target_lufs")
P_OUTPUT_GAIN = _i("output.gain_db")
P_CEILING = _i("limiter.ceiling_dbtp")
P_LIM_RELEASE = _i("limiter.release_ms")
P_AI_ENABLED = _i("ai.enabled")
P_AI_AMOUNT = _i("ai.amount")
P_BYPASS = _i("bypass")




def default_vector() -> np.ndarray:
    """The default parameter vector: (N_PARAMS,) float64."""
    return np.array([p.default for p in PARAMS], dtype=np.float64)


def smoothing_ms_vector() -> np.ndarray:
    """Per-parameter glide times in ms: (N_PARAMS,) float64 (0 = jump)."""
    return np.array([p.smoothing_ms for p in PARAMS], dtype=np.float64)


BOOL_WORDS = {"1": 1.0, "on": 1.0, "true": 1.0, "yes": 1.0, "0": 0.0, "off": 0.0, "false": 0.0, "no": 0.0}
BOOL_ACCEPTED = "0 or 1 (also true/false, on/off, yes/no)"


def lookup(pid: str) -> Param:
    """The Param for an id; ParamError naming the closest ids if unknown."""
    try:
        return PARAMS[INDEX[pid]]
    except (KeyError, TypeError):
        import difflib

        near = difflib.get_close_matches(pid, INDEX, n=3) if isinstance(pid, str) and len(pid) < 100 else []
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise ParamError(f"unknown parameter id '{clip_text(pid, 60)}'{hint}") from None


def coerce(pid: str, value, strict: bool = False) -> tuple[float, bool]:
    """Validate a value for a parameter: returns (value clamped to range, was_clamped).

    Booleans take True/False, 0/1 or the words in BOOL_WORDS; strict (files, the command
    line) refuses any other number, live control (strict=False) switches at 0.5. A number
    parameter refuses a boolean. Raises ParamError for an unknown id or a bad value.
    """
    p = lookup(pid)
    shown = clip_text(repr(value) if not isinstance(value, str) else f"'{value}'", 40)
    if p.kind == "bool":
        if isinstance(value, bool):
            return float(value), False
        if isinstance(value, str):
            v = BOOL_WORDS.get(value.strip().lower())
        else:
            try:
                v = float(value)
            except (TypeError, ValueError, OverflowError):
                v = None
            if v is not None and not strict and math.isfinite(v):
                v = 1.0 if v >= 0.5 else 0.0  # live control: a fader on a toggle switches at half way
            v = v if v in (0.0, 1.0) else None
        if v is None:
            raise ParamError(f"{pid}: {shown} is not a boolean; use {BOOL_ACCEPTED}")
        return v, False
    if isinstance(value, bool):  # a TOML/JSON true given to a number would read as 1
        raise ParamError(f"{pid}: {shown} is a boolean; this parameter takes a number in {p.range_text} {p.unit}".rstrip())
    try:
        v = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, OverflowError):
        raise ParamError(f"{pid}: {shown} is not a number") from None
    if not np.isfinite(v):
        raise ParamError(f"{pid}: {shown} is not a finite number")
    clamped = min(max(v, p.minimum), p.maximum)
    return clamped, clamped != v


def check_in_range(pid: str, value) -> float:
    """Strict validation for files and the command line: ParamError if out of range."""
    v, clamped = coerce(pid, value, strict=True)
    if clamped:
        p = lookup(pid)
        raise ParamError(f"{pid}={clip_text(value, 40)} is out of range [{p.minimum:g}, {p.maximum:g}] {p.unit}".rstrip())
    return v
