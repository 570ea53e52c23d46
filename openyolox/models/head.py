"""The decoupled YOLOX head: per-level stems, classification and regression branches.

Raw predictions per location are (tx, ty, tw, th, obj_logit, cls_logits). They decode to
boxes in input pixels with the location's grid cell (x, y) and stride s:
    cx = (tx + x) * s,  cy = (ty + y) * s,  w = exp(tw) * s,  h = exp(th) * s
Levels are concatenated P3, P4, P5, each flattened row-major (docs/yolox.md section 3).
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from openyolox.models.blocks import BaseConv, conv_block

STRIDES = (8, 16, 32)


def make_anchor_grid(shapes: Sequence[Tuple[int, int]], strides: Sequence[int], device, dtype
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Grid cells and strides for feature maps of the given (h, w) shapes.

    Returns grid (A, 2) as (x, y) cell indices and stride (A, 1), levels in order,
    each level flattened row-major.
    """
    grids, stride_list = [], []
    for (h, w), s in zip(shapes, strides):
        ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                                torch.arange(w, device=device, dtype=dtype), indexing="ij")
        grids.append(torch.stack((xs, ys), dim=-1).reshape(-1, 2))
        stride_list.append(torch.full((h * w, 1), float(s), device=device, dtype=dtype))
    return torch.cat(grids), torch.cat(stride_list)


def decode_boxes(raw: torch.Tensor, grid: torch.Tensor, stride: torch.Tensor) -> torch.Tensor:
    """raw: (B, A, 4+K) with (tx, ty, tw, th, ...) -> same shape with cx, cy, w, h in pixels.

    grid: (A, 2) cell (x, y); stride: (A, 1).
    """
    xy = (raw[..., :2] + grid) * stride
    wh = torch.exp(raw[..., 2:4]) * stride
    return torch.cat([xy, wh, raw[..., 4:]], dim=-1)


class YOLOXHead(nn.Module):
    """Decoupled head over three feature levels.

    eval mode:  (B, A, 5+C) = cx, cy, w, h (input pixels), sigmoid obj, sigmoid classes
                (or undecoded tx, ty, tw, th with ``decode_in_inference = False``).
    train mode: dict with ``outputs`` (B, A, 5+C) decoded boxes + obj/cls *logits*,
                ``raw_reg`` (B, A, 4), ``grid`` (A, 2), ``strides`` (A,) for the loss.
    """

    def __init__(self, num_classes: int, width: float = 1.0, in_channels=(256, 512, 1024),
                 act: str = "silu", depthwise: bool = False, strides: Sequence[int] = STRIDES,
                 prior_prob: float = 0.01):
        super().__init__()
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.decode_in_inference = True
        hidden = int(256 * width)

        def branch() -> nn.Sequential:
            return nn.Sequential(conv_block(hidden, hidden, 3, 1, depthwise, act),
                                 conv_block(hidden, hidden, 3, 1, depthwise, act))

        # creation order fixes the state-dict key order of the reference checkpoints
        self.cls_convs = nn.ModuleList(branch() for _ in in_channels)
        self.reg_convs = nn.ModuleList(branch() for _ in in_channels)
        self.cls_preds = nn.ModuleList(nn.Conv2d(hidden, num_classes, 1) for _ in in_channels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(hidden, 4, 1) for _ in in_channels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(hidden, 1, 1) for _ in in_channels)
        self.stems = nn.ModuleList(BaseConv(int(c * width), hidden, 1, 1, act=act) for c in in_channels)
        self.init_prior_bias(prior_prob)
        self._grid_cache: Dict[tuple, Tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def init_prior_bias(self, prior_prob: float = 0.01) -> None:
        """Start cls and obj predictions at probability ``prior_prob`` (focal-loss style prior)."""
        bias = -math.log((1 - prior_prob) / prior_prob)
        for conv in list(self.cls_preds) + list(self.obj_preds):
            conv.bias.fill_(bias)

    def _level_outputs(self, features: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Per level (B, 5+C, h, w): reg (4), obj logit (1), cls logits (C)."""
        outs = []
        for i, x in enumerate(features):
            x = self.stems[i](x)
            cls_feat = self.cls_convs[i](x)
            reg_feat = self.reg_convs[i](x)
            outs.append(torch.cat([self.reg_preds[i](reg_feat), self.obj_preds[i](reg_feat),
                                   self.cls_preds[i](cls_feat)], dim=1))
        return outs

    def anchor_grid(self, shapes: Sequence[Tuple[int, int]], device, dtype
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Cached :func:`make_anchor_grid` (not cached while tracing for export)."""
        if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
            return make_anchor_grid(shapes, self.strides, device, dtype)
        key = (tuple(shapes), device, dtype)
        if key not in self._grid_cache:
            self._grid_cache = {key: make_anchor_grid(shapes, self.strides, device, dtype)}
        return self._grid_cache[key]

    def forward(self, features: Sequence[torch.Tensor]):
        levels = self._level_outputs(features)
        shapes = [tuple(x.shape[-2:]) for x in levels]
        # (B, 5+C, A) -> (B, A, 5+C)
        flat = torch.cat([x.flatten(start_dim=2) for x in levels], dim=2).permute(0, 2, 1)
        grid, stride = self.anchor_grid(shapes, flat.device, flat.dtype)
        if self.training:
            return {"outputs": decode_boxes(flat, grid, stride), "raw_reg": flat[..., :4],
                    "grid": grid, "strides": stride[:, 0]}
        scores = flat[..., 4:].sigmoid()
        reg = flat[..., :4]
        out = torch.cat([reg, scores], dim=-1)
        return decode_boxes(out, grid, stride) if self.decode_in_inference else out
