"""Predictions for a dataset split, and the COCO results-json format they travel in.

Inside openyolox a split's predictions are a dict ``image_id -> Detections``
(openyolox.inference.results: ``boxes (N, 4) xyxy original pixels``, ``scores (N,)``,
``classes (N,)`` contiguous class indices, the same index space as
:class:`~openyolox.data.records.ImageRecord`); a plain (boxes, scores, classes) triple is
accepted too. Outside, they are a COCO results list (``image_id``, ``category_id``, ``bbox``
xywh, ``score``), the format pycocotools, the COCO test server and most tools read, written
by the one COCO writer (openyolox.inference.results.coco_rows): numbers as they are, no
rounding, so a results file scores the same as the predictions it came from.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Union

import numpy as np

from openyolox.atomic import atomic_write
from openyolox.data.records import DatasetSplit, ImageId
from openyolox.errors import DataError
from openyolox.inference.results import Detections, DetectionsLike, coco_rows

RESULT_KEYS = ("image_id", "category_id", "bbox", "score")

Predictions = Mapping[ImageId, DetectionsLike]


def as_prediction(pred: DetectionsLike, image_id: ImageId, num_classes: int) -> Detections:
    """Check one image's detections (Detections or a (boxes, scores, classes) triple) and
    return them as Detections with float64 boxes and scores.

    Raises DataError when the shapes disagree, a box or score is not finite, or a class index
    is out of range.
    """
    boxes, scores, classes = (pred.boxes, pred.scores, pred.classes) if isinstance(pred, Detections) else pred
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4))
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes).reshape(-1)
    if not (len(boxes) == len(scores) == len(classes)):
        raise DataError(
            f"predictions for image {image_id!r}: {len(boxes)} boxes, {len(scores)} scores and "
            f"{len(classes)} classes; they must have the same length"
        )
    bad = ~(np.isfinite(boxes).all(axis=1) & np.isfinite(scores))
    if bad.any():
        raise DataError(
            f"predictions for image {image_id!r}: {int(bad.sum())} of {len(scores)} detections have a "
            f"non-finite box or score"
        )
    outside = classes[(classes < 0) | (classes >= num_classes)]
    if outside.size:
        raise DataError(
            f"predictions for image {image_id!r}: {outside.size} class indices outside "
            f"0..{num_classes - 1}, e.g. {int(outside[0])}"
        )
    return Detections(boxes, scores, classes.astype(np.int64), image_id=image_id)


def check_image_ids(split: DatasetSplit, image_ids: Iterable[ImageId], source: str) -> None:
    """Raise DataError (with a count and examples) if any id is not one of the split's images."""
    known = {r.image_id for r in split.records}
    unknown = [i for i in image_ids if i not in known]
    if unknown:
        raise DataError(
            f"{source}: {len(unknown)} prediction(s) name image ids that are not in split "
            f"{split.name or '(unnamed)'}, e.g. {_examples(unknown)}"
        )


def _examples(values: Sequence, n: int = 5) -> str:
    uniq = list(dict.fromkeys(values))
    shown = ", ".join(repr(v) for v in uniq[:n])
    return shown + (f" (+{len(uniq) - n} more distinct)" if len(uniq) > n else "")


def to_coco_results(split: DatasetSplit, predictions: Predictions) -> List[dict]:
    """Turn ``image_id -> Detections`` into COCO results (the one COCO writer, per image).

    ``category_id`` is the dataset's own id (``split.category_ids[class]``), ``bbox`` is
    ``[x, y, w, h]`` in original pixels computed in float64, ``image_id`` the split's id
    (int for COCO, the file stem for VOC/YOLO). Images missing from ``predictions`` simply
    have no detections.
    """
    check_image_ids(split, predictions.keys(), "to_coco_results")
    out: List[dict] = []
    for image_id, pred in predictions.items():
        out.extend(coco_rows(as_prediction(pred, image_id, split.num_classes), image_id, split.category_ids))
    return out


