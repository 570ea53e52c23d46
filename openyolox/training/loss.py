"""The YOLOX training loss (docs/yolox.md section 5).

Given the head's outputs for a batch and the padded labels, SimOTA (simota.py) picks the
positive anchors and their GTs; the loss is then

    5 * IoU loss (positives) + BCE(obj, fg) (all anchors) + BCE(cls, one_hot * IoU) (positives)
    [+ L1 on the raw box outputs (positives), in the final no-augmentation epochs]

each summed and divided by num_fg = max(positives in the batch, 1). Targets are built for the
whole batch with index tensors (no loop over images); the assignment runs without gradients,
the loss itself backpropagates into `outputs` and `raw_reg`.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F

from openyolox.models.yolox import YOLOX
from openyolox.ops.boxes import box_area, cxcywh_to_xyxy
from openyolox.training.simota import assign_simota

REG_WEIGHT = 5.0
L1_LOG_EPS = 1e-8


def detection_loss(head_out: Dict[str, torch.Tensor], targets: torch.Tensor, use_l1: bool = False,
                   iou_type: str = "iou") -> Dict[str, torch.Tensor]:
    """The YOLOX loss of a train-mode forward: ``detection_loss(model(images), targets)``.

    head_out: the head's train-mode dict (outputs, raw_reg, grid, strides);
    targets: (B, M, 5) rows (class, cx, cy, w, h) input pixels, all-zero rows padding;
    use_l1: add the L1 term (the trainer's no-augmentation phase).
    """
    grid = head_out["grid"]
    # targets stay float32 even under fp16 autocast: label coordinates must not be rounded
    return yolox_loss(head_out["outputs"], head_out["raw_reg"], targets.float(), grid[:, 0], grid[:, 1],
                      head_out["strides"], use_l1=use_l1, iou_type=iou_type)


class YOLOXWithLoss(YOLOX):
    """The reference's calling convention on top of a plain network: in train mode
    ``model(images, targets)`` returns the loss dict. Same modules, so the same state dict
    (a view of ``net``'s modules, not a copy)."""

    def __init__(self, net: YOLOX, iou_type: str = "iou"):
        super().__init__(net.backbone, net.head, net.config)
        self.iou_type = iou_type

    def forward(self, images: torch.Tensor, targets: Optional[torch.Tensor] = None, use_l1: bool = False):
        out = super().forward(images)
        if not self.training or targets is None:
            return out
        return detection_loss(out, targets, use_l1=use_l1, iou_type=self.iou_type)


def yolox_loss(
    outputs: torch.Tensor,
    raw_reg: torch.Tensor,
    labels: torch.Tensor,
    grid_x: torch.Tensor,
    grid_y: torch.Tensor,
    strides: torch.Tensor,
    use_l1: bool,
    iou_type: str = "iou",
) -> dict[str, torch.Tensor]:
    """The YOLOX loss for one batch.

    outputs: (B, A, 5+C) [cx, cy, w, h decoded in input pixels, obj logit, class logits]
    raw_reg: (B, A, 4) undecoded box outputs (tx, ty, tw, th), used by the L1 term
    labels:  (B, M, 5) rows (class, cx, cy, w, h) in input pixels; all-zero rows are padding
    grid_x, grid_y, strides: (A,) grid cell of each anchor and its stride
    use_l1: add the L1 term; iou_type: "iou" (1 - IoU^2) or "giou" (1 - clamp(GIoU, -1, 1))

    Returns 0-dim tensors: total_loss, iou_loss (already x5), obj_loss, cls_loss, l1_loss, and
    num_fg = positives / max(number of GTs, 1) (a statistic, as the reference reports it).
    """
    if iou_type not in ("iou", "giou"):
        raise ValueError(f"iou_type must be 'iou' or 'giou', got {iou_type!r}")
    num_classes = outputs.shape[2] - 5
    fg_mask, matched_gt, matched_iou = assign_simota(outputs.detach(), labels, grid_x, grid_y, strides)

    out = outputs.float()
    img_idx, anchor_idx = fg_mask.nonzero(as_tuple=True)  # (P,) each, batch-major order
    gt = labels[img_idx, matched_gt[img_idx, anchor_idx]].float()  # (P, 5)
    num_pos = img_idx.numel()
    num_fg = max(num_pos, 1)
    num_gts = int((labels != 0).any(dim=-1).sum())

    # Box regression on positives.
    pred_boxes = out[img_idx, anchor_idx, :4]  # (P, 4) cxcywh
    loss_iou = _iou_loss(pred_boxes, gt[:, 1:5], iou_type).sum() / num_fg

    # Objectness on all anchors: positives 1, everything else 0.
    loss_obj = F.binary_cross_entropy_with_logits(out[..., 4], fg_mask.float(), reduction="sum") / num_fg

    # Classification on positives: soft target one_hot(class) * IoU(pred, GT).
    cls_target = F.one_hot(gt[:, 0].long(), num_classes).float() * matched_iou[img_idx, anchor_idx, None]
    cls_logits = out[img_idx, anchor_idx, 5:]  # (P, C)
    loss_cls = F.binary_cross_entropy_with_logits(cls_logits, cls_target, reduction="sum") / num_fg

    if use_l1:
        s = strides[anchor_idx].float()  # (P,)
        l1_target = torch.stack(
            (
                gt[:, 1] / s - grid_x[anchor_idx].float(),
                gt[:, 2] / s - grid_y[anchor_idx].float(),
                torch.log(gt[:, 3] / s + L1_LOG_EPS),
                torch.log(gt[:, 4] / s + L1_LOG_EPS),
            ),
            dim=1,
        )  # (P, 4)
        loss_l1 = (raw_reg[img_idx, anchor_idx].float() - l1_target).abs().sum() / num_fg
    else:
        loss_l1 = out.new_zeros(())

    loss_iou = REG_WEIGHT * loss_iou
    total = loss_iou + loss_obj + loss_cls + loss_l1
    return {
        "total_loss": total,
        "iou_loss": loss_iou,
        "obj_loss": loss_obj,
        "cls_loss": loss_cls,
        "l1_loss": loss_l1,
        "num_fg": torch.tensor(num_pos / max(num_gts, 1), device=outputs.device),
    }


def _iou_loss(pred: torch.Tensor, target: torch.Tensor, iou_type: str) -> torch.Tensor:
    """pred, target: (P, 4) cxcywh, paired row by row -> (P,) loss.

    "iou": 1 - IoU^2; "giou": 1 - clamp(GIoU, -1, 1). The 1e-16 guards follow the reference.
    """
    p, t = cxcywh_to_xyxy(pred), cxcywh_to_xyxy(target)  # (P, 4) xyxy
    overlap = torch.cat((torch.maximum(p[:, :2], t[:, :2]), torch.minimum(p[:, 2:], t[:, 2:])), dim=1)
    inter = box_area(overlap)  # (P,), 0 when the boxes do not overlap
    union = box_area(p) + box_area(t) - inter
    iou = inter / (union + 1e-16)
    if iou_type == "iou":
        return 1 - iou**2
    enclosing = torch.cat((torch.minimum(p[:, :2], t[:, :2]), torch.maximum(p[:, 2:], t[:, 2:])), dim=1)
    area_c = box_area(enclosing)
    giou = iou - (area_c - union) / area_c.clamp(min=1e-16)
    return 1 - giou.clamp(min=-1.0, max=1.0)
