"""The PyTorch back-end: a YOLOX module in eval mode, BN fused, under ``torch.inference_mode``,
channels-last on the CPU.

What makes PyTorch faster on a CPU was measured (benchmarks/torch_cpu.py, docs/benchmarks.md,
"PyTorch on the CPU"): channels-last memory format (oneDNN's native layout: no reorder around
each convolution) is kept; torch.compile gives about the same steady speed but costs 15-25 s
of compilation per process and input shape, so it is not used; one thread per core
(PyTorch's default) and inference_mode (already used) stay.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch

from openyolox.errors import ConfigError
from openyolox.models.yolox import YOLOX


class TorchBackend:
    """``model`` itself is used (moved to ``device``, put in eval mode and, with ``fuse``,
    its batch norms folded in place); ``amp`` runs it under float16 autocast on CUDA.
    channels_last: NHWC memory format for weights and inputs; default: with ``fuse`` on the
    CPU (the inference set-up, which changes the module in place anyway; the trainer's
    evaluation and the exporters pass fuse=False and get the module's own layout)."""

    name = "pytorch"
    outputs_detections = False

    def __init__(self, model: YOLOX, device: str = "cpu", half: bool = False, fuse: bool = True,
                 amp: bool = False, channels_last: Optional[bool] = None):
        self.device = torch.device(device)
        if half and self.device.type == "cpu":
            raise ConfigError("--half needs a CUDA device (FP16 convolutions are not supported on CPU)")
        model = model.to(self.device).eval()
        if fuse:
            model.fuse()
        if channels_last is None:
            channels_last = fuse and self.device.type == "cpu"
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.half() if half else model
        self.dtype = torch.float16 if half else torch.float32
        self.amp = amp and self.device.type == "cuda"
        self.num_classes = model.num_classes

    def __call__(self, batch) -> torch.Tensor:
        """batch: (B, 3, H, W) uint8 or float 0..255, numpy or torch -> (B, A, 5+C) float32 decoded."""
        with torch.inference_mode(), torch.autocast(device_type=self.device.type, dtype=torch.float16,
                                                    enabled=self.amp):
            x = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(batch))
            x = x.to(self.device, non_blocking=True)
            return self.model(x.to(self.dtype).contiguous(memory_format=self.memory_format)).float()

    def detect(self, batch) -> List[torch.Tensor]:
        raise ConfigError("the PyTorch back-end gives raw predictions; NMS runs in openyolox.inference.postprocess")

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
