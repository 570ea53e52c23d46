"""COCO json annotations -> :class:`DatasetSplit`.

Layouts understood (see :func:`load_coco_root` and :func:`load_coco_json`):

- a COCO root: ``annotations/instances_train2017.json`` (or ``train.json``, ...) with the
  images in ``<root>/train2017/``, ``<root>/images/train2017/``, ``<root>/images/`` or
  wherever the json's ``file_name`` (relative to the root) points;
- a single json file: images next to it, in ``images/`` beside it, or (for a json inside an
  ``annotations/`` folder) in the sibling image folders of a COCO root;
- Roboflow-style exports: ``<root>/{train,valid,test}/_annotations.coco.json`` with the
  images in the same folder (found through the single-json rules).

Conventions: classes are the json's categories sorted by id (class i <-> category_ids[i]);
COCO ``bbox`` [x, y, w, h] becomes xyxy; ``iscrowd`` is kept; annotations are kept as
written (degenerate boxes included: validation is a separate step). Sizes come from the
json; images are opened (header only) only when it omits them.

Problems (see :mod:`.problems`): the reader skips what it cannot use (an image entry without
id, a repeated image id, an annotation naming an unknown image or category or holding a bad
bbox) and hands each to ``problems``: strict (None) raises at the first, lenient (a list,
used by ``openyolox check-data``) collects them all; an annotation's problem names its image.
In lenient mode listed images that are missing are kept as records for the checks to report.
Problems with the file as a whole raise in both modes.

Speed: a 118k-image / 860k-box json (COCO train2017) is one json parse (orjson when it is
installed) plus one Python pass over the annotations.
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from openyolox.data.formats.problems import Problems, read_annotation_file
from openyolox.data.image_io import read_image_size
from openyolox.data.records import DatasetSplit, ImageRecord
from openyolox.errors import DataError
from openyolox.typing import PathLike

# user split name -> stems that count as that split (plus an optional year: "train2017")
SPLIT_ALIASES: Dict[str, Tuple[str, ...]] = {
    "train": ("train",),
    "val": ("val", "valid", "validation", "minival"),
    "test": ("test", "test-dev", "testdev"),
}
# json files in annotations/ that are not detection annotations
_NOT_DETECTION = ("captions", "person_keypoints", "panoptic", "stuff", "image_info")


# ----------------------------------------------------------------------------- loading


def load_coco_root(root: PathLike, split: str, problems: Optional[list] = None) -> DatasetSplit:
    """Load split ``split`` ("train", "val" or an explicit name like "val2017") of a COCO
    root that has an ``annotations/`` folder. ``problems``: see Problems above."""
    root = Path(root)
    json_path, split_name = find_coco_annotation(root, split)
    candidates = [root / split_name, root / "images" / split_name]
    if split != split_name:
        candidates += [root / split, root / "images" / split]
    candidates += [root / "images", root, json_path.parent]
    return load_coco_json(json_path, image_dirs=candidates, name=split_name, root=root, problems=problems)


def load_coco_json(json_path: PathLike, image_dirs: Optional[Sequence[PathLike]] = None,
                   name: str = "", root: Optional[PathLike] = None,
                   problems: Optional[list] = None) -> DatasetSplit:
    """Load one COCO json file.

    image_dirs: folders to try, in order, as the base of the images' ``file_name``; the first
    one that holds the listed images wins. Default: :func:`default_image_dirs`.
    problems: None to raise DataError at the first bad entry; a list to collect
    ``(file, kind, detail)`` tuples instead (lenient mode, see the module docstring).
    """
    json_path = Path(json_path)
    found = Problems.of(problems)
    # Millions of small objects get created below; the cyclic GC would rescan them over and
    # over (4x slower on COCO train2017) although none of them can form a cycle.
    with _gc_paused():
        data = read_coco_json(json_path)
        images, annotations, categories = _check_top_level(data, json_path)
        class_names, category_ids, cat_index = _parse_categories(categories, json_path)
        ids, file_names, sizes = _parse_images(images, json_path, found)

        dirs = [Path(d) for d in (image_dirs or default_image_dirs(json_path))]
        image_dir = find_image_dir(json_path, file_names, dirs)
        if found.strict:  # one error for all missing images; lenient: the checks report each
            check_images_exist(json_path, image_dir, file_names)

        img_index = {image_id: i for i, image_id in enumerate(ids)}
        per_image = _group_annotations(annotations, img_index, cat_index, json_path, found, file_names)
        del data, images, annotations

        records = []
        base = str(image_dir)
        for i, (image_id, file_name) in enumerate(zip(ids, file_names)):
            path = Path(os.path.join(base, file_name))
            width, height = sizes[i] if sizes[i] is not None else _image_size(path, found)
            boxes, classes, crowd = per_image[i]
            records.append(ImageRecord(path=path, image_id=image_id, width=width, height=height,
                                       boxes=boxes, classes=classes, iscrowd=crowd))
    if not name:
        name = _split_name_from_stem(json_path.stem)
    return DatasetSplit(records=records, class_names=class_names, category_ids=category_ids,
                        name=name, root=Path(root) if root is not None else image_dir)


def read_coco_json(path: PathLike) -> dict:
    """Parse a json file, turning every failure into a DataError naming the file."""
    path = Path(path)
    raw = read_annotation_file(path, "annotation file not found", "annotation file is empty; re-export the COCO json")
    try:
        try:
            import orjson  # optional, ~3x faster on big files

            return orjson.loads(raw)
        except ImportError:
            return json.loads(raw)
    except ValueError as exc:  # json.JSONDecodeError and orjson.JSONDecodeError both are
        raise DataError(f"{path}: invalid json ({exc}); re-export the file or fix it by hand") from None


def find_coco_annotation(root: PathLike, split: str) -> Tuple[Path, str]:
    """Pick the json for ``split`` in ``<root>/annotations``; returns (path, split folder name).

    "val2017" or "instances_val2017" match exactly; "val" also matches val2017, valid.json,
    instances_minival2014.json, ... Ambiguity (e.g. train2014 and train2017) is an error that
    says to pass the explicit name.
    """
    ann_dir = Path(root) / "annotations"
    jsons = sorted(p for p in ann_dir.glob("*.json") if not p.name.startswith("."))
    detection = [p for p in jsons if not p.stem.lower().startswith(_NOT_DETECTION)]
    exact = [p for p in detection if p.stem.lower() in (split.lower(), f"instances_{split.lower()}")]
    if exact:
        return exact[0], _split_name_from_stem(exact[0].stem)
    aliases = SPLIT_ALIASES.get(split.lower(), (split.lower(),))
    pattern = re.compile(r"(?:%s)\d*" % "|".join(re.escape(a) for a in aliases))
    found = [p for p in detection
             if any(pattern.fullmatch(tok) for tok in re.split(r"[^a-z0-9-]+", p.stem.lower()))]
    if len(found) > 1:
        preferred = [p for p in found if p.stem.lower().startswith("instances")]
        found = preferred or found
    if len(found) == 1:
        return found[0], _split_name_from_stem(found[0].stem)
    listed = ", ".join(p.name for p in jsons) or "no .json files"
    if not found:
        raise DataError(f"{ann_dir}: no annotation json for split '{split}' (looked for names like "
                        f"instances_{split}2017.json, instances_{split}.json, {split}.json; found: {listed}); "
                        f"rename the file or pass the json file itself as the dataset")
    names = ", ".join(p.name for p in found)
    raise DataError(f"{ann_dir}: several annotation files match split '{split}' ({names}); pass the "
                    f"explicit split name, e.g. '{_split_name_from_stem(found[-1].stem)}'")


def coco_split_names(root: PathLike) -> List[str]:
    """Split names of a COCO root, one per detection json in ``annotations/`` (instances_val2017.json
    -> "val2017"), each one :func:`find_coco_annotation` maps back to its file."""
    jsons = sorted(p for p in (Path(root) / "annotations").glob("*.json") if not p.name.startswith("."))
    return [_split_name_from_stem(p.stem) for p in jsons if not p.stem.lower().startswith(_NOT_DETECTION)]


def default_image_dirs(json_path: Path) -> List[Path]:
    """Where the images of a lone json may be: beside it, or in a COCO root above it."""
    parent = json_path.parent
    split_name = _split_name_from_stem(json_path.stem)
    dirs = [parent, parent / "images", parent / split_name, parent / "images" / split_name]
    up = parent.parent
    dirs += [up / split_name, up / "images" / split_name, up / "images", up]
    unique: List[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def find_image_dir(json_path: Path, file_names: Sequence[str], candidates: Sequence[Path]) -> Path:
    """The candidate folder holding most of a few sample images of the json (first on ties).

    Picking by samples, not by all images, keeps this cheap; a folder with only some of the
    images still wins, so that check_images_exist can then say exactly which are missing.
    """
    if not file_names:
        return next((d for d in candidates if d.is_dir()), candidates[0])
    n = len(file_names)
    samples = [file_names[i] for i in sorted({0, n // 4, n // 2, 3 * n // 4, n - 1})]
    best, best_count = None, 0
    for d in candidates:
        count = sum((d / f).is_file() for f in samples) if d.is_dir() else 0
        if count > best_count:
            best, best_count = d, count
        if count == len(samples):
            break
    if best is not None:
        return best
    tried = ", ".join(str(d) for d in candidates)
    raise DataError(f"{json_path}: cannot find its images (e.g. '{samples[0]}'); tried as image folder: "
                    f"{tried}; put the images in one of these folders, or fix 'file_name' in the json")


def check_images_exist(json_path: Path, image_dir: Path, file_names: Sequence[str]) -> None:
    """Raise DataError when listed images are missing (one directory listing per folder)."""
    listing: Dict[str, set] = {}
    missing = []
    base = str(image_dir)
    for f in file_names:
        folder, name = os.path.split(os.path.join(base, f))
        if folder not in listing:
            try:
                listing[folder] = set(os.listdir(folder))
            except OSError:
                listing[folder] = set()
        if name not in listing[folder]:
            missing.append(f)
    if missing:
        examples = ", ".join(missing[:3])
        raise DataError(f"{json_path}: {len(missing)} of {len(file_names)} images are missing from {image_dir} "
                        f"(e.g. {examples}); copy them there or remove them from the json")


# ----------------------------------------------------------------------------- writing


def coco_dict(records: Sequence[ImageRecord], class_names: Sequence[str],
              category_ids: Optional[Sequence[int]] = None, image_root: Optional[PathLike] = None) -> dict:
    """Records -> a COCO json dict (boxes xyxy -> [x, y, w, h]).

    Image ids: the record's int image_id, else its position + 1. Annotation ids start at 1
    (pycocotools treats id 0 as "unmatched"). file_name is the path relative to image_root
    when given, else the file name. Coordinates are rounded to 1e-3 px.
    """
    category_ids = list(category_ids) if category_ids is not None else list(range(len(class_names)))
    images, annotations = [], []
    for i, rec in enumerate(records):
        image_id = rec.image_id if isinstance(rec.image_id, (int, np.integer)) else i + 1
        file_name = rec.path.relative_to(image_root).as_posix() if image_root is not None else rec.path.name
        images.append({"id": int(image_id), "file_name": file_name,
                       "width": int(rec.width), "height": int(rec.height)})
        for box, cls, crowd in zip(rec.boxes.tolist(), rec.classes.tolist(), rec.iscrowd.tolist()):
            x1, y1, x2, y2 = (round(v, 3) for v in box)
            w, h = round(x2 - x1, 3), round(y2 - y1, 3)
            annotations.append({"id": len(annotations) + 1, "image_id": int(image_id),
                                "category_id": int(category_ids[cls]), "bbox": [x1, y1, w, h],
                                "area": round(w * h, 3), "iscrowd": int(crowd)})
    categories = [{"id": int(cid), "name": name} for cid, name in zip(category_ids, class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


# ----------------------------------------------------------------------------- parsing helpers


@contextlib.contextmanager
def _gc_paused():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _split_name_from_stem(stem: str) -> str:
    """instances_val2017 -> val2017; _annotations.coco -> its folder's role is unknown: stem."""
    for prefix in ("instances_", "instances-"):
        if stem.lower().startswith(prefix):
            return stem[len(prefix):]
    return stem


