"""Options and helpers shared by several sub-commands."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from openyolox.errors import ConfigError


def add_model_args(p: argparse.ArgumentParser, default_model: Optional[str] = "yolox-s") -> None:
    p.add_argument("--model", default=default_model, help="model name (yolox-nano..yolox-x, yolox-darknet53) "
                   "or an exported/checkpoint file")
    p.add_argument("--weights", help="checkpoint to load (openyolox or reference YOLOX .pth)")
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
    check_file(args.weights, "weights file")
    if args.imgsz is not None:
        check_image_size(args.imgsz)
    if args.model and not Path(args.model).exists():
        canonical_name(args.model)


def check_device(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    elif device != "cpu":
        raise ConfigError(f"--device {device}: expected cpu, cuda or cuda:N")
    return device


def check_file(path: Optional[str], what: str) -> Optional[str]:
    if path is not None and not Path(path).exists():
        raise ConfigError(f"{what} not found: {path}")
    return path


def load_detector(args: argparse.Namespace, conf: float, iou: float, class_agnostic: bool = False):
    """A Detector from --model/--weights/--device/--imgsz/--half/--backend. ``--model`` may
    also be a checkpoint (.pth) or an exported file (openyolox.inference.resolve)."""
    import sys

    from openyolox.detector import Detector

    if args.weights is None and args.model and not Path(args.model).exists():
        print("warning: no --weights given: the network has random weights", file=sys.stderr)
    return Detector(args.model, weights=args.weights, device=args.device, conf=conf, iou=iou, imgsz=args.imgsz,
                    class_agnostic=class_agnostic, half=args.half, backend=args.backend)


def runtime_label(detector) -> str:
    """"ONNX Runtime", "PyTorch", ...: what ran the model, for the summary lines."""
    from openyolox.export.auto import RUNTIME_LABELS

    return RUNTIME_LABELS.get(detector.backend.name, detector.backend.name)
