"""Known, random degradations of clean clips, each with the exact correction the chain should apply.

A flawed clip is made from a clean one (at ``REFERENCE_LUFS``) in the reverse order of the
chain (EQ > compressor > width > gain), so the chain can undo each step in turn:

    clean --over-compression--> --level--> reference --width--> --inverse compressor--> comp input --EQ flaws--> flawed

- EQ flaws (tilt, dullness, mud, boxiness, harshness, thinness, boom, narrow resonances) are
  RBJ biquads at drawn frequencies, gains and Q. Their correction is the 8-band EQ (default
  frequencies and Q) fitted in least squares to the negated flaw response from 40 Hz to
  18 kHz: exact when the flaw sits on a band, the best the chain can do otherwise.
- Under-compression: the chain's compressor run backwards (``dsp.expand_inverse``) at a drawn
  threshold (4 to 10 dB under the clip's peaks) and ratio (1.5 to 3); the correction is that
  compressor, exactly.
- Over-compression: a fast 4:1 to 10:1 compressor with makeup back to the reference loudness.
  The chain cannot expand, so the correction is not to compress (ratio 1, threshold 0 dBFS).
- Stereo width: side scaled by 0.5 to 0.75 (narrow) or 1.4 to 2 (over-wide); the correction
  is the reciprocal ``width.amount`` (the extractor hears mono blocks, so the models can only
  learn a prior for it).
- Level: -12 to +8 dB; the correction ``output.gain_db`` brings the corrected clip back to
  ``REFERENCE_LUFS`` (measured on the reference signal).

Noise and silence clips only get a level change, and their correction is to leave them
alone (all targets neutral, no gain): nobody masters hum. About one music or speech copy in
ten gets only a level change, so the models also learn to leave good material alone.
"""

import json

import numpy as np

from auracore.kernels import params as P
from auracore.kernels.biquad import SHAPE_HIGHSHELF, SHAPE_LOWSHELF, SHAPE_PEAKING

from . import dsp
from .nets import REFERENCE_LUFS, TARGET_IDS

EQ_FAMILIES = ("tilt", "dullness", "mud", "boxiness", "harshness", "thinness", "boom", "resonance")
FIT_FREQS_HZ = np.geomspace(40.0, 18000.0, 120)
NEUTRAL = {f"eq.{b}.gain_db": 0.0 for b in range(1, P.EQ_BANDS + 1)}
NEUTRAL.update({"comp.threshold_db": 0.0, "comp.ratio": 1.0, "width.amount": 1.0, "output.gain_db": 0.0})
OVER_ATTACK_MS = 1.0
OVER_RELEASE_MS = 50.0


