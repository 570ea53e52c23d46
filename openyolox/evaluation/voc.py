"""PASCAL VOC detection metric: per-class AP and mAP at one IoU threshold (0.5).

Two definitions of AP over the same precision/recall curve (docs/yolox.md section 8):
  - "11point": VOC2007, mean over recall r in {0, 0.1, ..., 1} of max precision at recall >= r
  - "area":    VOC2010+, area under the precision envelope (all recall points)

Matching follows the VOC devkit (VOCevaldet.m): detections of a class in descending score
order; each takes the ground truth of its image and class with the highest IoU, taken or
not; IoU >= threshold and that GT not yet taken -> TP (the GT is taken); the GT already
taken, or IoU too low -> FP; the GT "difficult" -> the detection is ignored (neither).
``iscrowd`` records play the role of difficult. Difficult GTs do not count in recall.

IoU is computed on continuous xyxy pixel boxes (no "+1" pixel-inclusive widths): records
store boxes that way for every format. With every detection's best GT known up front, the
greedy pass reduces to "the first qualifying detection per GT wins", so a class is scored
with a few numpy calls and no per-detection Python loop.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from openyolox.data.records import DatasetSplit
from openyolox.evaluation.results import Predictions, as_prediction, check_image_ids, predictions_from_coco_results

# Detections x padded-GT IoU blocks are computed in chunks of this many detections.
_CHUNK = 65536


def voc_ap_11point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007 AP: mean over r in {0, .1, ..., 1} of max(precision[recall >= r]) (0 if none).

    recall, precision: (D,) curves in detection rank order. Thresholds are i/10 (not
    arange(0, 1.1, .1), whose 0.30000000000000004 would miss a recall of exactly 3/10).
    """
    ap = 0.0
    for t in np.arange(11) / 10:
        reached = precision[recall >= t]
        ap += float(reached.max()) if reached.size else 0.0
    return ap / 11


