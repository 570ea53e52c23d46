"""``openyolox.Detector``: the core prediction step (openyolox.inference.predictor.Detector)
with the back-end chosen for speed.

The core Detector runs what it is given: a PyTorch model, or an exported file with its
runtime. This one, at the API layer, first asks openyolox.export.auto which back-end should
run the model (``backend="auto"``: on a CPU, ONNX Runtime or OpenVINO through an export made
once and cached; PyTorch on CUDA or when no runtime can be used) and hands the core Detector
the cached file instead of the model. Prediction itself is the core Detector's, unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

from openyolox.errors import OpenYoloxError
from openyolox.inference.predictor import Detector as CoreDetector
from openyolox.inference.resolve import ModelSource


class Detector(CoreDetector):
    """Detect objects with a YOLOX model, on the fastest back-end available.

    model, weights, device, conf, iou, imgsz, class_agnostic, half, num_classes, names,
    strict, fuse, amp: as openyolox.inference.predictor.Detector (fuse and amp concern the
    PyTorch back-end). backend: "auto" (default), "torch", "onnxruntime", "openvino", "ncnn"
    or "torchscript"; see openyolox.export.auto. ``runtime`` says which one runs.
    """

    def __init__(self, model: ModelSource = "yolox-s", weights: Optional[Union[str, Path]] = None,
                 device: str = "cpu", conf: float = 0.25, iou: float = 0.45,
                 imgsz: Optional[Union[int, Tuple[int, int]]] = None, class_agnostic: bool = False,
                 half: bool = False, num_classes: Optional[int] = None, names: Optional[Sequence[str]] = None,
                 strict: bool = True, fuse: bool = True, amp: bool = False, backend: str = "auto"):
        from openyolox.export.auto import canonical_backend, discard_entry, fallback_line, select_backend

        options = dict(device=device, conf=conf, iou=iou, imgsz=imgsz, class_agnostic=class_agnostic, half=half,
                       num_classes=num_classes, names=names, strict=strict, fuse=fuse, amp=amp)
        choice = select_backend(model, weights, backend=backend, device=device, imgsz=imgsz, half=half,
                                num_classes=num_classes, names=names, strict=strict)
        try:
            super().__init__(choice.model, choice.weights, **options)
        except Exception as exc:
            # a cached file the runtime cannot load (damaged, or written by another runtime
            # version): auto drops it and runs PyTorch; anything else is the caller's to see
            if canonical_backend(backend) != "auto" or choice.model is model or isinstance(exc, OpenYoloxError):
                raise
            discard_entry(choice)
            fallback_line(f"{choice.runtime} could not load {choice.model}: {type(exc).__name__}: {exc}")
            super().__init__(model, weights, **options)
            choice.runtime = "pytorch"
        finally:
            choice.cleanup()
        if choice.load_report is not None:
            self.load_report = choice.load_report
        self.runtime = self.backend.name


__all__ = ["Detector"]
