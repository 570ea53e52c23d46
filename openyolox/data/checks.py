"""Dataset sanity checks run before training (and by `openyolox check-data`).

Each problem is a :class:`Issue` naming the file, the image and what is wrong. Training
stops on errors unless asked to skip bad samples, in which case the offending boxes (or
whole images, when the image itself is unusable) are dropped and counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import List, Tuple

import numpy as np

from openyolox.data.records import DatasetSplit, ImageRecord

# a box may overhang the image by this many pixels before it counts as outside
EDGE_TOLERANCE = 1.0


@dataclass
class Issue:
    path: str
    image_id: object
    kind: str        # "missing-image", "class-out-of-range", "box-no-area", "box-outside", "box-not-finite"
    detail: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail}"


@dataclass
class CheckReport:
    issues: List[Issue] = field(default_factory=list)
    images: int = 0
    boxes: int = 0

    @property
    def errors(self) -> List[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    def summary(self, limit: int = 10) -> str:
        lines = [str(i) for i in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"... and {len(self.errors) - limit} more")
        return "\n".join(lines)


def bad_box_mask(rec: ImageRecord, num_classes: int) -> Tuple[np.ndarray, List[Tuple[int, str, str]]]:
    """(N,) bool mask of unusable boxes of one record and (index, kind, detail) per problem."""
    problems: List[Tuple[int, str, str]] = []
    bad = np.zeros(len(rec.classes), dtype=bool)
    for j, (box, cls) in enumerate(zip(rec.boxes, rec.classes)):
        x1, y1, x2, y2 = (float(v) for v in box)
        if not np.isfinite(box).all():
            problems.append((j, "box-not-finite", f"box {j} has non-finite coordinates {box.tolist()}"))
        elif cls < 0 or cls >= num_classes:
            problems.append((j, "class-out-of-range", f"box {j} has class {int(cls)}, the class list has "
                                                      f"{num_classes} classes (0..{num_classes - 1})"))
        elif x2 <= x1 or y2 <= y1:
            problems.append((j, "box-no-area", f"box {j} {[round(v, 1) for v in box.tolist()]} has zero or "
                                               f"negative width/height"))
        elif rec.width > 0 and rec.height > 0:
            over = max(-x1, -y1, x2 - rec.width, y2 - rec.height)
            if over > EDGE_TOLERANCE:
                problems.append((j, "box-outside", f"box {j} {[round(v, 1) for v in box.tolist()]} extends "
                                                   f"{over:.1f} px outside the {rec.width}x{rec.height} image"))
    for j, _, _ in problems:
        bad[j] = True
    return bad, problems


def check_split(split: DatasetSplit) -> CheckReport:
    """Quick checks of a split: image files exist, boxes are finite, inside the image, have
    area, and their class is in the class list. No image is decoded here."""
    report = CheckReport(images=len(split))
    for rec in split.records:
        report.boxes += len(rec.classes)
        if not rec.path.is_file():
            report.issues.append(Issue(str(rec.path), rec.image_id, "missing-image", "image file not found"))
        _, problems = bad_box_mask(rec, split.num_classes)
        report.issues += [Issue(str(rec.path), rec.image_id, kind, detail) for _, kind, detail in problems]
    return report


def drop_bad_samples(split: DatasetSplit) -> Tuple[DatasetSplit, int, int]:
    """A copy of ``split`` without missing images and without unusable boxes.

    Returns (clean split, images dropped, boxes dropped)."""
    records, images_dropped, boxes_dropped = [], 0, 0
    for rec in split.records:
        if not rec.path.is_file():
            images_dropped += 1
            continue
        bad, _ = bad_box_mask(rec, split.num_classes)
        if bad.any():
            boxes_dropped += int(bad.sum())
            keep = ~bad
            rec = replace(rec, boxes=rec.boxes[keep], classes=rec.classes[keep], iscrowd=rec.iscrowd[keep])
        records.append(rec)
    return replace(split, records=records), images_dropped, boxes_dropped
