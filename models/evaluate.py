"""Held-out metrics of the ONNX models: correction recovery against baselines, target errors, classifier confusion.

For every test clip (pieces the training never saw) the flawed copy is remade from the stored
clean clip and its flaw description, the models run on it through ``runtime.ModelRunner``
(decisions every 32 blocks over the clip, averaged), and five versions are compared with the
clean clip, each through the chain's own EQ, compressor, width and gain (``dsp.apply_correction``):

- ``none``: the flawed clip as it is;
- ``fixed``: the average of the training targets, the same for every clip;
- ``fixed+loudness``: that, then the gain that puts the result at the reference loudness
  (what a loudness-normalising chain without models would do);
- ``model``: the models' targets, their own loudness gain included;
- ``model+loudness``: the models' EQ, compressor and width, then the measured gain to the
  reference loudness (as the chain runs them with ``loudness.auto`` on, where ``Steering``
  leaves the gain to the chain's loudness follower);
- ``oracle``: the known correction (the inverse, or the chain's best fit to it).

d = mean |difference of 1/3-octave band levels| (dB, 40 Hz to 20 kHz, bands within 60 dB of
the clean clip's loudest), on absolute levels and level-aligned (spectral shape only).
Recovery = 1 - d(version, clean) / d(flawed, clean), reported as the ratio of the means over
the clips and as the median of the per-clip values. Loudness and crest-factor errors are
|version - clean|. Noise and silence clips are meant to be left alone: for them the report
gives how much the models would change (mean |EQ gain| and |gain|).
"""

import json
import os

import numpy as np

from . import dsp, width
from .dataset import load, mono_blocks
from .degrade import NEUTRAL, apply_flaws
from .nets import CLASSES, REFERENCE_LUFS, SAMPLE_RATE, TARGET_IDS
from .runtime import ModelRunner

VERSIONS = ("none", "fixed", "fixed+loudness", "model", "model+loudness", "oracle")
DECIDE_HOP_BLOCKS = 32
MASTERED = ("speech", "acoustic", "band")


