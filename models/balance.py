"""A DSP baseline for the EQ: match the input's long-term spectral balance to its class's curve.

The model card's baseline beside the models: per class (speech, acoustic, band), the mean
level-aligned 1/3-octave spectrum of the clean training clips is the target curve; a clip's
own long-term 1/3-octave spectrum, level-aligned, is compared with the curve of its class
(the classifier's probabilities weigh the curves), and the chain's 8-band EQ is fitted in
least squares (linearised at 0 dB) to ``strength`` times the difference, within +-``limit`` dB. Bands more than
``floor_db`` under the clip's loudest are left out of the fit (no boost into silence).
"""

import numpy as np

from . import dsp
from .labels import CLASSES

MATCHED = ("speech", "acoustic", "band")
STRENGTH = 0.6
LIMIT_DB = 6.0
FLOOR_DB = 50.0
RIDGE = 4.0


def aligned(levels_db: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """levels_db minus their mean over keep (all bands when None)."""
    keep = np.ones(levels_db.shape[-1], dtype=bool) if keep is None else keep
    return levels_db - levels_db[..., keep].mean(axis=-1, keepdims=True)


def class_curves(arrays: dict, clips: list[dict], split: str = "train") -> dict:
    """{class: (28,) dB} the mean level-aligned long-term spectrum of the clean clips of
    split (from the data set's per-block clean band power, one copy per piece)."""
    curves = {}
    for kind in MATCHED:
        rows = []
        seen = set()
        for c in clips:
            if c["split"] != split or c["kind"] != kind or c["piece"] in seen:
                continue
            seen.add(c["piece"])
            power = arrays["band_clean"][c["block0"]:c["block0"] + c["blocks"]].astype(np.float64).mean(axis=0)
            rows.append(aligned(10.0 * np.log10(np.maximum(power, 1e-12))))
        curves[kind] = np.mean(rows, axis=0)
    return curves


_JAC = []


def _jacobian() -> np.ndarray:
    """(28, 8): dB response at the 1/3-octave centres per dB of each EQ band, at 0 dB (the
    band responses add in dB and scale nearly linearly with the gain over +-6 dB), so the
    fit is one small least-squares solve, cheap enough for the live inference thread."""
    if not _JAC:
        freqs = dsp.THIRD_OCTAVE_HZ
        jac = np.empty((len(freqs), 8))
        for b in range(8):
            g = np.zeros(8)
            g[b] = 1.0
            jac[:, b] = dsp.cascade_response_db(dsp.eq_coefs(g), freqs)
        _JAC.append(jac)
    return _JAC[0]


def match_gains(levels_db: np.ndarray, probabilities: np.ndarray, curves: dict, strength: float = STRENGTH,
                limit_db: float = LIMIT_DB, floor_db: float = FLOOR_DB, ridge: float = RIDGE) -> np.ndarray:
    """The 8 EQ band gains (dB) that move a clip with long-term 1/3-octave levels levels_db
    toward the class curves weighted by probabilities (over CLASSES; noise and silence
    weigh toward no change)."""
    weights = np.array([probabilities[CLASSES.index(k)] for k in MATCHED], dtype=np.float64)
    total = float(probabilities.sum())
    if weights.sum() <= 0.0 or total <= 0.0:
        return np.zeros(8)
    keep = levels_db > levels_db.max() - floor_db
    if keep.sum() < 4:
        return np.zeros(8)
    target = sum(w * curves[k] for w, k in zip(weights, MATCHED)) / weights.sum()
    diff = aligned(target, keep) - aligned(levels_db, keep)
    jac = _jacobian()[keep]
    # ridge: adjacent bands overlap, and a plain fit trades +6 against -6 dB between them
    gains = np.linalg.solve(jac.T @ jac + ridge * np.eye(8), jac.T @ (strength * diff[keep]))
    share = weights.sum() / total  # material to master: the rest (noise, silence) asks for no change
    return np.clip(gains * share, -limit_db, limit_db)
