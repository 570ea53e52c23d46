"""Evaluation plots: precision-recall curves and a confusion matrix, as PNG files.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend
switch), so nothing ever opens a window and importing this module is safe on servers.

- ``pr_curve.png``: precision vs recall at IoU 0.5 per class and their mean (bold), read
  from the COCO evaluation's precision array, so the curves are exactly the ones AP50 is
  the area of (101 recall points, all areas, 100 detections per image).
- ``confusion_matrix.png``: which class each ground-truth box was detected as (rows: true
  class, normalised per row; columns: predicted class), with a background row (detections
  matching nothing: false positives) and column (GT nobody found: misses).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from openyolox.data.records import DatasetSplit
from openyolox.evaluation.results import Predictions, as_prediction, check_image_ids

MAX_LEGEND_CLASSES = 20


def _overlaps(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """a: (N, 4) xyxy, b: (M, 4) xyxy -> (IoU (N, M), intersection / area of b (N, M))."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
        ioa = np.where(area_b[None, :] > 0, inter / area_b[None, :], 0.0)
    return iou, ioa


def confusion_matrix(split: DatasetSplit, predictions: Predictions, iou: float = 0.5,
                     conf: float = 0.25) -> np.ndarray:
    """Counts (C+1, C+1): row = true class, column = predicted class, index C = background.

    predictions: ``image_id -> (boxes (N,4) xyxy pixels, scores (N,), classes (N,) contiguous)``.
    Per image, detections with score >= ``conf`` are matched one-to-one to non-crowd GT boxes
    of any class, greedily by descending IoU (>= ``iou``). A matched pair counts at
    [gt class, det class]; an unmatched GT at [gt class, C]; an unmatched detection at
    [C, det class]. Detections covering a crowd region (intersection / detection area >=
    ``iou``) are left out, as COCO eval ignores them.
    """
    check_image_ids(split, predictions.keys(), "confusion_matrix")
    C = split.num_classes
    matrix = np.zeros((C + 1, C + 1), dtype=np.int64)
    for rec in split.records:
        gt_box = rec.boxes[~rec.iscrowd].astype(np.float64)
        gt_cls = rec.classes[~rec.iscrowd]
        pred = predictions.get(rec.image_id)
        if pred is None:
            np.add.at(matrix, (gt_cls, C), 1)
            continue
        det = as_prediction(pred, rec.image_id, C)
        boxes, scores, classes = det.boxes, det.scores, det.classes
        keep = scores >= conf
        boxes, classes = boxes[keep], classes[keep]
        if rec.iscrowd.any() and len(boxes):
            _, ioa = _overlaps(rec.boxes[rec.iscrowd].astype(np.float64), boxes)
            on_crowd = (ioa >= iou).any(0)
            boxes, classes = boxes[~on_crowd], classes[~on_crowd]
        gt_used = np.zeros(len(gt_box), dtype=bool)
        det_used = np.zeros(len(boxes), dtype=bool)
        if len(gt_box) and len(boxes):
            ious, _ = _overlaps(gt_box, boxes)
            g_idx, d_idx = np.nonzero(ious >= iou)
            for k in np.argsort(-ious[g_idx, d_idx], kind="stable"):  # a few pairs per image
                g, d = g_idx[k], d_idx[k]
                if not gt_used[g] and not det_used[d]:
                    gt_used[g] = det_used[d] = True
                    matrix[gt_cls[g], classes[d]] += 1
        np.add.at(matrix, (gt_cls[~gt_used], C), 1)
        np.add.at(matrix, (C, classes[~det_used]), 1)
    return matrix


def _save(fig: Figure, path: Union[str, Path]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=150)
    return path


