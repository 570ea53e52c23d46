"""Inference back-ends: things that turn a letterboxed batch into predictions.

Every back-end follows :class:`Backend`. PyTorch runs a YOLOX module (:mod:`.pytorch`); the
others run an exported file (ONNX Runtime, OpenVINO, ncnn, TorchScript; common part in
:mod:`.exported`), chosen from the path by :func:`load_backend`.
"""
from __future__ import annotations

import importlib
import os
from typing import List, Optional, Protocol, runtime_checkable

import torch

from openyolox.errors import ConfigError
from openyolox.inference.deployed import resolve_exported
from openyolox.typing import PathLike



@runtime_checkable
class Backend(Protocol):
    """The interface every back-end implements.

    ``__call__(batch)``: (B, 3, H, W) uint8 or float 0..255 (numpy or torch) -> decoded
    predictions (B, A, 5 + C) float32 torch: cx, cy, w, h (input pixels), obj prob, class probs.
    ``detect(batch)``: only when ``outputs_detections`` (a graph with NMS inside): per image
    (N, 7) rows (x1, y1, x2, y2, score, 1.0, class) in input pixels.
    """

    name: str
    num_classes: int
    device: torch.device
    outputs_detections: bool

    def __call__(self, batch) -> torch.Tensor: ...

    def detect(self, batch) -> List[torch.Tensor]: ...

    def synchronize(self) -> None: ...


# runtime -> (module of this package, class, the module it needs, the openyolox extra that installs it)
RUNTIMES = {
    "onnxruntime": ("onnxrt", "OnnxRuntimeBackend", "onnxruntime", "onnx"),
    "openvino": ("openvino_ir", "OpenVINOBackend", "openvino", "openvino"),
    "ncnn": ("ncnn_net", "NcnnBackend", "ncnn", "ncnn"),
    "torchscript": ("torchscript", "TorchScriptBackend", None, None),
}


def default_threads() -> int:
    """Threads for CPU runtimes: the cores this process may use (these machines have one
    thread per core; on SMT machines ONNX Runtime's own default picks physical cores)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def runtime_class(runtime: str):
    """The back-end class of ``runtime``; ConfigError naming the extra when its package is
    missing."""
    module, cls, needs, extra = RUNTIMES[runtime]
    if needs is not None:
        try:
            importlib.import_module(needs)
        except ImportError:
            raise ConfigError(f"running {runtime} models needs {needs}: pip install 'openyolox[{extra}]'") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def load_backend(path: PathLike, device: str = "cpu", threads: Optional[int] = None):
    """The back-end for an exported file or folder, chosen by its suffix
    (openyolox.inference.deployed.resolve_exported)."""
    found = resolve_exported(path)
    if found is None:
        raise ConfigError(f"{path}: not an exported model (.onnx, OpenVINO .xml or folder, ncnn .param or "
                          f"folder, .torchscript)")
    runtime, graph = found
    if not graph.exists():
        raise ConfigError(f"{graph}: file not found")
    return runtime_class(runtime)(graph, device=device, threads=threads)
