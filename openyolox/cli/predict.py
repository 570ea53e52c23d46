"""``openyolox predict SOURCE``: detect in images, folders, videos, streams, URLs, lists, stdin.

Writes into the run folder: ``predictions.json`` (COCO results rows), the annotated images
(``<name>.jpg``) or video (``<stem>.mp4``) unless ``--no-save``, YOLO labels
(``labels/<name>.txt``) with ``--save-txt``, and object crops
(``crops/<class>/<name>_<k>.jpg``) with ``--save-crops``. Each output is a method of the
result (openyolox.inference.results.Detections), so the command and the Python API agree.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import cv2
from tqdm import tqdm

from openyolox.atomic import write_text_atomic
from openyolox.cli.common import (add_model_args, add_slice_args, load_detector, runtime_label,
                                  validate_model_args)
from openyolox.errors import DataError
from openyolox.run_dir import make_run_dir


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="detect objects in images, folders, videos, streams, URLs or stdin",
                       description="Detect objects; writes annotated images/video and predictions.json "
                                   "(and YOLO labels, crops on request).")
    p.add_argument("source", help="image, folder, video, webcam index (0, 1, ...), glob pattern ('imgs/*.jpg'), "
                   ".txt list of sources, http(s) image URL, rtsp:// or http(s) stream, or - for standard input "
                   "(image bytes, or a list of paths)")
    add_model_args(p)
    p.add_argument("--conf", type=float, default=0.25, help="score threshold (obj x class prob)")
    p.add_argument("--iou", "--nms", type=float, default=0.45, dest="iou", help="NMS IoU threshold (default 0.45)")
    p.add_argument("--class-agnostic", action="store_true", help="NMS across classes")
    p.add_argument("--classes", nargs="+", metavar="CLASS", help="keep only these classes (names or ids)")
    p.add_argument("--max-det", type=int, default=300, help="keep at most N detections per image, the best "
                   "(default 300; 0: all)")
    add_slice_args(p)
    p.add_argument("--out", help="output folder (default runs/predict/expN)")
    p.add_argument("--no-save", "--no-save-images", dest="no_save", action="store_true",
                   help="write no annotated images or video")
    p.add_argument("--save-txt", action="store_true", help="write YOLO labels to labels/<name>.txt")
    p.add_argument("--save-scores", action="store_true", help="with --save-txt: the score as a sixth column")
    p.add_argument("--save-crops", action="store_true", help="write each object to crops/<class>/<name>_<k>.jpg")
    p.add_argument("--line-width", type=int, help="box line width in px (default: grows with the image)")
    p.add_argument("--hide-labels", action="store_true", help="draw boxes without class names and scores")
    p.add_argument("--max-frames", type=int, default=0, help="stop a video/stream/webcam after N frames (0: all)")
    p.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1; with --slice, "
                   "8 windows of one image per pass)")


def run(args: argparse.Namespace) -> int:
    from openyolox.data.image_io import IMAGE_SUFFIXES
    from openyolox.inference.results import class_indices
    from openyolox.inference.sources import check_source, is_video, url_scheme, video_fps

    validate_model_args(args)
    if args.batch < 1:
        raise DataError(f"--batch must be >= 1, got {args.batch}")
    source = args.source
    check_source(source)
    if not getattr(args, "debug", False):
        # our own messages say when a stream breaks; FFmpeg's and OpenCV's would repeat them
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    detector = load_detector(args, conf=args.conf, iou=args.iou, class_agnostic=args.class_agnostic)
    class_indices(args.classes, detector.names)  # an unknown class fails now, not per image
    out_dir = make_run_dir(args.out, "predict")
    video = is_video(source)
    rows, n, writer, stopped = [], 0, None, None
    single = not video and (url_scheme(source) is not None or
                            Path(source).is_file() and Path(source).suffix.lower() in IMAGE_SUFFIXES)
    bar = tqdm(desc="predict", unit="frame" if video else "img", file=sys.stderr, disable=single)  # 1 image: no bar
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        # printed as they happen (a stream reconnecting), also from the decoding thread
        warnings.showwarning = lambda message, *a, **k: tqdm.write(f"warning: {message}", file=sys.stderr)
        try:
            for det in detector.stream(source, batch_size=args.batch, limit=args.max_frames):
                det = det.filter(classes=args.classes).top(args.max_det)
                rows += det.to_coco(detector.category_ids)
                n += 1
                bar.update(1)
                if args.save_txt:
                    det.save_txt(out_dir / "labels" / f"{det.image_id}.txt", scores=args.save_scores)
                if args.save_crops:
                    det.save_crops(out_dir / "crops")
                if args.no_save:
                    continue
                drawn = det.plot(line_width=args.line_width, labels=not args.hide_labels)
                if not video:
                    cv2.imwrite(str(out_dir / f"{det.image_id}.jpg"), drawn)
                    continue
                if writer is None:
                    h, w = drawn.shape[:2]
                    stem = str(det.image_id).rsplit("_", 1)[0]  # frames are <stem>_<frame>
                    writer = cv2.VideoWriter(str(out_dir / f"{stem}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                             video_fps(source), (w, h))
                writer.write(drawn)
        except KeyboardInterrupt:
            print("stopped; writing what was processed", file=sys.stderr)
        except DataError as exc:  # a stream that ended: keep what it gave, then report it
            if n == 0:
                raise
            stopped = exc
        finally:
            bar.close()
            if writer is not None:
                writer.release()
    write_text_atomic(out_dir / "predictions.json", json.dumps(rows))
    t = detector.timings.per_image_ms()
    print(f"{n} {'frame' if video else 'image'}(s), {len(rows)} detections; per image: preprocess "
          f"{t['preprocess']:.1f} ms, inference {t['inference']:.1f} ms ({runtime_label(detector)}), postprocess "
          f"{t['postprocess']:.1f} ms", file=sys.stderr)
    print(f"results saved to {out_dir}")
    if stopped is not None:
        raise stopped
    return 0
