"""``openyolox val``: COCO (and VOC) metrics of a model, an exported file, or a results file."""
from __future__ import annotations

import argparse
import sys

from openyolox.run_dir import make_run_dir
from openyolox.cli.common import (add_model_args, add_slice_args, load_detector, runtime_label,
                                  validate_model_args)


def add_parser(sub) -> None:
    p = sub.add_parser("val", help="evaluate a model (or a COCO results file) on a dataset",
                       description="Evaluate with the COCO protocol (and VOC mAP with --metric voc). Writes "
                                   "metrics.json, predictions.json, pr_curve.png and confusion_matrix.png.")
    add_model_args(p)
    p.add_argument("--data", required=True, help="COCO root, VOC root, YOLO data.yaml or builtin")
    p.add_argument("--split", default="val", help="which split to evaluate (default val)")
    p.add_argument("--conf", type=float, default=0.01, help="score threshold (default 0.01)")
    p.add_argument("--iou", "--nms", type=float, default=0.65, dest="iou", help="NMS IoU threshold (default 0.65)")
    p.add_argument("--batch", type=int, default=8)
    add_slice_args(p)
    p.add_argument("--workers", type=int, default=2, help="image-loading processes")
    p.add_argument("--metric", choices=["coco", "voc"], default="coco", help="voc adds VOC mAP@0.5 (07 11-point and area)")
    p.add_argument("--predictions", help="score this COCO results json instead of running a model")
    p.add_argument("--out", help="output folder (default runs/val/expN)")
    p.add_argument("--no-plots", action="store_true")


def run(args: argparse.Namespace) -> int:
    from openyolox.data.layouts import load_split
    from openyolox.evaluation.coco import format_coco_summary, format_per_class_table
    from openyolox.evaluation.results import load_coco_results
    from openyolox.evaluation.validate import score_results_file, validate, write_outputs
    from openyolox.evaluation.voc import format_voc_table

    if args.predictions is None:
        validate_model_args(args)
    split = load_split(args.data, args.split)
    out_dir = make_run_dir(args.out, "val")
    if args.predictions:
        summary, preds = score_results_file(split, load_coco_results(args.predictions, split), args.metric)
    else:
        detector = load_detector(args, conf=args.conf, iou=args.iou, class_agnostic=False)
        if len(detector.names) != split.num_classes:
            raise ValueError(f"the model predicts {len(detector.names)} classes but {args.data} has "
                             f"{split.num_classes}; pass the weights trained on this dataset")
        summary, preds = validate(detector, split, args.batch, args.workers, args.metric)
    write_outputs(out_dir, split, summary, preds, plots=not args.no_plots)
    print(format_coco_summary(summary))
    print()
    print(format_per_class_table(summary["_coco"]))
    if "VOC" in summary:
        print()
        print(format_voc_table({**summary["VOC"], "iou_threshold": 0.5}))
    t = summary.get("timing_ms_per_image")
    if t:
        runtime = f" ({runtime_label(detector)})" if args.predictions is None else ""
        print(f"\nper image: preprocess {t['preprocess']:.1f} ms (waiting for data), inference "
              f"{t['inference']:.1f} ms{runtime}, postprocess {t['postprocess']:.1f} ms; metric {t['metric']:.1f} ms; "
              f"total {t['total']:.1f} ms ({len(split)} images)", file=sys.stderr)
    print(f"results saved to {out_dir}")
    return 0
