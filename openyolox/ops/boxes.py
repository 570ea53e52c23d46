"""Box format conversions and pairwise IoU, in plain torch."""
from __future__ import annotations

import torch


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """boxes: (..., 4) cxcywh -> (..., 4) xyxy."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """boxes: (..., 4) xyxy -> (...,) area (0 for inverted boxes)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Pairwise IoU. a: (..., N, 4) xyxy, b: (..., M, 4) xyxy -> (..., N, M).

    x and y overlaps are computed separately (no (N, M, 2) intermediate) and in place:
    this is the largest tensor of the label assignment, so its memory traffic matters."""
    ax1, ay1, ax2, ay2 = (t.unsqueeze(-1) for t in a.unbind(-1))   # (..., N, 1)
    bx1, by1, bx2, by2 = (t.unsqueeze(-2) for t in b.unbind(-1))   # (..., 1, M)
    inter = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp_(min=0)
    inter = inter.mul_((torch.minimum(ay2, by2) - torch.maximum(ay1, by1)).clamp_(min=0))
    union = (box_area(a).unsqueeze(-1) + box_area(b).unsqueeze(-2)).sub_(inter)
    return inter.div_(union.add_(eps) if eps else union)


def box_iou_cxcywh(a: torch.Tensor, b: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Pairwise IoU of cxcywh boxes. a: (..., N, 4), b: (..., M, 4) -> (..., N, M)."""
    return box_iou(cxcywh_to_xyxy(a), cxcywh_to_xyxy(b), eps)
