"""CPU latency and throughput of every installed back-end (``openyolox benchmark latency``).

For each back-end (PyTorch eager, PyTorch fused, TorchScript, ONNX Runtime, OpenVINO, ncnn):
batch-1 latency (median and p90 of ``runs`` calls after warm-up) and throughput at batch
``batch`` (images per second at the median). One call = the back-end interface
(openyolox.inference.backends / runtimes): float32 (B, 3, H, W) numpy in, decoded
(B, A, 5 + C) torch float32 out; no pre- or postprocessing.

Each back-end is timed in its own child process, one after the other: runtimes keep thread
pools that spin after a call (OpenMP, ONNX Runtime, OpenVINO's TBB), and two pools in one
process would compete for the cores. All use ``threads`` threads (default: the cores this
process may use).

With ``reference=True`` the same back-ends are also fed files exported the way the reference
YOLOX exports them (rows "<backend> (reference export)"), see :func:`export_reference_style`.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

BACKENDS = ("pytorch", "pytorch-fused", "torchscript", "onnxruntime", "openvino", "ncnn")
REFERENCE_BACKENDS = ("torchscript", "onnxruntime", "openvino")
_NEEDS = {"torchscript": None, "pytorch": None, "pytorch-fused": None, "onnxruntime": "onnxruntime",
          "openvino": "openvino", "ncnn": "ncnn"}
_EXPORT_NEEDS = {"onnxruntime": "onnxscript", "openvino": "onnxscript", "ncnn": "pnnx"}


def available_backends() -> List[str]:
    """The back-ends whose runtime (and exporter) is installed."""
    found = []
    for name in BACKENDS:
        needs = [m for m in (_NEEDS[name], _EXPORT_NEEDS.get(name)) if m]
        if name in ("onnxruntime", "openvino"):
            needs = [m for m in needs if m != "onnxscript"] + ["onnx"]  # legacy exporter as a fallback
        if all(importlib.util.find_spec(m) is not None for m in needs):
            found.append(name)
    return found


def time_calls(fn: Callable[[], object], runs: int, warmup: int) -> List[float]:
    """Milliseconds of ``runs`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def summarize(name: str, batch: int, times: Sequence[float]) -> dict:
    median = statistics.median(times)
    return {"backend": name, "batch": batch, "median_ms": round(median, 3),
            "p90_ms": round(float(np.percentile(times, 90)), 3), "images_per_s": round(1000.0 * batch / median, 2)}


def export_reference_style(net, folder: Path, imgsz, kinds: Sequence[str], batch: int = 1) -> Dict[str, Path]:
    """Files exported like the reference YOLOX's tools, for "no slower than the reference's
    export" comparisons (its ONNX exporter, ``torch.onnx._export``, is gone from PyTorch):

    - ONNX (tools/export_onnx.py defaults): the unfused model, Focus as strided slices, no
      decoding in the graph (``--decode_in_inference`` is off by default), the TorchScript-based
      exporter (what ``_export`` was), opset 11, static batch, then simplified (the reference
      runs onnxsim by default; onnxslim stands in when installed).
    - OpenVINO: that ONNX file converted to IR (the reference's OpenVINO demo converts its ONNX).
    - TorchScript (tools/export_torchscript.py): ``torch.jit.trace`` of the unfused model, not frozen.
    """
    import warnings

    import torch

    from openyolox.export.graph import deploy_model
    from openyolox.export.onnx import set_metadata, slim, trace_onnx
    from openyolox.inference.deployed import METADATA_FILE, Deployed, write_sidecar

    h, w = imgsz
    names = [f"class{i}" for i in range(net.num_classes)]
    settings = Deployed(format="onnx", model_name="reference-style", class_names=names,
                              category_ids=list(range(len(names))), imgsz=(h, w), decoded=False, batch=batch)
    model = deploy_model(net, decode=False, fuse=False, rewrite_focus=False)
    folder = Path(folder)
    out: Dict[str, Path] = {}
    if "onnxruntime" in kinds or "openvino" in kinds:
        import onnx

        proto = slim(trace_onnx(model, settings, opset=11, exporter="torchscript"))
        set_metadata(proto, settings)
        out["onnxruntime"] = folder / f"reference_style_b{batch}.onnx"
        onnx.save(proto, str(out["onnxruntime"]))
        if "openvino" in kinds:
            import openvino as ov

            ir = folder / f"reference_style_b{batch}_openvino"
            ir.mkdir(exist_ok=True)
            ov.save_model(ov.convert_model(str(out["onnxruntime"])), str(ir / "model.xml"), compress_to_fp16=False)
            write_sidecar(ir, settings)
            out["openvino"] = ir
    if "torchscript" in kinds:
        settings.dynamic = True
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, torch.zeros(batch, 3, h, w), check_trace=False)
        out["torchscript"] = folder / f"reference_style_b{batch}.torchscript"
        torch.jit.save(traced, str(out["torchscript"]), _extra_files={METADATA_FILE: json.dumps(settings.to_json())})
    return out


def benchmark_latency(model: str = "yolox-nano", weights: Optional[str] = None, imgsz=None,
                      backends: Optional[Sequence[str]] = None, runs: int = 100, batch: int = 8,
                      threads: Optional[int] = None, reference: bool = False,
                      workdir: Optional[Path] = None, log: Callable[[str], None] = lambda s: None) -> List[dict]:
    """Export ``model`` to every requested back-end and time each in its own process.

    ONNX and OpenVINO get one static-shape file per batch size (static shapes let the
    runtimes plan memory and fold shape arithmetic: a little faster than one --dynamic file);
    TorchScript traces are shape-generic; ncnn runs a batch image by image.
    Returns one dict per back-end and batch size: backend, batch, median_ms, p90_ms,
    images_per_s (plus model, imgsz, threads)."""
    import torch

    from openyolox.export import export
    from openyolox.inference.predictor import Detector
    from openyolox.inference.backends import default_threads

    available = available_backends()
    wanted = list(backends or available)
    for name in wanted:
        if name not in BACKENDS:
            raise ValueError(f"unknown back-end '{name}'; choose from {', '.join(BACKENDS)}")
    missing = [n for n in wanted if n not in available]
    if missing:
        log(f"skipping (not installed): {', '.join(missing)}")
    wanted = [n for n in wanted if n in available]
    detector = Detector(model, weights=weights or "none", imgsz=imgsz, fuse=False)
    net, size = detector.backend.model, tuple(detector.imgsz)
    threads = threads or default_threads()
    tmp = tempfile.TemporaryDirectory(prefix="openyolox-latency-") if workdir is None else None
    folder = Path(workdir or tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = []  # (row name, kind, {batch: path})
    try:
        ckpt = folder / "weights.pth"
        torch.save({"model": net.state_dict()}, ckpt)
        for name in wanted:
            if name in ("pytorch", "pytorch-fused"):
                jobs.append((name, name, {1: str(ckpt), batch: str(ckpt)}))
                continue
            fmt = {"onnxruntime": "onnx"}.get(name, name)
            log(f"exporting {fmt} ...")
            if fmt in ("torchscript", "ncnn"):
                path = str(export(net, format=fmt, out=folder / f"model_{fmt}", imgsz=size, names=detector.names))
                jobs.append((name, name, {1: path, batch: path}))
            else:
                jobs.append((name, name, {b: str(export(net, format=fmt, out=folder / f"model_b{b}_{fmt}", imgsz=size,
                                                         batch=b, names=detector.names)) for b in (1, batch)}))
        if reference:
            kinds = [n for n in wanted if n in REFERENCE_BACKENDS]
            if kinds:
                log("exporting reference-style files ...")
                per_batch = {b: export_reference_style(net, folder, size, kinds, batch=b) for b in (1, batch)}
                for kind in per_batch[1]:
                    jobs.append((f"{kind} (reference export)", kind, {b: str(per_batch[b][kind]) for b in per_batch}))
        rows = []
        for row_name, kind, paths in jobs:
            log(f"timing {row_name} ...")
            spec = {"name": row_name, "kind": kind, "paths": paths, "model": getattr(net.config, "name", model),
                    "num_classes": net.num_classes, "imgsz": list(size), "runs": runs, "batch": batch,
                    "threads": threads}
            rows += time_in_process(spec)
        return rows
    finally:
        if tmp is not None:
            tmp.cleanup()


def time_in_process(spec: dict) -> List[dict]:
    """Run one timing job (see _worker) in a fresh Python process; its JSON rows."""
    proc = subprocess.run([sys.executable, "-m", "openyolox.bench.latency", "--worker", json.dumps(spec)],
                          capture_output=True, text=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not rows:
        raise RuntimeError(f"timing {spec['name']} failed:\n{proc.stderr[-2000:]}")
    return rows


def _load(kind: str, path: str, spec: dict):
    if kind in ("pytorch", "pytorch-fused"):
        from openyolox.checkpoint import load_weights
        from openyolox.inference.backends.pytorch import TorchBackend
        from openyolox.models.yolox import create_model

        net = create_model(spec["model"], spec["num_classes"])
        load_weights(net, path)
        return TorchBackend(net, fuse=kind == "pytorch-fused")
    from openyolox.inference.backends import load_backend

    return load_backend(path, threads=spec["threads"])


def _worker(spec: dict) -> None:
    """In a fresh process: load one back-end, time batch 1 and batch N, print JSON lines."""
    import torch

    if torch.get_num_threads() != spec["threads"]:
        torch.set_num_threads(spec["threads"])
    h, w = spec["imgsz"]
    rng = np.random.default_rng(0)
    extra = {"model": spec["model"], "imgsz": spec["imgsz"], "threads": spec["threads"]}
    loaded = {}
    for batch, runs, warmup in ((1, spec["runs"], 10), (spec["batch"], max(spec["runs"] // 5, 10), 3)):
        path = spec["paths"][str(batch)]
        if path not in loaded:
            loaded.clear()  # one back-end alive at a time
            loaded[path] = _load(spec["kind"], path, spec)
        backend = loaded[path]
        x = rng.uniform(0, 255, (batch, 3, h, w)).astype(np.float32)
        times = time_calls(lambda: backend(x), runs, warmup)
        print(json.dumps({**summarize(spec["name"], batch, times), **extra}), flush=True)


def format_table(rows: Sequence[dict]) -> str:
    """Markdown table: one line per back-end, batch 1 latency and batch-N throughput."""
    by_name: Dict[str, Dict[int, dict]] = {}
    for r in rows:
        by_name.setdefault(r["backend"], {})[r["batch"]] = r
    big = max((b for r in by_name.values() for b in r if b != 1), default=8)
    lines = [f"| back-end | batch 1 median ms | batch 1 p90 ms | batch {big} images/s |", "|---|---:|---:|---:|"]
    for name, per_batch in by_name.items():
        one, many = per_batch.get(1), per_batch.get(big)
        lines.append(f"| {name} | {one['median_ms']:.2f} | {one['p90_ms']:.2f} | "
                     f"{many['images_per_s']:.1f} |" if one and many else f"| {name} | - | - | - |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", required=True, help="(internal) JSON spec of one timing job")
    _worker(json.loads(parser.parse_args().worker))
