"""Slow reference for SimOTA and the YOLOX loss: one image at a time, one GT at a time.

This is the yardstick for `openyolox.training.simota` / `openyolox.training.loss`, not library
code. It follows docs/yolox.md sections 4 and 5 literally, in the order the reference YOLOX
computes things (per image: geometry prior -> candidates -> IoU and cost per GT -> dynamic k
-> top-k per GT -> conflicts -> targets), and deliberately shares no code with the batched
version: its own IoU, and the class cost as a plain BCE against an explicit one-hot target.
The benchmark (benchmarks/assign.py) times it as the "per-image loop" baseline.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CENTER_RADIUS = 1.5
IOU_COST_WEIGHT = 3.0
OUTSIDE_COST = 1e6
MAX_TOPK_IOUS = 10


def iou_one_to_many(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """box: (4,) cxcywh, boxes: (N, 4) cxcywh -> (N,) IoU (written the reference YOLOX way)."""
    top_left = torch.max(box[:2] - box[2:] / 2, boxes[:, :2] - boxes[:, 2:] / 2)
    bottom_right = torch.min(box[:2] + box[2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2)
    overlaps = (top_left < bottom_right).all(dim=1).float()
    intersection = (bottom_right - top_left).prod(dim=1) * overlaps
    return intersection / (box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - intersection)


def aligned_iou_loss(pred: torch.Tensor, target: torch.Tensor, iou_type: str) -> torch.Tensor:
    """pred, target: (P, 4) cxcywh -> (P,) IoU loss, 1 - IoU^2 or 1 - clamp(GIoU, -1, 1)."""
    top_left = torch.max(pred[:, :2] - pred[:, 2:] / 2, target[:, :2] - target[:, 2:] / 2)
    bottom_right = torch.min(pred[:, :2] + pred[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2)
    overlaps = (top_left < bottom_right).all(dim=1).float()
    intersection = (bottom_right - top_left).prod(dim=1) * overlaps
    union = pred[:, 2] * pred[:, 3] + target[:, 2] * target[:, 3] - intersection
    iou = intersection / (union + 1e-16)
    if iou_type == "iou":
        return 1 - iou**2
    enclose_tl = torch.min(pred[:, :2] - pred[:, 2:] / 2, target[:, :2] - target[:, 2:] / 2)
    enclose_br = torch.max(pred[:, :2] + pred[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2)
    enclose = (enclose_br - enclose_tl).prod(dim=1)
    giou = iou - (enclose - union) / enclose.clamp(min=1e-16)
    return 1 - giou.clamp(min=-1.0, max=1.0)


@torch.no_grad()
def assign_one_image(outputs, gt_boxes, gt_classes, grid_x, grid_y, strides):
    """SimOTA for one image.

    outputs: (A, 5+C) decoded cxcywh + obj logit + class logits; gt_boxes: (G, 4) cxcywh;
    gt_classes: (G,) -> fg (A,) bool, matched_gt (A,) int64 (-1 background), matched_iou (A,).
    """
    num_anchors = outputs.shape[0]
    num_gt = gt_boxes.shape[0]
    num_classes = outputs.shape[1] - 5
    anchor_x = (grid_x + 0.5) * strides
    anchor_y = (grid_y + 0.5) * strides
    radius = CENTER_RADIUS * strides

    # 1. Geometry prior, one GT at a time: (G, A)
    in_square = torch.zeros(num_gt, num_anchors, dtype=torch.bool)
    for g in range(num_gt):
        cx, cy = gt_boxes[g, 0], gt_boxes[g, 1]
        in_square[g] = (
            (anchor_x - (cx - radius) > 0)
            & ((cx + radius) - anchor_x > 0)
            & (anchor_y - (cy - radius) > 0)
            & ((cy + radius) - anchor_y > 0)
        )
    candidates = in_square.any(dim=0).nonzero()[:, 0]  # (N,)
    num_cand = candidates.numel()
    pred = outputs[candidates].float()  # (N, 5+C)

    # 2-3. IoU and cost, one GT at a time: (G, N)
    scores = (pred[:, 5:].sigmoid() * pred[:, 4:5].sigmoid()).sqrt()  # (N, C)
    ious = torch.zeros(num_gt, num_cand)
    costs = torch.zeros(num_gt, num_cand)
    for g in range(num_gt):
        ious[g] = iou_one_to_many(gt_boxes[g], pred[:, :4])
        one_hot = torch.zeros(num_cand, num_classes)
        one_hot[:, int(gt_classes[g])] = 1.0
        cls_cost = F.binary_cross_entropy(scores, one_hot, reduction="none").sum(dim=1)
        iou_cost = -torch.log(ious[g] + 1e-8)
        outside = (~in_square[g, candidates]).float()
        costs[g] = cls_cost + IOU_COST_WEIGHT * iou_cost + OUTSIDE_COST * outside

    # 4. Dynamic k and the k cheapest candidates, one GT at a time. The reference YOLOX uses
    #    topk, which leaves exact ties to the implementation; a stable sort sends them to the
    #    lower anchor index.
    matching = torch.zeros(num_gt, num_cand, dtype=torch.bool)
    for g in range(num_gt):
        top_ious = torch.topk(ious[g], min(MAX_TOPK_IOUS, num_cand)).values
        k = max(int(top_ious.sum()), 1)
        cheapest = torch.sort(costs[g], stable=True).indices[:k]
        matching[g, cheapest] = True

    # 5. An anchor chosen by several GTs goes to the GT of least cost (argmin: first on ties).
    for j in (matching.sum(dim=0) > 1).nonzero()[:, 0].tolist():
        best = int(torch.argmin(costs[:, j]))
        matching[:, j] = False
        matching[best, j] = True

    fg = torch.zeros(num_anchors, dtype=torch.bool)
    matched_gt = torch.full((num_anchors,), -1, dtype=torch.int64)
    matched_iou = torch.zeros(num_anchors)
    for j in matching.any(dim=0).nonzero()[:, 0].tolist():
        g = int(matching[:, j].nonzero()[0, 0])
        a = int(candidates[j])
        fg[a] = True
        matched_gt[a] = g
        matched_iou[a] = ious[g, j]
    return fg, matched_gt, matched_iou


@torch.no_grad()
def reference_assign(outputs, labels, grid_x, grid_y, strides):
    """Batch wrapper: labels (B, M, 5) with all-zero padding rows -> (B, A) fg, matched_gt, iou."""
    batch, num_anchors = outputs.shape[:2]
    fg = torch.zeros(batch, num_anchors, dtype=torch.bool)
    matched_gt = torch.full((batch, num_anchors), -1, dtype=torch.int64)
    matched_iou = torch.zeros(batch, num_anchors)
    for b in range(batch):
        rows = [m for m in range(labels.shape[1]) if bool((labels[b, m] != 0).any())]
        if not rows:
            continue
        assert rows == list(range(len(rows))), "padding rows must come after the real ones"
        gt = labels[b, : len(rows)].float()
        fg[b], matched_gt[b], matched_iou[b] = assign_one_image(
            outputs[b], gt[:, 1:5], gt[:, 0], grid_x, grid_y, strides
        )
    return fg, matched_gt, matched_iou


def reference_loss(outputs, raw_reg, labels, grid_x, grid_y, strides, use_l1, iou_type="iou"):
    """The YOLOX loss with per-image target building; same inputs and dict as `yolox_loss`."""
    batch = outputs.shape[0]
    num_classes = outputs.shape[2] - 5
    fg, matched_gt, matched_iou = reference_assign(outputs.detach(), labels, grid_x, grid_y, strides)
    num_gts = 0
    box_targets, cls_targets, l1_targets = [], [], []
    for b in range(batch):
        num_gts += sum(bool((labels[b, m] != 0).any()) for m in range(labels.shape[1]))
        anchors = fg[b].nonzero()[:, 0]
        gt = labels[b, matched_gt[b, anchors]].float()  # (P_b, 5)
        box_targets.append(gt[:, 1:5])
        one_hot = F.one_hot(gt[:, 0].long(), num_classes).float()
        cls_targets.append(one_hot * matched_iou[b, anchors, None])
        s = strides[anchors]
        l1_targets.append(
            torch.stack(
                (
                    gt[:, 1] / s - grid_x[anchors],
                    gt[:, 2] / s - grid_y[anchors],
                    torch.log(gt[:, 3] / s + 1e-8),
                    torch.log(gt[:, 4] / s + 1e-8),
                ),
                dim=1,
            )
        )
    box_targets = torch.cat(box_targets)
    cls_targets = torch.cat(cls_targets)
    l1_targets = torch.cat(l1_targets)
    num_pos = int(fg.sum())
    num_fg = max(num_pos, 1)

    out = outputs.float()
    loss_iou = aligned_iou_loss(out[..., :4][fg], box_targets, iou_type).sum() / num_fg
    loss_obj = F.binary_cross_entropy_with_logits(out[..., 4], fg.float(), reduction="none").sum() / num_fg
    loss_cls = F.binary_cross_entropy_with_logits(out[..., 5:][fg], cls_targets, reduction="none").sum() / num_fg
    if use_l1:
        loss_l1 = (raw_reg.float()[fg] - l1_targets).abs().sum() / num_fg
    else:
        loss_l1 = out.new_zeros(())
    total = 5.0 * loss_iou + loss_obj + loss_cls + loss_l1
    return {
        "total_loss": total,
        "iou_loss": 5.0 * loss_iou,
        "obj_loss": loss_obj,
        "cls_loss": loss_cls,
        "l1_loss": loss_l1,
        "num_fg": torch.tensor(num_pos / max(num_gts, 1)),
    }
