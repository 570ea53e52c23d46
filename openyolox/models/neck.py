"""Necks: YOLOPAFPN (CSPDarknet models) and YOLOFPN (Darknet-53).

Each neck owns its backbone as ``self.backbone`` (hence keys ``backbone.backbone.*``) and
returns the three feature maps (P3, P4, P5) at strides 8, 16, 32.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from openyolox.models.backbone import CSPDarknet, Darknet
from openyolox.models.blocks import BaseConv, CSPLayer, conv_block

Features = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class YOLOPAFPN(nn.Module):
    """Top-down then bottom-up path aggregation over dark3/dark4/dark5."""

    def __init__(self, depth: float, width: float, depthwise: bool = False, act: str = "silu",
                 in_channels=(256, 512, 1024)):
        super().__init__()
        self.backbone = CSPDarknet(depth, width, depthwise, act)
        c0, c1, c2 = (int(c * width) for c in in_channels)
        n = round(3 * depth)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c2, c1, 1, 1, act=act)
        self.C3_p4 = CSPLayer(2 * c1, c1, n, False, depthwise=depthwise, act=act)
        self.reduce_conv1 = BaseConv(c1, c0, 1, 1, act=act)
        self.C3_p3 = CSPLayer(2 * c0, c0, n, False, depthwise=depthwise, act=act)
        self.bu_conv2 = conv_block(c0, c0, 3, 2, depthwise, act)
        self.C3_n3 = CSPLayer(2 * c0, c1, n, False, depthwise=depthwise, act=act)
        self.bu_conv1 = conv_block(c1, c1, 3, 2, depthwise, act)
        self.C3_n4 = CSPLayer(2 * c1, c2, n, False, depthwise=depthwise, act=act)

    def forward(self, images: torch.Tensor) -> Features:
        feats = self.backbone(images)
        dark3, dark4, dark5 = feats["dark3"], feats["dark4"], feats["dark5"]
        # top-down
        lat0 = self.lateral_conv0(dark5)
        p4 = self.C3_p4(torch.cat([self.upsample(lat0), dark4], 1))
        lat1 = self.reduce_conv1(p4)
        out_p3 = self.C3_p3(torch.cat([self.upsample(lat1), dark3], 1))
        # bottom-up
        out_p4 = self.C3_n3(torch.cat([self.bu_conv2(out_p3), lat1], 1))
        out_p5 = self.C3_n4(torch.cat([self.bu_conv1(out_p4), lat0], 1))
        return out_p3, out_p4, out_p5


def _embedding(in_ch: int, mid: int, wide: int) -> nn.Sequential:
    """Five alternating 1x1 / 3x3 leaky-ReLU convs (YOLOv3's detection block)."""
    return nn.Sequential(
        BaseConv(in_ch, mid, 1, act="lrelu"), BaseConv(mid, wide, 3, act="lrelu"),
        BaseConv(wide, mid, 1, act="lrelu"), BaseConv(mid, wide, 3, act="lrelu"),
        BaseConv(wide, mid, 1, act="lrelu"),
    )


class YOLOFPN(nn.Module):
    """YOLOv3's top-down FPN over Darknet-53. Outputs 128, 256 and 512 channels."""

    def __init__(self):
        super().__init__()
        self.backbone = Darknet()
        self.out1_cbl = BaseConv(512, 256, 1, act="lrelu")
        self.out1 = _embedding(512 + 256, 256, 512)
        self.out2_cbl = BaseConv(256, 128, 1, act="lrelu")
        self.out2 = _embedding(256 + 128, 128, 256)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, images: torch.Tensor) -> Features:
        feats = self.backbone(images)
        dark3, dark4, dark5 = feats["dark3"], feats["dark4"], feats["dark5"]
        out_p4 = self.out1(torch.cat([self.upsample(self.out1_cbl(dark5)), dark4], 1))
        out_p3 = self.out2(torch.cat([self.upsample(self.out2_cbl(out_p4)), dark3], 1))
        return out_p3, out_p4, dark5
