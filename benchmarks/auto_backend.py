"""The Detector's default (automatic back-end) against PyTorch, batch 1, side by side.

    python benchmarks/auto_backend.py [--nano-weights best.pth] [--runs 100]

Cases: yolox-nano at 416 (trained weights when given, the built-in set's 6 classes) and yolox-s
at 640 (random weights, 80 classes: timing does not depend on the values). For each case and
variant a fresh process builds the Detector and times ``Detector.predict_images`` on one
built-in val image (letterbox + back-end + postprocess: what a call costs a user), median and
p90 of --runs calls after 10 warm-up calls; runtimes never share the cores with another's
thread pool. Variants:

- PyTorch eager: ``backend="torch", fuse=False`` (batch norms unfused);
- PyTorch fused: ``backend="torch"`` (what the Detector ran before the automatic back-end);
- default: ``openyolox.Detector(...)`` with its export already cached.

Then the first use: building the default Detector with an empty cache (export + check + load),
against building the PyTorch one; and the ONNX exporter choice: export time and back-end
latency of the file written by each exporter (TorchScript-based, used by the cache, and the
torch.export-based one, ``openyolox export``'s default). Prints markdown tables and JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = (("PyTorch eager", {"backend": "torch", "fuse": False}), ("PyTorch fused", {"backend": "torch"}),
            ("default (auto)", {}))


def _image() -> np.ndarray:
    from openyolox.data.image_io import read_image
    from openyolox.data.layouts import load_split

    return read_image(load_split("builtin", "val").records[0].path)


def worker(spec: dict) -> dict:
    """In a fresh process: build one Detector, time predict_images on one image."""
    import openyolox
    from openyolox.bench.latency import time_calls

    t0 = time.perf_counter()
    det = openyolox.Detector(spec["model"], imgsz=spec["imgsz"], **spec["options"])
    build_s = time.perf_counter() - t0
    out = {"runtime": det.runtime, "build_s": round(build_s, 3)}
    if spec["runs"]:
        named = [("img", _image())]
        times = time_calls(lambda: det.predict_images(named), spec["runs"], 10)
        out.update(median_ms=round(statistics.median(times), 2), p90_ms=round(float(np.percentile(times, 90)), 2))
    return out


def run_worker(spec: dict, env: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                          env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(lines[-1])


def exporter_rows(model: str, imgsz: int, folder: Path, runs: int) -> list:
    """Export time and back-end latency of the ONNX file each exporter writes."""
    from openyolox.bench.latency import time_in_process
    from openyolox.export import export
    from openyolox.inference.backends import default_threads
    from openyolox.inference.predictor import Detector

    det = Detector(model, imgsz=imgsz, fuse=False)
    rows = []
    for exporter in ("torchscript", "dynamo"):
        t0 = time.perf_counter()
        path = export(det.net, format="onnx", out=folder / f"{exporter}.onnx", imgsz=imgsz, exporter=exporter)
        seconds = time.perf_counter() - t0
        spec = {"name": exporter, "kind": "onnxruntime", "paths": {1: str(path)}, "model": det.net.config.name,
                "num_classes": det.net.num_classes, "imgsz": [imgsz, imgsz], "runs": runs, "batch": 1,
                "threads": default_threads()}
        one = time_in_process(spec)[0]
        rows.append({"exporter": exporter, "export_s": round(seconds, 2), "median_ms": one["median_ms"],
                     "p90_ms": one["p90_ms"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nano-weights", help="yolox-nano checkpoint (e.g. trained on the built-in set)")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    import torch

    from openyolox.checkpoint import save_checkpoint
    from openyolox.models.yolox import create_model

    tmp = Path(tempfile.mkdtemp(prefix="bench-auto-"))
    torch.manual_seed(0)
    s_ckpt = save_checkpoint(tmp / "yolox_s_random.pth", {"model": create_model("yolox-s").state_dict(),
                                                           "model_name": "yolox-s"})
    nano = args.nano_weights
    if nano is None:
        nano = str(save_checkpoint(tmp / "nano_random.pth", {"model": create_model("yolox-nano").state_dict(),
                                                               "model_name": "yolox-nano"}))
    cases = (("yolox-nano", 416, str(nano)), ("yolox-s", 640, str(s_ckpt)))
    env = {**os.environ, "OPENYOLOX_HOME": str(tmp / "home"), "PYTHONPATH": str(ROOT)}
    results = []
    print("| model | size | variant | runs on | median ms | p90 ms | vs eager | vs fused |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for name, size, ckpt in cases:
        # the first use, with an empty cache; then the cached default is timed below
        first = run_worker({"model": ckpt, "imgsz": size, "options": {}, "runs": 0}, env)
        torch_build = run_worker({"model": ckpt, "imgsz": size, "options": {"backend": "torch"}, "runs": 0}, env)
        timed = {}
        for label, options in VARIANTS:
            timed[label] = run_worker({"model": ckpt, "imgsz": size, "options": options, "runs": args.runs}, env)
        eager, fused = timed["PyTorch eager"]["median_ms"], timed["PyTorch fused"]["median_ms"]
        for label, r in timed.items():
            print(f"| {name} | {size} | {label} | {r['runtime']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
                  f"{eager / r['median_ms']:.2f}x | {fused / r['median_ms']:.2f}x |", flush=True)
        results.append({"model": name, "imgsz": size, "variants": timed, "first_use_build_s": first["build_s"],
                        "torch_build_s": torch_build["build_s"]})
    print("\n| model | first use (export + check + load) s | PyTorch Detector build s |")
    print("|---|---:|---:|")
    for r in results:
        print(f"| {r['model']} | {r['first_use_build_s']:.2f} | {r['torch_build_s']:.2f} |")
    print("\n| model | ONNX exporter | export s | back-end median ms | p90 ms |")
    print("|---|---|---:|---:|---:|")
    for name, size, ckpt in cases:
        for row in exporter_rows(ckpt, size, tmp, args.runs):
            print(f"| {name} | {row['exporter']} | {row['export_s']:.2f} | {row['median_ms']:.2f} | "
                  f"{row['p90_ms']:.2f} |", flush=True)
            results.append({"model": name, **row})
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
