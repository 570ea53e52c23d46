"""The check results: one :class:`Issue` per problem, a :class:`CheckReport` per split, a
:class:`DatasetReport` per dataset; which kinds of problems exist and how severe each is
(documented in :mod:`openyolox.data.checks`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from openyolox.data.records import DatasetSplit

# a box may overhang the image by this many pixels before it counts as outside
EDGE_TOLERANCE = 1.0
# box size histogram: sqrt(box area) bucket edges in pixels
SIZE_EDGES = (16, 32, 64, 128, 256)
SIZE_BUCKETS = ("<16", "16-32", "32-64", "64-128", "128-256", ">=256")
# COCO's object size ranges by area: small < 32^2 <= medium < 96^2 <= large
COCO_AREA_EDGES = (32 ** 2, 96 ** 2)

KINDS: Dict[str, str] = {
    "load-failed": "error", "bad-annotation": "error", "missing-annotation": "error",
    "missing-image": "error", "unreadable-image": "error", "size-mismatch": "error",
    "box-not-finite": "error", "box-no-area": "error", "box-outside": "error",
    "class-out-of-range": "error", "unknown-class": "error", "unknown-category": "error",
    "unknown-image-id": "error", "duplicate-image-id": "error", "label-without-image": "error",
    "duplicate-box": "warning", "duplicate-image-file": "warning", "no-label-file": "warning",
    "image-without-annotation": "warning", "empty-split": "warning", "image-truncated-trailer": "warning",
}
# problems that make a whole image unusable (a cleaned copy leaves the image out)
IMAGE_KINDS = ("missing-image", "unreadable-image", "size-mismatch", "duplicate-image-id")


@dataclass
class Issue:
    path: str
    image_id: object
    kind: str        # a key of KINDS
    detail: str
    severity: str = "error"
    record: Optional[int] = field(default=None, repr=False, compare=False)  # index in split.records

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail}"

    def to_dict(self) -> dict:
        image_id = self.image_id if isinstance(self.image_id, (int, str, type(None))) else str(self.image_id)
        return {"path": self.path, "kind": self.kind, "severity": self.severity, "detail": self.detail,
                "image_id": int(image_id) if isinstance(image_id, np.integer) else image_id}


def make_issue(path: object, kind: str, detail: str, image_id: object = None,
               record: Optional[int] = None) -> Issue:
    """An Issue with the severity its kind has in KINDS."""
    return Issue(str(path), image_id, kind, detail, KINDS.get(kind, "error"), record)


@dataclass
class CheckReport:
    """The outcome of checking one split: issues plus summary statistics of its boxes."""

    issues: List[Issue] = field(default_factory=list)
    images: int = 0
    boxes: int = 0
    name: str = ""
    class_names: List[str] = field(default_factory=list)
    boxes_per_class: List[int] = field(default_factory=list)
    size_histogram: Dict[str, int] = field(default_factory=dict)   # sqrt(area) buckets, SIZE_BUCKETS
    coco_area: Dict[str, int] = field(default_factory=dict)        # small / medium / large
    full: bool = False                                             # images were decoded
    _seen: Dict[tuple, Issue] = field(default_factory=dict, repr=False, compare=False)

    @property
    def errors(self) -> List[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> List[Issue]:
        return [i for i in self.issues if i.severity != "error"]

    def add(self, issue: Issue) -> None:
        """Append an issue unless the same (path, kind, detail) is already there (a reader and
        a check may both see it; the record index is kept from whichever knows it)."""
        if len(self._seen) != len(self.issues):
            self._seen = {(i.path, i.kind, i.detail): i for i in self.issues}
        key = (issue.path, issue.kind, issue.detail)
        known = self._seen.get(key)
        if known is None:
            self._seen[key] = issue
            self.issues.append(issue)
        elif known.record is None:
            known.record, known.image_id = issue.record, issue.image_id

    def kind_counts(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for i in self.issues:
            counts[i.kind] = counts.get(i.kind, 0) + 1
        return counts

    def summary(self, limit: int = 10) -> str:
        lines = [str(i) for i in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"... and {len(self.errors) - limit} more")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"name": self.name, "images": self.images, "boxes": self.boxes, "full_check": self.full,
                "boxes_per_class": dict(zip(self.class_names, self.boxes_per_class)),
                "box_size_histogram": dict(self.size_histogram), "coco_area": dict(self.coco_area),
                "errors": len(self.errors), "warnings": len(self.warnings),
                "issues": [i.to_dict() for i in self.issues]}


@dataclass
class DatasetReport:
    """Check results of every split of one dataset (see :func:`check_dataset`)."""

    data: str
    layout: str
    splits: Dict[str, CheckReport] = field(default_factory=dict)
    loaded: Dict[str, DatasetSplit] = field(default_factory=dict, repr=False)  # for write_clean_copy

    @property
    def errors(self) -> List[Issue]:
        return [i for r in self.splits.values() for i in r.errors]

    @property
    def warnings(self) -> List[Issue]:
        return [i for r in self.splits.values() for i in r.warnings]

    def to_dict(self) -> dict:
        return {"data": self.data, "layout": self.layout, "clean": not self.errors,
                "errors": len(self.errors), "warnings": len(self.warnings),
                "kinds": KINDS, "splits": {k: r.to_dict() for k, r in self.splits.items()}}
