"""Backbones: CSPDarknet (YOLOX-nano..x) and Darknet-53 (YOLOX-Darknet53)."""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from openyolox.models.blocks import BaseConv, CSPLayer, Focus, ResLayer, SPPBottleneck, conv_block


class _Stages(nn.Module):
    """stem -> dark2 -> dark3 -> dark4 -> dark5; the last three are the outputs."""

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        x = self.dark2(self.stem(x))
        dark3 = self.dark3(x)
        dark4 = self.dark4(dark3)
        dark5 = self.dark5(dark4)
        return {"dark3": dark3, "dark4": dark4, "dark5": dark5}


class CSPDarknet(_Stages):
    """CSPDarknet scaled by depth and width. Returns dark3, dark4, dark5 (strides 8, 16, 32)
    with 4, 8 and 16 x int(64 * width) channels."""

    def __init__(self, depth: float, width: float, depthwise: bool = False, act: str = "silu"):
        super().__init__()
        base_ch = int(width * 64)
        base_depth = max(round(depth * 3), 1)

        def stage(in_ch: int, out_ch: int, n: int) -> nn.Sequential:
            return nn.Sequential(conv_block(in_ch, out_ch, 3, 2, depthwise, act),
                                 CSPLayer(out_ch, out_ch, n=n, depthwise=depthwise, act=act))

        self.stem = Focus(3, base_ch, ksize=3, act=act)
        self.dark2 = stage(base_ch, base_ch * 2, base_depth)
        self.dark3 = stage(base_ch * 2, base_ch * 4, base_depth * 3)
        self.dark4 = stage(base_ch * 4, base_ch * 8, base_depth * 3)
        self.dark5 = nn.Sequential(
            conv_block(base_ch * 8, base_ch * 16, 3, 2, depthwise, act),
            SPPBottleneck(base_ch * 16, base_ch * 16, act=act),
            CSPLayer(base_ch * 16, base_ch * 16, n=base_depth, shortcut=False, depthwise=depthwise, act=act),
        )



class Darknet(_Stages):
    """Darknet-53 (leaky ReLU 0.1): residual stages of [2, 8, 8, 4] blocks, with an SPP block
    closing dark5. Returns dark3 (256 ch), dark4 (512 ch), dark5 (512 ch)."""

    def __init__(self, blocks=(2, 8, 8, 4)):
        super().__init__()
        act = "lrelu"

        def group(in_ch: int, n: int) -> list:
            # stride-2 conv doubling the channels, then n residual blocks
            return [BaseConv(in_ch, in_ch * 2, 3, 2, act=act)] + [ResLayer(in_ch * 2) for _ in range(n)]

        self.stem = nn.Sequential(BaseConv(3, 32, 3, 1, act=act), *group(32, 1))
        self.dark2 = nn.Sequential(*group(64, blocks[0]))
        self.dark3 = nn.Sequential(*group(128, blocks[1]))
        self.dark4 = nn.Sequential(*group(256, blocks[2]))
        self.dark5 = nn.Sequential(
            *group(512, blocks[3]),
            BaseConv(1024, 512, 1, 1, act=act),
            BaseConv(512, 1024, 3, 1, act=act),
            SPPBottleneck(1024, 512, act=act),
            BaseConv(512, 1024, 3, 1, act=act),
            BaseConv(1024, 512, 1, 1, act=act),
        )