def _check_top_level(data, path: Path):
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a COCO annotation file (top level is a {type(data).__name__}, "
                        f"expected an object with 'images', 'annotations' and 'categories')")
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise DataError(f"{path}: missing required COCO key(s) {', '.join(repr(k) for k in missing)}; "
                        f"a COCO detection json has 'images', 'annotations' and 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise DataError(f"{path}: '{key}' must be a list, got {type(data[key]).__name__}")
    return data["images"], data["annotations"], data["categories"]


def _parse_categories(categories: list, path: Path):
    try:
        cats = sorted(((int(c["id"]), str(c["name"])) for c in categories), key=lambda c: c[0])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: every entry of 'categories' needs an integer 'id' and a 'name'") from None
    if not cats:
        raise DataError(f"{path}: 'categories' is empty; list the classes as "
                        f"{{\"id\": 1, \"name\": \"...\"}} entries")
    ids = [c[0] for c in cats]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise DataError(f"{path}: duplicate category id(s) {dup} in 'categories'")
    return [c[1] for c in cats], ids, {cid: i for i, cid in enumerate(ids)}


def _image_size(path: Path, problems: Problems) -> Tuple[int, int]:
    """Header size of an image the json gives no size for; (0, 0) when it cannot be read (a
    missing file is left to the checks: strict mode has already refused missing images)."""
    if not path.is_file():
        return 0, 0
    try:
        return read_image_size(path)
    except DataError as exc:
        problems.caught(exc, path, "unreadable-image")
        return 0, 0


def _parse_images(images: list, path: Path, problems: Problems):
    """-> (ids, file names, sizes: (w, h) or None) of the usable entries of 'images'; an
    unusable entry is skipped, a repeated id keeps its first entry."""
    ids, file_names, sizes = [], [], []
    first: Dict[object, str] = {}
    for k, img in enumerate(images):
        try:
            image_id, file_name = img["id"], img["file_name"]
        except (KeyError, TypeError):
            problems.add(path, "bad-annotation", f"images[{k}] needs 'id' and 'file_name'", "; skipped")
            continue
        if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
            problems.add(path, "bad-annotation", f"images[{k}] has id {image_id!r}; ids are integers", "; skipped")
            continue
        if image_id in first:
            problems.add(path, "duplicate-image-id", f"image id {image_id!r} appears more than once in 'images' "
                         f"({first[image_id]}, {file_name}); ids must be unique", "; the first entry is kept")
            continue
        first[image_id] = str(file_name)
        size = None
        w, h = img.get("width"), img.get("height")
        if w and h:
            try:
                size = (int(w), int(h))
            except (TypeError, ValueError):
                problems.add(path, "bad-annotation", f"images[{k}] (id {image_id}) has a non-numeric width/height "
                             f"{w!r}x{h!r}", "; read from the image")
        ids.append(image_id)
        file_names.append(str(file_name))
        sizes.append(size)
    return ids, file_names, sizes


def _group_annotations(annotations: list, img_index: dict, cat_index: dict, path: Path,
                       problems: Problems, file_names: Sequence[str]):
    """-> per image position: (boxes (N,4) xyxy float32, classes (N,) int64, iscrowd (N,) bool).

    Fast path: generator expressions and one numpy conversion; on any failure every
    annotation is looked at (:func:`_annotation_problem`) and the bad ones go to ``problems``
    (strict: the first raises) and are left out.
    """
    n = len(annotations)
    try:
        img_pos = np.fromiter((img_index[a["image_id"]] for a in annotations), np.int64, n)
        cls = np.fromiter((cat_index[a["category_id"]] for a in annotations), np.int64, n)
        crowd = np.fromiter((bool(a.get("iscrowd", 0)) for a in annotations), bool, n)
        xywh = np.array([a["bbox"] for a in annotations], np.float64).reshape(n, 4)
    except (KeyError, TypeError, ValueError, AttributeError):
        good = []
        for k, a in enumerate(annotations):
            found = _annotation_problem(k, a, img_index, cat_index, file_names)
            if found is None:
                good.append(a)
            else:
                problems.add(path, found[0], found[1], "; skipped")
        if len(good) == n:
            raise  # a failure _annotation_problem does not know: never silently drop anything
        return _group_annotations(good, img_index, cat_index, path, problems, file_names)
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(np.float32)
    order = np.argsort(img_pos, kind="stable")
    bounds = np.searchsorted(img_pos[order], np.arange(len(img_index) + 1))
    out = []
    for i in range(len(img_index)):
        sel = order[bounds[i]:bounds[i + 1]]
        out.append((xyxy[sel], cls[sel], crowd[sel]))
    return out


def _annotation_problem(k: int, a, img_index: dict, cat_index: dict,
                        file_names: Sequence[str]) -> Optional[Tuple[str, str]]:
    """(kind, detail) of what is wrong with annotations[k], or None when it is usable. The
    detail names the annotation's image (its file_name) whenever its image_id is known."""
    image = ""
    try:
        image = f" (image {file_names[img_index[a['image_id']]]})"
    except (KeyError, TypeError, IndexError):
        pass
    try:
        image_id, category_id, bbox = a["image_id"], a["category_id"], a["bbox"]
    except (KeyError, TypeError):
        return "bad-annotation", f"annotations[{k}]{image} needs 'image_id', 'category_id' and 'bbox'"
    ann_id = a.get("id", k)
    if not image:
        return "unknown-image-id", f"annotation {ann_id!r} refers to image_id {image_id!r}, which is not in 'images'"
    try:
        cat_index[category_id]
    except (KeyError, TypeError):
        return "unknown-category", (f"annotation {ann_id!r}{image} has category_id {category_id!r}, which is not "
                                    f"in 'categories' (ids {sorted(cat_index)[:20]})")
    try:
        if len(bbox) != 4:
            raise ValueError
        [float(v) for v in bbox]
    except (TypeError, ValueError):
        return "bad-annotation", (f"annotation {ann_id!r}{image} has bbox {bbox!r}; expected [x, y, width, height] "
                                  f"numbers")
    return None
