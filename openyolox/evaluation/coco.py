"""COCO box metrics (AP@[.5:.95], AP50, AP75, S/M/L, AR) for any DatasetSplit.

The ground truth is built in memory from the split's records, whatever format they were
read from, so COCO json, VOC xml and YOLO txt datasets are all scored by the standard COCO
protocol (docs/yolox.md section 8). The numbers are those of pycocotools' COCOeval run on
the same ground truth and results; faster-coco-eval is used instead when installed
because it gives the same 12 numbers much faster (benchmarks/coco_eval.py measures both).

Conventions the ground truth inherits from the records:
  - ``area`` is the box area (w * h). Official COCO json stores the segmentation area,
    so S/M/L numbers on real COCO can differ slightly from the official server's.
  - ``iscrowd`` regions are kept: detections on them are ignored, not counted as FP.
  - COCO wants integer image ids: int ids are used as they are; otherwise (VOC/YOLO file
    stems) images are numbered 1..N in record order, and results are mapped the same way.
"""
from __future__ import annotations

import contextlib
import io
from collections import Counter
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from openyolox.data.records import DatasetSplit, ImageId
from openyolox.errors import DataError
from openyolox.evaluation.results import Predictions, to_coco_results, validate_coco_results

STAT_NAMES = ("AP50_95", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

# The order pycocotools prints its summary in, with the labels it uses.
_SUMMARY_LINES = (
    ("Average Precision", "0.50:0.95", "all", 100),
    ("Average Precision", "0.50", "all", 100),
    ("Average Precision", "0.75", "all", 100),
    ("Average Precision", "0.50:0.95", "small", 100),
    ("Average Precision", "0.50:0.95", "medium", 100),
    ("Average Precision", "0.50:0.95", "large", 100),
    ("Average Recall", "0.50:0.95", "all", 1),
    ("Average Recall", "0.50:0.95", "all", 10),
    ("Average Recall", "0.50:0.95", "all", 100),
    ("Average Recall", "0.50:0.95", "small", 100),
    ("Average Recall", "0.50:0.95", "medium", 100),
    ("Average Recall", "0.50:0.95", "large", 100),
)

# faster-coco-eval is preferred when importable. benchmarks/coco_eval.py (5000 images, 35k GT,
# 500k detections, 2 shared CPU cores, 3 runs): pycocotools 66-114 s, faster-coco-eval 10-14 s;
# the 12 stats and per-class APs bit-identical. Its precision array differs from pycocotools'
# by <= 2.2e-16 (pycocotools divides by tp + fp + np.spacing(1)), which can move a stat in the
# 17th digit on other data, never at printed precision. pycocotools is the fallback and the
# reference the tests hold both to.
COCO_EVAL_LIBRARIES = ("faster_coco_eval", "pycocotools")


def available_library(library: str = "auto") -> str:
    """Resolve ``"auto"`` to the first importable entry of COCO_EVAL_LIBRARIES; check explicit names."""
    if library not in ("auto",) + COCO_EVAL_LIBRARIES:
        raise ValueError(f"unknown COCO evaluation library {library!r}; choose auto, {', '.join(COCO_EVAL_LIBRARIES)}")
    candidates = COCO_EVAL_LIBRARIES if library == "auto" else (library,)
    for name in candidates:
        try:
            __import__(name)
            return name
        except ImportError:
            continue
    raise ImportError(f"COCO evaluation needs {' or '.join(candidates)}: pip install pycocotools")


def image_id_map(split: DatasetSplit) -> Dict[ImageId, int]:
    """The integer id COCO will see for each of the split's image ids.

    All-int ids are kept (so results match the dataset's own json); any string id makes
    the whole split numbered 1..N in record order. Duplicate ids raise DataError.
    """
    ids = [r.image_id for r in split.records]
    if len(set(ids)) != len(ids):
        counts = Counter(ids)
        dups = [i for i, n in counts.items() if n > 1]
        raise DataError(f"split {split.name or '(unnamed)'}: duplicate image ids, e.g. {dups[:5]}")
    if all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids):
        return {i: int(i) for i in ids}
    return {i: k + 1 for k, i in enumerate(ids)}


