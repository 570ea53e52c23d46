"""ByteTracker: cost per frame at 10, 100 and 500 detections, and quality against the `trackers`
package's ByteTrack on the same simulated detections.

Speed: N objects drift over a 1920x1080 view (boxes 20-60 px, velocity noise, box jitter, 80%
high scores / 20% low, 5% dropped); the tracker sees 20 warm-up frames, then 200 timed ones.

Quality: the synthetic scenes of openyolox/tracking/synthetic.py, seeds 0-4, at the default
noise and a hard one (jitter 8%, 10% dropped, 2 false positives per frame); metrics by TrackEval.
Rows: ours with its defaults (the paper's rules), ours with the official code's settings, and
`trackers`' ByteTrack with its defaults (not a runtime dependency: pip install trackers).

Run: python benchmarks/tracking.py [--speed] [--quality] [--seeds 5]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openyolox.tracking.bytetrack import ByteTracker  # noqa: E402
from openyolox.tracking.synthetic import DetectionNoise, make_sequence, simulate_detections  # noqa: E402


def crowd(n: int, frames: int, seed: int = 0):
    """frames x (boxes (k, 4) xyxy, scores (k,)) for n objects drifting over 1920x1080."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform([0, 0], [1920, 1080], (n, 2))
    vel = rng.normal(0, 3, (n, 2))
    size = rng.uniform(20, 60, (n, 2))
    out = []
    for _ in range(frames):
        vel += rng.normal(0, 0.3, (n, 2))
        pos = (pos + vel) % [1920, 1080]  # wrap around: the count stays n
        keep = rng.random(n) >= 0.05
        c = pos[keep] + rng.normal(0, 1, (keep.sum(), 2))
        wh = size[keep] * np.exp(rng.normal(0, 0.03, (keep.sum(), 2)))
        boxes = np.concatenate((c - wh / 2, c + wh / 2), 1)
        scores = np.where(rng.random(keep.sum()) < 0.8, rng.uniform(0.6, 0.95, keep.sum()),
                          rng.uniform(0.15, 0.45, keep.sum()))
        out.append((boxes, scores.astype(np.float32)))
    return out


def time_ours(frames, warmup=20) -> float:
    tracker = ByteTracker()
    for boxes, scores in frames[:warmup]:
        tracker.update(boxes, scores)
    t0 = time.perf_counter()
    for boxes, scores in frames[warmup:]:
        tracker.update(boxes, scores)
    return (time.perf_counter() - t0) / (len(frames) - warmup) * 1e3


def time_trackers(frames, warmup=20) -> float:
    import supervision as sv
    from trackers import ByteTrackTracker

    tracker = ByteTrackTracker()
    dets = [sv.Detections(xyxy=b.astype(np.float32), confidence=s, class_id=np.zeros(len(s), int)) for b, s in frames]
    for d in dets[:warmup]:
        tracker.update(d)
    t0 = time.perf_counter()
    for d in dets[warmup:]:
        tracker.update(d)
    return (time.perf_counter() - t0) / (len(frames) - warmup) * 1e3


def speed() -> None:
    have_trackers = _have_trackers()
    print("cost per frame (ms), one CPU thread; 200 timed frames after 20 warm-up")
    print(f"{'detections':>10}  {'openyolox':>9}" + (f"  {'trackers':>9}" if have_trackers else ""))
    for n in (10, 100, 500):
        frames = crowd(n, 220)
        line = f"{n:>10}  {time_ours(frames):9.2f}"
        if have_trackers:
            line += f"  {time_trackers(frames):9.2f}"
        print(line, flush=True)


def _rows_ours(dets, **kwargs):
    tracker, rows = ByteTracker(**kwargs), []
    for d in dets:
        t = tracker.update(d.boxes, d.scores, d.classes)
        rows += [[t.frame, i, b[0], b[1], b[2] - b[0], b[3] - b[1], s] for i, b, s in zip(t.track_ids, t.boxes, t.scores)]
    return np.array(rows).reshape(-1, 7)


def _rows_trackers(dets):
    import supervision as sv
    from trackers import ByteTrackTracker

    tracker, rows = ByteTrackTracker(), []
    for d in dets:
        out = tracker.update(sv.Detections(xyxy=d.boxes.astype(np.float32), confidence=d.scores,
                                           class_id=d.classes.astype(int)))
        rows += [[d.frame, i, b[0], b[1], b[2] - b[0], b[3] - b[1], s]
                 for b, s, i in zip(out.xyxy, out.confidence, out.tracker_id) if i >= 0]
    return np.array(rows).reshape(-1, 7)


def quality(seeds: int) -> None:
    from openyolox.evaluation.mot import evaluate_mot

    runners = {"openyolox (defaults: paper)": lambda d: _rows_ours(d),
               "openyolox (official code)": lambda d: _rows_ours(d, revive_with_low=False, second_match_thresh=0.5,
                                                             report_boxes="kalman")}
    if _have_trackers():
        runners["trackers ByteTrack (defaults)"] = _rows_trackers
    noises = {"default": DetectionNoise(), "hard": DetectionNoise(box_sigma=0.08, drop_rate=0.1, false_positives=2.0)}
    print(f"\nmeans over seeds 0-{seeds - 1}: IDF1 / MOTA / HOTA (%), ID switches summed")
    print(f"{'scene':9} {'noise':7} {'tracker':30} {'IDF1':>5} {'MOTA':>5} {'HOTA':>5} {'IDSW':>4}")
    for scene in ("crossing", "occlusion", "busy"):
        seqs = [make_sequence(scene, s) for s in range(seeds)]
        for nname, noise in noises.items():
            dets = [simulate_detections(q, noise, s) for s, q in enumerate(seqs)]
            for name, run in runners.items():
                ms = [evaluate_mot(q.gt_rows(), run(d)) for q, d in zip(seqs, dets)]
                mean = {k: 100 * np.mean([m[k] for m in ms]) for k in ("IDF1", "MOTA", "HOTA")}
                print(f"{scene:9} {nname:7} {name:30} {mean['IDF1']:5.1f} {mean['MOTA']:5.1f} {mean['HOTA']:5.1f} "
                      f"{sum(m['IDSW'] for m in ms):4d}", flush=True)


def _have_trackers() -> bool:
    try:
        import supervision  # noqa: F401
        import trackers  # noqa: F401
    except ImportError:
        print("(trackers/supervision not installed: comparison rows left out)")
        return False
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--speed", action="store_true")
    p.add_argument("--quality", action="store_true")
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    if not (args.speed or args.quality):
        args.speed = args.quality = True
    if args.speed:
        speed()
    if args.quality:
        quality(args.seeds)


if __name__ == "__main__":
    main()
