"""Convolution blocks of YOLOX (docs/yolox.md section 2).

Attribute names (``conv``, ``bn``, ``dconv``, ``pconv``, ``conv1``...) become state-dict
keys and must match the reference checkpoints; they are an interface, not a choice.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def make_activation(name: str) -> nn.Module:
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "lrelu":
        return nn.LeakyReLU(0.1, inplace=True)
    raise ValueError(f"unknown activation '{name}' (silu, relu, lrelu)")


class BaseConv(nn.Module):
    """Conv (no bias, 'same' padding) -> BatchNorm (eps 1e-3, momentum 0.03) -> activation.

    After :meth:`fuse` the batch norm is folded into the conv (inference only).
    """

    def __init__(self, in_ch: int, out_ch: int, ksize: int, stride: int = 1, groups: int = 1,
                 act: str = "silu"):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, ksize, stride, (ksize - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=1e-3, momentum=0.03)
        self.act = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bn is None:  # fused
            return self.act(self.conv(x))
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the batch norm into the conv weights: y = (W x) * g + b'."""
        if self.bn is None:
            return
        conv, bn = self.conv, self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                          conv.padding, groups=conv.groups, bias=True).to(conv.weight.device)
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv = fused
        self.bn = None


class DWConv(nn.Module):
    """Depthwise k x k BaseConv (``dconv``) followed by a pointwise 1x1 BaseConv (``pconv``)."""

    def __init__(self, in_ch: int, out_ch: int, ksize: int, stride: int = 1, act: str = "silu"):
        super().__init__()
        self.dconv = BaseConv(in_ch, in_ch, ksize, stride, groups=in_ch, act=act)
        self.pconv = BaseConv(in_ch, out_ch, 1, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pconv(self.dconv(x))


def conv_block(in_ch: int, out_ch: int, ksize: int, stride: int = 1, depthwise: bool = False,
               act: str = "silu") -> nn.Module:
    """The spec's "Conv": DWConv when the model is depthwise (nano), else BaseConv."""
    if depthwise:
        return DWConv(in_ch, out_ch, ksize, stride, act=act)
    return BaseConv(in_ch, out_ch, ksize, stride, act=act)


class Bottleneck(nn.Module):
    """1x1 conv to out*expansion, 3x3 conv back to out; residual when shortcut and in == out."""

    def __init__(self, in_ch: int, out_ch: int, shortcut: bool = True, expansion: float = 0.5,
                 depthwise: bool = False, act: str = "silu"):
        super().__init__()
        hidden = int(out_ch * expansion)
        self.conv1 = BaseConv(in_ch, hidden, 1, 1, act=act)
        self.conv2 = conv_block(hidden, out_ch, 3, 1, depthwise, act)
        self.use_add = shortcut and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class ResLayer(nn.Module):
    """Darknet-53 residual block: 1x1 to half the channels, 3x3 back, plus the input."""

    def __init__(self, channels: int):
        super().__init__()
        mid = channels // 2
        self.layer1 = BaseConv(channels, mid, 1, 1, act="lrelu")
        self.layer2 = BaseConv(mid, channels, 3, 1, act="lrelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer2(self.layer1(x))


class SPPBottleneck(nn.Module):
    """1x1 conv to in/2, max-pools (stride 1) concatenated with their input, 1x1 conv to out."""

    def __init__(self, in_ch: int, out_ch: int, kernel_sizes: Sequence[int] = (5, 9, 13),
                 act: str = "silu"):
        super().__init__()
        hidden = in_ch // 2
        self.conv1 = BaseConv(in_ch, hidden, 1, 1, act=act)
        self.m = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_ch, 1, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.m], dim=1))


class CSPLayer(nn.Module):
    """CSP bottleneck with 3 convs (YOLOv5's C3): two 1x1 branches, n Bottlenecks on the
    first, concatenated and mixed by a 1x1 conv."""

    def __init__(self, in_ch: int, out_ch: int, n: int = 1, shortcut: bool = True,
                 expansion: float = 0.5, depthwise: bool = False, act: str = "silu"):
        super().__init__()
        hidden = int(out_ch * expansion)
        self.conv1 = BaseConv(in_ch, hidden, 1, 1, act=act)
        self.conv2 = BaseConv(in_ch, hidden, 1, 1, act=act)
        self.conv3 = BaseConv(2 * hidden, out_ch, 1, 1, act=act)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, 1.0, depthwise, act) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat((self.m(self.conv1(x)), self.conv2(x)), dim=1))


class Focus(nn.Module):
    """Space-to-depth (2x2 patches stacked as channels) followed by a conv.

    Channel order: top-left, bottom-left, top-right, bottom-right (the reference's).
    """

    def __init__(self, in_ch: int, out_ch: int, ksize: int = 1, stride: int = 1, act: str = "silu"):
        super().__init__()
        self.conv = BaseConv(in_ch * 4, out_ch, ksize, stride, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), dim=1)
        return self.conv(x)
