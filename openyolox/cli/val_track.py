"""``openyolox val-track``: MOTA, IDF1, HOTA, ID switches, FP and FN of tracks against ground truth."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("val-track", help="score tracks (MOTChallenge txt) against ground truth",
                       description="Tracking metrics by TrackEval: MOTA, IDF1, HOTA, ID switches, FP, FN "
                                   "(and MOTP, DetA, AssA, precision, recall, MT/PT/ML). Files are MOTChallenge "
                                   "txt: frame,id,x,y,w,h[,score,class,...], 1-based frames; ground-truth rows "
                                   "with 0 in column 7 are ignored. Several --gt/--pred pairs are scored together.")
    p.add_argument("--gt", required=True, nargs="+", help="ground-truth file(s), e.g. gt.txt")
    p.add_argument("--pred", required=True, nargs="+", help="tracker output file(s) in the same order, e.g. tracks.txt")
    p.add_argument("--iou", type=float, default=0.5, help="IoU for a match in MOTA and IDF1 (default 0.5)")
    p.add_argument("--json", help="also write the metrics to this json file")


def run(args: argparse.Namespace) -> int:
    from openyolox.errors import ConfigError
    from openyolox.evaluation.mot import evaluate_mot, format_mot_summary

    if len(args.gt) != len(args.pred):
        raise ConfigError(f"--gt has {len(args.gt)} files but --pred has {len(args.pred)}; give them in pairs")
    if not 0 < args.iou <= 1:
        raise ConfigError(f"--iou {args.iou}: expected a value in (0, 1]")
    for path in args.gt + args.pred:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
    if len(args.gt) == 1:
        metrics = evaluate_mot(args.gt[0], args.pred[0], iou_threshold=args.iou)
    else:
        for g, p in zip(args.gt, args.pred):
            print(f"{p}:  " + format_mot_summary(evaluate_mot(g, p, iou_threshold=args.iou)).splitlines()[0])
        metrics = evaluate_mot(args.gt, args.pred, iou_threshold=args.iou)
        print("all sequences:")
    print(format_mot_summary(metrics))
    if args.json:
        from openyolox.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(metrics, indent=2) + "\n")
    return 0
