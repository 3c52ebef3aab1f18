"""An out-of-domain test set, and every correction measured on it beside the held-out pieces.

Training (``models/dataset.py``) renders music21 scores of CORPUS_COMPOSERS with FluidR3_GM and
speech by nine espeak-ng voices. The out-of-domain set shares none of that:

- acoustic and band pieces from music21 composers and collections the training never uses
  (OOD_COMPOSERS: folk collections, Joplin, Schoenberg, Webern, Beach and others), rendered
  with two other SoundFonts: csound's sf_GMbank (sampled) and the OPL-3 FM bank (synthesised),
  the same ensembles and band arrangements;
- speech by espeak-ng voices of other languages (OOD_VOICES) reading the English sentences.

Each clean piece gets two copies with flaws drawn as in training and one with the issue's
fixed flaw (+6 dB at 300 Hz, Q 1; -6 dB at 6 kHz, Q 0.7; nothing else). The held-out test
pieces of the data set get the same fixed-flaw copy beside their own copies.

Versions compared (each through the chain's own stages, ``dsp.apply_correction``):
none; fixed (the mean training correction); model (the ONNX models' targets, width from
the width model); balance (the DSP match of ``models/balance.py``: EQ only); model+balance
(the models' targets with the balance EQ); oracle (the known correction). On levels (the
whole correction, level included, as evaluate.py reports it held out): fixed+loudness and
model+loudness (the gain to the reference loudness measured, as the engine's follower sets
it), and model+loudness with the predictor's width prior instead of the width model. Recovery on spectral shape = 1 - d_shape(version,
clean) / d_shape(flawed, clean), d_shape the mean |level-aligned 1/3-octave difference|, as
the ratio of the means over the clips. "Do no harm": the EQ each version asks on the clean
clips themselves (the largest |band gain| per clip).

    python -m auracore.models.ood WORK_DIR [--models DIR] [--pieces 12] [--json]

WORK_DIR holds a data set built by ``auracore train`` (or ``models.dataset.build``); the
out-of-domain clips are made in WORK_DIR/ood the first time.
"""

import argparse
import json
import os
import sys

import numpy as np

from auracore.kernels.biquad import SHAPE_PEAKING

from . import balance, degrade, dsp, sources
from .dataset import load
from .evaluate import to_reference, model_targets
from .nets import TARGET_IDS
from .runtime import ModelRunner, default_model_dir, shrink_eq

OOD_FONTS = ("/usr/share/sounds/sf2/sf_GMbank.sf2", "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2")
OOD_COMPOSERS = ("joplin", "schoenberg", "webern", "beach", "johnson_j_r", "liliuokalani", "airdsAirs",
                 "essenFolksong", "demos", "leadSheet", "miscFolk", "oneills1850", "theoryExercises")
OOD_VOICES = (("nl", "en"), ("pt", "en"), ("sv", "en"), ("pl", "en"), ("cs", "en"), ("fi", "en"))
ISSUE_FLAW = {"families": ["issue"], "eq": [[SHAPE_PEAKING, 300.0, 6.0, 1.0], [SHAPE_PEAKING, 6000.0, -6.0, 0.7]], "level_db": 0.0,
              "width": 1.0, "under": None, "over": None}
VERSIONS = ("none", "fixed", "model", "model, deadband", "balance", "model+balance", "oracle")
SEED = 77
HARM_VERSIONS = ("fixed", "model", "model, deadband", "balance")
LEVEL_VERSIONS = ("none", "fixed+loudness", "model+loudness, width prior", "model+loudness", "oracle")


def ood_scores() -> list[str]:
    """music21 corpus files of OOD_COMPOSERS (any format music21 reads), round-robin."""
    from music21 import corpus

    by = {}
    for p in corpus.getCorePaths():
        parts = str(p).replace("\\", "/").split("/corpus/", 1)[-1].split("/")
        if parts[0] in OOD_COMPOSERS:
            by.setdefault(parts[0], []).append("/".join(parts))
    queues = [sorted(by[c]) for c in sorted(by)]
    out = []
    for i in range(max(map(len, queues))):
        out += [q[i] for q in queues if i < len(q)]
    return out


