"""Options and helpers shared by several sub-commands."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from openyolox.errors import ConfigError


def add_model_args(p: argparse.ArgumentParser, default_model: Optional[str] = "yolox-s") -> None:
    p.add_argument("--model", default=default_model, help="model name (yolox-nano..yolox-x, yolox-darknet53) "
                   "or an exported/checkpoint file")
    p.add_argument("--weights", help="checkpoint (.pth), a published model name to download (yolox-s, ...), "
                   "or 'none' for random weights (default: the published COCO weights of --model)")
    p.add_argument("--imgsz", type=int, help="input size, a multiple of 32 (default: the model's test size)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--half", action="store_true", help="FP16 inference (CUDA only)")
    p.add_argument("--backend", default="auto",
                   choices=["auto", "torch", "onnxruntime", "openvino", "ncnn", "torchscript"],
                   help="what runs the model: auto (default: on a CPU, ONNX Runtime or OpenVINO through an export "
                        "made once and cached; PyTorch on CUDA or when neither is installed) or one forced")


def validate_model_args(args: argparse.Namespace) -> None:
    """Fail fast, before anything heavy runs, on the options every model command shares."""
    from openyolox.config import canonical_name, check_image_size

    check_device(args.device)
    check_weights(args.weights)
    if args.imgsz is not None:
        check_image_size(args.imgsz)
    if args.model and not Path(args.model).exists():
        canonical_name(args.model)
    if getattr(args, "slice", None) is not None:
        from openyolox.inference.slicing import SliceConfig

        SliceConfig(args.slice, args.overlap, args.slice_full, args.slice_merge)  # raises ConfigError


def check_device(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    elif device != "cpu":
        raise ConfigError(f"--device {device}: expected cpu, cuda or cuda:N")
    return device


def check_weights(weights: Optional[str]) -> None:
    """--weights is a file, a published name or 'none' (checked before anything downloads)."""
    from openyolox.hub import is_published_name

    if weights is None or weights.strip().lower() == "none" or is_published_name(weights):
        return
    check_file(weights, "weights file")


def check_file(path: Optional[str], what: str) -> Optional[str]:
    if path is not None and not Path(path).exists():
        raise ConfigError(f"{what} not found: {path}")
    return path


def add_slice_args(p: argparse.ArgumentParser) -> None:
    """Sliced inference options (openyolox.inference.slicing), for predict and val."""
    p.add_argument("--slice", type=int, metavar="PX", help="detect in PX x PX windows of the image (small objects "
                   "in large images); default: the whole image at once")
    p.add_argument("--overlap", type=float, default=0.2, help="share of a window its neighbours overlap (default 0.2)")
    p.add_argument("--slice-full", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the whole image, downscaled, so large objects survive (default on)")
    p.add_argument("--slice-merge", choices=["union", "nms"], default="union",
                   help="objects cut by a window edge: unite their parts (default) or keep the best part")


def load_detector(args: argparse.Namespace, conf: float, iou: float, class_agnostic: bool = False):
    """A Detector from --model/--weights/--device/--imgsz/--half/--backend (and the --slice options when
    the command has them). ``--model`` may also be a checkpoint (.pth) or an exported file; a
    model name without --weights uses the published COCO weights (openyolox.inference.resolve)."""
    from openyolox.detector import Detector

    slicing = {k: getattr(args, k) for k in ("slice", "overlap", "slice_full", "slice_merge") if hasattr(args, k)}
    return Detector(args.model, weights=args.weights, device=args.device, conf=conf, iou=iou, imgsz=args.imgsz,
                    class_agnostic=class_agnostic, half=args.half, backend=args.backend, **slicing)


def runtime_label(detector) -> str:
    """"ONNX Runtime", "PyTorch", ...: what ran the model, for the summary lines."""
    from openyolox.export.auto import RUNTIME_LABELS

    return RUNTIME_LABELS.get(detector.backend.name, detector.backend.name)
