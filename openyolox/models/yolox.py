"""YOLOX = neck (with its backbone) + decoupled head; ``create_model`` builds a preset."""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from openyolox.config import ModelConfig, get_preset
from openyolox.models.blocks import BaseConv
from openyolox.models.head import YOLOXHead
from openyolox.models.neck import YOLOFPN, YOLOPAFPN

class YOLOX(nn.Module):
    """The detector. Input: float images (B, 3, H, W) in 0..255 BGR (uint8 is accepted and
    cast), H and W multiples of 32.

    eval:  (B, A, 5+C) decoded predictions, like the reference.
    train: the head's raw outputs (a dict: decoded boxes with obj/class *logits*, the raw box
           regression, the anchor grid and strides) for a loss such as
           :func:`openyolox.training.loss.detection_loss`. The network knows nothing of its loss.
    """

    def __init__(self, backbone: nn.Module, head: YOLOXHead, config: Optional[ModelConfig] = None):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.config = config

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def forward(self, images: torch.Tensor):
        if images.dtype == torch.uint8:
            images = images.float()
        return self.head(self.backbone(images))

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
