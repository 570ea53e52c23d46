"""Accuracy and speed per deployment format and precision (``openyolox benchmark formats``).

One row per format and precision: PyTorch (fused), TorchScript, ONNX Runtime FP32 and INT8,
OpenVINO FP32 and INT8, ncnn, as far as installed. For each: the size of what would be
deployed (checkpoint weights for PyTorch, the file or folder otherwise), COCO AP50-95 and
AP50 on DATA's val split (evaluation thresholds, through the Detector), batch-1 latency
(median and p90) and batch-N throughput. The INT8 files are calibrated on DATA's train split
(openyolox.export.int8).

Timing reuses openyolox.bench.latency: each row in its own fresh process, one after the other,
so no two runtimes' thread pools share the cores; one call = the back-end interface (float
batch in, decoded predictions out). ONNX Runtime and OpenVINO get one static-shape file per
batch size, as in ``benchmark latency``. Accuracy is measured in this process, row by row.
"""
from __future__ import annotations

import copy
import json
import tempfile
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

# (row name, back-end, precision), in table order
ROWS: Tuple[Tuple[str, str, str], ...] = (
    ("PyTorch", "pytorch-fused", "fp32"),
    ("TorchScript", "torchscript", "fp32"),
    ("ONNX Runtime", "onnxruntime", "fp32"),
    ("ONNX Runtime", "onnxruntime", "int8"),
    ("OpenVINO", "openvino", "fp32"),
    ("OpenVINO", "openvino", "int8"),
    ("ncnn", "ncnn", "fp32"),
)
_INT8_NEEDS = {"onnxruntime": "onnxruntime.quantization", "openvino": "nncf"}


def deployed_size_mb(path: Path) -> float:
    """MB on disk of what is deployed: a file, a folder, or an ncnn .param with its .bin."""
    files = [p for p in Path(path).rglob("*") if p.is_file()] if Path(path).is_dir() else [Path(path)]
    if Path(path).suffix == ".param":  # ncnn: the .param / .bin pair beside each other
        files = [p for p in Path(path).parent.iterdir() if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 1e6, 2)


def _installed(kind: str, precision: str) -> bool:
    import importlib.util

    from openyolox.bench.latency import available_backends

    if kind not in available_backends():
        return False
    if precision == "int8":
        try:
            return importlib.util.find_spec(_INT8_NEEDS[kind]) is not None
        except (ImportError, ValueError):
            return False
    return True