def predictions_from_coco_results(split: DatasetSplit, results: Sequence[dict]) -> Dict[ImageId, Detections]:
    """The inverse of :func:`to_coco_results`: COCO results -> ``image_id -> Detections``.

    Used to score a results file with the VOC metric or draw a confusion matrix from it.
    Results are checked with :func:`validate_coco_results` first.
    """
    validate_coco_results(results, split, "results")
    cat_to_class = {c: k for k, c in enumerate(split.category_ids)}
    grouped: Dict[ImageId, list] = {r.image_id: [] for r in split.records}
    for r in results:
        grouped[r["image_id"]].append(r)
    preds: Dict[ImageId, Detections] = {}
    for image_id, rs in grouped.items():
        xywh = np.asarray([r["bbox"] for r in rs], dtype=np.float64).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        scores = np.asarray([r["score"] for r in rs], dtype=np.float64)
        classes = np.asarray([cat_to_class[r["category_id"]] for r in rs], dtype=np.int64)
        preds[image_id] = Detections(boxes, scores, classes, image_id=image_id)
    return preds


def validate_coco_results(results: object, split: DatasetSplit, source: str = "results") -> None:
    """Check that ``results`` is a COCO results list that fits ``split``.

    Raises DataError naming ``source`` (a file name, usually) when it is not a list, when
    entries lack ``image_id``/``category_id``/``bbox``/``score`` or have a malformed bbox,
    or when they name image or category ids the split does not have (with counts and
    examples, so a results file written for another split or label map is obvious).
    One plain pass over the list: it runs on every evaluation, ~1 s per million entries.
    """
    if not isinstance(results, list):
        raise DataError(f"{source}: expected a JSON list of detections, got {type(results).__name__}")
    known_images = {r.image_id for r in split.records}
    known_cats = set(split.category_ids)
    bad_keys, bad_values, unknown_images, unknown_cats = [], [], [], []
    for i, r in enumerate(results):
        if not isinstance(r, dict) or not all(k in r for k in RESULT_KEYS):
            bad_keys.append(i)
            continue
        b = r["bbox"]
        if not (isinstance(b, (list, tuple)) and len(b) == 4 and all(map(_is_number, b)) and _is_number(r["score"])):
            bad_values.append(i)
        if r["image_id"] not in known_images:
            unknown_images.append(r["image_id"])
        if r["category_id"] not in known_cats:
            unknown_cats.append(r["category_id"])
    n = len(results)
    if bad_keys:
        first = results[bad_keys[0]]
        missing = [k for k in RESULT_KEYS if not isinstance(first, dict) or k not in first]
        raise DataError(
            f"{source}: {len(bad_keys)} of {n} entries are not objects with keys "
            f"{', '.join(RESULT_KEYS)}; entry {bad_keys[0]} lacks {', '.join(missing)}"
        )
    if bad_values:
        i = bad_values[0]
        raise DataError(
            f"{source}: {len(bad_values)} of {n} entries have a bbox that is not 4 finite numbers "
            f"[x, y, w, h] or a score that is not a finite number; entry {i}: "
            f"bbox={results[i]['bbox']!r} score={results[i]['score']!r}"
        )
    if unknown_images:
        raise DataError(
            f"{source}: {len(unknown_images)} of {n} detections name image ids not in split "
            f"{split.name or '(unnamed)'} ({len(set(map(repr, unknown_images)))} distinct), "
            f"e.g. {_examples(unknown_images)}"
        )
    if unknown_cats:
        known = sorted(known_cats)
        raise DataError(
            f"{source}: {len(unknown_cats)} of {n} detections name category ids not in the dataset "
            f"({len(set(unknown_cats))} distinct), e.g. {_examples(unknown_cats)}; known ids: "
            f"{known[:20]}{' ...' if len(known) > 20 else ''}"
        )


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def load_coco_results(path: Union[str, Path], split: DatasetSplit) -> List[dict]:
    """Read a COCO results json (list of {image_id, category_id, bbox xywh, score}).

    Raises DataError naming the file when it is missing, not JSON, or does not fit
    ``split`` (see :func:`validate_coco_results`).
    """
    path = Path(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            results = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: results file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read results file ({e})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    validate_coco_results(results, split, str(path))
    return results


def save_coco_results(results: Sequence[dict], path: Union[str, Path]) -> Path:
    """Write COCO results to ``path`` as json (floats exactly, see module docstring)."""
    with atomic_write(path, "w") as f:
        json.dump(list(results), f)
    return Path(path)
