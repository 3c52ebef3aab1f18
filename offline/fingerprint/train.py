"""Train the fingerprint flaw classifier: a labelled table from the models' own data, scikit-learn, ONNX, metrics.

Data: the clean clips the steering models are trained on (models/sources.py: corpus scores
and generated band and electronic tracks through FluidSynth and FluidR3 GM, espeak-ng
speech), each in six copies with exactly one known flaw (models/degrade.py draws it):
none (a level change only), a tonal EQ flaw, under- or over-compression, a narrow or an
over-wide image. Every copy is fingerprinted (64 floats) and labelled. The split is by
piece (models/dataset.plan_pieces: train, val, test); speech is held out of training
entirely and is the out-of-domain set. Model: a random forest (scikit-learn) on the 64
floats; baselines: the majority class and a logistic regression on standardised features.
Exported with skl2onnx and checked on ONNX Runtime against scikit-learn.
"""

import hashlib
import json
import multiprocessing
import os
import time

import numpy as np

from auracore.models.fingerprint.model import FLAW_CLASSES, MANIFEST_FILE, MODEL_FILE

from .features import FEATURE_NAMES
from .core import fingerprint

TRAIN_KINDS = ("acoustic", "band")
OOD_KINDS = ("speech",)
TABLE_FILE = "flaw_table.parquet"
METRICS_FILE = "flaw_metrics.json"
TREES = 80
MAX_DEPTH = 10


def _one_flaw(rng, label: str, kind: str) -> dict:
    """A flaw description as models/degrade.py takes it, with exactly the flaw of label."""
    from auracore.models import degrade

    flaws = {"families": ["level"], "eq": [], "level_db": float(rng.uniform(-12, 8)), "width": 1.0,
             "under": None, "over": None}
    if label == "tonal":
        fam = str(rng.choice(degrade.EQ_FAMILIES))
        flaws["families"].append(fam)
        flaws["eq"] = [[int(s), float(f), float(g), float(q)] for s, f, g, q in degrade.eq_flaw(rng, fam)]
    elif label == "under_compressed":
        flaws["under"] = {"below_peak_db": float(rng.uniform(4, 10)), "ratio": float(rng.uniform(1.5, 3.0))}
    elif label == "over_compressed":
        flaws["over"] = {"below_peak_db": float(rng.uniform(10, 20)), "ratio": float(rng.uniform(4, 10))}
    elif label == "narrow":
        flaws["width"] = float(rng.uniform(0.5, 0.75))
    elif label == "wide":
        flaws["width"] = float(rng.uniform(1.4, 2.0))
    return flaws


def build_piece(args) -> list[dict]:
    """The six labelled fingerprints of one piece (an empty list when its source fails)."""
    from auracore.models import degrade, sources

    piece, seed = args
    try:
        clean, _ = sources.make_clean(piece["kind"], piece["ref"], piece["seed"])
    except sources.SourceError:
        return []
    rows = []
    for c, label in enumerate(FLAW_CLASSES):
        rng = np.random.default_rng([seed, piece["seed"], c])
        made = degrade.apply_flaws(clean, _one_flaw(rng, label, piece["kind"]), piece["kind"])
        fp = fingerprint(made["flawed"], sources.SAMPLE_RATE)
        rows.append({"piece": piece["id"], "kind": piece["kind"], "split": piece["split"], "label": label,
                     **dict(zip(FEATURE_NAMES, (float(v) for v in fp.values)))})
    return rows


