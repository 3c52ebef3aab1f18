"""Stereo width from the stereo input: how far the side signal was scaled, heard from mid and side.

The extractor hears mono blocks, so the decider's ``width.amount`` is a prior. This model
hears the stereo input itself. Per 1024-frame block, mid = (L + R) / 2 and side = (L - R) / 2
go through a Hann-windowed FFT. Each bin's panning index ln(|S| / |M|) is put in a histogram
weighted by the bin's energy, in four bands, with each band's side-to-mid energy ratio. The
sums decay with a time constant of ``DECAY_S``.

- In a mix of panned sources every bin's |S| <= |M|: a source panned hard to one side has
  |S| = |M|, one in the centre has S = 0. Scaling the side by w moves the whole histogram by
  ln w. Over-wide copies put energy where no panned source can be (|S| > |M|); narrowed
  copies leave the upper bins empty.
- The side-to-mid ratio alone cannot tell a narrowed mix from one that was made narrow.
  The clean pieces here spread by 7 dB in it (the flaws move it by 2.5 to 6 dB).

A gradient-boosted regressor (scikit-learn, exported to ONNX with skl2onnx; ONNX Runtime at
run time) maps the features and the classifier's belief (speech, acoustic, band) to ln of the
scale the side was given; the correction is ``width.amount = 1 / scale``.

    python -m auracore.models.width WORK_DIR [--out DIR] [--ood-pieces 12] [--json]
    auracore train width [--work-dir DIR] [--out DIR]      (the same, 12 pieces)

That command renders the clean pieces the main data set plans (``dataset.plan_pieces``, seed
1: train, validation and test pieces, the same split) and the out-of-domain pieces of
``models/ood.py``. It draws width flaws as ``degrade.draw_flaws`` does, trains on training
pieces (the validation pieces choose the deadband), and writes ``width.onnx`` and
``width.json`` (the model card's figures and the file's SHA-256) into DIR (default: the
shipped weights). It prints the figures for the held-out and out-of-domain sets beside the
baselines.
"""

import argparse
import json
import os
import sys

import numpy as np

from auracore.errors import ModelError

FILE = "width.onnx"
CARD = "width.json"
_FIX = "reinstall auracore or rebuild them with `auracore train width`"
FORMAT = 1
BLOCK = 1024
DECAY_S = 4.0
# ln(|S| / |M|) histogram edges: centred sources far below, hard pans at 0, beyond 0 only
# what amplitude panning cannot make (anti-phase energy)
EDGES = np.array([-3.0, -2.0, -1.5, -1.0, -0.6, -0.3, 0.0])
BANDS_HZ = (0.0, 250.0, 2000.0, 8000.0)
N_HIST = len(EDGES) + 1
N_BANDS = len(BANDS_HZ)
KINDS = ("speech", "acoustic", "band")
N_FEATURES = 1 + N_BANDS * (N_HIST + 1) + len(KINDS)
KEEP_DB = -70.0           # bins within this of the block's loudest count
KEEP = 10.0 ** (KEEP_DB / 10.0)
MIN_ENERGY = 1e-12        # a block quieter than this (per bin, at most) adds nothing
FLAW_SHARE = 0.3          # as degrade.draw_flaws: 30 % of copies get a width flaw
NARROW = (0.5, 0.75)
WIDE = (1.4, 2.0)
GBR = {"n_estimators": 150, "max_depth": 4, "learning_rate": 0.05, "min_samples_leaf": 10, "subsample": 0.8}
DEADBANDS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)


def shrink(log_scale, deadband: float):
    """Predicted ln scales moved deadband toward 0 (0 within it): small requests are dropped."""
    p = np.asarray(log_scale, dtype=np.float64)
    return np.sign(p) * np.maximum(np.abs(p) - deadband, 0.0)