def coco_ground_truth(split: DatasetSplit, id_map: Optional[Mapping[ImageId, int]] = None) -> dict:
    """The split as a COCO annotation dict (images, annotations, categories).

    bbox is ``[x, y, w, h]`` computed in float64 from the records' float32 xyxy boxes,
    area = w * h, annotation ids start at 1 (COCOeval treats id 0 as "unmatched").
    """
    id_map = image_id_map(split) if id_map is None else id_map
    if len(set(split.category_ids)) != len(split.category_ids):
        raise DataError(f"split {split.name or '(unnamed)'}: duplicate category ids {split.category_ids}")
    images, annotations = [], []
    cat_ids = np.asarray(split.category_ids, dtype=np.int64)
    for rec in split.records:
        img_id = id_map[rec.image_id]
        images.append({"id": img_id, "width": int(rec.width), "height": int(rec.height),
                       "file_name": rec.path.name})
        boxes = rec.boxes.astype(np.float64)
        wh = boxes[:, 2:] - boxes[:, :2]
        xywh = np.concatenate([boxes[:, :2], wh], axis=1).tolist()
        areas = (wh[:, 0] * wh[:, 1]).tolist()
        for b, a, c, crowd in zip(xywh, areas, cat_ids[rec.classes].tolist(), rec.iscrowd.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": img_id, "category_id": c,
                                "bbox": b, "area": a, "iscrowd": int(crowd)})
    categories = [{"id": int(c), "name": n} for c, n in zip(split.category_ids, split.class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _detection_annotations(results: Sequence[dict], id_map: Mapping[ImageId, int]) -> List[dict]:
    """COCO results -> detection annotations, the way pycocotools' loadRes makes them for
    boxes (ids 1.. in list order, area = w * h, iscrowd 0), without mutating the input."""
    return [{"id": k, "image_id": id_map[r["image_id"]], "category_id": r["category_id"],
             "bbox": list(b), "score": r["score"], "area": b[2] * b[3], "iscrowd": 0}
            for k, r in enumerate(results, start=1) for b in (r["bbox"],)]


def _run_cocoeval(gt: dict, dets: List[dict], library: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """Run evaluate/accumulate/summarize quietly -> (stats (12,), precision (T,R,K,A,M),
    recall (T,K,A,M), params). K follows sorted category ids, as COCOeval sorts them."""
    dt = {"images": gt["images"], "categories": gt["categories"], "annotations": dets}
    with contextlib.redirect_stdout(io.StringIO()):
        if library == "faster_coco_eval":
            from faster_coco_eval import COCO, COCOeval_faster

            quiet = lambda *args, **kwargs: None  # noqa: E731
            coco_gt, coco_dt = COCO(gt, print_function=quiet), COCO(dt, print_function=quiet)
            ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=quiet)
        else:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            coco_gt, coco_dt = COCO(), COCO()
            coco_gt.dataset, coco_dt.dataset = gt, dt
            coco_gt.createIndex()
            coco_dt.createIndex()
            ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return (np.asarray(ev.stats[:12], dtype=np.float64), np.asarray(ev.eval["precision"]),
            np.asarray(ev.eval["recall"]), ev.params)


def _defined_mean(values: np.ndarray) -> Optional[float]:
    """Mean of entries > -1 (COCOeval's "defined"), None when there are none."""
    v = values[values > -1]
    return float(np.mean(v)) if v.size else None


def evaluate_coco(split: DatasetSplit, results: Union[Sequence[dict], Predictions],
                  library: str = "auto") -> dict:
    """Score detections on ``split`` with the COCO box protocol.

    results: COCO results (list of {image_id, category_id, bbox xywh pixels, score}, with
             the split's own image ids and category ids), or predictions
             ``image_id -> (boxes (N,4) xyxy pixels, scores (N,), classes (N,) contiguous)``.
    library: "auto" (faster_coco_eval if installed, else pycocotools) or a name.

    Returns a dict with
      - the 12 COCOeval stats under STAT_NAMES (floats in 0..1; None where undefined,
        i.e. no ground truth in that area range; never NaN or -1),
      - "per_class": one dict per contiguous class: name, category_id, num_gt (non-crowd),
        AP50_95, AP50 (None with num_gt == 0: "no GT"),
      - "precision": (T=10, R=101, K, A=4, M=3) array, K in contiguous class order, -1
        where undefined; "recall": (T, K, A, M); "iou_thresholds" (T,),
        "recall_thresholds" (R,), "max_dets" [1, 10, 100], area order all/small/medium/large,
      - "class_names", "library", "num_images", "num_detections".
    """
    if isinstance(results, Mapping):  # predictions, checked image by image as they are converted
        results = to_coco_results(split, results)
    else:  # a results list from outside (a file, another tool)
        validate_coco_results(results, split, "results")
    library = available_library(library)
    id_map = image_id_map(split)
    gt = coco_ground_truth(split, id_map)
    dets = _detection_annotations(results, id_map)
    stats, precision, recall, params = _run_cocoeval(gt, dets, library)

    # COCOeval orders K by sorted category id; put it back in contiguous class order.
    sorted_ids = [int(c) for c in params.catIds]
    order = [sorted_ids.index(int(c)) for c in split.category_ids]
    precision, recall = precision[:, :, order], recall[:, order]

    num_gt = np.zeros(split.num_classes, dtype=np.int64)
    for rec in split.records:
        np.add.at(num_gt, rec.classes[~rec.iscrowd], 1)
    per_class = []
    for k, (name, cat_id) in enumerate(zip(split.class_names, split.category_ids)):
        p = precision[:, :, k, 0, -1]  # all areas, 100 detections
        per_class.append({"class": k, "name": name, "category_id": int(cat_id), "num_gt": int(num_gt[k]),
                          "AP50_95": _defined_mean(p), "AP50": _defined_mean(p[0])})

    metrics = {n: (None if s <= -1 else float(s)) for n, s in zip(STAT_NAMES, stats)}
    metrics.update(per_class=per_class, precision=precision, recall=recall,
                   iou_thresholds=np.asarray(params.iouThrs), recall_thresholds=np.asarray(params.recThrs),
                   max_dets=list(params.maxDets), class_names=list(split.class_names), library=library,
                   num_images=len(split.records), num_detections=len(results))
    return metrics


def _fmt(v: Optional[float], digits: int = 3) -> str:
    return f"{v:.{digits}f}" if v is not None else "n/a"


def format_coco_summary(metrics: dict) -> str:
    """The 12 numbers in pycocotools' familiar layout ("n/a" where undefined)."""
    lines = []
    for name, (kind, iou, area, dets) in zip(STAT_NAMES, _SUMMARY_LINES):
        short = "(AP)" if kind.endswith("Precision") else "(AR)"
        lines.append(f" {kind:<18} {short} @[ IoU={iou:<9} | area={area:>6} | maxDets={dets:>3} ] = "
                     f"{_fmt(metrics[name])}")
    return "\n".join(lines)


def format_per_class_table(metrics: dict) -> str:
    """Per-class AP50_95 / AP50 with GT counts; classes without GT say "no GT"."""
    rows = metrics["per_class"]
    width = max([len("class")] + [len(r["name"]) for r in rows])
    out = [f"{'class':<{width}}  {'GT':>7}  {'AP50_95':>7}  {'AP50':>7}"]
    for r in rows:
        if r["num_gt"] == 0:
            out.append(f"{r['name']:<{width}}  {0:>7}  {'no GT':>7}  {'no GT':>7}")
        else:
            out.append(f"{r['name']:<{width}}  {r['num_gt']:>7}  {_fmt(r['AP50_95']):>7}  {_fmt(r['AP50']):>7}")
    return "\n".join(out)