def build_table(work_dir: str, counts: dict, seed: int = 1, jobs: int = 2, log=print) -> str:
    """Make the labelled table (TABLE_FILE in work_dir) and return its path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from auracore.models import dataset

    pieces = dataset.plan_pieces(1.0, seed, counts)
    args = [(p, seed) for p in pieces]
    t0 = time.time()
    rows = []
    if jobs > 1:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for i, r in enumerate(pool.imap(build_piece, args, chunksize=1)):
                rows.extend(r)
                if (i + 1) % 10 == 0:
                    log(f"data: {i + 1}/{len(args)} pieces in {time.time() - t0:.0f} s")
    else:
        for i, a in enumerate(args):
            rows.extend(build_piece(a))
    os.makedirs(work_dir, exist_ok=True)
    path = os.path.join(work_dir, TABLE_FILE)
    pq.write_table(pa.Table.from_pylist(rows), path)
    log(f"data: {len(rows)} labelled fingerprints from {len(pieces)} pieces in {time.time() - t0:.0f} s -> {path}")
    return path


def _scores(y_true, y_pred) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    per = f1_score(y_true, y_pred, labels=list(FLAW_CLASSES), average=None, zero_division=0)
    return {"accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
            "macro_f1": round(float(np.mean(per)), 4),
            "f1_per_class": {c: round(float(v), 4) for c, v in zip(FLAW_CLASSES, per)},
            "clips": int(len(y_true))}


def train_and_export(table_path: str, out_dir: str, seed: int = 1, trees: int = TREES, max_depth: int = MAX_DEPTH,
                     log=print) -> dict:
    """Fit on the train and val pieces of TRAIN_KINDS, measure on their test pieces (held out)
    and on OOD_KINDS (never trained on), export ONNX + manifest to out_dir; returns the metrics."""
    import pyarrow.parquet as pq
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = pq.read_table(table_path).to_pylist()
    X = np.array([[r[n] for n in FEATURE_NAMES] for r in rows], dtype=np.float32)
    y = np.array([r["label"] for r in rows])
    kind = np.array([r["kind"] for r in rows])
    split = np.array([r["split"] for r in rows])
    fit_rows = np.isin(kind, TRAIN_KINDS) & (split != "test")
    sets = {"held_out": np.isin(kind, TRAIN_KINDS) & (split == "test"), "out_of_domain": np.isin(kind, OOD_KINDS)}
    t0 = time.time()
    forest = RandomForestClassifier(n_estimators=trees, max_depth=max_depth, min_samples_leaf=2, random_state=seed,
                                    n_jobs=1, class_weight="balanced")
    forest.fit(X[fit_rows], y[fit_rows])
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    logistic.fit(X[fit_rows], y[fit_rows])
    majority = max(FLAW_CLASSES, key=lambda c: int(np.sum(y[fit_rows] == c)))
    metrics = {"train_clips": int(fit_rows.sum()), "fit_seconds": round(time.time() - t0, 1),
               "trees": trees, "max_depth": max_depth, "seed": seed, "sets": {}}
    for name, sel in sets.items():
        if not sel.any():
            continue
        metrics["sets"][name] = {"model": _scores(y[sel], forest.predict(X[sel])),
                                 "logistic_baseline": _scores(y[sel], logistic.predict(X[sel])),
                                 "majority_baseline": _scores(y[sel], np.full(int(sel.sum()), majority))}
    # the forest's classes are sorted; the ONNX graph gives probabilities in that order: keep it
    classes = [str(c) for c in forest.classes_]
    onx = convert_sklearn(forest, initial_types=[("fingerprint", FloatTensorType([None, len(FEATURE_NAMES)]))],
                          options={id(forest): {"zipmap": False}}, target_opset=17)
    os.makedirs(out_dir, exist_ok=True)
    data = onx.SerializeToString()
    from auracore.offline.audio_io import atomic_file

    with atomic_file(os.path.join(out_dir, MODEL_FILE), suffix=".onnx") as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    manifest = {"classes": classes, "features": list(FEATURE_NAMES), "sha256": hashlib.sha256(data).hexdigest(),
                "trained": {k: v for k, v in metrics.items() if k != "sets"}, "format": 1}
    with atomic_file(os.path.join(out_dir, MANIFEST_FILE), suffix=".json") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
    # ONNX Runtime against scikit-learn on every row
    from auracore.models.fingerprint import FlawModel

    _, prob = FlawModel(out_dir).predict(X)
    metrics["onnx_max_abs_prob_diff"] = float(np.max(np.abs(prob - forest.predict_proba(X))))
    metrics["onnx_bytes"] = len(data)
    log(f"train: forest of {trees} trees on {metrics['train_clips']} clips; ONNX {len(data) / 1e3:.0f} kB, "
        f"max |p_onnx - p_sklearn| {metrics['onnx_max_abs_prob_diff']:.2e}")
    return metrics


def markdown(metrics: dict) -> str:
    """The metrics as the card's table."""
    lines = ["| set | clips | model accuracy | model macro-F1 | logistic accuracy | logistic macro-F1 | majority accuracy |",
             "|---|---|---|---|---|---|---|"]
    for name, s in metrics["sets"].items():
        m, lg, mj = s["model"], s["logistic_baseline"], s["majority_baseline"]
        lines.append(f"| {name} | {m['clips']} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {lg['accuracy']:.3f} | "
                     f"{lg['macro_f1']:.3f} | {mj['accuracy']:.3f} |")
    lines.append("")
    lines.append("| set | " + " | ".join(FLAW_CLASSES) + " |")
    lines.append("|---|" + "---|" * len(FLAW_CLASSES))
    for name, s in metrics["sets"].items():
        lines.append(f"| {name} (model F1) | " + " | ".join(f"{s['model']['f1_per_class'][c]:.3f}" for c in FLAW_CLASSES) + " |")
    return "\n".join(lines) + "\n"