def build_ood(folder: str, pieces: int = 12, log=print) -> list[dict]:
    """Make (or load) the out-of-domain clean clips in folder: [{id, kind, desc, font}]."""
    index = os.path.join(folder, "ood.json")
    if os.path.exists(index):
        with open(index) as f:
            return json.load(f)
    sources.require_tools()
    os.makedirs(folder, exist_ok=True)
    scores = ood_scores()
    items, k = [], 0
    for kind in ("acoustic", "band", "speech"):
        made = 0
        while made < pieces and k < 10 * pieces + len(scores):
            seed = SEED * 1000 + k
            font = OOD_FONTS[k % len(OOD_FONTS)]
            try:
                if kind == "speech":
                    x, desc = sources.speech_piece(seed, OOD_VOICES)
                    font = ""
                else:
                    rel = scores[k % len(scores)]
                    x, desc = (sources.acoustic_piece if kind == "acoustic" else sources.band_piece)(rel, seed, font)
            except Exception as exc:  # a score music21 cannot voice, a render that fails: the next one
                log(f"ood: skipped {kind} {k}: {type(exc).__name__}: {str(exc)[:80]}")
                k += 1
                continue
            k += 1
            x = sources.normalise(x)
            if not np.isfinite(dsp.loudness_lufs(x)):
                continue
            pid = f"ood-{kind}-{made:03d}"
            np.save(os.path.join(folder, pid + ".npy"), x.astype(np.float32))
            items.append({"id": pid, "kind": kind, "desc": desc, "font": os.path.basename(font)})
            made += 1
        log(f"ood: {made} {kind} pieces")
    with open(index, "w") as f:
        json.dump(items, f, indent=1)
    return items


def _versions(runner, flawed, clean_levels, fixed, curves, oracle_targets) -> tuple[dict, dict]:
    """{version: d_shape, "levels": {version: d_abs}}, and the EQ gains each asked (for the
    harm check)."""
    predicted, probs, windows = model_targets(runner, flawed)
    shrunk = dict(zip(runner.target_ids, shrink_eq(runner.target_ids, [predicted[t] for t in runner.target_ids])))
    levels = dsp.third_octave_levels_db(flawed)
    bal = balance.match_gains(levels, probs.mean(axis=0), curves)
    bal_targets = {f"eq.{b + 1}.gain_db": float(g) for b, g in enumerate(bal)}
    outs = {"none": flawed, "fixed": dsp.apply_correction(flawed, fixed),
            "model": dsp.apply_correction(flawed, predicted),
            "model, deadband": dsp.apply_correction(flawed, shrunk), "balance": dsp.apply_correction(flawed, bal_targets),
            "model+balance": dsp.apply_correction(flawed, {**predicted, **bal_targets})}
    if oracle_targets is not None:
        outs["oracle"] = dsp.apply_correction(flawed, oracle_targets)
    d = {v: dsp.band_distance_db(dsp.third_octave_levels_db(x), clean_levels, clean_levels, align=True)
         for v, x in outs.items()}
    # levels (the whole correction: EQ, dynamics, width and level), the gain left to the
    # loudness follower as the engine runs the models with loudness.auto on
    prior = dict(predicted, **{"width.amount": float(windows[:, runner.target_ids.index("width.amount")].mean())})
    levels_outs = {"none": flawed, "fixed+loudness": to_reference(outs["fixed"]),
                   "model+loudness, width prior": to_reference(dsp.apply_correction(flawed, prior)),
                   "model+loudness": to_reference(outs["model"])}
    if oracle_targets is not None:
        levels_outs["oracle"] = outs["oracle"]
    d["levels"] = {v: dsp.band_distance_db(dsp.third_octave_levels_db(x), clean_levels, clean_levels)
                   for v, x in levels_outs.items()}
    eq = {"model": np.array([predicted[f"eq.{b}.gain_db"] for b in range(1, 9)]), "balance": bal,
          "model, deadband": np.array([shrunk[f"eq.{b}.gain_db"] for b in range(1, 9)]),
          "fixed": np.array([fixed[f"eq.{b}.gain_db"] for b in range(1, 9)])}
    return d, eq


def _recovery(rows: list[dict], version: str) -> float:
    base = np.mean([r["none"] for r in rows])
    return float(1.0 - np.mean([r[version] for r in rows]) / base) if base > 0 else float("nan")


def _recovery_levels(rows: list[dict], version: str) -> float:
    return _recovery([r["levels"] for r in rows], version)


