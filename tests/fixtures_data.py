"""A tiny detection dataset written to disk in the COCO, VOC and YOLO layouts (a test helper).

Usage (tests import it the way tests/test_simota.py imports its helper)::

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fixtures_data import make_tiny_dataset, write_coco, write_voc, write_yolo

    images = make_tiny_dataset()              # list of TinyImage (image + ground truth)
    data = write_coco(tmp_path / "coco")      # -> path to give to load_split(data, "val")
    data = write_voc(tmp_path / "voc")
    data = write_yolo(tmp_path / "yolo")      # -> .../data.yaml

The dataset: NUM_IMAGES small JPEGs of different sizes (wider and taller than high, so a
width/height mix-up shows), 3 classes (CLASS_NAMES, in sorted order so every layout's class
rule gives the same order), filled shapes drawn where their boxes are, and image 1 without
objects. Every split written ("train" and "val" by default) holds the same images. Boxes
lie on a 0.25 px grid, so COCO and VOC store them exactly and YOLO to ~1e-4 px.

The COCO writer uses the deliberately non-contiguous category ids COCO_CATEGORY_IDS
(1, 2, 5) and lists categories out of order, as real files do; VOC and YOLO have 0..2.
The writers are independent of the readers in ``openyolox.data.formats`` on purpose.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import cv2
import numpy as np

PathLike = Union[str, Path]

CLASS_NAMES = ("circle", "square", "triangle")
COCO_CATEGORY_IDS = (1, 2, 5)
NUM_IMAGES = 6
EMPTY_IMAGE_INDEX = 1
_SIZES = ((64, 48), (80, 64), (72, 72), (96, 56), (60, 90), (100, 80))  # (width, height)


@dataclass
class TinyImage:
    """One image and its ground truth. boxes: (N, 4) xyxy float32 px; classes: (N,) int64."""

    name: str          # file stem, e.g. "img_000"; files are <name>.jpg
    image: np.ndarray  # BGR uint8 (H, W, 3)
    boxes: np.ndarray
    classes: np.ndarray

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]


def make_tiny_dataset(num_images: int = NUM_IMAGES, seed: int = 0) -> List[TinyImage]:
    """Deterministic tiny dataset: image EMPTY_IMAGE_INDEX has no objects, the others 1-3."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(num_images):
        w, h = _SIZES[i % len(_SIZES)]
        image = np.empty((h, w, 3), np.uint8)
        image[:] = rng.integers(60, 200, 3)
        n = 0 if i == EMPTY_IMAGE_INDEX else int(rng.integers(1, 4))
        boxes, classes = [], []
        for _ in range(n):
            bw, bh = rng.uniform(0.2, 0.6) * w, rng.uniform(0.2, 0.6) * h
            x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            box = np.round(np.array([x1, y1, x1 + bw, y1 + bh]) * 4) / 4  # 0.25 px grid
            cls = int(rng.integers(len(CLASS_NAMES)))
            _draw(image, box, cls, tuple(int(c) for c in rng.integers(0, 256, 3)))
            boxes.append(box)
            classes.append(cls)
        images.append(TinyImage(f"img_{i:03d}", image, np.asarray(boxes, np.float32).reshape(-1, 4),
                                np.asarray(classes, np.int64)))
    return images


def write_coco(root: PathLike, images: Optional[Sequence[TinyImage]] = None,
               splits: Sequence[str] = ("train", "val")) -> Path:
    """COCO root: annotations/instances_<split>.json + <split>/<name>.jpg. Returns root."""
    root = Path(root)
    images = make_tiny_dataset() if images is None else images
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in splits:
        _write_jpegs(root / split, images)
        coco = {"images": [], "annotations": [],
                "categories": [{"id": COCO_CATEGORY_IDS[c], "name": CLASS_NAMES[c]}
                               for c in reversed(range(len(CLASS_NAMES)))]}
        for image_id, im in enumerate(images, 1):
            coco["images"].append({"id": image_id, "file_name": f"{im.name}.jpg",
                                   "width": im.width, "height": im.height})
            for box, cls in zip(im.boxes.tolist(), im.classes.tolist()):
                x1, y1, x2, y2 = box
                coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id,
                                            "category_id": COCO_CATEGORY_IDS[cls],
                                            "bbox": [x1, y1, x2 - x1, y2 - y1],
                                            "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    return root