def _logu(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def eq_flaw(rng, family: str) -> list[tuple]:
    """Biquads (shape, freq_hz, gain_db, q) of one EQ flaw family."""
    if family == "tilt":
        t = rng.uniform(2, 6) * rng.choice([-1, 1])
        return [(SHAPE_LOWSHELF, _logu(rng, 150, 400), t, 0.707), (SHAPE_HIGHSHELF, _logu(rng, 2000, 6000), -t, 0.707)]
    if family == "dullness":
        return [(SHAPE_HIGHSHELF, _logu(rng, 4000, 10000), rng.uniform(-9, -3), 0.707)]
    if family == "mud":
        return [(SHAPE_PEAKING, _logu(rng, 180, 450), rng.uniform(3, 8), rng.uniform(0.7, 1.5))]
    if family == "boxiness":
        return [(SHAPE_PEAKING, _logu(rng, 450, 1100), rng.uniform(3, 8), rng.uniform(1.0, 2.0))]
    if family == "harshness":
        return [(SHAPE_PEAKING, _logu(rng, 2000, 5000), rng.uniform(3, 8), rng.uniform(0.8, 2.0))]
    if family == "thinness":
        return [(SHAPE_LOWSHELF, _logu(rng, 100, 300), rng.uniform(-10, -4), 0.707)]
    if family == "boom":
        return [(SHAPE_PEAKING, _logu(rng, 50, 120), rng.uniform(4, 10), rng.uniform(0.7, 1.4))]
    if family == "resonance":
        return [(SHAPE_PEAKING, _logu(rng, 150, 8000), rng.uniform(6, 12), rng.uniform(4, 8))
                for _ in range(int(rng.integers(1, 3)))]
    raise ValueError(f"unknown EQ flaw {family!r}")


def draw_flaws(rng, kind: str) -> dict:
    """A random flaw description (JSON-ready) for a clip of class kind."""
    flaws = {"families": [], "eq": [], "level_db": float(rng.uniform(-12, 8)), "width": 1.0,
             "under": None, "over": None}
    if kind in ("noise", "silence") or rng.random() < 0.1:
        flaws["families"].append("level")
        return flaws
    n_eq = int(rng.choice([0, 1, 2, 3], p=[0.15, 0.4, 0.3, 0.15]))
    for fam in rng.choice(EQ_FAMILIES, size=n_eq, replace=False):
        flaws["families"].append(str(fam))
        flaws["eq"] += [[int(s), float(f), float(g), float(q)] for s, f, g, q in eq_flaw(rng, str(fam))]
    u = rng.random()
    if u < 0.2:
        flaws["families"].append("under_compression")
        flaws["under"] = {"below_peak_db": float(rng.uniform(4, 10)), "ratio": float(rng.uniform(1.5, 3.0))}
    elif u < 0.35:
        flaws["families"].append("over_compression")
        flaws["over"] = {"below_peak_db": float(rng.uniform(10, 20)), "ratio": float(rng.uniform(4, 10))}
    v = rng.random()
    if v < 0.15:
        flaws["families"].append("narrow")
        flaws["width"] = float(rng.uniform(0.5, 0.75))
    elif v < 0.3:
        flaws["families"].append("wide")
        flaws["width"] = float(rng.uniform(1.4, 2.0))
    flaws["families"].append("level")
    return flaws


def _peak_db(x: np.ndarray) -> float:
    """A robust peak: the 99.9th percentile of |x| over all samples, dBFS."""
    p = float(np.percentile(np.abs(x), 99.9))
    return 20 * np.log10(max(p, 1e-9))


def apply_flaws(clean: np.ndarray, flaws: dict, kind: str) -> dict:
    """Make the flawed clip and its correction.

    Returns {"flawed", "comp_input", "comp_output", "reference"}: (frames, 2) float64 each (the
    flawed clip; what the chain's compressor should see once the EQ flaw is undone and what it
    should put out; what the chain should put out before the final gain), and "targets": {registry id: value} for TARGET_IDS, within the
    registry's ranges."""
    targets = dict(NEUTRAL)
    x = clean
    if flaws["over"]:
        o = flaws["over"]
        x = dsp.compress(x, _peak_db(x) - o["below_peak_db"], o["ratio"], attack_ms=OVER_ATTACK_MS,
                         release_ms=OVER_RELEASE_MS)
        lufs = dsp.loudness_lufs(x)
        if np.isfinite(lufs):
            x = x * 10 ** ((REFERENCE_LUFS - lufs) / 20)
    reference = x * 10 ** (flaws["level_db"] / 20)
    x = dsp.set_width(reference, flaws["width"])
    comp_output = x
    if flaws["under"]:
        u = flaws["under"]
        threshold_db = float(np.clip(_peak_db(x) - u["below_peak_db"], -60.0, 0.0))
        x = dsp.expand_inverse(x, threshold_db, u["ratio"])
        targets["comp.threshold_db"] = threshold_db
        targets["comp.ratio"] = u["ratio"]
    comp_input = x
    if flaws["eq"]:
        shapes, freqs, gains, qs = zip(*flaws["eq"])
        coefs = dsp.design_cascade(shapes, freqs, gains, qs)
        x = dsp.filter_cascade(x, coefs)
        fit = dsp.fit_eq_gains(-dsp.cascade_response_db(coefs, FIT_FREQS_HZ), FIT_FREQS_HZ)
        for b in range(P.EQ_BANDS):
            targets[f"eq.{b + 1}.gain_db"] = float(fit[b])
    if kind not in ("noise", "silence"):
        targets["width.amount"] = float(np.clip(1.0 / flaws["width"], 0.0, 2.0))
        lufs = dsp.loudness_lufs(reference)
        if np.isfinite(lufs):
            targets["output.gain_db"] = float(np.clip(REFERENCE_LUFS - lufs, -24.0, 24.0))
    return {"flawed": x, "comp_input": comp_input, "comp_output": comp_output, "reference": reference,
            "targets": targets}


def target_vector(targets: dict) -> np.ndarray:
    """targets as a (len(TARGET_IDS),) float32 vector in TARGET_IDS order."""
    return np.array([targets[t] for t in TARGET_IDS], dtype=np.float32)


def flaws_json(flaws: dict) -> str:
    return json.dumps(flaws, sort_keys=True)