def plot_pr_curves(coco_metrics: dict, path: Union[str, Path]) -> Path:
    """Draw ``pr_curve.png`` from :func:`~openyolox.evaluation.coco.evaluate_coco` output.

    Curves: precision[T=IoU 0.5, R, K, A=all, M=100] vs the 101 recall thresholds, one thin
    line per class with GT and the mean over those classes in bold. Up to 20 classes get
    coloured lines and a legend entry with their AP50; with more, class lines are grey and
    only the mean is labelled (the per-class table has the numbers).
    """
    precision = coco_metrics["precision"][0, :, :, 0, -1]  # (R, K)
    recall = coco_metrics["recall_thresholds"]
    rows = coco_metrics["per_class"]
    with_gt = [r for r in rows if r["AP50"] is not None]
    many = len(with_gt) > MAX_LEGEND_CLASSES

    fig = Figure(figsize=(10, 6.5) if not many else (8, 6.5))
    ax = fig.add_subplot(1, 1, 1)
    cmap = _class_colors(len(with_gt))
    for i, r in enumerate(with_gt):
        label = None if many else f"{r['name']}  {r['AP50']:.3f}"
        ax.plot(recall, precision[:, r["class"]], lw=0.8 if many else 1.2,
                color="0.7" if many else cmap[i], alpha=0.8, label=label)
    if with_gt:
        mean = precision[:, [r["class"] for r in with_gt]].mean(1)
        ap50 = coco_metrics.get("AP50")
        ax.plot(recall, mean, lw=3, color="#0b3d91",
                label=f"all classes  {ap50:.3f}" if ap50 is not None else "all classes")
        if many:
            ax.plot([], [], lw=0.8, color="0.7", label=f"{len(with_gt)} classes, one line each")
    else:
        ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="Recall", ylabel="Precision",
           title="Precision-recall at IoU 0.5 (legend: AP50)")
    ax.grid(True, alpha=0.3)
    if with_gt:
        if many:
            ax.legend(loc="lower left", fontsize=9)
        else:
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def _class_colors(n: int) -> List:
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: Union[str, Path],
                          conf: float = 0.25, iou: float = 0.5) -> Path:
    """Draw ``confusion_matrix.png``: rows true class, columns predicted, each row
    normalised to sum 1 (rows without any box stay empty); cell values printed when
    there are at most 30 classes."""
    names = list(class_names) + ["background"]
    n = len(names)
    totals = matrix.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(totals > 0, matrix / np.maximum(totals, 1), np.nan)

    # ~0.16 in per cell past 20 classes keeps 80 COCO names legible at 6-7 pt.
    side = float(np.clip(0.16 * n + 4, 7, 18))
    font = float(np.clip(0.55 * 72 * (side - 3) / n, 5, 9))  # points, fits one cell
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.add_subplot(1, 1, 1)
    # A square-root colour scale makes the small off-diagonal confusions visible.
    im = ax.imshow(np.ma.masked_invalid(norm), cmap="Blues", norm=PowerNorm(gamma=0.5, vmin=0, vmax=1))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the row")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(names, rotation=90, fontsize=font)
    ax.set_yticklabels(names, fontsize=font)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(f"Confusion matrix (IoU >= {iou}, score >= {conf}); rows sum to 1\n"
                 "last column: missed GT, last row: false positives by predicted class")
    if n <= 31:
        for i in range(n):
            for j in range(n):
                v = norm[i, j]
                if np.isfinite(v) and v >= 0.005:
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=max(5, font - 1),
                            color="white" if v > 0.5 else "black")
    fig.tight_layout()
    return _save(fig, path)


def save_plots(split: DatasetSplit, predictions: Predictions, coco_metrics: dict,
               out_dir: Union[str, Path], iou: float = 0.5, conf: float = 0.25) -> Dict[str, Path]:
    """Write ``pr_curve.png`` and ``confusion_matrix.png`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    matrix = confusion_matrix(split, predictions, iou=iou, conf=conf)
    return {
        "pr_curve": plot_pr_curves(coco_metrics, out_dir / "pr_curve.png"),
        "confusion_matrix": plot_confusion_matrix(matrix, split.class_names, out_dir / "confusion_matrix.png",
                                                  conf=conf, iou=iou),
    }
