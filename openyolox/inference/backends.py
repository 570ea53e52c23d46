"""Inference back-ends: something that turns a letterboxed uint8 batch into decoded
predictions (B, A, 5+C) = cx, cy, w, h (input pixels), obj prob, class probs.

The PyTorch back-end lives here; exported formats (ONNX Runtime, OpenVINO, ncnn,
TorchScript) plug in with the same interface.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from openyolox.models.yolox import YOLOX


class TorchBackend:
    """A YOLOX module in eval mode, BN fused, run under ``torch.inference_mode``."""

    name = "pytorch"

    def __init__(self, model: YOLOX, device: str = "cpu", half: bool = False, fuse: bool = True):
        self.device = torch.device(device)
        if half and self.device.type == "cpu":
            raise ValueError("--half needs a CUDA device (FP16 convolutions are not supported on CPU)")
        model = model.to(self.device).eval()
        if fuse:
            model.fuse()
        self.model = model.half() if half else model
        self.dtype = torch.float16 if half else torch.float32
        self.num_classes = model.num_classes

    def __call__(self, batch) -> torch.Tensor:
        """batch: (B, 3, H, W) uint8 or float 0..255, numpy or torch -> (B, A, 5+C) float32 decoded."""
        with torch.inference_mode():
            x = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(batch))
            x = x.to(self.device, non_blocking=True)
            out = self.model(x.to(self.dtype))
            return out.float()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