def benchmark_formats(model: str, weights: Optional[str], data: str, imgsz=None, runs: int = 100, batch: int = 8,
                      threads: Optional[int] = None, calib_images: int = 300,
                      rows: Optional[Sequence[str]] = None, workdir: Optional[Path] = None,
                      exporter: str = "dynamo", log: Callable[[str], None] = lambda s: None) -> dict:
    """Export, quantize, evaluate and time every installed format (see the module doc).

    rows: only these (e.g. ["onnxruntime-int8", "pytorch-fused-fp32"]: back-end-precision).
    exporter: the ONNX exporter of the ONNX and OpenVINO files (openyolox.export.export).
    Returns {"model", "imgsz", "data", "threads", "batch", "rows": [{"name", "backend",
    "precision", "size_mb", "AP50_95", "AP50", "median_ms", "p90_ms", "images_per_s"}, ...]}."""
    import torch

    from openyolox.bench.latency import time_in_process
    from openyolox.data.layouts import load_split
    from openyolox.evaluation.validate import validate
    from openyolox.export import export
    from openyolox.export.int8 import quantize
    from openyolox.inference.backends import default_threads
    from openyolox.inference.predictor import Detector

    base = Detector(model, weights=weights, imgsz=imgsz, fuse=False)
    net, size, names = base.net, tuple(base.imgsz), base.names
    val = load_split(data, "val")
    if len(names) != val.num_classes:
        raise ValueError(f"the model predicts {len(names)} classes but {data} has {val.num_classes}; "
                         f"pass the weights trained on it")
    threads = threads or default_threads()
    wanted = [r for r in ROWS if rows is None or f"{r[1]}-{r[2]}" in rows]
    skipped = [f"{n} {p.upper()}" for n, k, p in wanted if not _installed(k, p)]
    if skipped:
        log(f"skipping (not installed): {', '.join(skipped)}")
    wanted = [r for r in wanted if _installed(r[1], r[2])]
    tmp = tempfile.TemporaryDirectory(prefix="openyolox-formats-") if workdir is None else None
    folder = Path(workdir or tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        ckpt = folder / "weights.pth"
        torch.save({"model": net.state_dict()}, ckpt)
        results = []
        for name, kind, precision in wanted:
            label = f"{name} {precision.upper()}"
            log(f"{label}: exporting ...")
            paths = _files(kind, precision, net, size, names, batch, folder, ckpt, data, calib_images,
                           partial(export, exporter=exporter), quantize)
            log(f"{label}: evaluating on {len(val)} val images ...")
            source = copy.deepcopy(net) if kind == "pytorch-fused" else paths[1]  # fused: not in place
            detector = Detector(source, conf=0.01, iou=0.65, imgsz=size if kind == "pytorch-fused" else None)
            summary, _ = validate(detector, val, batch_size=batch, workers=0, progress=False)
            del detector
            log(f"{label}: timing ...")
            spec = {"name": label, "kind": kind, "paths": {1: str(paths[1]), batch: str(paths[batch])},
                    "model": getattr(net.config, "name", model), "num_classes": net.num_classes,
                    "imgsz": list(size), "runs": runs, "batch": batch, "threads": threads}
            timed: Dict[int, dict] = {}
            for r in time_in_process(spec):  # the batch-1 row comes first (and twice when batch is 1)
                timed.setdefault(r["batch"], r)
            results.append({"name": label, "backend": kind, "precision": precision,
                            "size_mb": deployed_size_mb(paths[1]), "AP50_95": round(float(summary["AP50_95"]), 4),
                            "AP50": round(float(summary["AP50"]), 4), "median_ms": timed[1]["median_ms"],
                            "p90_ms": timed[1]["p90_ms"], "images_per_s": timed[batch]["images_per_s"]})
        return {"model": getattr(net.config, "name", model), "imgsz": list(size), "data": str(data),
                "val_images": len(val), "threads": threads, "batch": batch, "runs": runs, "rows": results}
    finally:
        if tmp is not None:
            tmp.cleanup()


def _files(kind: str, precision: str, net, size, names, batch: int, folder: Path, ckpt: Path, data, calib_images,
           export, quantize) -> Dict[int, Path]:
    """{batch size: file} of one row (one static-shape file per batch size where the runtime
    benefits; PyTorch rows time the checkpoint)."""
    if kind == "pytorch-fused":
        return {1: ckpt, batch: ckpt}
    fmt = {"onnxruntime": "onnx"}.get(kind, kind)
    if kind in ("torchscript", "ncnn"):  # shape-generic trace / one image at a time
        path = export(net, format=fmt, out=folder / f"{fmt}_fp32", imgsz=size, names=names)
        return {1: path, batch: path}
    out = {}
    for b in sorted({1, batch}):
        fp32 = folder / (f"{fmt}_b{b}_fp32.onnx" if fmt == "onnx" else f"{fmt}_b{b}_fp32")
        if not fp32.exists():  # the FP32 row exported it already when the INT8 row comes
            fp32 = export(net, format=fmt, out=fp32, imgsz=size, batch=b, names=names)
        out[b] = fp32 if precision == "fp32" else quantize(fp32, folder / f"{fmt}_b{b}_int8", data, calib_images)
    return out


def format_table(report: dict) -> str:
    """Markdown: one line per format and precision."""
    b = report["batch"]
    lines = [f"| format | precision | size MB | AP50-95 | AP50 | batch 1 median ms | batch 1 p90 ms | "
             f"batch {b} images/s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['name'].rsplit(' ', 1)[0]} | {r['precision'].upper()} | {r['size_mb']:.1f} | "
                     f"{100 * r['AP50_95']:.1f} | {100 * r['AP50']:.1f} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
                     f"{r['images_per_s']:.1f} |")
    return "\n".join(lines)


def save_report(report: dict, out_dir: Path) -> List[Path]:
    """formats.json and formats.png: per row (format and precision) AP50-95, batch-1 latency
    (median, p90 as the whisker) and batch-N throughput, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from openyolox.atomic import write_text_atomic

    out_dir = Path(out_dir)
    json_path = write_text_atomic(out_dir / "formats.json", json.dumps(report, indent=1))
    rows = report["rows"][::-1]  # first row on top
    labels = [f"{r['name']} ({r['size_mb']:.1f} MB)" for r in rows]
    colours = ["tab:orange" if r["precision"] == "int8" else "tab:blue" for r in rows]
    y = range(len(rows))
    fig, axes = plt.subplots(1, 3, figsize=(12, 0.45 * len(rows) + 1.6), dpi=110, sharey=True)
    panels = ((axes[0], [100 * r["AP50_95"] for r in rows], None, "AP50-95 on val (higher is better)"),
              (axes[1], [r["median_ms"] for r in rows], [r["p90_ms"] - r["median_ms"] for r in rows],
               "batch-1 latency ms, median and p90"),
              (axes[2], [r["images_per_s"] for r in rows], None, f"batch-{report['batch']} images/s"))
    for ax, values, err, title in panels:
        ax.barh(y, values, color=colours, xerr=[[0] * len(rows), err] if err else None, capsize=3)
        for i, v in enumerate(values):
            ax.text(v + (err[i] if err else 0), i, f" {v:.1f}", va="center", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.2)
        ax.set_xlim(left=0)
    axes[0].set_yticks(list(y))
    axes[0].set_yticklabels(labels, fontsize=8)
    fig.suptitle(f"{report['model']} at {report['imgsz'][0]}x{report['imgsz'][1]}, {report['threads']} threads, "
                 f"{report['val_images']} val images of {report['data']} (orange: INT8)", fontsize=10)
    fig.tight_layout()
    png_path = out_dir / "formats.png"
    fig.savefig(png_path)
    plt.close(fig)
    return [json_path, png_path]