def voc_ap_area(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+ AP: area under the monotone (right-to-left max) precision envelope.

    recall, precision: (D,) curves in detection rank order.
    """
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _pairwise_iou_padded(det: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """det: (D, 4) xyxy, gt: (D, G, 4) xyxy (each detection's own candidate GTs) -> (D, G)."""
    lt = np.maximum(det[:, None, :2], gt[:, :, :2])
    rb = np.minimum(det[:, None, 2:], gt[:, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_d = np.clip(det[:, 2:] - det[:, :2], 0, None).prod(-1)
    area_g = np.clip(gt[:, :, 2:] - gt[:, :, :2], 0, None).prod(-1)
    union = area_d[:, None] + area_g - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def match_class(det_img: np.ndarray, det_box: np.ndarray, det_score: np.ndarray,
                gt_img: np.ndarray, gt_box: np.ndarray, gt_difficult: np.ndarray,
                iou_threshold: float = 0.5) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """VOC matching for one class.

    det_img (D,) image index, det_box (D, 4) xyxy, det_score (D,);
    gt_img (G,) image index, gt_box (G, 4) xyxy, gt_difficult (G,) bool.
    Returns (order (D,) detection indices by descending score, tp (D,) bool, fp (D,) bool)
    in that order; a detection ignored because of a difficult GT is neither.
    """
    order = np.argsort(-det_score, kind="stable")
    d_img, d_box = det_img[order], det_box[order]
    D = len(order)
    best_iou = np.full(D, -1.0)
    best_gt = np.full(D, -1, dtype=np.int64)
    if len(gt_img) and D:
        # Pad GTs per image: slot[j] is GT j's position among its image's GTs.
        g_sort = np.argsort(gt_img, kind="stable")
        images, first, counts = np.unique(gt_img[g_sort], return_index=True, return_counts=True)
        slot = np.arange(len(g_sort)) - np.repeat(first, counts)
        padded_idx = np.full((len(images), counts.max()), -1, dtype=np.int64)
        padded_idx[np.repeat(np.arange(len(images)), counts), slot] = g_sort
        row = np.searchsorted(images, d_img)
        has_gt = (row < len(images)) & (images[np.minimum(row, len(images) - 1)] == d_img)
        for s in range(0, D, _CHUNK):
            sel = np.flatnonzero(has_gt[s:s + _CHUNK]) + s
            cand = padded_idx[row[sel]]                      # (d, Gmax) global GT index or -1
            iou = _pairwise_iou_padded(d_box[sel], gt_box[np.maximum(cand, 0)])
            iou[cand < 0] = -1.0
            j = iou.argmax(1)                                # first max, like the devkit
            best_iou[sel] = iou[np.arange(len(sel)), j]
            best_gt[sel] = cand[np.arange(len(sel)), j]
    hit = best_iou >= iou_threshold
    ignored = hit & gt_difficult[np.maximum(best_gt, 0)] if len(gt_img) else np.zeros(D, bool)
    candidate = np.flatnonzero(hit & ~ignored)
    # The first (highest-scoring) candidate of each GT takes it; later ones are duplicates.
    _, first_of_gt = np.unique(best_gt[candidate], return_index=True)
    tp = np.zeros(D, dtype=bool)
    tp[candidate[first_of_gt]] = True
    fp = ~tp & ~ignored
    return order, tp, fp


def evaluate_voc(split: DatasetSplit, predictions: Union[Predictions, Sequence[dict]],
                 iou_threshold: float = 0.5) -> dict:
    """VOC AP per class and mAP, 11-point (VOC2007) and area (VOC2010+) definitions.

    predictions: ``image_id -> (boxes (N,4) xyxy pixels, scores (N,), classes (N,) contiguous)``
                 or a COCO results list (see results.py).
    Returns {"mAP_area", "mAP_11point": mean over classes with GT (None if none),
    "per_class": [{"class", "name", "num_gt" (non-difficult), "num_difficult",
    "num_detections", "AP_area", "AP_11point" (None when num_gt == 0: "no GT")}],
    "iou_threshold", "class_names"}.
    """
    if not isinstance(predictions, dict) and isinstance(predictions, (list, tuple)):
        predictions = predictions_from_coco_results(split, predictions)
    check_image_ids(split, predictions.keys(), "evaluate_voc")
    index = {r.image_id: i for i, r in enumerate(split.records)}

    gt_img = np.concatenate([np.full(len(r.classes), i) for i, r in enumerate(split.records)] + [np.zeros(0, int)])
    gt_cls = np.concatenate([r.classes for r in split.records] + [np.zeros(0, np.int64)])
    gt_box = np.concatenate([r.boxes for r in split.records] + [np.zeros((0, 4), np.float32)]).astype(np.float64)
    gt_diff = np.concatenate([r.iscrowd for r in split.records] + [np.zeros(0, bool)])

    preds = [(index[k], as_prediction(p, k, split.num_classes)) for k, p in predictions.items()]
    det_img = np.concatenate([np.full(len(p.scores), i) for i, p in preds] + [np.zeros(0, int)])
    det_cls = np.concatenate([p.classes for _, p in preds] + [np.zeros(0, np.int64)])
    det_box = np.concatenate([p.boxes for _, p in preds] + [np.zeros((0, 4))])
    det_score = np.concatenate([p.scores for _, p in preds] + [np.zeros(0)])

    per_class: List[Dict] = []
    for c, name in enumerate(split.class_names):
        g, d = gt_cls == c, det_cls == c
        npos = int((~gt_diff[g]).sum())
        row = {"class": c, "name": name, "num_gt": npos, "num_difficult": int(gt_diff[g].sum()),
               "num_detections": int(d.sum()), "AP_area": None, "AP_11point": None}
        if npos:
            _, tp, fp = match_class(det_img[d], det_box[d], det_score[d], gt_img[g], gt_box[g], gt_diff[g],
                                    iou_threshold)
            tp_cum, fp_cum = np.cumsum(tp), np.cumsum(fp)
            recall = tp_cum / npos
            precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
            row["AP_area"] = voc_ap_area(recall, precision)
            row["AP_11point"] = voc_ap_11point(recall, precision)
        per_class.append(row)

    def mean(key: str) -> Optional[float]:
        vals = [r[key] for r in per_class if r[key] is not None]
        return float(np.mean(vals)) if vals else None

    return {"mAP_area": mean("AP_area"), "mAP_11point": mean("AP_11point"), "per_class": per_class,
            "iou_threshold": iou_threshold, "class_names": list(split.class_names)}


def format_voc_table(metrics: dict) -> str:
    """Per-class VOC AP (both definitions) and the mAP line; "no GT" where undefined."""
    rows = metrics["per_class"]
    width = max([len("class"), len("mAP")] + [len(r["name"]) for r in rows])
    fmt = lambda v: f"{v:.4f}" if v is not None else "no GT"  # noqa: E731
    out = [f"{'class':<{width}}  {'GT':>6}  {'AP area':>8}  {'AP 11pt':>8}"]
    for r in rows:
        out.append(f"{r['name']:<{width}}  {r['num_gt']:>6}  {fmt(r['AP_area']):>8}  {fmt(r['AP_11point']):>8}")
    fmt_m = lambda v: f"{v:.4f}" if v is not None else "n/a"  # noqa: E731
    out.append(f"{'mAP':<{width}}  {'':>6}  {fmt_m(metrics['mAP_area']):>8}  {fmt_m(metrics['mAP_11point']):>8}")
    return "\n".join(out)
