"""Fine-tuning published weights vs training from scratch, on a small custom set, same budget.

    python benchmarks/finetune.py --pretrained runs/train/exp1/best.pth [--epochs 30] [--out /tmp/ft]

Nothing can be downloaded here, so a yolox-nano trained on the built-in set stands in for the
published COCO weights (`openyolox train`, no arguments, gives one). The custom set is made by
this script: frames of the synthetic tracking scenes (openyolox/tracking/synthetic.py: textured
shapes, pillars, a shaking camera: another look than the built-in set), labelled with three
of the six shape classes (the other shapes stay in the pictures, unlabelled), 240 training
images from 8 sequences and 90 validation images from 3 others, at 320 px.

Both runs have the same budget (epochs, batch 16, evaluation every 5 epochs) and otherwise the
defaults a user gets from `openyolox train --data custom --epochs E`: the fine-tuning recipe
from --pretrained, the report's recipe with --weights none (warm-up and no-aug epochs scaled to
E). Prints AP50, AP50-95 and wall time per run, and their ratios; run it alone on the machine.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openyolox.tracking.synthetic import CLASS_NAMES, make_sequence, render_frame  # noqa: E402
from openyolox.training.trainer import train  # noqa: E402

KEEP = ("circle", "rectangle", "triangle")   # the custom set's classes (a subset of CLASS_NAMES)


def make_custom_set(root: Path, train_seeds=range(100, 108), val_seeds=range(200, 203), every: int = 10) -> Path:
    """COCO layout under root: annotations/instances_{train,val}.json, {train,val}/*.jpg."""
    keep = {CLASS_NAMES.index(n): k for k, n in enumerate(KEEP)}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, seeds in (("train", train_seeds), ("val", val_seeds)):
        (root / split).mkdir(exist_ok=True)
        images, annotations = [], []
        for seed in seeds:
            seq = make_sequence("busy", seed)
            for f in range(1, seq.num_frames + 1, every):
                name = f"s{seed}_f{f:04d}.jpg"
                cv2.imwrite(str(root / split / name), render_frame(seq, f))
                image_id = len(images) + 1
                images.append({"id": image_id, "file_name": name, "width": seq.width, "height": seq.height})
                for row in seq.gt_rows()[seq.gt_rows()[:, 0] == f]:
                    cls = int(row[7])
                    if cls in keep and row[4] > 1 and row[5] > 1:
                        annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                            "category_id": keep[cls] + 1, "bbox": [float(v) for v in row[2:6]],
                                            "area": float(row[4] * row[5]), "iscrowd": 0})
        coco = {"images": images, "annotations": annotations,
                "categories": [{"id": k + 1, "name": n} for k, n in enumerate(KEEP)]}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    return root


def run(data: Path, out: Path, weights: str, epochs: int, imgsz: int) -> dict:
    t0 = time.perf_counter()
    run_dir = train(model="yolox-nano", data=str(data), weights=weights, epochs=epochs, imgsz=imgsz, batch=16,
                    eval_interval=5, out=str(out), progress=False)
    elapsed = time.perf_counter() - t0
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    return {"AP50": metrics["AP50"], "AP50_95": metrics["AP50_95"], "seconds": round(elapsed, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pretrained", required=True, help="a yolox-nano checkpoint (e.g. the built-in main job's best.pth)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--out", default="/tmp/openyolox-finetune-bench")
    args = p.parse_args()
    out = Path(args.out)
    data = make_custom_set(out / "custom")
    results = {"fine-tuned": run(data, out / "finetune", args.pretrained, args.epochs, args.imgsz),
               "from scratch": run(data, out / "scratch", "none", args.epochs, args.imgsz)}
    print(f"| run | AP50 | AP50-95 | wall time (s) |   ({args.epochs} epochs, {args.imgsz} px, yolox-nano)")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['AP50']:.3f} | {r['AP50_95']:.3f} | {r['seconds']} |")
    ft, sc = results["fine-tuned"], results["from scratch"]
    print(f"fine-tuned / from scratch: AP50 x{ft['AP50'] / max(sc['AP50'], 1e-9):.2f}, "
          f"time x{ft['seconds'] / sc['seconds']:.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