class WidthFeatures:
    """Decaying sums of the stereo features over a stream of (BLOCK,) mid and side blocks."""

    def __init__(self, sample_rate: float, decay_s: float = DECAY_S):
        self.window = np.hanning(BLOCK + 1)[:BLOCK].astype(np.float64)
        freqs = np.fft.rfftfreq(BLOCK, 1.0 / sample_rate)
        self.band = np.searchsorted(np.asarray(BANDS_HZ), freqs, side="right") - 1
        self.band_base = self.band * N_HIST                   # each bin's first histogram place
        self.decay = float(np.exp(-BLOCK / (sample_rate * decay_s)))
        self.reset()

    def reset(self) -> None:
        self.hist = np.zeros(N_BANDS * N_HIST)
        self.mid = np.zeros(N_BANDS)
        self.side = np.zeros(N_BANDS)

    def push(self, mid: np.ndarray, side: np.ndarray) -> None:
        """Add one block: mid, side (BLOCK,) float."""
        m = np.fft.rfft(np.asarray(mid, dtype=np.float64) * self.window)
        s = np.fft.rfft(np.asarray(side, dtype=np.float64) * self.window)
        pm = m.real * m.real + m.imag * m.imag
        ps = s.real * s.real + s.imag * s.imag
        e = pm + ps
        top = float(e.max())
        self.hist *= self.decay
        self.mid *= self.decay
        self.side *= self.decay
        if not np.isfinite(top) or top <= MIN_ENERGY:
            return
        keep = e > top * KEEP
        rho = 0.5 * np.log((ps[keep] + 1e-30) / (pm[keep] + 1e-30))
        self.hist += np.bincount(self.band_base[keep] + np.searchsorted(EDGES, rho), weights=e[keep],
                                 minlength=N_BANDS * N_HIST)
        self.mid += np.bincount(self.band, weights=pm, minlength=N_BANDS)   # any rate: a band may be empty
        self.side += np.bincount(self.band, weights=ps, minlength=N_BANDS)

    @property
    def heard(self) -> bool:
        """Whether any energy has been summed."""
        return float(self.mid.sum() + self.side.sum()) > 0.0

    def vector(self, kind_probabilities) -> np.ndarray:
        """(N_FEATURES,) float32: the global ln side/mid amplitude ratio, then per band its
        energy histogram (normalised) and ln ratio, then the belief in each of KINDS."""
        h = self.hist.reshape(N_BANDS, N_HIST)
        total = h.sum(axis=1, keepdims=True)
        h = np.divide(h, total, out=np.zeros_like(h), where=total > 0)
        ratio = 0.5 * np.log((self.side + 1e-30) / (self.mid + 1e-30))
        k = np.asarray(kind_probabilities, dtype=np.float64)
        k = k / k.sum() if k.sum() > 0 else np.full(len(KINDS), 1.0 / len(KINDS))
        out = np.empty(N_FEATURES, dtype=np.float32)
        out[0] = 0.5 * np.log((self.side.sum() + 1e-30) / (self.mid.sum() + 1e-30))
        out[1:1 + N_BANDS * (N_HIST + 1)] = np.concatenate([h, ratio[:, None]], axis=1).reshape(-1)
        out[-len(KINDS):] = k
        return out


def clip_features(x: np.ndarray, belief, sample_rate: float) -> np.ndarray | None:
    """The features at the end of a stereo clip x: (frames, 2) streamed block by block;
    belief: a kind (one of KINDS, certain) or probabilities over KINDS. None for mono."""
    if x.ndim != 2 or x.shape[1] != 2:
        return None
    f = WidthFeatures(sample_rate)
    mid = 0.5 * (x[:, 0] + x[:, 1])
    side = 0.5 * (x[:, 0] - x[:, 1])
    for s in range(0, x.shape[0] - BLOCK + 1, BLOCK):
        f.push(mid[s:s + BLOCK], side[s:s + BLOCK])
    return f.vector([1.0 if k == belief else 0.0 for k in KINDS] if isinstance(belief, str) else belief)


