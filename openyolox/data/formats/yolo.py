"""YOLO txt labels described by a ``data.yaml`` -> :class:`DatasetSplit`.

The yaml (Ultralytics style)::

    path: ../datasets/mydata   # dataset root; relative to the yaml's folder (default: that folder)
    train: images/train        # a folder of images, a .txt list of images, or a list of those
    val: images/val            # ("valid" is accepted for val, as Roboflow writes it)
    names: [cat, dog]          # or {0: cat, 1: dog}

Each image ``.../images/.../x.jpg`` has its labels in ``.../labels/.../x.txt`` (the last
``images`` folder of the path replaced by ``labels``; without one, the .txt beside the image).
A row is ``class cx cy w h`` normalised to 0..1 (a polygon row ``class x1 y1 x2 y2 ...`` gives
its bounding box). A missing or empty label file means an image without objects.

Image sizes come from image headers (no decode). Class indices are the ``names`` order and
category_ids are 0..C-1. Image ids are positions 0..N-1 in the (sorted) image list.

Problems (see :mod:`.problems`): the reader skips what it cannot use (a bad label row: class id
out of range, wrong number of values, not normalised; an image whose header cannot be read; a
listed image that does not exist) and hands each to ``problems``: strict (None) raises at the
first, lenient (a list, used by ``openyolox check-data``) collects them all; a label row's
problem names its image. Problems with the yaml or a split folder raise in both modes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import yaml

from openyolox.data.formats.problems import Problems, read_annotation_file
from openyolox.data.image_io import IMAGE_SUFFIXES, read_image_size
from openyolox.data.records import DatasetSplit, ImageRecord
from openyolox.errors import DataError
from openyolox.typing import PathLike

_SPLIT_KEYS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
# Values beyond this are not "slightly outside the image" but pixel coordinates.
_NORMALISED_LIMIT = 1.5


def load_yolo(yaml_path: PathLike, split: str, problems: Optional[list] = None) -> DatasetSplit:
    """Load split ``split`` (a key of the yaml: train, val/valid, test, ...) of a YOLO dataset.
    ``problems``: see Problems above."""
    yaml_path = Path(yaml_path)
    problems = Problems.of(problems)
    cfg = read_data_yaml(yaml_path)
    names = parse_names(cfg, yaml_path)
    root = dataset_root(cfg, yaml_path)
    key = next((k for k in _SPLIT_KEYS.get(split, (split,)) if cfg.get(k)), None)
    if key is None:
        keys = ", ".join(k for k in cfg if k not in ("path", "names", "nc")) or "none"
        raise DataError(f"{yaml_path}: no '{split}' entry (split keys present: {keys}); add e.g. "
                        f"'{split}: images/{split}'")
    images = list_split_images(cfg[key], root, yaml_path, key, problems)

    records = []
    for image_path in images:
        try:
            width, height = read_image_size(image_path)
        except DataError as exc:
            problems.caught(exc, image_path, "unreadable-image")
            continue
        boxes, classes = read_label_file(label_path_for(image_path), len(names), width, height, yaml_path,
                                         problems, image=image_path)
        records.append(ImageRecord(path=image_path, image_id=len(records), width=width, height=height,
                                   boxes=boxes, classes=classes))
    return DatasetSplit(records=records, class_names=names, category_ids=list(range(len(names))),
                        name=key, root=root)


def read_data_yaml(path: Path) -> dict:
    raw = read_annotation_file(path, "dataset yaml not found", "dataset yaml is empty; it needs 'train', 'val' and "
                               "'names'")
    try:
        cfg = yaml.safe_load(raw.decode("utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: invalid yaml ({exc})") from None
    if not isinstance(cfg, dict):
        raise DataError(f"{path}: expected a mapping with 'train', 'val' and 'names', got {type(cfg).__name__}")
    return cfg


def parse_names(cfg: dict, path: Path) -> List[str]:
    """``names`` as a list, or a dict {0: name, 1: name, ...} with ids 0..C-1."""
    names = cfg.get("names")
    if names is None:
        raise DataError(f"{path}: missing 'names' (the class names, e.g. names: [cat, dog])")
    if isinstance(names, dict):
        try:
            by_id = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise DataError(f"{path}: 'names' keys must be class ids 0..C-1") from None
        if sorted(by_id) != list(range(len(by_id))):
            raise DataError(f"{path}: 'names' ids must be 0..{len(by_id) - 1} without gaps, got {sorted(by_id)}")
        names = [by_id[i] for i in range(len(by_id))]
    elif isinstance(names, (list, tuple)):
        names = [str(n) for n in names]
    else:
        raise DataError(f"{path}: 'names' must be a list or a {{id: name}} mapping")
    if not names:
        raise DataError(f"{path}: 'names' is empty")
    nc = cfg.get("nc")
    if nc is not None and int(nc) != len(names):
        raise DataError(f"{path}: nc is {nc} but 'names' has {len(names)} entries; make them agree")
    return names


def dataset_root(cfg: dict, yaml_path: Path) -> Path:
    """``path`` from the yaml: absolute, relative to the yaml's folder, or to the cwd."""
    base = yaml_path.parent
    value = cfg.get("path")
    if not value:
        return base
    p = Path(str(value)).expanduser()
    if p.is_absolute():
        return p
    for candidate in (base / p, Path.cwd() / p):
        if candidate.is_dir():
            return candidate
    return base / p