def write_voc(root: PathLike, images: Optional[Sequence[TinyImage]] = None,
              splits: Sequence[str] = ("train", "val")) -> Path:
    """VOC root: Annotations/*.xml, JPEGImages/*.jpg, ImageSets/Main/<split>.txt. Returns root.

    VOC stores 1-based inclusive pixel indices: xmin = x1 + 1, xmax = x2 (see formats/voc.py).
    """
    root = Path(root)
    images = make_tiny_dataset() if images is None else images
    _write_jpegs(root / "JPEGImages", images)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for im in images:
        objects = "".join(
            f"  <object>\n    <name>{CLASS_NAMES[c]}</name>\n    <pose>Unspecified</pose>\n"
            f"    <truncated>0</truncated>\n    <difficult>0</difficult>\n    <bndbox>\n"
            f"      <xmin>{b[0] + 1:g}</xmin>\n      <ymin>{b[1] + 1:g}</ymin>\n"
            f"      <xmax>{b[2]:g}</xmax>\n      <ymax>{b[3]:g}</ymax>\n    </bndbox>\n  </object>\n"
            for b, c in zip(im.boxes.tolist(), im.classes.tolist()))
        xml = (f"<annotation>\n  <folder>tiny</folder>\n  <filename>{im.name}.jpg</filename>\n"
               f"  <size>\n    <width>{im.width}</width>\n    <height>{im.height}</height>\n"
               f"    <depth>3</depth>\n  </size>\n{objects}</annotation>\n")
        (root / "Annotations" / f"{im.name}.xml").write_text(xml)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for split in splits:
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{im.name}\n" for im in images))
    return root


def write_yolo(root: PathLike, images: Optional[Sequence[TinyImage]] = None,
               splits: Sequence[str] = ("train", "val")) -> Path:
    """YOLO: data.yaml + images/<split>/*.jpg + labels/<split>/*.txt. Returns the yaml path.

    The object-free image gets an empty label file.
    """
    root = Path(root)
    images = make_tiny_dataset() if images is None else images
    for split in splits:
        _write_jpegs(root / "images" / split, images)
        label_dir = root / "labels" / split
        label_dir.mkdir(parents=True, exist_ok=True)
        for im in images:
            rows = []
            for (x1, y1, x2, y2), c in zip(im.boxes.tolist(), im.classes.tolist()):
                cx, cy = (x1 + x2) / 2 / im.width, (y1 + y2) / 2 / im.height
                bw, bh = (x2 - x1) / im.width, (y2 - y1) / im.height
                rows.append(f"{c} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n")
            (label_dir / f"{im.name}.txt").write_text("".join(rows))
    lines = [f"{split}: images/{split}" for split in splits]
    lines.append("names: [" + ", ".join(CLASS_NAMES) + "]")
    yaml_path = root / "data.yaml"
    yaml_path.write_text("\n".join(lines) + "\n")
    return yaml_path


def write_all(root: PathLike, images: Optional[Sequence[TinyImage]] = None) -> Dict[str, Path]:
    """All three layouts under root/{coco,voc,yolo}; -> {"coco": path, "voc": path, "yolo": path}."""
    root = Path(root)
    images = make_tiny_dataset() if images is None else images
    return {"coco": write_coco(root / "coco", images), "voc": write_voc(root / "voc", images),
            "yolo": write_yolo(root / "yolo", images)}


def _write_jpegs(folder: Path, images: Sequence[TinyImage]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for im in images:
        ok, data = cv2.imencode(".jpg", im.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        (folder / f"{im.name}.jpg").write_bytes(data.tobytes())


def _draw(image: np.ndarray, box: np.ndarray, cls: int, colour) -> None:
    """A filled circle / square / triangle inscribed in box (xyxy px)."""
    x1, y1, x2, y2 = box
    if CLASS_NAMES[cls] == "circle":
        centre = (int(round((x1 + x2) / 2)), int(round((y1 + y2) / 2)))
        axes = (max(int((x2 - x1) / 2), 1), max(int((y2 - y1) / 2), 1))
        cv2.ellipse(image, centre, axes, 0, 0, 360, colour, -1)
    elif CLASS_NAMES[cls] == "square":
        cv2.rectangle(image, (int(np.ceil(x1)), int(np.ceil(y1))), (int(x2) - 1, int(y2) - 1), colour, -1)
    else:
        pts = np.array([[(x1 + x2) / 2, y1], [x2 - 1, y2 - 1], [x1, y2 - 1]]).round().astype(np.int32)
        cv2.fillPoly(image, [pts], colour)
