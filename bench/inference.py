"""Model latency per 1024-sample block on the CPU, batch 1, one thread: ONNX Runtime against torch eager.

Times, over --calls calls after --warmup, (a) the extractor on one block, (b) the decision
(classifier then predictor on a full context of embeddings), and (c) both in one call, which
is the figure the 5 ms block budget (1024 frames at 48 kHz hold 21.3 ms; the design gave the
models 5 ms of it) and the 0.2 ms target are about, and for a stereo input (d) the width
model's features of one (mid, side) block with its decision, and (e) all of it on one block
(what a block that falls due for a decision costs; the 0.5 ms target of issue #11). Both runtimes use the shipped weights
(``models/weights``: ONNX files and the same weights for torch), one intra-op thread, in
this process, on the same inputs.

    python bench/inference.py [--calls 3000] [--json]
"""

import argparse
import json
import sys
import time

import numpy as np

from auracore.models.runtime import ModelRunner, default_model_dir
from auracore.models.width import WidthFeatures

BUDGET_MS = 5.0


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    a = np.array(samples_ns) / 1e6
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def timed(fn, calls: int, warmup: int) -> list[int]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t)
    return out


def bench_ort(block, context, calls, warmup) -> dict:
    runner = ModelRunner(providers=["CPUExecutionProvider"])
    ctx = runner.embed_batch(context)

    def both():
        runner.embed(block)
        runner.decide(ctx)

    out = {"extractor": percentiles(timed(lambda: runner.embed(block), calls, warmup)),
           "decide": percentiles(timed(lambda: runner.decide(ctx), calls, warmup)),
           "both": percentiles(timed(both, calls, warmup)), "provider": runner.provider}
    if runner.width is not None:
        features = WidthFeatures(runner.sample_rate)
        side = (0.3 * block[::-1]).copy()
        kinds = np.full(3, 1 / 3)

        def width():
            features.push(block, side)
            return runner.width.amount(features.vector(kinds))

        def stereo_all():
            both()
            width()

        out["width"] = percentiles(timed(width, calls, warmup))
        out["stereo_all"] = percentiles(timed(stereo_all, calls, warmup))
    return out


def bench_torch(block, context, calls, warmup) -> dict | None:
    try:
        import torch

        from auracore.models.export import load_torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    models = load_torch(default_model_dir())
    b = torch.from_numpy(block[None])
    with torch.inference_mode():
        ctx = models.extractor(torch.from_numpy(context))[None]

        def embed():
            return models.extractor(b)

        def decide():
            p = models.classifier.probabilities(ctx)
            return models.predictor(ctx, p)

        def both():
            embed()
            decide()

        return {"extractor": percentiles(timed(embed, calls, warmup)),
                "decide": percentiles(timed(decide, calls, warmup)),
                "both": percentiles(timed(both, calls, warmup)), "version": torch.__version__}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000, help="timed calls per figure (default 3000, at least 2000)")
    ap.add_argument("--warmup", type=int, default=300, help="untimed calls first (default 300)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    if args.calls < 2000:
        ap.error("--calls must be at least 2000")
    rng = np.random.default_rng(0)
    block = (0.1 * rng.standard_normal(1024)).astype(np.float32)
    runner_ctx = ModelRunner(providers=["CPUExecutionProvider"]).context_blocks
    context = (0.1 * rng.standard_normal((runner_ctx, 1024))).astype(np.float32)
    ort_r = bench_ort(block, context, args.calls, args.warmup)
    torch_r = bench_torch(block, context, args.calls, args.warmup)
    out = {"calls": args.calls, "warmup": args.warmup, "context_blocks": runner_ctx, "budget_ms": BUDGET_MS,
           "ort_provider": ort_r["provider"],
           "ort_p50_ms": ort_r["both"][0], "ort_p99_ms": ort_r["both"][1],
           "ort_extractor_p50_ms": ort_r["extractor"][0], "ort_extractor_p99_ms": ort_r["extractor"][1],
           "ort_decide_p50_ms": ort_r["decide"][0], "ort_decide_p99_ms": ort_r["decide"][1],
           "torch_p50_ms": torch_r["both"][0] if torch_r else None,
           "torch_p99_ms": torch_r["both"][1] if torch_r else None,
           "torch_extractor_p50_ms": torch_r["extractor"][0] if torch_r else None,
           "torch_extractor_p99_ms": torch_r["extractor"][1] if torch_r else None,
           "torch_decide_p50_ms": torch_r["decide"][0] if torch_r else None,
           "torch_decide_p99_ms": torch_r["decide"][1] if torch_r else None,
           "torch_version": torch_r["version"] if torch_r else None}
    for key in ("width", "stereo_all"):
        if key in ort_r:
            out[f"ort_{key}_p50_ms"], out[f"ort_{key}_p99_ms"] = ort_r[key]
    if torch_r:
        out["speedup_p50"] = out["torch_p50_ms"] / out["ort_p50_ms"]
        out["speedup_p99"] = out["torch_p99_ms"] / out["ort_p99_ms"]
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"model latency per 1024-sample block, CPU, batch 1, one thread; {args.calls} calls after {args.warmup}")
    print(f"{'':28s} {'ONNX Runtime':>20s} {'torch eager':>20s} {'torch/ORT':>10s}")
    print(f"{'':28s} {'p50 ms':>9s} {'p99 ms':>10s} {'p50 ms':>9s} {'p99 ms':>10s} {'p50':>10s}")
    for key, label in (("extractor", "extractor (1 block)"), ("decide", f"classifier+predictor ({runner_ctx})"),
                       ("both", "extractor + predictor")):
        o = ort_r[key]
        t = torch_r[key] if torch_r else (float("nan"), float("nan"))
        print(f"{label:28s} {o[0]:9.4f} {o[1]:10.4f} {t[0]:9.4f} {t[1]:10.4f} {t[0] / o[0]:10.1f}")
    for key, label in (("width", "width (stereo block)"), ("stereo_all", "all, stereo block")):
        if key in ort_r:
            o = ort_r[key]
            print(f"{label:28s} {o[0]:9.4f} {o[1]:10.4f} {'(ONNX Runtime and numpy only)':>42s}")
    print(f"budget {BUDGET_MS} ms per block: ONNX Runtime p99 uses {100 * out['ort_p99_ms'] / BUDGET_MS:.1f} % of it "
          f"(target p99 < 0.2 ms: {'met' if out['ort_p99_ms'] < 0.2 else 'NOT met'})")
    if "stereo_all" in ort_r:
        p99 = ort_r["stereo_all"][1]
        print(f"a stereo block with everything: p99 {p99:.4f} ms (target < 0.5 ms: {'met' if p99 < 0.5 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
