"""Sliced inference on large images with many small objects: AP with and without slicing,
the merge methods against each other, and what slicing costs in time.

Data, made here (deterministic; cached in <openyolox cache>/bench-slicing-v1):
- train/ val/: the built-in set's world (openyolox.data.formats.synthetic: six shapes,
  textured backgrounds, sensor noise, JPEG) at a small object scale: 288-352 px images with
  shapes of 8-160 px (log-uniform; the built-in set: 14-160) and up to 20 of them (built-in: 8).
- small/: 12 images of 3000-5000 px a side, up to 80 shapes of 8-24 px each.
- seams/: 8 images of 2000-2600 px, up to 40 shapes of 48-160 px, run with 320 px windows
  (64 px overlap), so that many shapes are larger than the overlap and no window holds them
  whole: the case the merge method decides.
Each large set is a COCO dataset: `openyolox val --data <cache>/bench-slicing-v1/small --slice
640 ...` scores it too.

Model: --weights, or one trained here first with `openyolox train` (the built-in recipe on
train/, ~10-15 min on 2 CPU cores; the command is printed).

Per image, the windows and the full image go through the network once; every variant below is
merged from those tile detections (openyolox.inference.slicing):
- no slicing: the full image at --imgsz, as `predict` runs without --slice;
- union / nms: windows + the full image, merged as --slice-merge union (default) / nms;
- ... no full: windows only;
- plain NMS: windows + full image, class-aware NMS of every box, edges ignored.
AP: COCO protocol (evaluate_coco; conf 0.01, NMS IoU 0.65). "cut": objects no window holds
whole; recall at IoU 0.5 and mean IoU of their best box scoring >= 0.25. "dup": boxes scoring
>= 0.25 that are mostly (70% of their area) inside an object a better box already matched.

Run: python benchmarks/slicing.py [--weights best.pth] [--imgsz 640] [--slice 640]
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openyolox.cache import cache_dir  # noqa: E402
from openyolox.data.formats import synthetic  # noqa: E402
from openyolox.data.formats.coco import coco_dict  # noqa: E402
from openyolox.data.image_io import read_image  # noqa: E402
from openyolox.data.records import DatasetSplit, ImageRecord  # noqa: E402
from openyolox.evaluation.coco import evaluate_coco  # noqa: E402
from openyolox.inference.predictor import Detector  # noqa: E402
from openyolox.inference.results import Detections  # noqa: E402
from openyolox.inference.slicing import SliceConfig, TileDetections, merge_detections, predict_tiles, tile_windows  # noqa: E402,E501

VERSION = "bench-slicing-v1"
SEED = 20240613
SETS = {  # name: (images, (min side, max side), shape sizes px, max shapes per image)
    "train": (1200, None, (8.0, 160.0), 20),
    "val": (200, None, (8.0, 160.0), 20),
    "small": (12, (3000, 5000), (8.0, 24.0), 80),
    "seams": (8, (2000, 2600), (48.0, 160.0), 40),
}
CONF, IOU, SHOW_CONF = 0.01, 0.65, 0.25


# ----------------------------------------------------------------------------- data


def make_set(root: Path, name: str) -> Path:
    """Write one set as <root>/<name>/{images, annotations/instances_<split>.json}; kept when there."""
    count, sides, sizes, max_objects = SETS[name]
    # train and val share one COCO root (what `openyolox train --data` reads); large sets are their own
    folder = root / ("builtin-small" if name in ("train", "val") else name)
    split = name if name in ("train", "val") else "val"
    done = folder / "annotations" / f"instances_{split}.json"
    if done.is_file():
        return folder
    (folder / split).mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(count):
        rng = np.random.default_rng([SEED, list(SETS).index(name), i])
        if sides is None:
            w, h = synthetic.IMAGE_SIZES[int(rng.integers(len(synthetic.IMAGE_SIZES)))]
        else:
            w, h = (int(v) for v in rng.integers(sides[0], sides[1] + 1, 2))
        image, boxes, classes = synthetic.render_image(rng, w, h, sizes=sizes, max_objects=max_objects)
        path = folder / split / f"{i:06d}.jpg"
        path.write_bytes(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, synthetic.JPEG_QUALITY])[1].tobytes())
        records.append(ImageRecord(path, i + 1, w, h, boxes, classes))
    done.parent.mkdir(exist_ok=True)
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(coco_dict(records, synthetic.CLASS_NAMES, image_root=folder / split)))
    tmp.rename(done)
    return folder


def load_set(folder: Path) -> DatasetSplit:
    from openyolox.data.layouts import load_split

    return load_split(folder, "val")


def train_command(root: Path, out: Path) -> List[str]:
    """The built-in recipe (openyolox/training/recipe.py BUILTIN_RECIPE) on the small-scale set,
    from scratch."""
    return [sys.executable, "-m", "openyolox", "train", "--model", "yolox-nano", "--data", str(root / "builtin-small"),
            "--weights", "none", "--epochs", "18", "--batch", "16", "--imgsz", "320", "--lr", "0.00125",
            "--no-multiscale", "--warmup-epochs", "1", "--no-aug-epochs", "3", "--eval-interval", "3",
            "--out", str(out), "--no-progress"]


# ----------------------------------------------------------------------------- measuring


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4), (M, 4) xyxy -> (N, M) IoU."""
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clip(0).prod(2)
    area = lambda x: (x[:, 2:] - x[:, :2]).clip(0).prod(1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9), inter / (area(a)[:, None] + 1e-9)