def model_targets(runner: ModelRunner, flawed: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:
    """The models on a whole clip: (averaged targets by id, per-window class probabilities
    (W, C), per-window targets (W, targets)); output.gain_db aims at REFERENCE_LUFS. For a
    stereo clip, width.amount is the width model's (when shipped) on the whole clip, with
    the classifier's mean belief, as ``Steering`` sets it from the side it hears."""
    emb = runner.embed_batch(mono_blocks(flawed))
    t = runner.context_blocks
    starts = range(0, max(1, emb.shape[0] - t + 1), DECIDE_HOP_BLOCKS)
    probs, targets = zip(*(runner.decide(emb[s:s + t], REFERENCE_LUFS) for s in starts))
    mean = dict(zip(runner.target_ids, map(float, np.mean(targets, axis=0))))
    if runner.width is not None and "width.amount" in mean and flawed.ndim == 2 and flawed.shape[1] == 2 \
            and all(k in runner.classes for k in width.KINDS):
        belief = np.mean(probs, axis=0)[[runner.classes.index(k) for k in width.KINDS]]
        mean["width.amount"] = runner.width.amount(width.clip_features(flawed, belief, SAMPLE_RATE))
    return mean, np.array(probs), np.array(targets)


def to_reference(x: np.ndarray) -> np.ndarray:
    """x with the gain that puts its integrated loudness at REFERENCE_LUFS."""
    lufs = dsp.loudness_lufs(x)
    return x * 10 ** ((REFERENCE_LUFS - lufs) / 20) if np.isfinite(lufs) else x


def _measure(x: np.ndarray, clean_levels: np.ndarray, clean_lufs: float, clean_cf: float) -> dict:
    levels = dsp.third_octave_levels_db(x)
    return {"d_abs": dsp.band_distance_db(levels, clean_levels, clean_levels),
            "d_shape": dsp.band_distance_db(levels, clean_levels, clean_levels, align=True),
            "loudness_err": abs(dsp.loudness_lufs(x) - clean_lufs),
            "crest_err": abs(dsp.crest_factor_db(x) - clean_cf)}


def evaluate(work_dir: str, model_dir: str, log=print) -> dict:
    """All held-out metrics as a JSON-ready dict (see the module docstring)."""
    _, clips = load(work_dir)
    runner = ModelRunner(model_dir, ["CPUExecutionProvider"])
    train_targets = np.array([c["targets"] for c in clips if c["split"] == "train"])
    fixed = dict(zip(TARGET_IDS, map(float, train_targets.mean(axis=0))))
    test = [c for c in clips if c["split"] == "test"]
    per_clip = []
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    untouched = []
    for n, clip in enumerate(test, 1):
        clean = np.load(os.path.join(work_dir, "clean", clip["piece"] + ".npy")).astype(np.float64)
        made = apply_flaws(clean, clip["flaws"], clip["kind"])
        flawed = made["flawed"]
        predicted, probs, _ = model_targets(runner, flawed)
        truth = CLASSES.index(clip["kind"])
        for p in probs.argmax(axis=1):
            confusion[truth, p] += 1
        if clip["kind"] not in MASTERED:
            untouched.append({"eq_abs_db": float(np.mean([abs(predicted[f"eq.{b}.gain_db"]) for b in range(1, 9)])),
                              "gain_abs_db": abs(predicted["output.gain_db"] - NEUTRAL["output.gain_db"])})
            continue
        fixed_out = dsp.apply_correction(flawed, fixed)
        model_out = dsp.apply_correction(flawed, predicted)
        outs = {"none": flawed, "fixed": fixed_out, "fixed+loudness": to_reference(fixed_out),
                "model": model_out, "model+loudness": to_reference(model_out),
                "oracle": dsp.apply_correction(flawed, made["targets"])}
        clean_levels = dsp.third_octave_levels_db(clean)
        clean_lufs = dsp.loudness_lufs(clean)
        clean_cf = dsp.crest_factor_db(clean)
        # a threshold means nothing where the correction does not compress: not judged there
        judged = [t for t in TARGET_IDS if t != "comp.threshold_db" or made["targets"]["comp.ratio"] > 1.0]
        row = {"piece": clip["piece"], "kind": clip["kind"], "families": clip["flaws"]["families"],
               "target_err": {t: abs(predicted[t] - made["targets"][t]) for t in judged},
               "fixed_target_err": {t: abs(fixed[t] - made["targets"][t]) for t in judged}}
        for v, x in outs.items():
            row[v] = _measure(x, clean_levels, clean_lufs, clean_cf)
        per_clip.append(row)
        if n % 20 == 0:
            log(f"evaluate: {n}/{len(test)} clips")
    return summarise(per_clip, confusion, untouched, runner.provider)


def _recovery(rows: list[dict], version: str, key: str) -> dict:
    flawed = np.array([r["none"][key] for r in rows])
    got = np.array([r[version][key] for r in rows])
    per = 1.0 - got / np.maximum(flawed, 1e-9)
    return {"ratio_of_means": float(1.0 - got.mean() / flawed.mean()), "median": float(np.median(per)),
            "mean_d_db": float(got.mean())}


def summarise(rows: list[dict], confusion: np.ndarray, untouched: list[dict], provider: str) -> dict:
    out = {"clips": len(rows), "provider": provider, "versions": {}}
    for v in VERSIONS:
        out["versions"][v] = {
            "recovery_abs": _recovery(rows, v, "d_abs"),
            "recovery_shape": _recovery(rows, v, "d_shape"),
            "loudness_err_lu": float(np.mean([r[v]["loudness_err"] for r in rows])),
            "crest_err_db": float(np.mean([r[v]["crest_err"] for r in rows])),
        }
    out["by_kind"] = {k: {"clips": sum(r["kind"] == k for r in rows),
                          "model_recovery_abs": _recovery([r for r in rows if r["kind"] == k], "model", "d_abs")["ratio_of_means"],
                          "model_recovery_shape": _recovery([r for r in rows if r["kind"] == k], "model", "d_shape")["ratio_of_means"]}
                      for k in MASTERED if any(r["kind"] == k for r in rows)}
    out["target_mae"] = {}
    for t in TARGET_IDS:
        judged = [r for r in rows if t in r["target_err"]]
        if judged:
            out["target_mae"][t] = {"clips": len(judged),
                                    "model": float(np.mean([r["target_err"][t] for r in judged])),
                                    "fixed": float(np.mean([r["fixed_target_err"][t] for r in judged]))}
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    out["classifier"] = {"windows": int(confusion.sum()),
                         "accuracy": float(confusion.diagonal().sum() / max(confusion.sum(), 1)),
                         "per_class": dict(zip(CLASSES, map(float, per_class))),
                         "confusion": confusion.tolist(), "classes": list(CLASSES)}
    if untouched:
        out["noise_silence"] = {"clips": len(untouched),
                                "mean_abs_eq_db": float(np.mean([u["eq_abs_db"] for u in untouched])),
                                "mean_abs_gain_db": float(np.mean([u["gain_abs_db"] for u in untouched]))}
    return out


def markdown(metrics: dict) -> str:
    """The metrics as the Markdown tables of the model card."""
    lines = ["| version | recovery (levels) | median | recovery (shape) | median | loudness error LU | crest-factor error dB |",
             "|---|---|---|---|---|---|---|"]
    for v in VERSIONS:
        m = metrics["versions"][v]
        lines.append(f"| {v} | {m['recovery_abs']['ratio_of_means']:.2f} | {m['recovery_abs']['median']:.2f} | "
                     f"{m['recovery_shape']['ratio_of_means']:.2f} | {m['recovery_shape']['median']:.2f} | "
                     f"{m['loudness_err_lu']:.2f} | {m['crest_err_db']:.2f} |")
    lines += ["", "| class | test clips | model recovery (levels) | model recovery (shape) |", "|---|---|---|---|"]
    for k, m in metrics["by_kind"].items():
        lines.append(f"| {k} | {m['clips']} | {m['model_recovery_abs']:.2f} | {m['model_recovery_shape']:.2f} |")
    lines += ["", "| target | clips | model MAE | fixed-curve MAE |", "|---|---|---|---|"]
    for t, m in metrics["target_mae"].items():
        lines.append(f"| `{t}` | {m['clips']} | {m['model']:.2f} | {m['fixed']:.2f} |")
    c = metrics["classifier"]
    lines += ["", f"Classifier: {c['accuracy']:.3f} accuracy over {c['windows']} test windows.", "",
              "| true \\ predicted | " + " | ".join(c["classes"]) + " | accuracy |",
              "|---" * (len(c["classes"]) + 2) + "|"]
    for name, row in zip(c["classes"], c["confusion"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + f" | {c['per_class'][name]:.3f} |")
    if "noise_silence" in metrics:
        ns = metrics["noise_silence"]
        lines += ["", f"Noise and silence ({ns['clips']} clips, to be left alone): mean |EQ gain| "
                      f"{ns['mean_abs_eq_db']:.2f} dB, mean |gain| {ns['mean_abs_gain_db']:.2f} dB."]
    return "\n".join(lines) + "\n"


def write(metrics: dict, work_dir: str) -> None:
    with open(os.path.join(work_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    with open(os.path.join(work_dir, "metrics.md"), "w") as f:
        f.write(markdown(metrics))
