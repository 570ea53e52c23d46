"""The one record format every dataset reader produces.

COCO json, VOC xml, YOLO txt and the built-in synthetic set are all turned into a
:class:`DatasetSplit`: a list of :class:`ImageRecord` plus the class list. Everything
downstream (augmentation, training, evaluation, check-data) reads only this.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Union

import numpy as np

ImageId = Union[int, str]


@dataclass
class ImageRecord:
    """One image and its ground truth.

    boxes:   (N, 4) float32 xyxy in original image pixels
    classes: (N,) int64 contiguous class index in 0..num_classes-1
    iscrowd: (N,) bool, COCO crowd regions (ignored by training, honoured by COCO eval)
    """

    path: Path
    image_id: ImageId
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    classes: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    iscrowd: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        if self.iscrowd is None:
            self.iscrowd = np.zeros(len(self.classes), dtype=bool)
        else:
            self.iscrowd = np.asarray(self.iscrowd, dtype=bool).reshape(-1)


@dataclass
class DatasetSplit:
    """A split (train or val) of a detection dataset.

    class_names[i] is the name of contiguous class i; category_ids[i] is the id the
    dataset itself uses for it (COCO category id; 0..C-1 for VOC/YOLO/builtin), used when
    writing COCO-format results.
    """

    records: List[ImageRecord]
    class_names: List[str]
    category_ids: List[int]
    name: str = ""          # e.g. "val2017" or "builtin/val"
    root: Optional[Path] = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.records)