def cut_objects(rec: ImageRecord, size: int, overlap: float) -> np.ndarray:
    """(G,) bool: the objects of ``rec`` that no window holds whole."""
    wins = np.array(tile_windows((rec.height, rec.width), size, overlap), np.float32)
    b = rec.boxes
    inside = (b[:, None, 0] >= wins[None, :, 0]) & (b[:, None, 1] >= wins[None, :, 1]) & \
             (b[:, None, 2] <= wins[None, :, 2]) & (b[:, None, 3] <= wins[None, :, 3])
    return ~inside.any(1)


def seam_stats(rec: ImageRecord, det: Tuple[np.ndarray, np.ndarray, np.ndarray], cut: np.ndarray
               ) -> Tuple[List[float], int]:
    """(best IoU of each cut object among same-class boxes scoring >= SHOW_CONF, duplicate count)."""
    boxes, scores, classes = (x[det[1] >= SHOW_CONF] for x in det)
    order = np.argsort(-scores, kind="stable")
    boxes, classes = boxes[order], classes[order]
    if len(boxes) == 0 or len(rec.boxes) == 0:
        return [0.0] * int(cut.sum()), 0
    iou, ios = box_iou(boxes, rec.boxes)
    same = classes[:, None] == rec.classes[None, :]
    iou, ios = np.where(same, iou, 0), np.where(same, ios, 0)
    best = [float(iou[:, g].max()) for g in np.flatnonzero(cut)]
    taken, dup = np.zeros(len(rec.boxes), bool), 0
    for k in range(len(boxes)):
        g = int(iou[k].argmax())
        if iou[k, g] >= 0.5 and not taken[g]:
            taken[g] = True
        elif (ios[k] >= 0.7)[taken].any():
            dup += 1
    return best, dup


def run_set(name: str, split: DatasetSplit, detector: Detector, size: int, overlap: float
            ) -> Tuple[List[dict], Dict[str, Dict]]:
    """Every variant on every image of the set -> (one row per variant, variant -> image id ->
    Detections)."""
    windows_cfg = SliceConfig(size, overlap, full=False)
    variants = ["no slicing", "union", "nms", "union, no full", "nms, no full", "plain NMS"]
    preds: Dict[str, Dict] = {v: {} for v in variants}
    seconds = {"windows": 0.0, "full": 0.0, "merge": 0.0}
    seams = {v: ([], 0) for v in variants}
    n_cut = 0
    for rec in split.records:
        image = read_image(rec.path)
        t0 = time.perf_counter()
        windows = predict_tiles(detector, image, windows_cfg)
        t1 = time.perf_counter()
        (full,) = detector.predict_images([(rec.image_id, image)], clip=True)
        t2 = time.perf_counter()
        whole = TileDetections(full.boxes.astype(np.float32), full.scores.astype(np.float32), full.classes,
                               np.zeros(len(full), bool),
                               np.tile(np.array([0, 0, rec.width, rec.height], np.float32), (len(full), 1)))
        both = TileDetections(*(np.concatenate([a, b]) for a, b in zip(windows, whole)))
        results = {"no slicing": (full.boxes, full.scores, full.classes)}
        t3 = time.perf_counter()
        results["union"] = merge_detections(both, IOU, "union")
        t4 = time.perf_counter()
        results["nms"] = merge_detections(both, IOU, "nms")
        results["union, no full"] = merge_detections(windows, IOU, "union")
        results["nms, no full"] = merge_detections(windows, IOU, "nms")
        results["plain NMS"] = merge_detections(both._replace(cut=np.zeros(len(both.cut), bool)), IOU)
        seconds["windows"] += t1 - t0
        seconds["full"] += t2 - t1
        seconds["merge"] += t4 - t3
        cut = cut_objects(rec, size, overlap)
        n_cut += int(cut.sum())
        for v, det in results.items():
            preds[v][rec.image_id] = Detections(*det, image_id=rec.image_id)
            best, dup = seam_stats(rec, det, cut)
            seams[v] = (seams[v][0] + best, seams[v][1] + dup)
    n = len(split.records)
    rows = []
    for v in variants:
        m = evaluate_coco(split, preds[v])
        best = np.asarray(seams[v][0])
        ms = 1000 * (seconds["full"] if v == "no slicing" else
                     seconds["windows"] + seconds["merge"] + (0 if "no full" in v else seconds["full"])) / n
        rows.append({"set": name, "variant": v, "AP50": m["AP50"], "AP50_95": m["AP50_95"], "ms_per_image": ms,
                     "cut_objects": n_cut, "cut_recall50": float((best >= 0.5).mean()) if n_cut else None,
                     "cut_mean_iou": float(best.mean()) if n_cut else None, "duplicates": seams[v][1]})
    return rows, preds


