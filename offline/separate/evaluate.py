"""Separation metrics on the held-out and out-of-domain renders: the model beside the ideal
ratio mask (the oracle), the DSP fallback and the mixture itself.

- Global SDR per stem: 10 log10(stem energy / error energy) over each whole 8 s excerpt,
  averaged over the excerpts in which the stem plays (its energy above -40 dB of the mix).
- museval's median cSDR (BSS Eval v4, 1 s windows, the SiSEC 2018 convention) on a small
  frozen subset (the first ``MUSEVAL_PIECES`` excerpts of each split), when museval is
  installed: the median over windows per excerpt, then the median over excerpts.

"model" is the separator as it ships (the network's masks, then the multichannel Wiener
filter of ``wiener.py``), "masks" the network's masks alone. The oracle is the ideal ratio mask on power, |S_i|^2 / sum_j |S_j|^2, per channel on the
model's STFT. Four stems are scored (piano and guitar go into other); the model's six-stem
figures are reported beside.
"""

import importlib.util
import json
import math
import os
import time

import numpy as np

from auracore.models.separation import data as D
from auracore.models.separation import features as F

from .core import STEMS4, OnnxSeparator, separate_detail

METHODS = ("model", "masks", "oracle", "dsp", "mixture")
MUSEVAL_PIECES = 6
ACTIVE_DB = -40.0
METRICS_FILE = "separation_metrics.json"


def sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Global SDR in dB: 10 log10(sum ref^2 / sum (ref - est)^2)."""
    num = float(np.sum(ref ** 2))
    den = float(np.sum((ref - est) ** 2))
    return 10.0 * math.log10(max(num, 1e-20) / max(den, 1e-20))


def refs_of(piece: np.ndarray, stems=STEMS4) -> dict:
    """int16 (6, 2, n) piece -> {stem: (n, 2) float64}, the stems not listed summed into other."""
    x = piece.astype(np.float64) / 32768.0
    out = {s: x[F.STEMS6.index(s)].T.copy() for s in stems if s != "other"}
    out["other"] = sum(x[i].T for i, s in enumerate(F.STEMS6) if s not in out)
    return {s: out[s] for s in stems}


def oracle(mix: np.ndarray, refs: dict) -> dict:
    """Ideal ratio mask (power) estimates."""
    specs = {s: F.stft(r) for s, r in refs.items()}
    power = {s: np.abs(v) ** 2 for s, v in specs.items()}
    total = sum(power.values()) + 1e-20
    mix_spec = F.stft(mix)
    return {s: F.istft(mix_spec * (power[s] / total), mix.shape[0]) for s in refs}


def _museval_metrics():
    """museval's metrics module, loaded by itself (museval's package imports musdb, which
    wants ffmpeg); None when museval is not installed."""
    spec = importlib.util.find_spec("museval")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "metrics.py")
    mspec = importlib.util.spec_from_file_location("_museval_metrics", path)
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    return mod


def museval_csdr(metrics, refs: dict, ests: dict) -> dict:
    """{stem: median over 1 s windows of BSS Eval v4 SDR} for one excerpt."""
    names = list(refs)
    r = np.stack([refs[s] for s in names])
    e = np.stack([ests[s] for s in names])
    sdr_frames = metrics.bss_eval(r, e, window=F.SAMPLE_RATE, hop=F.SAMPLE_RATE, compute_permutation=False,
                                  filters_len=512, framewise_filters=False, bsseval_sources_version=False)[0]
    return {s: float(np.nanmedian(sdr_frames[i])) for i, s in enumerate(names)}


def evaluate(work_dir: str, model_dir: str, splits=("test", "ood"), log=print, museval: bool = True) -> dict:
    """Score every method on every split; returns the metrics dict (see markdown())."""
    mm = _museval_metrics() if museval else None
    masks_only = OnnxSeparator(model_dir, wiener=False)
    result = {"stems": list(STEMS4), "splits": {}, "museval": mm is not None}
    model_name = None
    for split in splits:
        pieces = D.load(work_dir, split)
        per = {m: {s: [] for s in STEMS4} for m in METHODS}
        per6 = {m: {s: [] for s in F.STEMS6} for m in ("model", "oracle")}
        mus = {m: {s: [] for s in STEMS4} for m in METHODS}
        t0 = time.time()
        for k in range(pieces.shape[0]):
            refs = refs_of(pieces[k])
            refs6 = refs_of(pieces[k], F.STEMS6)
            mix = sum(refs.values())
            mix_e = float(np.sum(mix ** 2))
            ests = {}
            ests["model"], model_name, note = separate_detail(mix, F.SAMPLE_RATE, stems=STEMS4, model=model_dir)
            if note:
                raise RuntimeError(f"the model under test did not load: {note}")
            ests["masks"] = separate_detail(mix, F.SAMPLE_RATE, stems=STEMS4, model=masks_only)[0]
            ests["dsp"] = separate_detail(mix, F.SAMPLE_RATE, stems=STEMS4, model="dsp")[0]
            ests["oracle"] = oracle(mix, refs)
            ests["mixture"] = {s: mix for s in STEMS4}
            model6 = separate_detail(mix, F.SAMPLE_RATE, stems=F.STEMS6, model=model_dir)[0]
            oracle6 = oracle(mix, refs6)
            for s in STEMS4:
                if 10 * math.log10(max(float(np.sum(refs[s] ** 2)), 1e-20) / max(mix_e, 1e-20)) < ACTIVE_DB:
                    continue
                for m in METHODS:
                    per[m][s].append(sdr(refs[s], ests[m][s]))
            for s in F.STEMS6:
                if 10 * math.log10(max(float(np.sum(refs6[s] ** 2)), 1e-20) / max(mix_e, 1e-20)) < ACTIVE_DB:
                    continue
                per6["model"][s].append(sdr(refs6[s], model6[s]))
                per6["oracle"][s].append(sdr(refs6[s], oracle6[s]))
            if mm is not None and k < MUSEVAL_PIECES:
                active = [s for s in STEMS4 if float(np.sum(refs[s] ** 2)) > 1e-4 * mix_e]
                for m in METHODS:
                    got = museval_csdr(mm, {s: refs[s] for s in active}, {s: ests[m][s] for s in active})
                    for s, v in got.items():
                        if math.isfinite(v):
                            mus[m][s].append(v)
        block = {"pieces": int(pieces.shape[0]), "seconds": round(time.time() - t0, 1), "global_sdr": {},
                 "global_sdr_6": {}, "museval_median_csdr": {}}
        for m in METHODS:
            stems = {s: (round(float(np.mean(v)), 2) if v else None) for s, v in per[m].items()}
            vals = [v for v in stems.values() if v is not None]
            block["global_sdr"][m] = {**stems, "mean": round(float(np.mean(vals)), 2) if vals else None,
                                      "n": {s: len(v) for s, v in per[m].items()}}
            if mm is not None:
                ms = {s: (round(float(np.median(v)), 2) if v else None) for s, v in mus[m].items()}
                mv = [v for v in ms.values() if v is not None]
                block["museval_median_csdr"][m] = {**ms, "mean": round(float(np.mean(mv)), 2) if mv else None}
        for m in per6:
            stems = {s: (round(float(np.mean(v)), 2) if v else None) for s, v in per6[m].items()}
            vals = [v for v in stems.values() if v is not None]
            block["global_sdr_6"][m] = {**stems, "mean": round(float(np.mean(vals)), 2) if vals else None}
        g = block["global_sdr"]
        if g["oracle"]["mean"] and g["model"]["mean"] is not None:
            block["model_over_oracle"] = round(g["model"]["mean"] / g["oracle"]["mean"], 3)
            block["model_minus_dsp_db"] = round(g["model"]["mean"] - g["dsp"]["mean"], 2)
        result["splits"][split] = block
        log(f"evaluate: {split}: model {g['model']['mean']} dB, oracle {g['oracle']['mean']} dB, "
            f"dsp {g['dsp']['mean']} dB, mixture {g['mixture']['mean']} dB ({block['seconds']:.0f} s)")
    result["model"] = model_name
    ood = result["splits"].get("ood")
    if ood and "model_over_oracle" in ood:
        result["target_met"] = bool(ood["model_over_oracle"] >= 0.6 and ood["model_minus_dsp_db"] >= 3.0)
    return result


def markdown(metrics: dict) -> str:
    """The metrics as Markdown tables (the model card's and `auracore train separation`'s)."""
    names = {"test": "held-out pieces (training SoundFonts)", "ood": "out of domain (unseen SoundFonts, kit, voices)"}
    lines = []
    for split, b in metrics["splits"].items():
        lines += [f"### {names.get(split, split)}: {b['pieces']} excerpts of {D.CLIP_S:.0f} s", "",
                  "Global SDR (dB), mean over the excerpts where the stem plays:", "",
                  "| method | " + " | ".join(metrics["stems"]) + " | mean |",
                  "|---|" + "---|" * (len(metrics["stems"]) + 1)]
        for m in METHODS:
            row = b["global_sdr"][m]
            label = {"model": "model (masks + Wiener filter, as shipped)", "masks": "model's masks alone",
                     "oracle": "ideal ratio mask (oracle)", "dsp": "DSP fallback",
                     "mixture": "mixture as estimate"}[m]
            lines.append(f"| {label} | " + " | ".join(_f(row[s]) for s in metrics["stems"]) + f" | {_f(row['mean'])} |")
        if "model_over_oracle" in b:
            lines += ["", f"Model mean = {100 * b['model_over_oracle']:.0f}% of the oracle's; "
                          f"{b['model_minus_dsp_db']:+.2f} dB over the DSP fallback."]
        six = b.get("global_sdr_6", {})
        if six:
            stems6 = list(F.STEMS6)
            lines += ["", "Six stems, global SDR (dB):", "", "| method | " + " | ".join(stems6) + " | mean |",
                      "|---|" + "---|" * (len(stems6) + 1)]
            for m, row in six.items():
                lines.append(f"| {m} | " + " | ".join(_f(row[s]) for s in stems6) + f" | {_f(row['mean'])} |")
        if b.get("museval_median_csdr"):
            lines += ["", f"museval median cSDR (dB), first {MUSEVAL_PIECES} excerpts:", "",
                      "| method | " + " | ".join(metrics["stems"]) + " | mean |",
                      "|---|" + "---|" * (len(metrics["stems"]) + 1)]
            for m, row in b["museval_median_csdr"].items():
                lines.append(f"| {m} | " + " | ".join(_f(row[s]) for s in metrics["stems"]) + f" | {_f(row['mean'])} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _f(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def write(metrics: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")


def main(argv=None) -> int:
    """`python -m auracore.offline.separate.evaluate WORK_DIR [--model DIR]`: the tables of
    `auracore train separation` for weights already trained, on its work folder's data."""
    import argparse
    import sys

    from .core import default_model_dir

    ap = argparse.ArgumentParser(description="Score a separation model on the held-out and out-of-domain renders.")
    ap.add_argument("work_dir", help="the work folder of `auracore train separation` (its rendered data)")
    ap.add_argument("--model", default=None, help="model folder (default: the shipped weights)")
    ap.add_argument("--no-museval", action="store_true", help="skip museval's cSDR even when it is installed")
    ap.add_argument("--json", action="store_true", help="print the metrics as JSON instead of Markdown")
    args = ap.parse_args(argv)
    metrics = evaluate(args.work_dir, args.model or default_model_dir(), museval=not args.no_museval,
                       log=lambda s: print(s, file=sys.stderr, flush=True))
    sys.stdout.write(json.dumps(metrics, indent=2) + "\n" if args.json else markdown(metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
