"""Validate a detector on a dataset split, or score an existing results file.

Used by `openyolox val`, `openyolox.evaluate` and (its runner) training.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Dict, Sequence, Tuple, Union

from openyolox.atomic import write_text_atomic
from openyolox.data.records import DatasetSplit
from openyolox.evaluation.coco import STAT_NAMES, evaluate_coco
from openyolox.evaluation.results import (Predictions, predictions_from_coco_results, save_coco_results,
                                          to_coco_results)
from openyolox.evaluation.runner import predict_split
from openyolox.evaluation.voc import evaluate_voc
from openyolox.inference.predictor import Detector, Timings


def score(split: DatasetSplit, predictions: Predictions, metric: str = "coco") -> Dict[str, Any]:
    """COCO metrics (always) plus VOC mAP when metric == "voc"; a json-ready summary.

    Keeps the raw COCO metrics (with precision arrays, for plots) under "_coco"."""
    coco = evaluate_coco(split, predictions)
    summary: Dict[str, Any] = {k: coco[k] for k in STAT_NAMES}
    summary["per_class"] = coco["per_class"]
    if metric == "voc":
        voc = evaluate_voc(split, predictions)
        summary["VOC"] = {"mAP_area": voc["mAP_area"], "mAP_11point": voc["mAP_11point"],
                          "per_class": voc["per_class"]}
    summary["_coco"] = coco
    return summary


def validate(detector: Detector, split: DatasetSplit, batch_size: int = 8, workers: int = 2, metric: str = "coco",
             progress: bool = True) -> Tuple[Dict[str, Any], Predictions]:
    """Run ``detector`` over ``split`` at its input size and thresholds, and score it.

    Returns (summary with metrics and per-image timing in ms, predictions)."""
    t0 = time.perf_counter()
    detector.timings = Timings()
    preds = predict_split(detector, split, batch_size=batch_size, workers=workers, progress=progress)
    t1 = time.perf_counter()
    summary = score(split, preds, metric)
    summary["timing_ms_per_image"] = {**{k: round(v, 3) for k, v in detector.timings.per_image_ms().items()},
                                      "metric": round(1000 * (time.perf_counter() - t1) / max(len(split), 1), 3),
                                      "total": round(1000 * (t1 - t0) / max(len(split), 1), 3)}
    summary["settings"] = {"conf": detector.conf, "iou": detector.iou, "imgsz": list(detector.imgsz),
                           "images": len(split),
                           "slice": dataclasses.asdict(detector.slicing) if detector.slicing is not None else None}
    return summary, preds


def write_outputs(out_dir: Union[str, Path], split: DatasetSplit, summary: Dict[str, Any],
                  predictions: Predictions, plots: bool = True) -> Path:
    """metrics.json, predictions.json (the dataset's ids) and the PR/confusion plots."""
    out_dir = Path(out_dir)
    public = {k: v for k, v in summary.items() if not k.startswith("_")}
    write_text_atomic(out_dir / "metrics.json", json.dumps(public, indent=2))
    save_coco_results(to_coco_results(split, predictions), out_dir / "predictions.json")
    if plots:
        from openyolox.evaluation.plots import save_plots

        save_plots(split, predictions, summary["_coco"], out_dir)
    return out_dir


def score_results_file(split: DatasetSplit, results: Sequence[dict], metric: str = "coco") -> Tuple[Dict[str, Any], Predictions]:
    """Score an existing COCO results list (already validated against ``split``)."""
    preds = predictions_from_coco_results(split, results)
    return score(split, preds, metric), preds


def compare_accuracy(reference: Any, candidate: Any, data: Union[str, Path], split: str = "val",
                     batch_size: int = 8, workers: int = 0, progress: bool = False) -> Dict[str, Any]:
    """COCO AP of two models (anything the Detector takes: exported files, checkpoints) on one
    split of ``data`` at the evaluation thresholds, and what the candidate loses, in AP points
    (0-100; positive = worse). Used for INT8 files against their FP32 graph.

    Returns {"reference": {"AP50_95", "AP50"}, "candidate": {...}, "drop_AP50_95", "drop_AP50",
    "images"}."""
    from openyolox.data.layouts import load_split

    ds = load_split(data, split)
    scores: Dict[str, Dict[str, float]] = {}
    for role, model in (("reference", reference), ("candidate", candidate)):
        detector = Detector(model, conf=0.01, iou=0.65)
        if len(detector.names) != ds.num_classes:
            raise ValueError(f"{model} predicts {len(detector.names)} classes but {data} has {ds.num_classes}")
        summary, _ = validate(detector, ds, batch_size, workers, progress=progress)
        scores[role] = {"AP50_95": float(summary["AP50_95"]), "AP50": float(summary["AP50"])}
    drop = {f"drop_{k}": 100.0 * (scores["reference"][k] - scores["candidate"][k]) for k in ("AP50_95", "AP50")}
    return {**scores, **drop, "images": len(ds)}
