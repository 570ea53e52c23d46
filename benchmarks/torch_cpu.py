"""PyTorch on the CPU: which settings make the PyTorch back-end faster.

    python benchmarks/torch_cpu.py [--cases yolox-nano:416 yolox-s:640] [--runs 50] [--repeat 3]

Candidates, each in its own fresh process (torch.compile and thread settings are global), on
the same random input, batch 1 (median and p90 of --runs calls after warm-up) and batch 8
(images/s):

- eager: BN unfused, torch.inference_mode, default threads (one per core), NCHW;
- fused: BN folded into the convolutions (the back-end's default);
- fused, no_grad: torch.no_grad instead of torch.inference_mode;
- fused, 1 thread;
- fused, channels_last: model and input in NHWC memory format;
- fused, compile: torch.compile (inductor, default mode), compile time reported;
- fused, channels_last + compile.

With --repeat N every candidate runs N times, round-robin (so a disturbance hits all alike),
and the run with the median batch-1 latency is reported. Prints a markdown table and JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CANDIDATES = {
    "eager": {"fuse": False},
    "fused": {},
    "fused, no_grad": {"no_grad": True},
    "fused, 1 thread": {"threads": 1},
    "fused, channels_last": {"channels_last": True},
    "fused, compile": {"compile": True},
    "fused, channels_last + compile": {"channels_last": True, "compile": True},
}


def worker(spec: dict) -> dict:
    import torch

    from openyolox.bench.latency import time_calls
    from openyolox.models.yolox import create_model

    opts = spec["options"]
    if opts.get("threads"):
        torch.set_num_threads(opts["threads"])
    torch.manual_seed(0)
    model = create_model(spec["model"]).eval()
    if opts.get("fuse", True):
        model.fuse()
    fmt = torch.channels_last if opts.get("channels_last") else torch.contiguous_format
    model = model.to(memory_format=fmt)
    run = torch.compile(model) if opts.get("compile") else model
    grad_off = torch.no_grad if opts.get("no_grad") else torch.inference_mode
    h = w = spec["imgsz"]
    out = {"threads": torch.get_num_threads()}
    for batch, runs in ((1, spec["runs"]), (8, max(spec["runs"] // 5, 5))):
        x = (torch.rand(batch, 3, h, w) * 255).contiguous(memory_format=fmt)
        with grad_off():
            t0 = time.perf_counter()
            run(x)  # the first call compiles
            first = time.perf_counter() - t0
            times = time_calls(lambda: run(x), runs, 5)
        key = "b1" if batch == 1 else "b8"
        out[f"{key}_first_call_s"] = round(first, 2)
        out[f"{key}_median_ms"] = round(statistics.median(times), 2)
        out[f"{key}_p90_ms"] = round(float(np.percentile(times, 90)), 2)
        out[f"{key}_images_per_s"] = round(1000 * batch / statistics.median(times), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["yolox-nano:416", "yolox-s:640"])
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1, help="processes per candidate; the median one is kept")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    rows = []
    print("| model | size | candidate | threads | batch 1 median ms | p90 ms | vs fused | batch 8 images/s | "
          "first call s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for case in args.cases:
        name, size = case.split(":")
        runs = {label: [] for label in args.candidates}
        for _ in range(args.repeat):
            for label in args.candidates:
                spec = {"model": name, "imgsz": int(size), "runs": args.runs, "options": CANDIDATES[label]}
                proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                                      text=True)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                if proc.returncode != 0 or not lines:
                    print(f"| {name} | {size} | {label} | failed: {proc.stderr.strip().splitlines()[-1:]} |")
                    continue
                runs[label].append(json.loads(lines[-1]))
        results = {}
        for label, done in runs.items():
            if done:
                done.sort(key=lambda r: r["b1_median_ms"])
                results[label] = {**done[len(done) // 2], "b1_median_ms_runs": [r["b1_median_ms"] for r in done]}
        fused = results.get("fused", {}).get("b1_median_ms")
        for label, r in results.items():
            ratio = f"{fused / r['b1_median_ms']:.2f}x" if fused else "-"
            print(f"| {name} | {size} | {label} | {r['threads']} | {r['b1_median_ms']:.2f} | {r['b1_p90_ms']:.2f} | "
                  f"{ratio} | {r['b8_images_per_s']:.1f} | {r['b1_first_call_s']:.1f} |", flush=True)
            rows.append({"model": name, "imgsz": int(size), "candidate": label, **r})
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