class WidthModel:
    """The exported regressor on ONNX Runtime: features -> width.amount."""

    def __init__(self, model_dir: str, providers=None):
        from .runtime import open_session, sha256  # runtime imports this module: import here

        self.path = os.path.join(model_dir, FILE)
        card_path = os.path.join(model_dir, CARD)
        for path in (self.path, card_path):
            if not os.path.isfile(path):
                raise ModelError(f"model file missing: {path} (the width model needs {FILE} and {CARD}); {_FIX}")
        try:
            with open(card_path) as f:
                card = json.load(f)
            if not isinstance(card, dict):
                raise ValueError("not a JSON object")
            low, high = (float(v) for v in card.get("clip", (0.5, 2.0)))
            deadband = float(card.get("deadband", 0.0))
            smallest = float(card.get("smallest_side_mid", -np.inf))
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"model file corrupt: {card_path} is unreadable ({exc}); {_FIX}") from None
        if card.get("format") != FORMAT or card.get("features") != N_FEATURES:
            raise ModelError(f"model files incompatible: {card_path} has format {card.get('format')} with "
                             f"{card.get('features')} features; this auracore reads format {FORMAT} with "
                             f"{N_FEATURES}; {_FIX}")
        if sha256(self.path) != card.get("sha256"):
            raise ModelError(f"model file corrupt: {self.path} does not match its checksum in {CARD}; {_FIX}")
        self.session = open_session(self.path, threads=1, providers=providers)
        self.input = self.session.get_inputs()[0].name
        self.low, self.high, self.deadband, self.smallest_side_mid = low, high, deadband, smallest

    @staticmethod
    def present(model_dir: str) -> bool:
        """Whether model_dir holds the width model (either of its files: a half-present model
        is reported by the constructor, not silently skipped)."""
        return os.path.isfile(os.path.join(model_dir, FILE)) or os.path.isfile(os.path.join(model_dir, CARD))

    def log_scale(self, features: np.ndarray) -> np.ndarray:
        """(N, N_FEATURES) -> (N,) predicted ln of the scale the side was given."""
        x = np.ascontiguousarray(np.atleast_2d(features), dtype=np.float32)
        return np.asarray(self.session.run(None, {self.input: x})[0], dtype=np.float64).reshape(-1)

    def decided_log_scale(self, features: np.ndarray) -> np.ndarray:
        """(N, N_FEATURES) -> (N,) the ln scale acted on: the prediction after the deadband,
        and 0 (leave it) where the side is quieter against the mid than in any training copy
        (mono or nearly mono material in two channels: outside what the trees learned, and
        widening it would only raise its noise) or a feature is not finite."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        usable = np.all(np.isfinite(x), axis=1) & (x[:, 0] >= self.smallest_side_mid)
        out = np.zeros(x.shape[0])
        if usable.any():
            out[usable] = shrink(self.log_scale(x[usable]), self.deadband)
        return out

    def amount(self, features: np.ndarray) -> float:
        """width.amount that undoes the scale heard in one feature vector, within the clip range."""
        return float(np.clip(np.exp(-self.decided_log_scale(features)[0]), self.low, self.high))


# --- training and evaluation (needs the train extras: scikit-learn, skl2onnx, music21, FluidSynth)


def _draw(rng) -> float:
    """A side scale as degrade.draw_flaws draws it: 1 in 70 % of copies."""
    if rng.random() >= FLAW_SHARE:
        return 1.0
    return float(rng.uniform(*NARROW)) if rng.random() < 0.5 else float(rng.uniform(*WIDE))


def _render_pieces(folder: str, log) -> list[dict]:
    """The main data set's music and speech pieces (seed 1), rendered clean once into folder."""
    import multiprocessing

    from . import dataset

    index = os.path.join(folder, "pieces.json")
    if os.path.exists(index):
        with open(index) as f:
            return json.load(f)
    from . import sources

    sources.require_tools()
    os.makedirs(folder, exist_ok=True)
    plan = [(p, folder) for p in dataset.plan_pieces(1.0, 1) if p["kind"] in KINDS]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        done = [p for p in pool.imap(_render_one, plan, chunksize=1) if p is not None]
    log(f"width: {len(done)} clean pieces rendered")
    with open(index, "w") as f:
        json.dump(done, f)
    return done


def _render_one(args):
    from . import sources

    piece, folder = args
    try:
        x, _ = sources.make_clean(piece["kind"], piece["ref"], piece["seed"])
    except sources.SourceError:
        return None
    np.save(os.path.join(folder, piece["id"] + ".npy"), x.astype(np.float32))
    return piece


def _rows(items, folder, copies, seed, sample_rate, draw=_draw):
    """(features (N, F), ln scale (N,), kinds) for copies per piece with scales drawn by draw."""
    from .dsp import set_width  # the chain's own width stage (training only: dsp loads the kernels)

    feats, ys, kinds = [], [], []
    for i, item in enumerate(items):
        x = np.load(os.path.join(folder, item["id"] + ".npy")).astype(np.float64)
        rng = np.random.default_rng([seed, i])
        for _ in range(copies):
            scale = draw(rng)
            f = clip_features(set_width(x, scale), item["kind"], sample_rate)
            if f is not None:
                feats.append(f)
                ys.append(np.log(scale))
                kinds.append(item["kind"])
    return np.array(feats), np.array(ys), kinds


