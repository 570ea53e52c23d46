"""Benchmark the COCO eval libraries (pycocotools vs faster-coco-eval) and the VOC metric.

A synthetic split (default 5000 images, ~7 GT each, 100 detections each over 80 classes
with COCO-like non-contiguous category ids) is scored by every installed library through
openyolox.evaluation.evaluate_coco. The script prints wall time per library and checks that
the 12 stats, per-class APs and precision arrays are identical to pycocotools'. The faster
library is only worth preferring if they are (see COCO_EVAL_LIBRARIES in evaluation/coco.py).

    python benchmarks/coco_eval.py [--images 5000] [--gt 7] [--dets 100] [--classes 80]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openyolox.data.records import DatasetSplit, ImageRecord  # noqa: E402
from openyolox.evaluation.coco import STAT_NAMES, evaluate_coco, format_coco_summary  # noqa: E402
from openyolox.evaluation.results import to_coco_results  # noqa: E402
from openyolox.evaluation.voc import evaluate_voc  # noqa: E402


def synthetic_split(num_images: int, gt_per_image: float, dets_per_image: int, num_classes: int, seed: int):
    """Random but plausible GT and detections.

    GT: Poisson(gt_per_image) boxes per image, sizes log-uniform 8..400 px (small, medium
    and large all present), ~1% crowd. Detections: per GT a few jittered copies (jitter
    from tight to loose, score falling with jitter, 10% with a wrong class), the rest
    random boxes with low scores, 100 per image in all.
    """
    rng = np.random.default_rng(seed)
    records, predictions = [], {}
    for i in range(num_images):
        w, h = 640, int(rng.integers(360, 640))
        n = int(rng.poisson(gt_per_image))
        size = np.exp(rng.uniform(np.log(8), np.log(400), (n, 2)))
        xy = rng.uniform(0, 1, (n, 2)) * np.maximum([w, h] - size, 1)
        gt = np.concatenate([xy, xy + size], 1)
        cls = rng.integers(0, num_classes, n)
        records.append(ImageRecord(Path(f"{i:06d}.jpg"), i + 1, w, h, gt.astype(np.float32), cls, rng.random(n) < 0.01))

        k = min(dets_per_image, 3 * n)
        src = rng.integers(0, max(n, 1), k)
        jitter = rng.uniform(0.0, 0.4, k)
        if n:
            wh = (gt[src, 2:] - gt[src, :2])
            boxes = gt[src] + rng.normal(0, 1, (k, 4)) * np.repeat(wh, 2, 0).reshape(k, 4) * jitter[:, None] / 2
            det_cls = np.where(rng.random(k) < 0.9, cls[src], rng.integers(0, num_classes, k))
            scores = np.clip(1 - jitter * 2 + rng.normal(0, 0.15, k), 0.01, 1)
        else:
            boxes, det_cls, scores = np.zeros((0, 4)), np.zeros(0, int), np.zeros(0)
        m = dets_per_image - len(boxes)
        nsize = np.exp(rng.uniform(np.log(8), np.log(400), (m, 2)))
        nxy = rng.uniform(0, 1, (m, 2)) * np.maximum([w, h] - nsize, 1)
        boxes = np.concatenate([boxes, np.concatenate([nxy, nxy + nsize], 1)])
        det_cls = np.concatenate([det_cls, rng.integers(0, num_classes, m)])
        scores = np.concatenate([scores, rng.uniform(0.001, 0.3, m)])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        predictions[i + 1] = (boxes.astype(np.float32), scores.astype(np.float32), det_cls)
    # COCO-like category ids: 1..90 with gaps.
    cat_ids = sorted(rng.choice(np.arange(1, 91), num_classes, replace=False).tolist())
    names = [f"class{c}" for c in cat_ids]
    return DatasetSplit(records, names, cat_ids, name="synthetic"), predictions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--gt", type=float, default=7.0)
    ap.add_argument("--dets", type=int, default=100)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t = time.perf_counter()
    split, predictions = synthetic_split(args.images, args.gt, args.dets, args.classes, args.seed)
    results = to_coco_results(split, predictions)
    num_gt = sum(len(r.classes) for r in split.records)
    print(f"synthetic split: {len(split)} images, {num_gt} GT, {len(results)} detections, "
          f"{split.num_classes} classes (built in {time.perf_counter() - t:.1f} s)")

    runs = {}
    for library in ("pycocotools", "faster_coco_eval"):
        try:
            __import__(library)
        except ImportError:
            print(f"{library}: not installed, skipped")
            continue
        t = time.perf_counter()
        runs[library] = evaluate_coco(split, results, library=library)
        print(f"{library:>17}: {time.perf_counter() - t:7.2f} s")
    ref = runs["pycocotools"]
    print(format_coco_summary(ref))
    for library, m in runs.items():
        if library == "pycocotools":
            continue
        stats_same = all(m[n] == ref[n] for n in STAT_NAMES)
        printed_same = all(f"{m[n]:.3f}" == f"{ref[n]:.3f}" for n in STAT_NAMES)
        per_class_same = all(a["AP50_95"] == b["AP50_95"] and a["AP50"] == b["AP50"]
                             for a, b in zip(m["per_class"], ref["per_class"]))
        precision_same = np.array_equal(m["precision"], ref["precision"]) and np.array_equal(m["recall"], ref["recall"])
        max_diff = max(abs(m[n] - ref[n]) for n in STAT_NAMES)
        prec_diff = float(np.abs(m["precision"] - ref["precision"]).max())
        print(f"{library} vs pycocotools: 12 stats bit-identical={stats_same} (max |diff| {max_diff:.2e}), "
              f"same to 3 decimals={printed_same}, per-class AP identical={per_class_same}, "
              f"precision/recall arrays identical={precision_same} (precision max |diff| {prec_diff:.2e}: "
              f"pycocotools divides by tp + fp + np.spacing(1))")
        if not stats_same:
            for n in STAT_NAMES:
                print(f"  {n:>8}: pycocotools {ref[n]!r}  {library} {m[n]!r}")

    t = time.perf_counter()
    voc = evaluate_voc(split, predictions)
    print(f"VOC metric (both definitions): {time.perf_counter() - t:.2f} s, "
          f"mAP area {voc['mAP_area']:.4f}, mAP 11-point {voc['mAP_11point']:.4f}")


if __name__ == "__main__":
    main()
