"""Batch-1 CPU latency per model: eager (BN unfused) vs fused, and the postprocess.

    python benchmarks/inference.py [--models yolox-nano yolox-tiny yolox-s] [--runs 30]

Both variants run in this one process on the same input, one after the other (never
concurrently), with torch.inference_mode; the median of --runs timed calls after warm-up
is reported. Postprocess = decode filter + NMS at the demo thresholds (0.25 / 0.45) on the
model's own output, and at the evaluation thresholds (0.01 / 0.65) on the reference's
golden prediction (tests/data/reference/postprocess.npz, image 0: ~3,400 boxes survive the
score filter), the heaviest realistic case.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openyolox.config import get_preset  # noqa: E402
from openyolox.bench.latency import time_calls  # noqa: E402
from openyolox.inference.postprocess import postprocess  # noqa: E402
from openyolox.models.yolox import create_model  # noqa: E402


def time_ms(fn, runs: int, warmup: int = 5) -> float:
    """Median milliseconds of ``runs`` calls after ``warmup`` untimed ones."""
    return statistics.median(time_calls(fn, runs, warmup))


def dense_prediction(pred: torch.Tensor) -> torch.Tensor:
    """The golden 80-class prediction at 416 when available, else ``pred`` itself."""
    path = Path(__file__).resolve().parents[1] / "tests" / "data" / "reference" / "postprocess.npz"
    if not path.exists():
        return pred
    import numpy as np

    return torch.from_numpy(np.load(path)["prediction"][:1])


def bench_model(name: str, runs: int) -> dict:
    cfg = get_preset(name)
    h, w = cfg.test_size
    torch.manual_seed(0)
    model = create_model(name, 80).eval()
    x = torch.rand(1, 3, h, w) * 255
    with torch.inference_mode():
        eager = time_ms(lambda: model(x), runs)
        model.fuse()
        fused = time_ms(lambda: model(x), runs)
        pred = model(x)
        post_demo = time_ms(lambda: postprocess(pred, 0.25, 0.45, True), runs)
        dense = dense_prediction(pred)
        post_eval = time_ms(lambda: postprocess(dense, 0.01, 0.65, False), runs)
        n_eval = int(sum(len(d) for d in postprocess(dense, 0.01, 0.65, False)))
    return {"model": name, "size": h, "eager_ms": round(eager, 2), "fused_ms": round(fused, 2),
            "speedup": round(eager / fused, 3), "post_demo_ms": round(post_demo, 3),
            "post_eval_ms": round(post_eval, 3), "eval_dets": n_eval, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["yolox-nano", "yolox-tiny", "yolox-s"])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print("| model | size | eager ms | fused ms | eager/fused | postprocess demo ms | postprocess eval ms |")
    print("|---|---|---|---|---|---|---|")
    results = []
    for name in args.models:
        r = bench_model(name, args.runs)
        results.append(r)
        print(f"| {r['model']} | {r['size']} | {r['eager_ms']} | {r['fused_ms']} | {r['speedup']}x | "
              f"{r['post_demo_ms']} | {r['post_eval_ms']} ({r['eval_dets']} dets) |", flush=True)
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
