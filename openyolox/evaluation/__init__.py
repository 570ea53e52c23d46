"""Evaluation: predictions -> COCO and VOC metrics, PR curves and a confusion matrix.

- results.py: predictions per image (inference.results.Detections) and the COCO results-json format
- coco.py:    COCO box metrics from any DatasetSplit (pycocotools / faster-coco-eval)
- voc.py:     VOC mAP@0.5, 2007 11-point and area (VOC2010+) definitions
- plots.py:   pr_curve.png and confusion_matrix.png (matplotlib, Agg, no window)
"""
from openyolox.evaluation.coco import STAT_NAMES, evaluate_coco, format_coco_summary, format_per_class_table
from openyolox.evaluation.results import (
    load_coco_results,
    predictions_from_coco_results,
    save_coco_results,
    to_coco_results,
)
from openyolox.evaluation.voc import evaluate_voc, format_voc_table

__all__ = [
    "STAT_NAMES",
    "evaluate_coco",
    "evaluate_voc",
    "format_coco_summary",
    "format_per_class_table",
    "format_voc_table",
    "load_coco_results",
    "predictions_from_coco_results",
    "save_coco_results",
    "to_coco_results",
]
