"""``openyolox track SOURCE``: detect and track objects in a video, a folder of frames or a webcam."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from openyolox.cli.common import add_model_args, load_detector, runtime_label, validate_model_args
from openyolox.errors import DataError
from openyolox.run_dir import make_run_dir


def add_parser(sub) -> None:
    from openyolox.tracking.video import TRACK_CONF, TRACK_IOU

    p = sub.add_parser("track", help="track objects in a video, a folder of frames or a webcam (ByteTrack)",
                       description="Detect every frame and link detections into tracks with ByteTrack. Writes an "
                                   "annotated video, tracks.txt (MOTChallenge) and tracks.json. See docs/tracking.md.")
    p.add_argument("source", help="video file, folder of frames (in name order), or webcam index (0, 1, ...)")
    add_model_args(p)
    p.add_argument("--tracker", default="bytetrack", choices=["bytetrack"], help="association method")
    p.add_argument("--conf", type=float, default=TRACK_CONF,
                   help=f"detector score threshold (default {TRACK_CONF}: ByteTrack uses low-score boxes)")
    p.add_argument("--iou", type=float, default=TRACK_IOU, help=f"detector NMS IoU threshold (default {TRACK_IOU})")
    p.add_argument("--classes", nargs="+", metavar="C", help="track only these classes (ids or names)")
    p.add_argument("--track-thresh", type=float, default=0.5, help="high-score detections: first association")
    p.add_argument("--low-thresh", type=float, default=0.1, help="detections below are ignored (second stage floor)")
    p.add_argument("--new-track-thresh", type=float, help="score to start a track (default track-thresh + 0.1)")
    p.add_argument("--match-thresh", type=float, default=0.8, help="first-stage cost limit (1 - IoU x score)")
    p.add_argument("--track-buffer", type=int, default=30, help="frames a lost track is kept (at 30 fps)")
    p.add_argument("--class-agnostic-tracking", dest="per_class", action="store_false",
                   help="let a track take detections of any class (default: its own class only)")
    p.add_argument("--trail", type=int, default=30, help="frames of trail drawn behind each track (0: none)")
    p.add_argument("--batch", type=int, default=1, help="frames per forward pass")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: all)")
    p.add_argument("--no-save", action="store_true", help="write tracks.txt and tracks.json only, no video")
    p.add_argument("--out", help="output folder (default runs/track/expN)")


def run(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from openyolox.inference.sources import video_fps, webcam_index
    from openyolox.tracking.draw import TrackPainter
    from openyolox.tracking.mot_io import MotWriter, TrackJsonWriter
    from openyolox.tracking.video import track_frames

    validate_model_args(args)
    source = args.source
    if webcam_index(source) is None and not Path(source).exists():
        raise DataError(f"{source}: no such file or folder")
    if args.batch < 1:
        raise DataError(f"--batch must be >= 1, got {args.batch}")
    detector = load_detector(args, conf=args.conf, iou=args.iou)
    out_dir = make_run_dir(args.out, "track")
    options = dict(track_thresh=args.track_thresh, low_thresh=args.low_thresh, new_track_thresh=args.new_track_thresh,
                   match_thresh=args.match_thresh, track_buffer=args.track_buffer, per_class=args.per_class)
    cam = webcam_index(source)
    stem = f"webcam{cam}" if cam is not None else Path(source).stem
    fps = video_fps(source) if cam is not None or Path(source).is_file() else 25.0
    painter = TrackPainter(detector.names, trail=args.trail)
    meta = {"source": str(source), "model": str(args.model), "tracker": args.tracker, **options}
    writer = None
    frames = 0
    t0 = time.perf_counter()
    bar = tqdm(desc="track", unit="frame", file=sys.stderr, dynamic_ncols=True)
    try:
        with MotWriter(out_dir / "tracks.txt") as mot, TrackJsonWriter(out_dir / "tracks.json", detector.names,
                                                                     meta) as js:
            try:
                for frame in track_frames(detector, source, batch_size=args.batch, limit=args.max_frames,
                                          classes=args.classes, **options):
                    mot.write(frame.tracks)
                    js.write(frame.tracks)
                    frames += 1
                    if not args.no_save:
                        drawn = painter.draw(frame.image, frame.tracks)
                        if writer is None:
                            h, w = drawn.shape[:2]
                            writer = cv2.VideoWriter(str(out_dir / f"{stem}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                                     fps, (w, h))
                        writer.write(drawn)
                    bar.set_postfix(fps=f"{frames / max(time.perf_counter() - t0, 1e-9):.1f}", tracks=len(frame),
                                    refresh=False)
                    bar.update(1)
            except KeyboardInterrupt:  # keep what was tracked: the writers finish their files
                print("stopped; the outputs hold the frames tracked so far", file=sys.stderr)
    finally:
        bar.close()
        if writer is not None:
            writer.release()
    elapsed = time.perf_counter() - t0
    print(f"{frames} frame(s) tracked in {elapsed:.1f} s ({frames / max(elapsed, 1e-9):.1f} frames/s, "
          f"{runtime_label(detector)}); "
          f"tracks.txt, tracks.json{'' if args.no_save else f', {stem}.mp4'}", file=sys.stderr)
    print(f"results saved to {out_dir}")
    return 0
