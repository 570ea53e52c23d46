"""A dataset labelled by the model itself (a test helper for INT8 and per-format accuracy).

A random-weight network detects nothing real, so AP on any real labels is ~0 for every format
and says nothing. Here the ground truth of each image is the PyTorch model's own confident
detections: PyTorch scores a high AP on it, an export with PyTorch's detections scores the
same AP, and an INT8 file loses AP where its detections move. Usage::

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from selflabelled import make_selflabelled

    ckpt, data = make_selflabelled(tmp_path, imgsz=160)   # checkpoint, COCO root (train = val)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Tuple

import cv2
import numpy as np

from export_helpers import detecting_model

NUM_IMAGES = 8
BOXES_PER_IMAGE = 4  # on average: one score threshold for all images


def _images(n: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = [(120, 200), (160, 160), (200, 140), (150, 190)][i % 4]
        img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        for _ in range(3):  # flat patches: something for the convolutions to respond to
            x, y = rng.integers(0, w - 40), rng.integers(0, h - 40)
            img[y:y + 36, x:x + 36] = rng.integers(0, 255, 3)
        out.append((f"img_{i:03d}", img))
    return out


def make_selflabelled(root: Path, imgsz: int = 160, num_images: int = NUM_IMAGES, seed: int = 0
                      ) -> Tuple[Path, Path]:
    """Write ``root/model.pth`` (yolox-nano, 80 classes, imgsz in its metadata) and a COCO root
    ``root/data`` whose train and val splits hold the same images, labelled with the PyTorch
    Detector's detections above one score threshold (BOXES_PER_IMAGE per image on average).
    Returns (checkpoint, data)."""
    import openyolox
    from openyolox.checkpoint import save_checkpoint
    from openyolox.data.coco_classes import COCO_CLASSES

    root = Path(root)
    images = _images(num_images, seed)
    model = detecting_model("yolox-nano", images)
    ckpt = save_checkpoint(root / "model.pth", {"model": model.state_dict(), "model_name": "yolox-nano",
                                                "imgsz": [imgsz, imgsz], "class_names": list(COCO_CLASSES),
                                                "category_ids": list(range(80))})
    # the evaluation's NMS (IoU 0.65) and unclipped boxes: above the threshold, the evaluation
    # sees exactly these boxes, so PyTorch's AP is 1 and a format's AP falls where it differs
    detector = openyolox.Detector(ckpt, conf=0.01, iou=0.65, backend="torch")
    found = [detector.predict_images([(name, img)], clip=False)[0] for name, img in images]
    scores = np.sort(np.concatenate([d.scores for d in found]))[::-1]
    threshold = float(scores[min(BOXES_PER_IMAGE * len(images), len(scores) - 1)])
    categories = [{"id": i, "name": name} for i, name in enumerate(COCO_CLASSES)]
    coco = {"images": [], "annotations": [], "categories": categories}
    data = root / "data"
    for split in ("train", "val"):
        (data / split).mkdir(parents=True, exist_ok=True)
    for image_id, ((name, img), det) in enumerate(zip(images, found), 1):
        for split in ("train", "val"):
            cv2.imwrite(str(data / split / f"{name}.png"), img)  # lossless: every split sees the same pixels
        coco["images"].append({"id": image_id, "file_name": f"{name}.png", "width": img.shape[1],
                               "height": img.shape[0]})
        for k in np.flatnonzero(det.scores > threshold):
            x1, y1, x2, y2 = (float(v) for v in det.boxes[k])
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id,
                                        "category_id": int(det.classes[k]), "bbox": [x1, y1, x2 - x1, y2 - y1],
                                        "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    (data / "annotations").mkdir(exist_ok=True)
    for split in ("train", "val"):
        (data / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    return ckpt, data