def figure(rec: ImageRecord, preds: Dict[str, Dict], size: int, path: Path, crop: int = 720) -> None:
    """Side by side, the same crop of one image: boxes scoring >= SHOW_CONF without slicing and
    with it (union); the crop is the window holding the most objects; titles count the objects
    found (IoU >= 0.5)."""
    image = read_image(rec.path)
    centres = (rec.boxes[:, :2] + rec.boxes[:, 2:]) / 2
    grid = [(x, y) for y in range(0, rec.height - crop + 1, crop // 4) for x in range(0, rec.width - crop + 1, crop // 4)]
    x0, y0 = max(grid, key=lambda p: int(((centres >= p) & (centres < (p[0] + crop, p[1] + crop))).all(1).sum()))
    inside = ((centres >= (x0, y0)) & (centres < (x0 + crop, y0 + crop))).all(1)
    panels = []
    for variant, title in (("no slicing", "without slicing"), ("union", f"--slice {size}")):
        det = preds[variant][rec.image_id].filter(min_score=SHOW_CONF)
        iou = box_iou(rec.boxes[inside], det.boxes)[0] if len(det) else np.zeros((int(inside.sum()), 0))
        found = int((iou.max(1) >= 0.5).sum()) if iou.size else 0
        shifted = Detections(det.boxes - [x0, y0, x0, y0], det.scores, det.classes, names=synthetic.CLASS_NAMES)
        panel = shifted.plot(line_width=2, labels=False, image=np.ascontiguousarray(image[y0:y0 + crop, x0:x0 + crop]))
        band = np.full((44, crop, 3), 255, np.uint8)
        cv2.putText(band, f"{title}: {found} of {int(inside.sum())} objects", (10, 30), cv2.FONT_HERSHEY_SIMPLEX,
                    0.8, (0, 0, 0), 2, cv2.LINE_AA)
        panels.append(np.vstack([band, panel]))
    gap = np.full((crop + 44, 8, 3), 255, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.hstack([panels[0], gap, panels[1]]), [cv2.IMWRITE_JPEG_QUALITY, 85])


def describe(split: DatasetSplit) -> str:
    sides = np.concatenate([r.boxes[:, 2:] - r.boxes[:, :2] for r in split.records]).max(1)
    sizes = [f"{r.width}x{r.height}" for r in split.records]
    return (f"{len(split)} images ({min(sizes)} .. {max(sizes)}), {len(sides)} objects, longer box side "
            f"{sides.min():.0f} / {np.median(sides):.0f} / {sides.max():.0f} px (min / median / max)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="a yolox-nano checkpoint for the built-in classes (default: train one)")
    ap.add_argument("--imgsz", type=int, default=640, help="network input for windows and the full image")
    ap.add_argument("--slice", type=int, default=640, help="window size for the small-object set")
    ap.add_argument("--overlap", type=float, default=0.2)
    ap.add_argument("--seam-slice", type=int, default=320, help="window size for the seams set (run at that size)")
    ap.add_argument("--data", type=Path, default=cache_dir() / VERSION)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--figure", type=Path, help="write a with/without picture of the first small image here")
    args = ap.parse_args()

    for name in SETS:
        make_set(args.data, name)
    weights = args.weights
    if weights is None:
        out = args.data / "nano-run"
        cmd = train_command(args.data, out)
        print("training:", " ".join(shlex.quote(c) for c in cmd), flush=True)
        if not (out / "best.pth").is_file():
            subprocess.run(cmd, check=True)
        weights = str(out / "best.pth")
    rows = []
    for name, size, imgsz in (("small", args.slice, args.imgsz), ("seams", args.seam_slice, args.seam_slice)):
        split = load_set(args.data / name)
        print(f"{name}: {describe(split)}; windows {size} px, overlap {args.overlap}, input {imgsz}", flush=True)
        detector = Detector(weights, conf=CONF, iou=IOU, imgsz=imgsz)
        detector.predict_images([("warm-up", read_image(split.records[0].path)[:imgsz, :imgsz])])
        set_rows, preds = run_set(name, split, detector, size, args.overlap)
        rows += set_rows
        if name == "small" and args.figure:
            figure(split.records[0], preds, size, args.figure)
    print("\n| set | variant | AP50 | AP50-95 | ms / image | cut objects: recall@0.5 | mean IoU | duplicates |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cut = (f"{r['cut_recall50']:.3f} | {r['cut_mean_iou']:.3f}" if r["cut_objects"] else "- | -")
        print(f"| {r['set']} | {r['variant']} | {r['AP50']:.3f} | {r['AP50_95']:.3f} | {r['ms_per_image']:.0f} | "
              f"{cut} | {r['duplicates']} |")
    print("\ncut objects (no window holds them whole): " +
          ", ".join(f"{s}: {next(r['cut_objects'] for r in rows if r['set'] == s)}" for s in ("small", "seams")))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
