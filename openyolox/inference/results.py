"""The one result type of a prediction (:class:`Detections`) and the one COCO writer.

Every prediction path (``Detector.predict``, ``openyolox val``, the trainer's evaluation,
tracking) produces :class:`Detections`: per image ``boxes (N, 4) xyxy`` in original image
pixels, ``scores (N,)`` = obj * class prob, ``classes (N,)`` contiguous class indices, and
the class names. COCO results rows come from :func:`coco_rows` only, numbers written as they
are: rounding scores creates ties and rounding boxes moves IoUs, and either can change AP.

What a result offers: ``len``, iteration over :class:`Detection` records, indexing (an int
gives one record; a slice, mask or index array a new Detections), ``filter`` (class names or
ids, score, area) and ``top(k)``; ``plot``/``save`` (the annotated image), ``save_txt`` (YOLO
labels), ``save_crops``, ``to_json``, ``to_coco``, ``to_pandas``.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from openyolox.atomic import write_text_atomic
from openyolox.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES
from openyolox.data.records import ImageId
from openyolox.errors import ConfigError, DataError
from openyolox.typing import PathLike


class Detection(NamedTuple):
    """One detected object: ``box`` (4,) xyxy in original image pixels, ``score``, class index
    ``class_id`` and class ``name``."""

    box: np.ndarray
    score: float
    class_id: int
    name: str


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
        return [_name(self.names, c) for c in self.classes]

    # ------------------------------------------------------------------ objects and subsets

    def __iter__(self) -> Iterator[Detection]:
        for box, score, cls in zip(self.boxes, self.scores.tolist(), self.classes.tolist()):
            yield Detection(box, score, cls, _name(self.names, cls))

    def __getitem__(self, index: Any) -> Union[Detection, "Detections"]:
        """An int: that object's :class:`Detection`; a slice, bool mask (N,) or index array:
        a new Detections of those objects (same image, names and id)."""
        if isinstance(index, (int, np.integer)):
            cls = int(self.classes[index])
            return Detection(self.boxes[index], float(self.scores[index]), cls, _name(self.names, cls))
        return dataclasses.replace(self, boxes=self.boxes[index], scores=self.scores[index],
                                   classes=self.classes[index])

    def filter(self, classes: Optional[Sequence[Union[int, str]]] = None, min_score: Optional[float] = None,
               min_area: Optional[float] = None, max_area: Optional[float] = None) -> "Detections":
        """The objects of the given classes (names or indices; ConfigError for an unknown one)
        with score >= min_score and box area (px^2) in [min_area, max_area], as a new Detections."""
        keep = np.ones(len(self), dtype=bool)
        wanted = class_indices(classes, self.names)
        if wanted is not None:
            keep &= np.isin(self.classes, wanted)
        if min_score is not None:
            keep &= self.scores >= min_score
        if min_area is not None or max_area is not None:
            area = self.areas()
            keep &= (area >= (min_area if min_area is not None else -np.inf)) & \
                (area <= (max_area if max_area is not None else np.inf))
        return self[keep]

    def top(self, k: int) -> "Detections":
        """The ``k`` highest-scoring objects (all when k <= 0 or there are fewer), by score."""
        if k <= 0 or k >= len(self):
            return self[np.arange(len(self))]
        return self[np.argsort(-self.scores, kind="stable")[:k]]

    def areas(self) -> np.ndarray:
        """(N,) box areas in px^2 (0 for an inverted box)."""
        wh = (self.boxes[:, 2:] - self.boxes[:, :2]).clip(0)
        return wh[:, 0] * wh[:, 1]

    # ------------------------------------------------------------------ pictures and files

    def plot(self, line_width: Optional[int] = None, labels: bool = True, scores: bool = True,
             image: Optional[np.ndarray] = None) -> np.ndarray:
        """The image (H, W, 3) BGR uint8 with boxes and "name score" labels drawn, a new array.
        Any box draws or is skipped (NaN), none raises. ``image``: draw on this one instead of
        the kept image (evaluation results keep none)."""
        from openyolox.inference.visualize import draw_detections

        return draw_detections(self._image(image), self.boxes, self.scores, self.classes, self.names,
                               line_width=line_width, labels=labels, show_scores=scores)

    def save(self, path: PathLike, **plot_options: Any) -> Path:
        """Write :meth:`plot` to ``path`` (format by suffix: .jpg, .png, ...); returns it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _imwrite(path, self.plot(**plot_options))
        return path

    def save_txt(self, path: PathLike, scores: bool = False) -> Path:
        """YOLO label lines "class cx cy w h" (boxes clipped to the image, normalised by its
        width and height; "... score" with ``scores``), one per object; an empty file when
        there is none (the image was processed). Returns the path."""
        h, w = self.image_shape
        if not (h > 0 and w > 0):
            raise DataError(f"{self.image_id}: the image size is unknown; YOLO labels are relative to it")
        boxes = self.boxes.astype(np.float64).copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        cxcywh = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2 / w, (boxes[:, 1] + boxes[:, 3]) / 2 / h,
                           (boxes[:, 2] - boxes[:, 0]) / w, (boxes[:, 3] - boxes[:, 1]) / h], axis=1)
        lines = []
        for cls, row, score in zip(self.classes.tolist(), cxcywh, self.scores.tolist()):
            values = " ".join(f"{v:.6f}" for v in row)
            lines.append(f"{cls} {values} {score:.6f}" if scores else f"{cls} {values}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_text_atomic(path, "".join(line + "\n" for line in lines))

    def save_crops(self, folder: PathLike, stem: Optional[str] = None) -> List[Path]:
        """Each object's pixels (its box clipped to the image, whole pixels) as
        ``folder/<class name>/<stem>_<k>.jpg``, k its index here; ``stem`` defaults to the
        image id. Boxes with no pixel inside the image are skipped. Returns the paths written."""
        image = self._image(None)
        h, w = image.shape[:2]
        stem = str(self.image_id) if stem is None else stem
        written = []
        for k, (box, cls) in enumerate(zip(self.boxes, self.classes.tolist())):
            if not np.isfinite(box).all():
                continue
            x0, y0 = (int(np.floor(np.clip(v, 0, lim))) for v, lim in ((box[0], w), (box[1], h)))
            x1, y1 = (int(np.ceil(np.clip(v, 0, lim))) for v, lim in ((box[2], w), (box[3], h)))
            if x1 <= x0 or y1 <= y0:
                continue
            path = Path(folder) / _safe_name(_name(self.names, cls)) / f"{stem}_{k}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            _imwrite(path, image[y0:y1, x0:x1])
            written.append(path)
        return written

    # ------------------------------------------------------------------ data

    def to_json(self, indent: Optional[int] = None) -> str:
        """JSON list of objects: {"name", "class", "score", "box": {"x1", "y1", "x2", "y2"}},
        box in original image pixels."""
        return json.dumps([{"name": d.name, "class": d.class_id, "score": d.score,
                            "box": dict(zip(("x1", "y1", "x2", "y2"), map(float, d.box)))} for d in self],
                          indent=indent)

    def to_pandas(self):
        """A pandas DataFrame, one row per object: x1, y1, x2, y2, score, class, name."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Detections.to_pandas needs pandas: pip install pandas") from None
        return pd.DataFrame({"x1": self.boxes[:, 0], "y1": self.boxes[:, 1], "x2": self.boxes[:, 2],
                             "y2": self.boxes[:, 3], "score": self.scores, "class": self.classes,
                             "name": self.labels()})

    def _image(self, image: Optional[np.ndarray]) -> np.ndarray:
        image = self.image if image is None else image
        if image is None:
            raise DataError(f"{self.image_id}: these detections keep no image (evaluation drops them); "
                            f"pass image=")
        return image

    def to_coco(self, category_ids: Optional[Sequence[int]] = None) -> List[dict]:
        """COCO results rows (image_id, category_id, bbox [x, y, w, h], score); category ids
        default to COCO's for the 80 COCO classes, else the class index."""
        ids = category_ids if category_ids is not None else default_category_ids(self.names)
        return coco_rows(self, self.image_id, ids)


def _name(names: Sequence[str], cls: int) -> str:
    return names[int(cls)] if 0 <= int(cls) < len(names) else str(int(cls))


def _safe_name(name: str) -> str:
    """A class name usable as one folder name on any system."""
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name).strip(" .") or "_"


def _imwrite(path: Path, image: np.ndarray) -> None:
    import cv2

    try:
        ok = cv2.imwrite(str(path), image)
    except cv2.error:  # no encoder for the suffix
        ok = False
    if not ok:
        raise DataError(f"{path}: cannot write the image (an unknown suffix, or the folder is not writable)")


def class_indices(classes: Optional[Sequence[Union[int, str]]], names: Sequence[str]) -> Optional[np.ndarray]:
    """Class indices from class names or ids (digit strings count as ids) -> sorted int64
    array, or None for None/empty (all classes). ConfigError for an unknown name or an id out
    of range, listing the classes."""
    if classes is None or len(classes) == 0:
        return None
    keep: List[int] = []
    for c in classes:
        if isinstance(c, str) and not c.isdigit():
            if c not in names:
                raise ConfigError(f"unknown class '{c}'; the model's classes are: {', '.join(names[:20])}"
                                  f"{' ...' if len(names) > 20 else ''}")
            keep.append(list(names).index(c))
        else:
            k = int(c)
            if not 0 <= k < len(names):
                raise ConfigError(f"class id {k} is outside 0..{len(names) - 1}")
            keep.append(k)
    return np.asarray(sorted(set(keep)), dtype=np.int64)


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
