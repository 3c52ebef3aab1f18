"""Mastering by reference: measure both signals, fit the chain, render in two passes.

``master`` works on arrays; ``master_file`` streams files (measure both in blocks, then
render in blocks), so memory stays flat for any length. Both run the project's own chain
(``auracore.kernels.chain``) with its true-peak limiter holding the ceiling, after an
optional offline linear-phase matching stage for what the 8 EQ bands cannot follow. The
render is split where the level is set: the first pass runs the FIRs and the chain's front
half (up to the compressor) once; the output gain and width are then solved on its output
(``level``), and the second pass runs the back half (width, gain, limiter) over it.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from auracore.errors import AudioFileError, ParamError
from auracore.kernels import params as P
from auracore.kernels.chain import PART_BACK, PART_FRONT, ChainState, process

from . import fit
from .fir import MatchFilter, design_fir, fir_taps
from .level import EXCERPT_ROUNDS, EXCERPT_TOLERANCE_DB, FrontOutput, FrontStats, back_excerpt
from .measure import Measurement, measure

MATCH_ALL = ("eq", "loudness", "dynamics", "width")
BLOCK_FRAMES = 65536
LIMITER_RELEASE_MS = 150.0
WHOLE_TOLERANCE_LU = 0.05      # the written output's loudness ...
WHOLE_TOLERANCE_DB = 0.05      # ... and side/mid ratio: a second back pass when further off


@dataclass(frozen=True)
class Plan:
    """What master will run: the chain's parameters {id: value} (registry units), the
    parameter vector, the matching FIRs (mid, side; None when not needed) and their curve."""

    params: dict
    vector: np.ndarray
    mid_fir: np.ndarray | None
    side_fir: np.ndarray | None
    matching_curve: dict | None
    details: dict

    def match_filter(self, channels: int) -> MatchFilter | None:
        return None if self.mid_fir is None else MatchFilter(self.mid_fir, self.side_fir, channels)


class FrontRenderer:
    """The first pass of a render: (frames, channels) blocks through the matching FIRs (their
    delay trimmed) and the chain's front half (``kernels.chain`` PART_FRONT: input gain, EQ,
    compressor). Its output u is aligned with the input; ``finish`` gives the rows after the
    input's end that the back half's lookahead needs, so u has frames + ``latency`` rows."""

    def __init__(self, plan: Plan, sample_rate: int, channels: int):
        self.vector = plan.vector
        self.fir = plan.match_filter(channels)
        self.state = ChainState(sample_rate, channels, params=plan.vector)
        self.channels = channels
        self.latency = self.state.latency
        self.skip = self.fir.delay if self.fir is not None else 0
        self.tail = self.skip + self.latency
        # blocks of whole FIR pieces: 65536 frames made 3 pieces of 21845 for 32768-point
        # transforms, two of 29004 need a quarter fewer transforms per frame
        piece = self.fir.piece if self.fir is not None else BLOCK_FRAMES
        self.block_frames = piece * max(1, BLOCK_FRAMES // piece)

    def filtered(self, x: np.ndarray) -> np.ndarray:
        """x through the matching FIRs, aligned (fewer frames at first; a new array)."""
        if self.fir is None:
            return np.array(x, dtype=np.float64)
        y = self.fir.process(x)
        if self.skip:
            drop = min(self.skip, y.shape[0])
            self.skip -= drop
            y = y[drop:]
        return y

    def chained(self, y: np.ndarray) -> np.ndarray:
        """``filtered``'s output through the front half, in place."""
        if y.shape[0]:
            process(y, self.state, self.vector, PART_FRONT)
        return y

    def finish(self) -> np.ndarray:
        """The last rows of u: the input's end followed by silence, (latency, channels)."""
        step = self.block_frames
        parts = [self.chained(self.filtered(np.zeros((min(step, self.tail - k), self.channels))))
                 for k in range(0, self.tail, step)]
        return np.concatenate(parts) if parts else np.zeros((0, self.channels))


class BackRenderer:
    """The second pass: the front's output u through the chain's back half (width, output
    gain, limiter), the limiter's delay trimmed: u's frames + latency rows give the input's
    frames, exactly the whole chain's samples (front then back is the chain, bit for bit)."""

    def __init__(self, plan: Plan, sample_rate: int, channels: int):
        self.vector = plan.vector
        self.state = ChainState(sample_rate, channels, params=plan.vector)
        self.skip = self.state.latency

    def process(self, u: np.ndarray) -> np.ndarray:
        """u: (frames, channels) float64 rows of the front's output, processed in place; the
        aligned output so far."""
        process(u, self.state, self.vector, PART_BACK)
        if self.skip:
            drop = min(self.skip, u.shape[0])
            self.skip -= drop
            u = u[drop:]
        return u


