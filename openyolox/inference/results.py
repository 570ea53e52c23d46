"""The one result type of a prediction (:class:`Detections`) and the one COCO writer.

Every prediction path (``Detector.predict``, ``openyolox val``, the trainer's evaluation,
tracking) produces :class:`Detections`: per image ``boxes (N, 4) xyxy`` in original image
pixels, ``scores (N,)`` = obj * class prob, ``classes (N,)`` contiguous class indices, and
the class names. COCO results rows come from :func:`coco_rows` only, numbers written as they
are: rounding scores creates ties and rounding boxes moves IoUs, and either can change AP.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from openyolox.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES
from openyolox.data.records import ImageId


@dataclass
class Detections:
    """Detections of one image, in original image pixels.

    boxes: (N, 4) xyxy; scores: (N,) obj * class prob; classes: (N,) contiguous class index;
    names: the class names (names[classes[i]]); image_shape: original (h, w); image: the
    original BGR image (kept by ``Detector.predict``/``stream``, not by evaluation).
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    names: Sequence[str] = ()
    image_id: ImageId = ""
    image_shape: Tuple[int, int] = (0, 0)
    image: Optional[np.ndarray] = field(default=None, repr=False)   # the BGR image, when kept

    def __post_init__(self) -> None:
        # float precision as given (float32 from the model; float64 stays float64, so a user's
        # predictions score exactly as they are)
        self.boxes = _as_float(self.boxes).reshape(-1, 4)
        self.scores = _as_float(self.scores).reshape(-1)
        self.classes = np.asarray(self.classes).reshape(-1).astype(np.int64)

    def __len__(self) -> int:
        return len(self.scores)

    def labels(self) -> List[str]:
        return [self.names[int(c)] if int(c) < len(self.names) else str(int(c)) for c in self.classes]

    def to_coco(self, category_ids: Optional[Sequence[int]] = None) -> List[dict]:
        """COCO results rows (image_id, category_id, bbox [x, y, w, h], score); category ids
        default to COCO's for the 80 COCO classes, else the class index."""
        ids = category_ids if category_ids is not None else default_category_ids(self.names)
        return coco_rows(self, self.image_id, ids)


def _as_float(values) -> np.ndarray:
    array = np.asarray(values)
    return array if array.dtype.kind == "f" else array.astype(np.float32)


def coco_rows(dets: Detections, image_id: ImageId, category_ids: Sequence[int]) -> List[Dict[str, Any]]:
    """The COCO results rows of one image's detections: ``bbox`` [x, y, w, h] computed in
    float64 from the xyxy boxes, ``category_id`` = category_ids[class], numbers not rounded.
    numpy ids become plain ints (JSON)."""
    if isinstance(image_id, np.generic):
        image_id = image_id.item()
    boxes = dets.boxes.astype(np.float64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).tolist()
    cats = np.asarray(category_ids, dtype=np.int64)[dets.classes].tolist()
    return [{"image_id": image_id, "category_id": c, "bbox": b, "score": s}
            for b, s, c in zip(xywh, dets.scores.astype(np.float64).tolist(), cats)]


def default_names(num_classes: int) -> List[str]:
    return list(COCO_CLASSES) if num_classes == 80 else [f"class{i}" for i in range(num_classes)]


def default_category_ids(names: Sequence[str]) -> List[int]:
    return list(COCO_CATEGORY_IDS) if tuple(names) == COCO_CLASSES else list(range(len(names)))


DetectionsLike = Union[Detections, Tuple[np.ndarray, np.ndarray, np.ndarray]]