def _training_draw(rng) -> float:
    """Training copies: a third clean, a third narrowed, a third widened (flaw-heavy, so the
    regressor sees enough of each; the weights restore the 70/30 share)."""
    u = rng.random()
    return 1.0 if u < 1 / 3 else float(rng.uniform(*NARROW)) if u < 2 / 3 else float(rng.uniform(*WIDE))


def _weights(y):
    flawed = np.abs(y) > 1e-12
    return np.where(flawed, FLAW_SHARE / max(flawed.mean(), 1e-9), (1 - FLAW_SHARE) / max(1 - flawed.mean(), 1e-9))


def figures(pred_log, y, kinds) -> dict:
    """What the card reports for predictions of ln scale against the truth: the MAE of
    width.amount (clipped to 0.5..2 as shipped) against the neutral 1, the share of each
    flaw undone on the flawed copies (in log terms, 1 = undone, 0 = untouched), and what it
    asks of clean copies (|log2 width.amount|, median and 90th percentile)."""
    truth = np.clip(np.exp(-y), 0.5, 2.0)
    got = np.clip(np.exp(-pred_log), 0.5, 2.0)
    flawed = np.abs(y) > 1e-12
    out = {"copies": int(len(y)), "flawed": int(flawed.sum()),
           "mae": float(np.mean(np.abs(got - truth))), "mae_neutral": float(np.mean(np.abs(1.0 - truth)))}
    if flawed.any():
        left = np.abs(np.log(got[flawed]) - np.log(truth[flawed]))
        out["recovery"] = float(1.0 - left.mean() / np.abs(np.log(truth[flawed])).mean())
    if (~flawed).any():
        asked = np.abs(np.log2(got[~flawed]))
        out["clean_median_octaves"] = float(np.median(asked))
        out["clean_p90_octaves"] = float(np.percentile(asked, 90))
    out["by_kind"] = {}
    for k in KINDS:
        sel = np.array([kk == k for kk in kinds])
        if sel.any():
            sub = {"mae": float(np.mean(np.abs(got[sel] - truth[sel]))),
                   "mae_neutral": float(np.mean(np.abs(1.0 - truth[sel])))}
            fl = sel & flawed
            if fl.any():
                sub["recovery"] = float(1.0 - np.abs(np.log(got[fl]) - np.log(truth[fl])).mean()
                                        / np.abs(np.log(truth[fl])).mean())
            out["by_kind"][k] = sub
    return out