def evaluate_sets(work_dir: str, model_dir: str, pieces: int = 12, log=print) -> dict:
    arrays, clips = load(work_dir)
    runner = ModelRunner(model_dir, ["CPUExecutionProvider"])
    train = np.array([c["targets"] for c in clips if c["split"] == "train"])
    fixed = dict(zip(TARGET_IDS, map(float, train.mean(axis=0))))
    curves = balance.class_curves(arrays, clips)
    sets = {"held-out": [], "held-out, issue flaw": [], "ood": [], "ood, issue flaw": []}
    harm = {"held-out": [], "ood": []}
    test = [c for c in clips if c["split"] == "test" and c["kind"] in balance.MATCHED]
    done_pieces = set()
    for n, clip in enumerate(test, 1):
        clean = np.load(os.path.join(work_dir, "clean", clip["piece"] + ".npy")).astype(np.float64)
        clean_levels = dsp.third_octave_levels_db(clean)
        made = degrade.apply_flaws(clean, clip["flaws"], clip["kind"])
        d, _ = _versions(runner, made["flawed"], clean_levels, fixed, curves, made["targets"])
        sets["held-out"].append({"kind": clip["kind"], **d})
        if clip["piece"] not in done_pieces:
            done_pieces.add(clip["piece"])
            made = degrade.apply_flaws(clean, ISSUE_FLAW, clip["kind"])
            d, _ = _versions(runner, made["flawed"], clean_levels, fixed, curves, made["targets"])
            sets["held-out, issue flaw"].append({"kind": clip["kind"], **d})
            _, eq = _versions(runner, clean, clean_levels, fixed, curves, None)
            harm["held-out"].append({v: float(np.max(np.abs(g))) for v, g in eq.items()})
        if n % 30 == 0:
            log(f"ood: held-out {n}/{len(test)}")
    items = build_ood(os.path.join(work_dir, "ood"), pieces, log)
    for i, item in enumerate(items):
        clean = np.load(os.path.join(work_dir, "ood", item["id"] + ".npy")).astype(np.float64)
        clean_levels = dsp.third_octave_levels_db(clean)
        for c in range(2):
            flaws = degrade.draw_flaws(np.random.default_rng([SEED, i, c]), item["kind"])
            made = degrade.apply_flaws(clean, flaws, item["kind"])
            d, _ = _versions(runner, made["flawed"], clean_levels, fixed, curves, made["targets"])
            sets["ood"].append({"kind": item["kind"], "font": item["font"], **d})
        made = degrade.apply_flaws(clean, ISSUE_FLAW, item["kind"])
        d, _ = _versions(runner, made["flawed"], clean_levels, fixed, curves, made["targets"])
        sets["ood, issue flaw"].append({"kind": item["kind"], "font": item["font"], **d})
        _, eq = _versions(runner, clean, clean_levels, fixed, curves, None)
        harm["ood"].append({v: float(np.max(np.abs(g))) for v, g in eq.items()})
    out = {"recovery_shape": {}, "recovery_levels": {}, "clips": {}, "by_kind": {}, "harm_max_band_db": {}}
    for name, rows in sets.items():
        out["clips"][name] = len(rows)
        out["recovery_shape"][name] = {v: _recovery(rows, v) for v in VERSIONS}
        out["recovery_levels"][name] = {v: _recovery_levels(rows, v) for v in LEVEL_VERSIONS}
        out["by_kind"][name] = {k: {v: _recovery([r for r in rows if r["kind"] == k], v) for v in VERSIONS}
                                for k in balance.MATCHED if any(r["kind"] == k for r in rows)}
    for name, rows in harm.items():
        out["harm_max_band_db"][name] = {v: {"median": float(np.median([r[v] for r in rows])),
                                             "max": float(np.max([r[v] for r in rows])),
                                             "over_1db": float(np.mean([r[v] > 1.0 for r in rows]))}
                                         for v in HARM_VERSIONS}
    out["curves_db"] = {k: [round(float(v), 2) for v in c] for k, c in curves.items()}
    return out


def markdown(m: dict) -> str:
    lines = ["| set | clips | " + " | ".join(VERSIONS) + " |", "|---|---|" + "---|" * len(VERSIONS)]
    for name, rec in m["recovery_shape"].items():
        lines.append(f"| {name} | {m['clips'][name]} | " + " | ".join(f"{rec[v]:.2f}" for v in VERSIONS) + " |")
    lines += ["", "| set (recovery on levels) | clips | " + " | ".join(LEVEL_VERSIONS) + " |",
              "|---|---|" + "---|" * len(LEVEL_VERSIONS)]
    for name, rec in m["recovery_levels"].items():
        lines.append(f"| {name} | {m['clips'][name]} | " + " | ".join(f"{rec[v]:.2f}" for v in LEVEL_VERSIONS) + " |")
    lines += ["", "| clean clips: largest band gain asked, dB | " + " | ".join(HARM_VERSIONS) + " |",
              "|---|" + "---|" * len(HARM_VERSIONS)]
    for name, h in m["harm_max_band_db"].items():
        lines.append(f"| {name}: median / max / share over 1 dB | "
                     + " | ".join(f"{h[v]['median']:.2f} / {h[v]['max']:.2f} / {h[v]['over_1db']:.2f}"
                                  for v in HARM_VERSIONS) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work_dir")
    ap.add_argument("--models", default=None, help="model folder (default: the shipped models)")
    ap.add_argument("--pieces", type=int, default=12, help="out-of-domain pieces per class (default 12)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    m = evaluate_sets(args.work_dir, args.models or default_model_dir(), args.pieces,
                      log=lambda s: print(s, file=sys.stderr))
    print(json.dumps(m, indent=1) if args.json else markdown(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
