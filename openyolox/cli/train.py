"""``openyolox train``: the YOLOX recipe on the built-in set (no arguments) or your data."""
from __future__ import annotations

import argparse

from openyolox.cli.common import check_device, check_file, check_weights


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train YOLOX (default: yolox-nano on the built-in synthetic set)",
                       description="Train YOLOX. DATA is a COCO folder, a VOC folder, a YOLO data.yaml, or "
                                   "'builtin'. Prints the run folder as its last line.")
    p.add_argument("--model", default="yolox-nano", help="yolox-nano..yolox-x, yolox-darknet53")
    p.add_argument("--data", default="builtin", help="dataset: COCO root, VOC root, data.yaml or builtin")
    p.add_argument("--epochs", type=int, help="epochs (default 300; builtin: 18)")
    p.add_argument("--batch", type=int, help="total batch size over all processes (default 64; builtin: 16)")
    p.add_argument("--imgsz", type=int, help="training/eval size, multiple of 32 (default: the model's test size)")
    p.add_argument("--weights", help="start from: a checkpoint (.pth), a published model name, or 'none' (from "
                   "scratch). Default: the published COCO weights of --model for your data (fine-tuning; class "
                   "layers re-initialised when the class count differs), from scratch for builtin")
    p.add_argument("--freeze", metavar="PART", help="keep these weights and their batch-norm statistics fixed: "
                   "backbone, neck (backbone + neck: only the head trains) or N (the first N blocks)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder (or its last.pth)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--amp", action="store_true", help="mixed precision float16 (CUDA)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the network (CPUs with AVX-512 BF16 "
                   "or AMX, or CUDA); faster, AP measured in docs/benchmarks.md")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=True,
                   help="keep activations NCHW (default: channels_last, faster on CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (for CUDA; slower on CPU)")
    p.add_argument("--workers", type=int, help="data-loading processes per training process "
                   "(default: 0 on a CPU with <= 4 cores, else up to 8)")
    p.add_argument("--cache", choices=["ram"], help="decode all training images once into RAM")
    p.add_argument("--out", help="run folder (default runs/train/expN)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-aug-epochs", type=int, help="final epochs without mosaic/mixup (default 15/300, scaled)")
    p.add_argument("--warmup-epochs", type=int, help="warm-up epochs (default 5/300, scaled)")
    p.add_argument("--eval-interval", type=int, help="evaluate every N epochs (and every no-aug epoch)")
    p.add_argument("--lr", type=float, dest="lr_per_image", help="learning rate per image (default 0.01/64)")
    p.add_argument("--no-multiscale", dest="multiscale", action="store_false", default=None,
                   help="train at a fixed input size")
    p.add_argument("--skip-bad", action="store_true", help="drop invalid boxes/images with a warning instead of stopping")
    p.add_argument("--save-every", type=int, default=0, help="also checkpoint every N iterations")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from openyolox.config import canonical_name, check_image_size
    from openyolox.training.trainer import TrainConfig, train

    check_device(args.device)
    check_weights(args.weights)
    if args.resume:
        check_file(args.resume, "run to resume")
    canonical_name(args.model)
    if args.imgsz is not None:
        check_image_size(args.imgsz)
    fields = {f for f in TrainConfig.__dataclass_fields__}
    values = {k: v for k, v in vars(args).items() if k in fields}
    run_dir = train(TrainConfig(**values), resume=args.resume)
    print(run_dir)
    return 0