@dataclass(frozen=True)
class Mastered:
    """The result of master: the output audio (None when written to a file), the chain's
    parameters {id: value} in the registry's units (what a preset holds), the offline
    matching curve (None when the 8 bands suffice), and loudness (LUFS) / true peak (dBTP)
    of input, reference and output."""

    audio: np.ndarray | None
    sample_rate: int
    amount: float
    match: tuple
    params: dict
    matching_curve: dict | None
    input_integrated_lufs: float
    input_true_peak_dbtp: float
    reference_integrated_lufs: float
    reference_true_peak_dbtp: float
    output_integrated_lufs: float
    output_true_peak_dbtp: float
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Everything but the audio, JSON-ready (-inf and NaN as None)."""
        out = {k: getattr(self, k) for k in (
            "sample_rate", "amount", "match", "params", "matching_curve",
            "input_integrated_lufs", "input_true_peak_dbtp", "reference_integrated_lufs",
            "reference_true_peak_dbtp", "output_integrated_lufs", "output_true_peak_dbtp", "details")}
        out["match"] = list(self.match)
        return _json_safe(out)


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return round(v, 4) if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def check_match(match) -> tuple:
    """The match list as a tuple of known names, in MATCH_ALL's order; ParamError otherwise."""
    names = [m.strip() for m in (match.split(",") if isinstance(match, str) else match)]
    unknown = [m for m in names if m not in MATCH_ALL]
    if unknown or not names:
        raise ParamError(f"match: unknown {', '.join(repr(u) for u in unknown) or 'empty list'}; "
                         f"choose from {', '.join(MATCH_ALL)}")
    return tuple(m for m in MATCH_ALL if m in names)


def check_amount(amount) -> float:
    """amount as a float in 0..1; ParamError otherwise."""
    try:
        a = float(amount)
    except (TypeError, ValueError):
        raise ParamError(f"amount {amount!r} is not a number; use 0 (the input) to 1 (the full match)") from None
    if not 0.0 <= a <= 1.0:
        raise ParamError(f"amount {a:g} is outside 0..1 (0 = the input, 1 = the full match)")
    return a


def _clamp(pid: str, value: float) -> float:
    p = P.lookup(pid)
    return float(min(max(value, p.minimum), p.maximum))


def _ratio_goal(inp: Measurement, ref: Measurement, amount: float) -> float:
    """The side/mid energy ratio to reach: amount of the way from the input's to the
    reference's, in dB."""
    return inp.side_mid_ratio ** (1.0 - amount) * ref.side_mid_ratio ** amount


def _set_output_gain(values: dict, gain_db: float, fronted_makeup_db: float) -> None:
    """The output gain (dB, in the back half) on a front output made with
    fronted_makeup_db of compressor makeup; what is past the output gain's range goes to the
    makeup (the same place in the chain for the limiter, but in the front half: the front
    must then run again)."""
    out = _clamp("output.gain_db", round(gain_db, 3))
    values["output.gain_db"] = out
    values["comp.makeup_db"] = _clamp("comp.makeup_db", round(fronted_makeup_db + gain_db - out, 3))


def _vector_of(values: dict) -> np.ndarray:
    # rounded as reported, so a preset of the reported values runs the very same chain
    v = P.default_vector()
    for pid in values:
        values[pid] = round(P.check_in_range(pid, values[pid]), 4)
        v[P.INDEX[pid]] = values[pid]
    return v


def _with_values(plan: Plan, values: dict) -> Plan:
    values = dict(values)
    return Plan(values, _vector_of(values), plan.mid_fir, plan.side_fir, plan.matching_curve, plan.details)


