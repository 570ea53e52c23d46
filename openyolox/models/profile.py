"""Parameter and FLOP counts of a network, counted the way the YOLOX tables count them.

GFLOPs = 2 x "operations" at batch 1, where a convolution costs its multiply-accumulates
(bias not counted) and a batch norm 4 per output element (normalise: 2, affine scale and
shift: 2), as the profiler behind the reference's "Params/Gflops" summary counts them.
Activations, pooling, upsampling and concatenation are free. Fused (BN-free) models
therefore count slightly less.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_gflops(model: nn.Module, imgsz: Tuple[int, int]) -> float:
    """GFLOPs of one forward pass at batch 1 and input (h, w), as defined in the module doc."""
    macs = [0]

    def conv_hook(m: nn.Conv2d, inputs, output):
        kh, kw = m.kernel_size
        macs[0] += output.numel() * (m.in_channels // m.groups) * kh * kw

    def bn_hook(m: nn.BatchNorm2d, inputs, output):
        macs[0] += 4 * output.numel()

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.BatchNorm2d):
            handles.append(m.register_forward_hook(bn_hook))
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters())
        model(torch.zeros(1, 3, *imgsz, device=p.device, dtype=p.dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return 2 * macs[0] / 1e9
