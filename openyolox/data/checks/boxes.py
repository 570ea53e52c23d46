"""Every box of a split in flat arrays, checked in one vectorised pass: what is wrong with
each box (:func:`box_codes`), repeated boxes, and the size statistics of a report."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Tuple

import numpy as np

from openyolox.data.checks.report import COCO_AREA_EDGES, SIZE_BUCKETS, SIZE_EDGES, CheckReport, Issue, make_issue
from openyolox.data.records import ImageRecord

# per-box problem codes of box_codes, in increasing precedence
BOX_KINDS = ("", "box-outside", "box-no-area", "class-out-of-range", "box-not-finite")


@dataclass
class Gathered:
    """All boxes of a list of records in flat arrays (one row per box)."""

    boxes: np.ndarray    # (M, 4) float32 xyxy px
    classes: np.ndarray  # (M,) int64
    owner: np.ndarray    # (M,) index of the record
    local: np.ndarray    # (M,) index of the box in its record
    width: np.ndarray    # (M,) float64 annotation width of the owner
    height: np.ndarray   # (M,) float64
    counts: np.ndarray   # (R,) boxes per record


def gather(records: Sequence[ImageRecord]) -> Gathered:
    n = len(records)
    counts = np.fromiter((len(r.classes) for r in records), np.int64, n)
    total = int(counts.sum())
    boxes = np.concatenate([r.boxes for r in records]) if total else np.zeros((0, 4), np.float32)
    classes = np.concatenate([r.classes for r in records]) if total else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(n), counts)
    local = np.arange(total) - (np.cumsum(counts) - counts)[owner]
    sizes = np.fromiter((v for r in records for v in (r.width, r.height)), np.float64, 2 * n).reshape(n, 2)
    return Gathered(boxes.astype(np.float32, copy=False).reshape(-1, 4), classes, owner, local,
                     sizes[owner, 0], sizes[owner, 1], counts)


def box_codes(g: Gathered, num_classes: int, tolerance: float) -> Tuple[np.ndarray, np.ndarray]:
    """-> (codes (M,) int8 into BOX_KINDS, 0 = fine; overhang (M, 4) px left/top/right/bottom)."""
    b = g.boxes.astype(np.float64)
    codes = np.zeros(len(b), np.int8)
    with np.errstate(invalid="ignore"):
        over = np.stack([-b[:, 0], -b[:, 1], b[:, 2] - g.width, b[:, 3] - g.height], 1)
        known = (g.width > 0) & (g.height > 0)
        codes[known & (over.max(1, initial=-np.inf) > tolerance)] = 1
        codes[(b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])] = 2
    codes[(g.classes < 0) | (g.classes >= num_classes)] = 3
    codes[~np.isfinite(b).all(1)] = 4
    return codes, over


def duplicate_boxes(g: Gathered, candidates: np.ndarray) -> np.ndarray:
    """(M,) bool: the box repeats an earlier box (same coordinates and class) of its image.

    Rows are sorted by (image, a 64-bit hash of box and class); rows that hash alike are then
    compared exactly, so a hash collision can never make two different boxes "duplicates"."""
    dup = np.zeros(len(g.boxes), bool)
    idx = np.flatnonzero(candidates)
    if len(idx) < 2:
        return dup
    boxes = g.boxes[idx] + np.float32(0.0)  # -0.0 -> 0.0, so equal values have equal bits
    bits = boxes.view(np.uint32).astype(np.uint64)
    mix = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63],
                   np.uint64)
    with np.errstate(over="ignore"):
        key = (bits * mix).sum(1) ^ (g.classes[idx].astype(np.uint64) * np.uint64(0x27D4EB2F165667C5))
    owner = g.owner[idx]
    order = np.lexsort((key, owner))  # stable: equal rows keep their original order
    a, b = order[:-1], order[1:]
    same = (owner[a] == owner[b]) & (key[a] == key[b])
    same[same] = (boxes[a[same]] == boxes[b[same]]).all(1) & (g.classes[idx[a[same]]] == g.classes[idx[b[same]]])
    dup[idx[b[same]]] = True
    return dup


def apply_box_mask(records: Sequence[ImageRecord], g: Gathered, keep: np.ndarray) -> List[ImageRecord]:
    """Records with only the boxes ``keep`` marks (boxes taken from ``g``, which may be edited)."""
    out = []
    starts = np.cumsum(g.counts) - g.counts
    for i, rec in enumerate(records):
        s, n = int(starts[i]), int(g.counts[i])
        k = keep[s:s + n]
        boxes = g.boxes[s:s + n]
        if k.all() and np.array_equal(boxes, rec.boxes, equal_nan=True):
            out.append(rec)
        else:
            out.append(replace(rec, boxes=boxes[k], classes=rec.classes[k], iscrowd=rec.iscrowd[k]))
    return out


def box_issue(records: Sequence[ImageRecord], g: Gathered, j: int, code: int, over: np.ndarray,
               class_names: Optional[Sequence[str]]) -> Issue:
    rec_index = int(g.owner[j])
    rec = records[rec_index]
    box, cls, k = g.boxes[j], int(g.classes[j]), int(g.local[j]) + 1
    kind = BOX_KINDS[code]
    what = f"box #{k}" if class_names is None else f"box #{k} ({class_name(class_names, cls)})"
    if kind == "box-not-finite":
        detail = f"{what} has non-finite coordinates {box.tolist()}"
    elif kind == "class-out-of-range":
        n = len(class_names) if class_names is not None else None
        detail = (f"box #{k} has class {cls}; the class list has {n} classes (0..{n - 1})" if n is not None
                  else f"box #{k} has class {cls}, outside the class list")
    elif kind == "box-no-area":
        w, h = float(box[2] - box[0]), float(box[3] - box[1])
        detail = f"{what} {fmt_box(box)} has zero or negative width/height ({w:g} x {h:g} px)"
    else:
        sides = ", ".join(f"{side} {v:.1f} px" for side, v in zip(("left", "top", "right", "bottom"), over)
                          if v > 0)
        detail = (f"{what} {fmt_box(box)} extends {float(over.max()):.1f} px outside the "
                  f"{rec.width}x{rec.height} image ({sides})")
    return make_issue(rec.path, kind, detail, rec.image_id, rec_index)


def add_statistics(report: CheckReport, g: Gathered, num_classes: int) -> None:
    report.boxes = len(g.boxes)
    valid_class = (g.classes >= 0) & (g.classes < num_classes)
    report.boxes_per_class = np.bincount(g.classes[valid_class], minlength=num_classes).tolist()
    b = g.boxes.astype(np.float64)
    with np.errstate(invalid="ignore"):
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        ok = np.isfinite(b).all(1) & (w > 0) & (h > 0)
    area = (w * h)[ok]
    buckets = np.searchsorted(SIZE_EDGES, np.sqrt(area), side="right")
    report.size_histogram = dict(zip(SIZE_BUCKETS, np.bincount(buckets, minlength=len(SIZE_BUCKETS)).tolist()))
    ranges = np.searchsorted(COCO_AREA_EDGES, area, side="right")
    report.coco_area = dict(zip(("small", "medium", "large"), np.bincount(ranges, minlength=3).tolist()))


def fmt_box(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{float(v):.1f}" for v in box) + "]"


def class_name(class_names: Sequence[str], cls: int) -> str:
    return class_names[cls] if 0 <= cls < len(class_names) else str(cls)