def train(work_dir: str, out_dir: str, ood_pieces: int = 12, log=print) -> dict:
    """Render, train, export and evaluate (see the module docstring); returns the card's figures."""
    import time

    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import Ridge

    from . import ood
    from .nets import SAMPLE_RATE

    t0 = time.time()
    clean = os.path.join(work_dir, "width-clean")
    pieces = _render_pieces(clean, log)
    ood_items = ood.build_ood(os.path.join(work_dir, "ood"), ood_pieces, log)
    fit_items = [p for p in pieces if p["split"] == "train"]
    x_fit, y_fit, _ = _rows(fit_items, clean, 6, 11, SAMPLE_RATE, _training_draw)
    # validation, held out and out of domain: flaws drawn as in the training data (70 % of
    # copies clean), 10 copies a piece
    x_val, y_val, k_val = _rows([p for p in pieces if p["split"] == "val"], clean, 10, 14, SAMPLE_RATE)
    x_test, y_test, k_test = _rows([p for p in pieces if p["split"] == "test"], clean, 10, 12, SAMPLE_RATE)
    x_ood, y_ood, k_ood = _rows(ood_items, os.path.join(work_dir, "ood"), 10, 13, SAMPLE_RATE)
    log(f"width: {len(y_fit)} training copies, {len(y_val)} validation, {len(y_test)} held out, "
        f"{len(y_ood)} out of domain")
    w = _weights(y_fit)
    model = GradientBoostingRegressor(**GBR, random_state=0).fit(x_fit, y_fit, sample_weight=w)
    # "do no harm": the deadband (ln units) with the least width error on the validation pieces
    val_pred = model.predict(x_val)
    deadband = min(DEADBANDS, key=lambda d: figures(shrink(val_pred, d), y_val, k_val)["mae"])
    ratio_only = Ridge(alpha=1.0).fit(x_fit[:, [0, -3, -2, -1]], y_fit, sample_weight=w)
    os.makedirs(out_dir, exist_ok=True)
    path = _export(model, out_dir)
    from .runtime import sha256

    metrics = {"format": FORMAT, "features": N_FEATURES, "clip": [0.5, 2.0], "sha256": sha256(path),
               "deadband": deadband, "decay_s": DECAY_S,
               # the quietest side the training copies had (ln side/mid amplitude): below it, 1
               "smallest_side_mid": round(float(x_fit[:, 0].min()), 3),
               "trained": {"pieces": len(fit_items), "copies": int(len(y_fit)), **GBR, "seconds": None}}
    _write_card(metrics, out_dir)  # the runtime checks the file against it
    runtime = WidthModel(out_dir, providers=["CPUExecutionProvider"])
    for name, x, y, kinds in (("validation", x_val, y_val, k_val), ("held_out", x_test, y_test, k_test),
                              ("out_of_domain", x_ood, y_ood, k_ood)):
        raw = runtime.log_scale(x)
        metrics[name] = {"model": figures(runtime.decided_log_scale(x), y, kinds),
                         "model_no_deadband": figures(raw, y, kinds),
                         "side_mid_ratio_only": figures(ratio_only.predict(x[:, [0, -3, -2, -1]]), y, kinds),
                         "neutral": figures(np.zeros_like(y), y, kinds),
                         "sklearn_onnx_max_diff": float(np.max(np.abs(raw - model.predict(x))))}
    metrics["trained"]["seconds"] = round(time.time() - t0, 1)
    _write_card(metrics, out_dir)
    return metrics


def _write_card(metrics: dict, out_dir: str) -> None:
    path = os.path.join(out_dir, CARD)
    with open(path + ".tmp", "w") as f:
        json.dump(metrics, f, indent=1)
    os.replace(path + ".tmp", path)


def _export(model, out_dir: str) -> str:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(model, initial_types=[("features", FloatTensorType([None, N_FEATURES]))],
                          target_opset={"": 17, "ai.onnx.ml": 3})
    path = os.path.join(out_dir, FILE)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(onx.SerializeToString())
    os.replace(tmp, path)
    return path


def markdown(metrics: dict) -> str:
    lines = [f"Deadband {metrics['deadband']:g} (ln units, chosen on the validation pieces).", "",
             "| set | version | copies | width MAE | neutral MAE | flaw undone | asked of clean copies (octaves, median / p90) |",
             "|---|---|---|---|---|---|---|"]
    for name in ("held_out", "out_of_domain"):
        for v in ("neutral", "side_mid_ratio_only", "model_no_deadband", "model"):
            m = metrics[name][v]
            lines.append(f"| {name.replace('_', ' ')} | {v.replace('_', ' ')} | {m['copies']} | {m['mae']:.3f} | "
                         f"{m['mae_neutral']:.3f} | {m.get('recovery', float('nan')):.2f} | "
                         f"{m.get('clean_median_octaves', 0):.2f} / {m.get('clean_p90_octaves', 0):.2f} |")
    lines += ["", "| set | class | model MAE | neutral MAE | flaw undone |", "|---|---|---|---|---|"]
    for name in ("held_out", "out_of_domain"):
        for k, m in metrics[name]["model"]["by_kind"].items():
            lines.append(f"| {name.replace('_', ' ')} | {k} | {m['mae']:.3f} | {m['mae_neutral']:.3f} | "
                         f"{m.get('recovery', float('nan')):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from .runtime import default_model_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work_dir", help="folder for the rendered clean pieces (reused when there)")
    ap.add_argument("--out", default=None, help="where width.onnx and width.json go (default: the shipped weights)")
    ap.add_argument("--ood-pieces", type=int, default=12, help="out-of-domain pieces per class (default 12)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    metrics = train(args.work_dir, args.out or default_model_dir(), args.ood_pieces,
                    log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(metrics, indent=1) if args.json else markdown(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
