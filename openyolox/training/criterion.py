"""Adapter between the head's training outputs and :func:`yolox_loss`."""
from __future__ import annotations

from typing import Dict

import torch

from openyolox.training.loss import yolox_loss


class YOLOXCriterion:
    """Called by ``YOLOX.forward(images, targets)`` in train mode.

    head_out: the head's train-mode dict (outputs, raw_reg, grid, strides);
    targets: (B, M, 5) rows (class, cx, cy, w, h) input pixels, all-zero rows padding.
    """

    def __init__(self, iou_type: str = "iou"):
        self.iou_type = iou_type

    def __call__(self, head_out: Dict[str, torch.Tensor], targets: torch.Tensor, use_l1: bool) -> Dict[str, torch.Tensor]:
        grid = head_out["grid"]
        # targets stay float32 even under fp16 autocast: label coordinates must not be rounded
        return yolox_loss(head_out["outputs"], head_out["raw_reg"], targets.float(),
                          grid[:, 0], grid[:, 1], head_out["strides"], use_l1=use_l1, iou_type=self.iou_type)
