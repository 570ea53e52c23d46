"""``openyolox benchmark ACTION``: measurements. Actions: ``latency`` (every installed
inference back-end), ``formats`` (size, accuracy and speed per format and precision; a table,
formats.json and formats.png), ``dataloader`` (training pipeline images/s), ``train-step``
(one training step). The others print JSON.

To add an action: write ``_add_<name>(subparsers)`` and ``_run_<name>(args)`` and list them in
ACTIONS.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Dict, Tuple


def _add_latency(sub) -> None:
    from openyolox.bench.latency import BACKENDS

    p = sub.add_parser("latency", help="batch-1 latency and batch-N throughput of every installed back-end",
                       description="Export the model to every installed back-end (PyTorch eager, PyTorch "
                                   "fused, TorchScript, ONNX Runtime, OpenVINO, ncnn) and time each in its own "
                                   "process. Prints a table, then one JSON line per back-end and batch size.")
    p.add_argument("--model", default="yolox-nano", help="model name (default yolox-nano)")
    p.add_argument("--weights", help="checkpoint to load (default: random weights; timing is the same)")
    p.add_argument("--imgsz", type=int, help="input size (default: the model's test size)")
    p.add_argument("--backends", nargs="+", choices=BACKENDS, help="only these back-ends")
    p.add_argument("--runs", type=int, default=100, help="timed batch-1 calls (batch N: runs/5, at least 10)")
    p.add_argument("--batch", type=int, default=8, help="batch size of the throughput run (default 8)")
    p.add_argument("--threads", type=int, help="threads per back-end (default: the cores this process may use)")
    p.add_argument("--reference", action="store_true",
                   help="also time the back-ends fed files exported the way the reference YOLOX does")
    p.add_argument("--json", help="also write the JSON lines to this file")


def _run_latency(args: argparse.Namespace) -> int:
    from openyolox.cli.common import check_file
    from openyolox.config import canonical_name, check_image_size
    from openyolox.bench.latency import benchmark_latency, format_table

    check_file(args.weights, "weights file")
    canonical_name(args.model)
    if args.imgsz is not None:
        check_image_size(args.imgsz)
    if args.runs < 1 or args.batch < 1:
        raise ValueError("--runs and --batch must be >= 1")
    rows = benchmark_latency(args.model, weights=args.weights, imgsz=args.imgsz, backends=args.backends,
                             runs=args.runs, batch=args.batch, threads=args.threads, reference=args.reference,
                             log=lambda s: print(s, file=sys.stderr, flush=True))
    lines = [json.dumps(r) for r in rows]
    print(format_table(rows))
    print()
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


def _add_formats(sub) -> None:
    from openyolox.bench.formats import ROWS

    p = sub.add_parser("formats", help="file size, accuracy and speed of every format and precision (FP32, INT8)",
                       description="Export the model to every installed format (PyTorch, TorchScript, ONNX Runtime "
                                   "FP32/INT8, OpenVINO FP32/INT8, ncnn), evaluate each on --data's val split and time "
                                   "each in its own process. Prints a table; writes formats.json and formats.png.")
    p.add_argument("--model", default="yolox-nano", help="model name or checkpoint (default yolox-nano)")
    p.add_argument("--weights", help="checkpoint trained on --data (or a published model name; default: the "
                                     "published COCO weights of --model, which need a COCO-class --data)")
    p.add_argument("--data", required=True, help="dataset: INT8 calibration (train split) and AP (val split)")
    p.add_argument("--imgsz", type=int, help="input size (default: the model's test size)")
    p.add_argument("--rows", nargs="+", choices=[f"{k}-{pr}" for _, k, pr in ROWS], help="only these rows")
    p.add_argument("--runs", type=int, default=100, help="timed batch-1 calls (batch N: runs/5, at least 10)")
    p.add_argument("--batch", type=int, default=8, help="batch size of the throughput run (default 8)")
    p.add_argument("--threads", type=int, help="threads per back-end (default: the cores this process may use)")
    p.add_argument("--calib-images", type=int, default=300, help="INT8 calibration images (default 300)")
    p.add_argument("--out", help="folder for formats.json and formats.png (default runs/benchmark/expN)")


def _run_formats(args: argparse.Namespace) -> int:
    from openyolox.bench.formats import benchmark_formats, format_table, save_report
    from openyolox.cli.common import check_weights
    from openyolox.config import canonical_name, check_image_size
    from openyolox.data.layouts import load_split
    from openyolox.run_dir import make_run_dir

    check_weights(args.weights)
    if not Path(args.model).exists():
        canonical_name(args.model)
    if args.imgsz is not None:
        check_image_size(args.imgsz)
    if args.runs < 1 or args.batch < 1 or args.calib_images < 1:
        raise ValueError("--runs, --batch and --calib-images must be >= 1")
    load_split(args.data, "val")  # a bad --data fails now, not after the exports
    out_dir = make_run_dir(args.out, "benchmark")
    report = benchmark_formats(args.model, args.weights, args.data, imgsz=args.imgsz, runs=args.runs,
                               batch=args.batch, threads=args.threads, calib_images=args.calib_images,
                               rows=args.rows, log=lambda s: print(s, file=sys.stderr, flush=True))
    save_report(report, out_dir)
    print(format_table(report))
    print(f"results saved to {out_dir}")
    return 0


def _add_dataloader(sub) -> None:
    p = sub.add_parser("dataloader", help="images/s of the training data pipeline (mosaic, mixup, affine, ...)")
    p.add_argument("--data", default="builtin", help="dataset (COCO, VOC, YOLO data.yaml or builtin)")
    p.add_argument("--split", default="train")
    p.add_argument("--model", default="yolox-s", help="whose augmentation settings to use (default yolox-s)")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--cache", choices=["ram"])


def _run_dataloader(args: argparse.Namespace) -> int:
    from openyolox.config import check_image_size, get_preset
    from openyolox.bench.dataloader import benchmark_dataloader
    from openyolox.data.layouts import load_split

    check_image_size(args.imgsz)
    split = load_split(args.data, args.split)
    print(json.dumps(benchmark_dataloader(split, args.imgsz, args.batch, args.workers, args.iters,
                                          get_preset(args.model), cache=args.cache)))
    return 0


def _add_train_step(sub) -> None:
    p = sub.add_parser("train-step", help="time of one training step (forward, SimOTA, loss, backward, SGD, EMA); "
                       "with --reference, against the reference YOLOX's model and loss in the same process")
    p.add_argument("--model", default="yolox-nano")
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--gts", type=int, nargs="+", default=[30], help="ground-truth boxes per image (one line each)")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="mixed precision float16 (CUDA)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the network")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=True,
                   help="NCHW activations (the trainer's default is channels_last)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--reference", metavar="DIR", help="a Megvii-BaseDetection/YOLOX checkout (commit 6ddff48): "
                   "time its model+loss and ours alternately, same weights and batch, and check losses/gradients")


def _run_train_step(args: argparse.Namespace) -> int:
    from openyolox.cli.common import check_device
    from openyolox.config import canonical_name, check_image_size
    from openyolox.bench.train_step import benchmark_train_step, compare_with_reference

    check_device(args.device)
    check_image_size(args.imgsz)
    if args.amp and not args.device.startswith("cuda"):
        raise ValueError("--amp needs --device cuda")
    model = canonical_name(args.model)
    for gts in args.gts:
        if args.reference:
            result = compare_with_reference(args.reference, model, args.imgsz, args.batch, gts, args.iters,
                                            device=args.device, amp=args.amp, channels_last=args.channels_last)
        else:
            result = benchmark_train_step(model, args.imgsz, args.batch, gts, args.iters, device=args.device,
                                          amp=args.amp, bf16=args.bf16, channels_last=args.channels_last,
                                          compile=args.compile)
        print(json.dumps(result), flush=True)
    return 0


# action -> (add its parser, run it)
ACTIONS: Dict[str, Tuple[Callable, Callable[[argparse.Namespace], int]]] = {
    "latency": (_add_latency, _run_latency),
    "formats": (_add_formats, _run_formats),
    "dataloader": (_add_dataloader, _run_dataloader),
    "train-step": (_add_train_step, _run_train_step),
}


def add_parser(sub) -> None:
    p = sub.add_parser("benchmark", help="measure speed (latency of every back-end, ...)",
                       description="Measurements; see `openyolox benchmark ACTION --help`.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for add, _ in ACTIONS.values():
        add(actions)


def run(args: argparse.Namespace) -> int:
    return ACTIONS[args.action][1](args)
