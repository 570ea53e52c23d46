"""``openyolox predict SOURCE``: detect in an image, a folder, a video or a webcam."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

from openyolox.run_dir import make_run_dir
from openyolox.cli.common import add_model_args, load_detector, validate_model_args
from openyolox.errors import DataError


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="detect objects in images, folders, videos or a webcam",
                       description="Detect objects; writes annotated images/video and predictions.json.")
    p.add_argument("source", help="image file, folder of images, video file, or webcam index (0, 1, ...)")
    add_model_args(p)
    p.add_argument("--conf", type=float, default=0.25, help="score threshold (obj x class prob)")
    p.add_argument("--nms", type=float, default=0.45, help="NMS IoU threshold")
    p.add_argument("--class-agnostic", action="store_true", help="NMS across classes")
    p.add_argument("--out", help="output folder (default runs/predict/expN)")
    p.add_argument("--no-save-images", action="store_true", help="write only predictions.json")
    p.add_argument("--max-frames", type=int, default=0, help="stop a video/webcam after N frames (0: all)")


def run(args: argparse.Namespace) -> int:
    from openyolox.inference.sources import VIDEO_SUFFIXES, list_images
    from openyolox.data.image_io import IMAGE_SUFFIXES, read_image
    from openyolox.inference.visualize import draw_detections

    validate_model_args(args)
    source = args.source
    is_cam = source.isdigit()
    src_path = Path(source)
    if not is_cam and not src_path.exists():
        raise DataError(f"{source}: no such file or folder")
    detector = load_detector(args, conf=args.conf, nms=args.nms, class_agnostic=args.class_agnostic)
    out_dir = make_run_dir(args.out, "predict")
    rows = []
    if is_cam or src_path.suffix.lower() in VIDEO_SUFFIXES:
        n = _predict_video(detector, int(source) if is_cam else src_path, out_dir, args, rows, draw_detections)
        print(f"{n} frames processed", file=sys.stderr)
    else:
        if src_path.is_dir():
            files = list_images(src_path)
            if not files:
                raise DataError(f"{src_path}: folder contains no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        elif src_path.suffix.lower() in IMAGE_SUFFIXES:
            files = [src_path]
        else:
            raise DataError(f"{src_path}: not an image or video file (by its extension)")
        skipped = 0
        for f in tqdm(files, desc="predict", unit="img", disable=len(files) < 2, file=sys.stderr):
            try:
                image = read_image(f)
            except DataError as exc:
                if len(files) == 1:
                    raise
                tqdm.write(f"warning: skipping {exc}", file=sys.stderr)
                skipped += 1
                continue
            (det,) = detector.predict_images([(f.stem, image)])
            rows += det.to_coco(detector.category_ids)
            if not args.no_save_images:
                cv2.imwrite(str(out_dir / f"{f.stem}.jpg"),
                            draw_detections(image, det.boxes, det.scores, det.classes, det.names))
        if skipped:
            print(f"warning: {skipped} unreadable image(s) skipped", file=sys.stderr)
    (out_dir / "predictions.json").write_text(json.dumps(rows))
    t = detector.timings.per_image_ms()
    print(f"{detector.timings.images} image(s), {len(rows)} detections; per image: preprocess "
          f"{t['preprocess']:.1f} ms, inference {t['inference']:.1f} ms, postprocess {t['postprocess']:.1f} ms",
          file=sys.stderr)
    print(f"results saved to {out_dir}")
    return 0


def _predict_video(detector, source, out_dir: Path, args, rows: list, draw) -> int:
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise DataError(f"{source}: cannot open video/webcam")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not isinstance(source, int) else 0
    stem = source.stem if isinstance(source, Path) else f"webcam{source}"
    writer = None
    n = 0
    bar = tqdm(total=total or None, desc="predict", unit="frame", file=sys.stderr)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            (det,) = detector.predict_images([(f"{stem}_{n:06d}", frame)])
            rows += det.to_coco(detector.category_ids)
            if not args.no_save_images:
                if writer is None:
                    h, w = frame.shape[:2]
                    writer = cv2.VideoWriter(str(out_dir / f"{stem}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                writer.write(draw(frame, det.boxes, det.scores, det.classes, det.names))
            n += 1
            bar.update(1)
            if args.max_frames and n >= args.max_frames:
                break
    except KeyboardInterrupt:
        print("stopped; writing what was processed", file=sys.stderr)
    finally:
        bar.close()
        cap.release()
        if writer is not None:
            writer.release()
    if n == 0:
        raise DataError(f"{source}: no frames could be read")
    return n
