"""Multi-scale training: every few iterations the batch is resized to a random multiple of 32
(docs/yolox.md section 7)."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from openyolox.config import ModelConfig
from openyolox.errors import ConfigError

# nano / tiny train at 320..640 whatever their 416 base (reference exps: random_size (10, 20))
_MULTISCALE_PIXELS = {"yolox-nano": (320, 640), "yolox-tiny": (320, 640)}


def multiscale_size_range(model: ModelConfig,
                          base_hw: Optional[Tuple[int, int]] = None) -> Tuple[int, int]:
    """(min, max) training height in pixels for multi-scale: base +- 32 * multiscale_range,
    except nano / tiny, which train at 320..640 (docs/yolox.md section 7)."""
    if model.name in _MULTISCALE_PIXELS:
        return _MULTISCALE_PIXELS[model.name]
    base = (base_hw or model.test_size)[0]
    return max(32, base - 32 * model.multiscale_range), base + 32 * model.multiscale_range


def random_size(rng: np.random.Generator, base_hw: Tuple[int, int], multiscale_range: int = 5,
                size_range: Optional[Tuple[int, int]] = None) -> Tuple[int, int]:
    """Pick a multi-scale input size (h, w), both multiples of 32.

    The height is uniform among multiples of 32 in [base_h/32 - r, base_h/32 + r] (or
    within ``size_range`` = (min_px, max_px) when given); the width keeps base_w / base_h.
    In distributed training every rank must draw from an identically seeded rng.
    """
    h, w = base_hw
    if size_range is not None:
        lo, hi = math.ceil(size_range[0] / 32), size_range[1] // 32
    else:
        lo, hi = h // 32 - multiscale_range, h // 32 + multiscale_range
    lo = max(lo, 1)
    if hi < lo:
        raise ConfigError(f"empty multi-scale range {size_range or (lo * 32, hi * 32)}")
    k = int(rng.integers(lo, hi + 1))
    return 32 * k, 32 * max(int(k * w / h), 1)


def resize_batch(images: torch.Tensor, targets: torch.Tensor,
                 new_hw: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Multi-scale: resize a batch bilinearly and scale its boxes.

    images: (B, 3, H, W) uint8 or float; targets: (B, M, 5) (class, cx, cy, w, h) input
    pixels, zero rows stay zero. Returns images of the same dtype (uint8 is rounded back;
    pass float to avoid the re-quantisation) and new targets (the input is not modified).
    """
    h, w = images.shape[-2:]
    new_h, new_w = int(new_hw[0]), int(new_hw[1])
    if (h, w) == (new_h, new_w):
        return images, targets
    x = images if images.is_floating_point() else images.float()
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
    if not images.is_floating_point():
        x = x.round_().clamp_(0, 255).to(images.dtype)
    targets = targets.clone()
    targets[..., 1::2] *= new_w / w   # cx, w
    targets[..., 2::2] *= new_h / h   # cy, h
    return x, targets
