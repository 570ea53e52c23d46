"""Tracking a video end to end: frames per second with PyTorch and with ONNX Runtime, and the
MOT metrics each gives, on the same weights and the same video.

    python benchmarks/track_video.py --weights best.pth [--model yolox-nano] [--scene busy] [--seed 0]

The video is a synthetic scene of openyolox/tracking/synthetic.py (the built-in set's shapes
moving with crossings, occlusions by pillars and a shaking camera), written here with its
ground truth; --weights should detect those shapes (a nano trained by `openyolox train`, no
arguments, does). Each back-end runs the whole path of `openyolox track`: decode, the one
prediction step (letterbox, network, NMS at TRACK_IOU, scores down to TRACK_CONF) and
ByteTrack. Each back-end runs the video twice, after a warm-up of 10 frames; the faster run is
reported. MOTA / IDF1 / HOTA come from TrackEval (openyolox.evaluation.mot). Run it alone on
the machine.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openyolox.evaluation.mot import evaluate_mot  # noqa: E402
from openyolox.export import export  # noqa: E402
from openyolox.inference.predictor import Detector  # noqa: E402
from openyolox.tracking.synthetic import make_sequence, write_sequence  # noqa: E402
from openyolox.tracking.video import TRACK_CONF, TRACK_IOU, track_frames  # noqa: E402


def run(detector: Detector, video: Path) -> tuple:
    """-> (seconds for the whole video, MOTChallenge rows (K, 10), frames)."""
    rows = []
    t0 = time.perf_counter()
    n = 0
    for tf in track_frames(detector, str(video)):
        n += 1
        for tid, (x1, y1, x2, y2), s, c in zip(tf.track_ids, tf.boxes, tf.scores, tf.classes):
            rows.append((tf.frame, tid, x1, y1, x2 - x1, y2 - y1, s, c, -1, -1))
    return time.perf_counter() - t0, np.asarray(rows, dtype=np.float64).reshape(-1, 10), n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--model", default="yolox-nano")
    ap.add_argument("--scene", default="busy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--imgsz", type=int, default=416)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seq = make_sequence(args.scene, seed=args.seed)
        write_sequence(seq, tmp / "seq", frames=False)
        video = tmp / "seq" / "video.mp4"
        onnx = export(args.model, args.weights, format="onnx", out=tmp / "model.onnx", imgsz=args.imgsz)
        print(f"{args.scene} scene (seed {args.seed}): {seq.num_frames} frames of {seq.width}x{seq.height}, "
              f"{len(seq.objects)} objects; {args.model} at {args.imgsz}; "
              f"conf {TRACK_CONF}, NMS IoU {TRACK_IOU}")
        results = {}
        for name, source, weights in (("torch", args.model, args.weights), ("onnxruntime", str(onnx), None)):
            det = Detector(source, weights, conf=TRACK_CONF, iou=TRACK_IOU, imgsz=args.imgsz)
            for _ in track_frames(det, str(video), limit=10):  # warm-up
                pass
            seconds, rows, frames = min((run(det, video) for _ in range(2)), key=lambda r: r[0])
            m = evaluate_mot(seq.gt_rows(), rows)
            results[name] = (frames / seconds, m)
            print(f"{name:12s} {frames / seconds:6.1f} fps ({1e3 * seconds / frames:.1f} ms / frame)   "
                  f"MOTA {100 * m['MOTA']:.1f}  IDF1 {100 * m['IDF1']:.1f}  HOTA {100 * m['HOTA']:.1f}  "
                  f"IDSW {m['IDSW']}")
        print(f"ONNX Runtime / PyTorch: {results['onnxruntime'][0] / results['torch'][0]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
