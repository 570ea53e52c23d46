"""Training throughput on a GPU, in one short run: everything issue 12 asks to know about a GPU.

    python benchmarks/gpu_train.py --reference /path/YOLOX          # on a CUDA machine, a few minutes
    python benchmarks/gpu_train.py --tiny                           # CPU smoke run (what the test runs)

Four measurements, each printed as a Markdown table row and collected in one JSON (--json):

1. step: yolox-s, batch 64, 640 px, float16 AMP; ours against the reference YOLOX's model,
   loss and EMA (same weights, same batch, timed alternately): ms/step, images/s, ratio;
2. torch.compile: our step eager and compiled (the compiled one after its warm-up);
3. data: the training loader (mosaic + mixup on the built-in set, or --data) with 0..N worker
   processes and with/without pinned memory, including the host-to-device copy: images/s
   against the step's images/s, so one sees how many workers keep the GPU fed;
4. the machine (GPU name, CUDA, torch, CPU cores).

--reference is a checkout of Megvii-BaseDetection/YOLOX at commit 6ddff48 (nothing of it ships
with openyolox; see docs/benchmarks.md). Without it part 1 times our step alone.
--tiny: yolox-nano, batch 2, 128 px, 1 timed step, workers 0 and 1: checks that the script
runs, on any machine, in seconds; its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from openyolox.bench.train_step import benchmark_train_step, compare_with_reference, machine_description  # noqa: E402
from openyolox.config import get_preset  # noqa: E402


def loader_throughput(data: str, model: str, imgsz: int, batch: int, workers: int, pin_memory: bool,
                      device: str, iters: int, warmup: int = 1) -> Dict[str, object]:
    """images/s of the training loader, each batch also copied to ``device`` (non_blocking with
    pinned memory, as the trainer does)."""
    from openyolox.data.dataset import TrainDataset
    from openyolox.data.layouts import load_split
    from openyolox.data.loader import build_train_loader

    dataset = TrainDataset.from_config(load_split(data, "train"), get_preset(model), imgsz, seed=0)
    loader = build_train_loader(dataset, batch, workers=workers, shuffle=True, pin_memory=pin_memory)
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def endless(source):
        while True:
            yield from source

    batches = endless(loader)
    times: List[float] = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        b = next(batches)
        b.images.to(dev, non_blocking=pin_memory).float()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    del batches, loader  # stops persistent workers
    ms = 1000 * statistics.median(times)
    return {"workers": workers, "pin_memory": pin_memory, "ms_per_batch": round(ms, 1),
            "images_per_s": round(batch * 1000 / ms, 1)}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reference", help="folder of a Megvii-BaseDetection/YOLOX checkout (commit 6ddff48)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", default="yolox-s")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--gts", type=int, default=30, help="ground-truth boxes per image")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="float32 (default: AMP on CUDA)")
    p.add_argument("--no-compile", dest="compile", action="store_false", default=None,
                   help="skip the torch.compile row (default: on CUDA only)")
    p.add_argument("--data", default="builtin", help="dataset for the loader rows")
    p.add_argument("--workers", type=int, nargs="+", help="loader worker counts (default 0 2 4 8, up to the cores)")
    p.add_argument("--tiny", action="store_true", help="yolox-nano, batch 2, 128 px, 1 step: a smoke run for CPUs")
    p.add_argument("--json", metavar="FILE", help="also write every number here")
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if args.tiny:
        args.model, args.batch, args.imgsz, args.iters, args.gts = "yolox-nano", 2, 128, 1, 3
        args.workers = args.workers or [0, 1]
    amp = cuda if args.amp is None else (args.amp and cuda)
    do_compile = cuda if args.compile is None else args.compile
    workers = args.workers or [w for w in (0, 2, 4, 8) if w <= (os.cpu_count() or 1)]
    warmup = 1 if args.tiny else 3
    out: Dict[str, object] = {"machine": machine_description(), "model": args.model, "batch": args.batch,
                              "imgsz": args.imgsz, "device": args.device, "amp": amp,
                              "ran_on_gpu": cuda and torch.cuda.is_available()}
    print(f"machine: {out['machine']}")
    print(f"{args.model}, batch {args.batch}, {args.imgsz} px, {args.gts} GTs/image, {args.device}, AMP {amp}\n")
    print("| what | ms/step | images/s | note |")
    print("|---|---:|---:|---|")

    # 1. ours against the reference
    if args.reference:
        r = compare_with_reference(args.reference, args.model, args.imgsz, args.batch, args.gts, args.iters,
                                   warmup=warmup, device=args.device, amp=amp, channels_last=not cuda)
        out["step"] = r
        print(f"| reference step | {r['reference_ms']} | {r['reference_images_per_s']} | |")
        print(f"| our step | {r['ours_ms']} | {r['ours_images_per_s']} | {r['ratio']:.2f}x the reference |")
        eager_ms = r["ours_ms"]
    else:
        r = benchmark_train_step(args.model, args.imgsz, args.batch, args.gts, args.iters, warmup, args.device,
                                 amp=amp, channels_last=not cuda)
        out["step"] = r
        print(f"| our step | {r['ms_per_step']} | {r['images_per_s']} | no --reference: not compared |")
        eager_ms = r["ms_per_step"]
    sys.stdout.flush()

    # 2. torch.compile
    if do_compile:
        t0 = time.perf_counter()
        r = benchmark_train_step(args.model, args.imgsz, args.batch, args.gts, args.iters, warmup, args.device,
                                 amp=amp, channels_last=not cuda, compile=True)
        r["wall_s_with_compilation"] = round(time.perf_counter() - t0, 1)
        out["compiled"] = r
        print(f"| our step, torch.compile | {r['ms_per_step']} | {r['images_per_s']} | "
              f"{eager_ms / r['ms_per_step']:.2f}x eager; {r['wall_s_with_compilation']} s incl. compiling |")
        sys.stdout.flush()

    # 3. the loader
    rows = []
    for w in workers:
        for pin in ((False, True) if cuda else (False,)):
            r = loader_throughput(args.data, args.model, args.imgsz, args.batch, w, pin, args.device,
                                  iters=max(2, args.iters // 2) if not args.tiny else 1, warmup=1)
            rows.append(r)
            print(f"| loader, {w} workers{', pinned' if pin else ''} | {r['ms_per_batch']} | {r['images_per_s']} | "
                  f"{'keeps up with' if r['ms_per_batch'] <= eager_ms else 'slower than'} the step |", flush=True)
    out["loader"] = rows
    if not out["ran_on_gpu"]:
        print("\nnote: not run on a GPU (device %s)" % args.device)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
