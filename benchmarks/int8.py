"""INT8 against FP32 on the same runtime: latency ratio and AP drop, per choice of what stays float.

    python benchmarks/int8.py --weights nano_builtin/best.pth [--data builtin] [--runs 200]

For ONNX Runtime (static quantization, QDQ) and OpenVINO (NNCF): the FP32 file as
``openyolox export`` writes it (batch 1), then one INT8 file per ``keep_float`` variant of
openyolox.export.int8 ("none": everything quantizable; "decode": the tail after the last
convolutions in float; "decode+head": also the head's final 1x1 convolutions), calibrated on
--calib-images images of the train split. For each file: COCO AP50-95 and AP50 on the val
split (evaluation thresholds), file size, and batch-1 back-end latency (median and p90 of
--runs calls, each file in its own process). Prints a markdown table and JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="checkpoint trained on --data")
    parser.add_argument("--data", default="builtin")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--calib-images", type=int, default=300)
    parser.add_argument("--runtimes", nargs="+", default=["onnxruntime", "openvino"])
    parser.add_argument("--variants", nargs="+", default=["none", "decode", "decode+head"])
    args = parser.parse_args()

    from openyolox.bench.formats import deployed_size_mb
    from openyolox.bench.latency import time_in_process
    from openyolox.evaluation.validate import compare_accuracy
    from openyolox.export import export
    from openyolox.export.int8 import quantize
    from openyolox.inference.backends import default_threads, load_backend

    tmp = Path(tempfile.mkdtemp(prefix="bench-int8-"))
    rows = []
    print("| runtime | INT8 variant | AP50-95 | drop | AP50 | drop | size MB | median ms | p90 ms | "
          "FP32 / INT8 latency |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for runtime in args.runtimes:
        fmt = "onnx" if runtime == "onnxruntime" else runtime
        fp32 = export(args.weights, format=fmt, out=tmp / f"fp32_{fmt}", names=None)
        deployed = load_backend(fp32).deployed
        spec = {"kind": runtime, "model": deployed.model_name, "num_classes": deployed.num_classes,
                "imgsz": list(deployed.imgsz), "runs": args.runs, "batch": 1, "threads": default_threads()}
        base = time_in_process({**spec, "name": "fp32", "paths": {1: str(fp32)}})[0]
        files = {"FP32": fp32}
        for variant in args.variants:
            files[variant] = quantize(fp32, tmp / f"int8_{fmt}_{variant.replace('+', '_')}", args.data,
                                      args.calib_images, keep_float=variant)
        for label, path in files.items():
            acc = compare_accuracy(fp32, path, args.data, "val")
            timed = base if label == "FP32" else time_in_process({**spec, "name": label, "paths": {1: str(path)}})[0]
            row = {"runtime": runtime, "variant": label, "AP50_95": round(100 * acc["candidate"]["AP50_95"], 2),
                   "drop_AP50_95": round(acc["drop_AP50_95"], 2), "AP50": round(100 * acc["candidate"]["AP50"], 2),
                   "drop_AP50": round(acc["drop_AP50"], 2), "size_mb": deployed_size_mb(path),
                   "median_ms": timed["median_ms"], "p90_ms": timed["p90_ms"],
                   "latency_ratio": round(base["median_ms"] / timed["median_ms"], 2), "images": acc["images"]}
            rows.append(row)
            print(f"| {runtime} | {label} | {row['AP50_95']:.2f} | {row['drop_AP50_95']:.2f} | {row['AP50']:.2f} | "
                  f"{row['drop_AP50']:.2f} | {row['size_mb']:.2f} | {row['median_ms']:.2f} | {row['p90_ms']:.2f} | "
                  f"{row['latency_ratio']:.2f}x |", flush=True)
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