def fit_plan(inp: Measurement, ref: Measurement, amount: float = 1.0, match=MATCH_ALL) -> Plan:
    """Fit the chain to the reference: the EQ (and the matching FIRs), the compressor, the
    ceiling, a first width. amount scales every change from the neutral chain (dB gains,
    width, ratio, the matching curve); 0 leaves the chain neutral. The output gain and the
    final width are set on the front half's output (``level``). ParamError for a bad amount
    or match list; AudioFileError for a silent input or reference."""
    amount = check_amount(amount)
    match = check_match(match)
    if not math.isfinite(inp.integrated_lufs):
        raise AudioFileError("the input is silent (no gated loudness): there is nothing to match")
    if not math.isfinite(ref.integrated_lufs):
        raise AudioFileError("the reference is silent (no gated loudness): there is nothing to match to")
    sm = fit.spectral_match(inp, ref, "eq" in match, "width" in match)
    in_gain = _clamp("input.gain_db", fit.NOMINAL_LEVEL_LUFS - inp.integrated_lufs)
    dyn = fit.fit_dynamics(inp, ref, in_gain) if "dynamics" in match else fit.Dynamics(-18.0, 1.0, inp.loudness_range_lu)
    ceiling = fit.ceiling_for(ref)
    target_lufs = ref.integrated_lufs if "loudness" in match else inp.integrated_lufs

    # the full match, then every change scaled by amount from the neutral chain
    full = {"input.gain_db": in_gain}
    for b in range(P.EQ_BANDS):
        full[f"eq.{b + 1}.gain_db"] = float(sm.eq_gains_db[b])
        full[f"eq.{b + 1}.freq_hz"] = float(sm.eq_freqs_hz[b])
        full[f"eq.{b + 1}.q"] = float(sm.eq_qs[b])
    full.update({"comp.threshold_db": dyn.threshold_db, "comp.ratio": dyn.ratio,
                 "comp.attack_ms": fit.COMP_ATTACK_MS, "comp.release_ms": fit.COMP_RELEASE_MS,
                 "comp.knee_db": fit.COMP_KNEE_DB, "comp.makeup_db": 0.0, "comp.rms": 1.0,
                 "width.amount": round(sm.width, 3), "loudness.auto": 0.0,
                 "loudness.target_lufs": _clamp("loudness.target_lufs", round(target_lufs, 1)),
                 "output.gain_db": -in_gain, "limiter.ceiling_dbtp": ceiling,
                 "limiter.release_ms": LIMITER_RELEASE_MS, "ai.enabled": 0.0, "bypass": 0.0})
    neutral = dict(full, **{f"eq.{b + 1}.gain_db": 0.0 for b in range(P.EQ_BANDS)},
                   **{"comp.ratio": 1.0, "width.amount": 1.0})
    curves = None if sm.mid_fir_db is None else (sm.mid_fir_db, sm.side_fir_db)
    mid_fir = side_fir = curve = None
    if curves is not None and amount > 0.0:
        taps = fir_taps(inp.sample_rate)
        mid_fir = design_fir(sm.grid_hz, amount * curves[0], inp.sample_rate, taps)
        if curves[1] is not None:
            side_fir = design_fir(sm.grid_hz, amount * curves[1], inp.sample_rate, taps)
        curve = {"freq_hz": [round(float(f), 1) for f in sm.grid_hz],
                 "mid_gain_db": [round(float(amount * g), 2) for g in curves[0]],
                 "side_gain_db": None if curves[1] is None else [round(float(amount * g), 2) for g in curves[1]],
                 "taps": taps, "latency_samples": (taps - 1) // 2}
    values = {pid: neutral[pid] + amount * (full[pid] - neutral[pid]) for pid in full}
    details = {"input_loudness_range_lu": inp.loudness_range_lu,
               "reference_loudness_range_lu": ref.loudness_range_lu,
               "predicted_loudness_range_lu": dyn.predicted_lra_lu,
               "input_crest_factor_db": inp.crest_factor_db, "reference_crest_factor_db": ref.crest_factor_db,
               "input_plr_db": inp.plr_db, "reference_plr_db": ref.plr_db,
               "input_side_mid_ratio": inp.side_mid_ratio, "reference_side_mid_ratio": ref.side_mid_ratio,
               "target_lufs": target_lufs}
    return Plan(values, _vector_of(values), mid_fir, side_fir, curve, details)


@dataclass(frozen=True)
class _Goal:
    """Where the output's level lands: integrated loudness (LUFS) and, when the width is
    matched on a stereo pair, the side/mid energy ratio (None: the width stays as fitted)."""

    lufs: float
    ratio: float | None

    @staticmethod
    def of(inp: Measurement, ref: Measurement, amount: float, match, target_lufs: float) -> "_Goal":
        lufs = inp.integrated_lufs + amount * (target_lufs - inp.integrated_lufs)
        live = ("width" in match and inp.channels == 2 and inp.side_mid_ratio is not None
                and ref.side_mid_ratio is not None)
        return _Goal(lufs, _ratio_goal(inp, ref, amount) if live else None)


def level(plan: Plan, front: FrontOutput, goal: _Goal) -> tuple[Plan, float]:
    """The output gain (and width) that land the output on goal, and the output loudness's
    slope against that gain (LU/dB, < 1 where the limiter works). front: the front half's
    output with plan's compressor makeup. Before the limiter the level is solved exactly;
    what the limiter changes (loudness, side/mid ratio) is measured on the excerpt
    (``level.back_excerpt``): a small change is taken as it is, a large one is followed by
    a secant search on the excerpt."""
    values = dict(plan.params)
    fronted = values["comp.makeup_db"]
    ratio_1 = front.side_mid_ratio(1.0)
    loss, factor = 0.0, 1.0   # the limiter's change of loudness (LU) and of the side/mid ratio
    gain = None               # the output gain to try (dB)
    last = None               # (gain, miss) of the round before
    slope = 1.0

    def solved() -> Plan:
        if goal.ratio is not None and ratio_1 and ratio_1 > 1e-12:
            values["width.amount"] = _clamp("width.amount", round(math.sqrt(goal.ratio / (ratio_1 * factor)), 4))
        if gain is not None:
            _set_output_gain(values, gain, fronted)
        return _with_values(plan, values)

    for k in range(EXCERPT_ROUNDS):
        solved()
        pre = front.loudness(0.0, values["width.amount"])   # before the limiter, at 0 dB
        if not math.isfinite(pre):
            break
        if gain is None:
            gain = goal.lufs - pre
        p = solved()
        # past the output gain's range the rest is makeup, in the front: the front's output
        # scales by it exactly (the compressor adds it to its gain), so the excerpt is scaled
        ex_pre, ex_post, r_pre, r_post = back_excerpt(front, p.vector, p.params["comp.makeup_db"] - fronted)
        if not (math.isfinite(ex_pre) and math.isfinite(ex_post)):
            break
        loss = ex_post - ex_pre
        if r_pre and r_post:
            factor = r_post / r_pre
        miss = pre + gain + loss - goal.lufs
        if last is not None and abs(gain - last[0]) > 1e-6:
            slope = min(max((miss - last[1]) / (gain - last[0]), 0.2), 1.2)
        last = (gain, miss)
        gain -= miss / slope
        if abs(miss) < EXCERPT_TOLERANCE_DB * (1.0 if k == 0 else 0.1):
            break
    plan = solved()
    plan.details["limiter_loss_lu"] = loss
    return plan, slope


def _corrected(plan: Plan, out: Measurement, goal: _Goal, slope: float) -> Plan | None:
    """The plan corrected by what the written output measured, or None when it is on goal."""
    values = dict(plan.params)
    error = goal.lufs - out.integrated_lufs
    width_off = False
    if goal.ratio is not None and out.side_mid_ratio is not None and out.side_mid_ratio > 1e-12:
        width_off = abs(10.0 * math.log10(goal.ratio / out.side_mid_ratio)) > WHOLE_TOLERANCE_DB
        if width_off:
            values["width.amount"] = _clamp("width.amount",
                                            round(values["width.amount"] * math.sqrt(goal.ratio / out.side_mid_ratio), 4))
    if not math.isfinite(error) or (abs(error) <= WHOLE_TOLERANCE_LU and not width_off):
        return None
    if abs(error) > WHOLE_TOLERANCE_LU:
        _set_output_gain(values, values["output.gain_db"] + error / slope, values["comp.makeup_db"])
    return _with_values(plan, values)


def run_passes(plan: Plan, inp: Measurement, ref: Measurement, amount: float, match,
               front_pass, back_pass) -> tuple[Plan, Measurement]:
    """The render: front_pass(plan) -> FrontOutput runs the front half over the whole input
    (and keeps its output); back_pass(plan) -> Measurement runs the back half over it (and
    keeps the result), measured. The level is solved between them; a second back pass
    corrects an output more than WHOLE_TOLERANCE off (the front runs again only when the
    correction moved the compressor's makeup). Returns the plan of the kept output and its
    measurement."""
    goal = _Goal.of(inp, ref, amount, check_match(match), plan.details["target_lufs"])
    fronted = plan.params["comp.makeup_db"]
    front = front_pass(plan)
    plan, slope = level(plan, front, goal)
    for _ in range(2):   # past the output gain's range the makeup moved: the front again
        if plan.params["comp.makeup_db"] == fronted:
            break
        fronted = plan.params["comp.makeup_db"]
        front = front_pass(plan)
        plan, slope = level(plan, front, goal)
    passes = 1
    out = back_pass(plan)
    fix = _corrected(plan, out, goal, slope)
    if fix is not None:
        if fix.params["comp.makeup_db"] != fronted:
            front_pass(fix)
        plan = fix
        out = back_pass(plan)
        passes += 1
    plan.details.update(predicted_output_lufs=out.integrated_lufs, whole_passes=passes)
    return plan, out


def master(x: np.ndarray, reference: np.ndarray, sample_rate: int, amount: float = 1.0,
           match=MATCH_ALL, reference_rate: int | None = None) -> Mastered:
    """Master x to sound like reference.

    x: (frames, channels) float64, 1 or 2 channels, at sample_rate Hz; reference: (frames,
    channels) at reference_rate (default sample_rate). amount: 0 (returns x unchanged) to 1
    (the full match); match: any of "eq", "loudness", "dynamics", "width". Returns a
    ``Mastered`` whose audio has x's shape and rate."""
    x = _as_2d(x, "input")
    reference = _as_2d(reference, "reference")
    inp = measure(x, sample_rate)
    ref = measure(reference, reference_rate or sample_rate)
    plan = fit_plan(inp, ref, amount, match)
    if plan_is_identity(amount):
        y = x.copy()
        return _result(y, sample_rate, amount, match, plan, inp, ref, measure(y, sample_rate, spectra=False))
    channels = x.shape[1]
    held = {}
    frames = x.shape[0]

    def front_pass(p: Plan) -> FrontOutput:
        # into arrays made once (a list of blocks joined at the end held the audio twice)
        r = FrontRenderer(p, sample_rate, channels)
        u = held["u"] = np.empty((frames + r.latency, channels))
        at = 0
        for s in range(0, frames, r.block_frames):
            block = r.chained(r.filtered(x[s:s + r.block_frames]))
            u[at:at + block.shape[0]] = block
            at += block.shape[0]
        tail = r.finish()
        u[at:at + tail.shape[0]] = tail
        stats = FrontStats(sample_rate, channels, frames)
        for s in range(0, u.shape[0], BLOCK_FRAMES):
            stats.process(u[s:s + BLOCK_FRAMES])
        return stats.finish()

    def back_pass(p: Plan) -> Measurement:
        r = BackRenderer(p, sample_rate, channels)
        u = held["u"]
        y = held["y"] = np.empty((frames, channels))
        at = 0
        for s in range(0, u.shape[0], BLOCK_FRAMES):
            block = r.process(u[s:s + BLOCK_FRAMES].copy())
            y[at:at + block.shape[0]] = block
            at += block.shape[0]
        return measure(y, sample_rate, spectra=False)

    plan, out = run_passes(plan, inp, ref, amount, match, front_pass, back_pass)
    return _result(held["y"], sample_rate, amount, match, plan, inp, ref, out)


def plan_is_identity(amount: float) -> bool:
    """amount 0 is the input itself: nothing runs."""
    return check_amount(amount) == 0.0


def _as_2d(x, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] not in (1, 2) or x.shape[0] == 0:
        raise AudioFileError(f"the {what} must be (frames, 1 or 2 channels) audio, got shape {x.shape}")
    return x


def _result(y, sample_rate, amount, match, plan, inp, ref, out) -> Mastered:
    details = dict(plan.details, output_loudness_range_lu=out.loudness_range_lu,
                   output_crest_factor_db=out.crest_factor_db, output_plr_db=out.plr_db,
                   output_side_mid_ratio=out.side_mid_ratio, duration_s=out.frames / out.sample_rate)
    return Mastered(
        audio=y, sample_rate=int(sample_rate), amount=float(amount), match=check_match(match),
        params=dict(plan.params),
        matching_curve=plan.matching_curve,
        input_integrated_lufs=inp.integrated_lufs, input_true_peak_dbtp=inp.true_peak_dbtp,
        reference_integrated_lufs=ref.integrated_lufs, reference_true_peak_dbtp=ref.true_peak_dbtp,
        output_integrated_lufs=out.integrated_lufs, output_true_peak_dbtp=out.true_peak_dbtp,
        details=details)