def list_split_images(entry, root: Path, yaml_path: Path, key: str, problems: Optional[list] = None) -> List[Path]:
    """Images of one split entry: folder(s) (searched recursively, sorted) and/or .txt lists.
    Listed images that do not exist go to ``problems`` (see Problems above)."""
    entries = entry if isinstance(entry, (list, tuple)) else [entry]
    images: List[Path] = []
    for e in entries:
        p = Path(str(e)).expanduser()
        p = p if p.is_absolute() else root / p
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise DataError(f"{yaml_path}: '{key}' folder {p} holds no images "
                                f"({', '.join(IMAGE_SUFFIXES[:5])}, ...)")
            images += found
        elif p.is_file() and p.suffix.lower() == ".txt":
            images += _read_image_list(p, root, Problems.of(problems))
        else:
            raise DataError(f"{yaml_path}: '{key}: {e}' -> {p} does not exist; it must be a folder of images "
                            f"or a .txt list of images (paths are relative to {root})")
    return images


def label_path_for(image_path: Path) -> Path:
    """.../images/a/b.jpg -> .../labels/a/b.txt (last 'images' component); else b.txt beside it."""
    head, name = os.path.split(str(image_path))  # string ops: Path surgery is slow on 100k images
    parts = head.split(os.sep)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(os.path.join(os.sep.join(parts), os.path.splitext(name)[0] + ".txt"))
    return image_path.with_suffix(".txt")


def read_label_file(path: Path, num_classes: int, width: int, height: int, yaml_path: PathLike = "",
                    problems: Optional[list] = None, image: Optional[PathLike] = None
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """Parse one label file -> (boxes (N, 4) xyxy float32 in pixels, classes (N,) int64).

    A missing file is an image without objects. Errors name the file and line, and the
    image (``image``) the labels belong to; bad rows go to ``problems`` (see Problems above).
    """
    problems = Problems.of(problems)
    of_image = f" (image {Path(image).name})" if image is not None else ""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    except UnicodeDecodeError:
        problems.add(path, "bad-annotation", f"label file is not text; expected rows 'class cx cy w h'{of_image}")
        text = ""

    def bad_row(where: str, kind: str, detail: str) -> None:
        problems.add(where, kind, detail + of_image, "; row skipped")

    boxes, classes = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{lineno}"
        if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
            bad_row(where, "bad-annotation", f"expected 'class cx cy w h' (5 numbers) or a polygon 'class x1 y1 "
                                             f"x2 y2 ...', got {len(fields)} values: '{line.strip()}'")
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            bad_row(where, "bad-annotation", f"non-numeric value in '{line.strip()}'")
            continue
        cls = values[0]
        if not cls.is_integer() or not 0 <= cls < num_classes:
            bad_row(where, "class-out-of-range", f"class id {fields[0]} out of range 0..{num_classes - 1} "
                    f"({num_classes} names in {yaml_path or 'data.yaml'}); fix the label or the names")
            continue
        coords = np.asarray(values[1:], np.float64)
        if np.abs(coords - 0.5).max() > _NORMALISED_LIMIT - 0.5:
            bad_row(where, "bad-annotation", f"coordinates {fields[1:]} are not normalised to 0..1 (pixel "
                                             f"values?); divide x and w by the image width, y and h by its height")
            continue
        if len(fields) == 5:
            cx, cy, w, h = coords
            box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        else:
            xs, ys = coords[0::2], coords[1::2]
            box = (xs.min(), ys.min(), xs.max(), ys.max())
        boxes.append(box)
        classes.append(int(cls))
    scale = np.asarray([width, height, width, height], np.float64)
    boxes_px = (np.asarray(boxes, np.float64).reshape(-1, 4) * scale).astype(np.float32)
    return boxes_px, np.asarray(classes, np.int64)


def _read_image_list(txt: Path, root: Path, problems: Problems) -> List[Path]:
    """A .txt list of images: absolute paths, './x' relative to the list, others to the root."""
    images = []
    for line in txt.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        p = Path(line).expanduser()
        if not p.is_absolute():
            p = txt.parent / p if line.startswith("./") or not (root / p).exists() else root / p
        images.append(p)
    missing = [p for p in images if not p.is_file()]
    if missing and problems.strict:  # one error for all of them
        raise DataError(f"{txt}: {len(missing)} listed image(s) not found (e.g. {missing[0]}); paths are taken "
                        f"relative to {root} or, starting with './', to the list's folder")
    for p in missing:
        problems.add(txt, "missing-image", f"listed image {p} not found", "; skipped")
    gone = set(missing)
    return [p for p in images if p not in gone]
