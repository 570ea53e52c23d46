"""From decoded head outputs to detections: score filter and NMS (in input pixels; the way
back to the image is openyolox.data.transforms.scale_boxes).

`postprocess` reproduces the reference YOLOX `postprocess` row for row (same boxes, same order),
which is what COCO evaluation and the demo see.
"""
from __future__ import annotations

from typing import List

import torch

from openyolox.ops.boxes import cxcywh_to_xyxy
from openyolox.ops.nms import batched_nms, nms


def postprocess(prediction: torch.Tensor, conf: float = 0.25, iou: float = 0.45,
                class_agnostic: bool = False) -> List[torch.Tensor]:
    """Score filter and NMS per image.

    prediction: (B, A, 5 + C) decoded: cx, cy, w, h (input pixels), obj prob, C class probs.
    Returns B tensors (N, 7) with rows (x1, y1, x2, y2, obj, class_conf, class), xyxy in input
    pixels, by decreasing score = obj * class_conf. class_conf / class are the max / argmax over
    class probs; rows with score >= conf enter NMS (IoU > iou suppresses),
    per class unless class_agnostic. An image with no detection gives a (0, 7) tensor. Rows
    with a non-finite box or score are dropped, so every returned number is finite.

    Probabilities are assumed (as the head produces): class_conf <= 1, so score >= threshold
    implies obj >= threshold, and rows failing that cheap test are dropped before the max over
    classes. Same rows either way for probabilities; several times faster at low thresholds.
    """
    return [_detect_one(pred, conf, iou, class_agnostic) for pred in prediction]


def _detect_one(pred: torch.Tensor, conf: float, iou: float,
                class_agnostic: bool) -> torch.Tensor:
    """pred: (A, 5 + C) decoded outputs of one image -> (N, 7) detections, see postprocess."""
    rows = pred.index_select(0, torch.nonzero(pred[:, 4] >= conf).squeeze(1))
    class_conf, class_pred = rows[:, 5:].max(1)
    scores = rows[:, 4] * class_conf
    # a score or box that is not finite (exp overflow in an untrained or broken model) is no
    # detection: dropped here, so nothing downstream ever sees one
    finite = torch.isfinite(rows[:, :4]).all(1) & scores.isfinite()
    passed = torch.nonzero((scores >= conf) & finite).squeeze(1)
    rows, class_conf = rows.index_select(0, passed), class_conf.index_select(0, passed)
    class_pred = class_pred.index_select(0, passed)
    dets = torch.cat((cxcywh_to_xyxy(rows[:, :4]), rows[:, 4:5], class_conf[:, None],
                      class_pred[:, None].float()), dim=1)  # float class id, as the reference
    if class_agnostic:
        keep = nms(dets[:, :4], scores.index_select(0, passed), iou)
    else:
        keep = batched_nms(dets[:, :4], scores.index_select(0, passed), class_pred, iou)
    return dets.index_select(0, keep)
