"""YOLOX = neck (with its backbone) + decoupled head; ``create_model`` builds a preset."""
from __future__ import annotations

from typing import Callable, Optional, Union

import torch
from torch import nn

from openyolox.config import ModelConfig, get_preset
from openyolox.models.blocks import BaseConv
from openyolox.models.head import YOLOXHead
from openyolox.models.neck import YOLOFPN, YOLOPAFPN

# criterion(head_outputs: dict, targets (B, M, 5), use_l1: bool) -> dict of losses
Criterion = Callable[[dict, torch.Tensor, bool], dict]


class YOLOX(nn.Module):
    """The detector. Input: float images (B, 3, H, W) in 0..255 BGR (uint8 is accepted and
    cast), H and W multiples of 32.

    eval: (B, A, 5+C) decoded predictions, like the reference.
    train with targets (B, M, 5) rows (class, cx, cy, w, h), all-zero rows padding:
    the loss dict from ``criterion``.
    """

    def __init__(self, backbone: nn.Module, head: YOLOXHead, config: Optional[ModelConfig] = None):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.config = config
        self.criterion: Optional[Criterion] = None

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def forward(self, images: torch.Tensor, targets: Optional[torch.Tensor] = None):
        if images.dtype == torch.uint8:
            images = images.float()
        out = self.head(self.backbone(images))
        if not self.training:
            return out
        if targets is None:
            return out  # raw training outputs, e.g. for custom losses
        if self.criterion is None:
            raise RuntimeError("this YOLOX has no criterion attached: build it with "
                               "openyolox.build_model() to train with model(images, targets)")
        return self.criterion(out, targets, self.head.use_l1)

    @torch.no_grad()
    def fuse(self) -> "YOLOX":
        """Fold every batch norm into its conv (inference only; call after eval())."""
        for m in self.modules():
            if isinstance(m, BaseConv):
                m.fuse()
        return self


def create_model(config: Union[str, ModelConfig], num_classes: int = 80) -> YOLOX:
    """Build the network of a preset (name or ModelConfig) for ``num_classes`` classes."""
    cfg = get_preset(config) if isinstance(config, str) else config
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if cfg.backbone == "darknet53":
        neck = YOLOFPN()
        head = YOLOXHead(num_classes, 1.0, in_channels=(128, 256, 512), act="lrelu")
    else:
        neck = YOLOPAFPN(cfg.depth, cfg.width, cfg.depthwise, cfg.act)
        head = YOLOXHead(num_classes, cfg.width, act=cfg.act, depthwise=cfg.depthwise)
    return YOLOX(neck, head, cfg)
