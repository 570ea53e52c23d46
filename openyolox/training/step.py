"""One optimisation step of the YOLOX recipe, with the training-speed settings applied.

Shared by the trainer and the measurements (openyolox/bench/), so that what is timed is what
trains. The trainer calls the two halves with its finite-loss check in between:

    losses = step.losses(images, targets, use_l1)    # forward + SimOTA + loss
    step.update(losses["total_loss"])                 # backward, optimiser, EMA

Speed settings (measured in docs/benchmarks.md, "Training throughput"):
- channels_last: the batch is handed to the network in NHWC. The model's weights must be
  converted once by the caller (``prepare_model``). On the CPU every convolution then runs in
  oneDNN; in NCHW the 1x1 convolutions fall back to PyTorch's slower im2col path.
- autocast: float16 with a gradient scaler (``amp``, CUDA) or bfloat16 (``bf16``, opt-in) for
  the network; SimOTA and the loss run in float32 either way.
- compile: the network's forward through ``torch.compile`` (opt-in; slower on CPU, for CUDA).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
from torch import nn

from openyolox.training.loss import detection_loss
from openyolox.training.schedule import ModelEMA


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """Move the network to ``device`` in the memory format the step feeds it. Call before the
    optimiser and the EMA copy are made (they then see the converted tensors)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(device=device, memory_format=fmt)


class TrainStep:
    """Forward + loss, then backward + optimiser step + EMA update.

    model: the network (or DistributedDataParallel around it), already prepared with
    :func:`prepare_model`; ema: updated after every optimiser step when given.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, ema: Optional[ModelEMA],
                 device: torch.device, amp: bool = False, bf16: bool = False, channels_last: bool = False,
                 compile: bool = False, scaler: Optional[torch.amp.GradScaler] = None):
        if amp and bf16:
            raise ValueError("amp (float16) and bf16 are exclusive")
        self.model, self.optimizer, self.ema, self.device = model, optimizer, ema, device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.autocast_dtype = torch.float16 if amp else torch.bfloat16 if bf16 else None
        self.scaler = scaler if scaler is not None else torch.amp.GradScaler("cuda", enabled=amp)
        self.forward: Callable = torch.compile(model) if compile else model

    def losses(self, images: torch.Tensor, targets: torch.Tensor, use_l1: bool = False) -> Dict[str, torch.Tensor]:
        """images: (B, 3, H, W) float 0..255; targets: (B, M, 5) (class, cx, cy, w, h) pixels."""
        images = images.contiguous(memory_format=self.memory_format)
        if self.autocast_dtype is None:
            head_out = self.forward(images)
        else:
            with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype):
                head_out = self.forward(images)
        # outside autocast: SimOTA and the loss in float32 whatever the network ran in
        return detection_loss(head_out, targets, use_l1=use_l1)

    def update(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor, use_l1: bool = False) -> Dict[str, torch.Tensor]:
        """Both halves (no finite check): what the measurements time."""
        losses = self.losses(images, targets, use_l1)
        self.update(losses["total_loss"])
        return losses
