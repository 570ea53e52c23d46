"""``openyolox predict SOURCE``: detect in an image, a folder, a video or a webcam."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import cv2
from tqdm import tqdm

from openyolox.atomic import write_text_atomic
from openyolox.run_dir import make_run_dir
from openyolox.cli.common import add_model_args, load_detector, runtime_label, validate_model_args
from openyolox.errors import DataError


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="detect objects in images, folders, videos or a webcam",
                       description="Detect objects; writes annotated images/video and predictions.json.")
    p.add_argument("source", help="image file, folder of images, video file, or webcam index (0, 1, ...)")
    add_model_args(p)
    p.add_argument("--conf", type=float, default=0.25, help="score threshold (obj x class prob)")
    p.add_argument("--iou", "--nms", type=float, default=0.45, dest="iou", help="NMS IoU threshold (default 0.45)")
    p.add_argument("--class-agnostic", action="store_true", help="NMS across classes")
    p.add_argument("--out", help="output folder (default runs/predict/expN)")
    p.add_argument("--no-save-images", action="store_true", help="write only predictions.json")
    p.add_argument("--max-frames", type=int, default=0, help="stop a video/webcam after N frames (0: all)")
    p.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")


def run(args: argparse.Namespace) -> int:
    from openyolox.inference.sources import is_video, video_fps, webcam_index
    from openyolox.inference.visualize import draw_detections

    validate_model_args(args)
    if args.batch < 1:
        raise DataError(f"--batch must be >= 1, got {args.batch}")
    source = args.source
    if webcam_index(source) is None and not Path(source).exists():
        raise DataError(f"{source}: no such file or folder")
    detector = load_detector(args, conf=args.conf, iou=args.iou, class_agnostic=args.class_agnostic)
    out_dir = make_run_dir(args.out, "predict")
    video = is_video(source)
    rows, n, writer = [], 0, None
    bar = tqdm(desc="predict", unit="frame" if video else "img", file=sys.stderr, disable=not video and
               Path(source).is_file())
    try:
        with warnings.catch_warnings(record=True) as skipped:
            warnings.simplefilter("always")
            for det in detector.stream(source, batch_size=args.batch, limit=args.max_frames):
                rows += det.to_coco(detector.category_ids)
                n += 1
                bar.update(1)
                if args.no_save_images:
                    continue
                drawn = draw_detections(det.image, det.boxes, det.scores, det.classes, det.names)
                if video:
                    if writer is None:
                        h, w = drawn.shape[:2]
                        stem = f"webcam{webcam_index(source)}" if webcam_index(source) is not None else Path(source).stem
                        writer = cv2.VideoWriter(str(out_dir / f"{stem}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                                 video_fps(source), (w, h))
                    writer.write(drawn)
                else:
                    cv2.imwrite(str(out_dir / f"{det.image_id}.jpg"), drawn)
    except KeyboardInterrupt:
        print("stopped; writing what was processed", file=sys.stderr)
    finally:
        bar.close()
        if writer is not None:
            writer.release()
    for w in skipped:
        print(f"warning: {w.message}", file=sys.stderr)
    write_text_atomic(out_dir / "predictions.json", json.dumps(rows))
    t = detector.timings.per_image_ms()
    print(f"{n} {'frame' if video else 'image'}(s), {len(rows)} detections; per image: preprocess "
          f"{t['preprocess']:.1f} ms, inference {t['inference']:.1f} ms ({runtime_label(detector)}), postprocess "
          f"{t['postprocess']:.1f} ms", file=sys.stderr)
    print(f"results saved to {out_dir}")
    return 0
