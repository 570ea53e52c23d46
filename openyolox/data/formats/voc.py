"""Pascal VOC xml annotations -> :class:`DatasetSplit`.

Layout: ``<root>/Annotations/<id>.xml``, ``<root>/JPEGImages/<id>.jpg`` and
``<root>/ImageSets/Main/<split>.txt`` listing the ids of each split (train, val, trainval,
test, ...). A ``VOCdevkit`` folder holding ``VOC2007``/``VOC2012`` is handled by
:func:`load_vocdevkit` with the usual protocol (train = 07+12 trainval, val = 07 test).

Conventions, and why:

- Coordinates: VOC writes 1-based, inclusive pixel indices. Pixel i (1-based) covers the
  continuous interval [i-1, i], so the xyxy box is (xmin-1, ymin-1, xmax, ymax); its width
  xmax-xmin+1 is the pixel count, matching the "+1" areas of the VOC devkit's evaluation.
  Fractional values are kept as they are (no int truncation).
- ``difficult`` objects are kept with ``iscrowd=True``: training ignores them and COCO-style
  evaluation treats them as "ignore" regions, which is what the VOC protocol does with them.
- Classes: a ``classes.txt`` / ``labels.txt`` in the root (one name per line) fixes the list
  and its order, and a name outside it is an error naming the xml file and line. Without one,
  the 20 VOC classes (standard order) are used when every name in ``Annotations/`` is one of
  them; otherwise the sorted set of names found in all of ``Annotations/`` (all xml files, not
  just the split's, so train and val agree on class indices).
- Image ids are positions 0..N-1 in the split list.

Problems (see :mod:`.problems`): the reader skips what it cannot use (an object with an
unknown class or a malformed <bndbox>, an id listed twice, an id whose xml or image is
missing or unreadable) and hands each to ``problems``: strict (None) raises at the first,
lenient (a list, used by ``openyolox check-data``) collects them all; an object's problem
names its image. A missing split list or image folder raises in both modes.
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from openyolox.data.formats.problems import Problems, read_annotation_file
from openyolox.data.image_io import IMAGE_SUFFIXES, read_image_size
from openyolox.data.records import DatasetSplit, ImageRecord
from openyolox.errors import DataError
from openyolox.typing import PathLike

VOC_CLASSES: Tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
CLASS_LIST_FILES = ("classes.txt", "labels.txt")


@dataclass
class VocAnnotation:
    """One parsed xml file. boxes: (N, 4) xyxy float32, continuous pixel coordinates."""

    xml_path: Path
    filename: str
    width: int
    height: int
    names: List[str]
    boxes: np.ndarray
    difficult: np.ndarray


def is_voc_root(path: PathLike) -> bool:
    path = Path(path)
    return (path / "Annotations").is_dir() and (path / "JPEGImages").is_dir()


def load_voc(root: PathLike, split: str, class_names: Optional[Sequence[str]] = None,
             problems: Optional[list] = None) -> DatasetSplit:
    """Load ``ImageSets/Main/<split>.txt`` of one VOC root (VOC2007, VOC2012 or a custom one).
    ``problems``: see Problems above."""
    root = Path(root)
    ids = read_split_ids(root, split)
    return _build_split([(root, ids)], class_names, split, root, Problems.of(problems))


def load_vocdevkit(devkit: PathLike, split: str, class_names: Optional[Sequence[str]] = None,
                   problems: Optional[list] = None) -> DatasetSplit:
    """Load a split of a VOCdevkit folder holding VOC2007 and/or VOC2012.

    "train" = trainval of every year present; "val" = VOC2007 test when present, else val of
    every year; explicit "2007_test" / "VOC2012/val" pick one year and one list.
    """
    devkit = Path(devkit)
    years = sorted(p for p in devkit.iterdir() if p.is_dir() and is_voc_root(p))
    if not years:
        raise DataError(f"{devkit}: no VOC20xx folders with Annotations/ and JPEGImages/ inside")
    parts: List[Tuple[Path, List[str]]] = []
    explicit = re.fullmatch(r"(?:voc)?(\d{4})[_/](\w+)", split.lower())
    if explicit:
        year_dir = devkit / f"VOC{explicit.group(1)}"
        if year_dir not in years:
            raise DataError(f"{devkit}: no {year_dir.name} folder for split '{split}'")
        parts.append((year_dir, read_split_ids(year_dir, explicit.group(2))))
    elif split == "train":
        parts = [(y, read_split_ids(y, "trainval")) for y in years]
    elif split == "val":
        voc07 = devkit / "VOC2007"
        if voc07 in years and (voc07 / "ImageSets" / "Main" / "test.txt").is_file():
            parts = [(voc07, read_split_ids(voc07, "test"))]
        else:
            parts = [(y, read_split_ids(y, "val")) for y in years]
    else:
        parts = [(y, read_split_ids(y, split)) for y in years]
    return _build_split(parts, class_names, split, devkit, Problems.of(problems))


def read_split_ids(root: Path, split: str) -> List[str]:
    """Image ids listed in ``<root>/ImageSets/Main/<split>.txt`` (first column of each line)."""
    main = root / "ImageSets" / "Main"
    path = main / f"{split}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in main.glob("*.txt") if "_" not in p.stem) if main.is_dir() else []
        have = f"available: {', '.join(available)}" if available else f"{main} has no split lists"
        raise DataError(f"{path}: split list not found ({have}); create it with one image id "
                        f"(xml file name without .xml) per line")
    ids = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if fields:
            ids.append(fields[0])
    return ids


def parse_voc_xml(path: PathLike, problems: Optional[list] = None) -> VocAnnotation:
    """Parse one VOC xml file; malformed files raise DataError naming the file.

    problems: None, or a list to collect malformed objects in (they are skipped) instead of
    raising (see Problems above); a missing, empty or invalid file raises either way."""
    path = Path(path)
    problems = Problems.of(problems)
    raw = read_annotation_file(path, "annotation file not found; every id in the split list needs "
                                     "Annotations/<id>.xml",
                               "annotation file is empty; re-export it or remove the image from the split")
    try:
        top = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise DataError(f"{path}: invalid xml ({exc}); fix or re-export the file") from None
    filename = (top.findtext("filename") or "").strip()
    width = _int_or_zero(top.findtext("size/width"))
    height = _int_or_zero(top.findtext("size/height"))
    image = filename or f"{path.stem}.jpg"  # how the file names its image
    names, boxes, difficult = [], [], []
    for k, obj in enumerate(top.iter("object")):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not name or box is None:
            problems.add(path, "bad-annotation", f"object {k + 1} of image {image} needs <name> and <bndbox>",
                         "; skipped")
            continue
        try:
            xmin, ymin, xmax, ymax = (float(box.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            problems.add(path, "bad-annotation", f"object {k + 1} ('{name}') of image {image} needs numeric "
                         f"<xmin> <ymin> <xmax> <ymax> in <bndbox>", "; skipped")
            continue
        names.append(name)
        boxes.append((xmin - 1.0, ymin - 1.0, xmax, ymax))
        difficult.append(_int_or_zero(obj.findtext("difficult")) == 1)
    return VocAnnotation(path, filename, width, height, names,
                         np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(difficult, bool))


def resolve_class_names(roots: Iterable[Path], parsed: Dict[Path, VocAnnotation],
                        class_names: Optional[Sequence[str]] = None) -> List[str]:
    """The class list: given, from a classes.txt/labels.txt, VOC's 20, or sorted names found."""
    roots = list(roots)
    if class_names is not None:
        return list(class_names)
    for root in roots:
        for fname in CLASS_LIST_FILES:
            f = root / fname
            if f.is_file():
                names = [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
                if not names:
                    raise DataError(f"{f}: class list is empty; write one class name per line")
                return names
    found = set()
    for ann in parsed.values():
        found.update(ann.names)
    if found <= set(VOC_CLASSES):
        return list(VOC_CLASSES)
    return sorted(found)


# ----------------------------------------------------------------------------- internals


def _build_split(parts: Sequence[Tuple[Path, List[str]]], class_names: Optional[Sequence[str]],
                 name: str, root: Path, problems: Problems) -> DatasetSplit:
    """Records of the ids in ``parts`` ((VOC root, ids) pairs); what cannot be used goes to
    ``problems`` and is skipped."""
    roots = [r for r, _ in parts]
    explicit = class_names is not None or any((r / f).is_file() for r in roots for f in CLASS_LIST_FILES)
    parsed: Dict[Path, Optional[VocAnnotation]] = {}

    def parse(xml_path: Path) -> Optional[VocAnnotation]:
        if xml_path not in parsed:
            parsed[xml_path] = None
            if not xml_path.is_file():
                problems.add(xml_path, "missing-annotation", "annotation file not found; every id in the split "
                             "list needs Annotations/<id>.xml", "; image skipped")
            else:
                try:
                    parsed[xml_path] = parse_voc_xml(xml_path, problems)
                except DataError as exc:
                    problems.caught(exc, xml_path, "bad-annotation")
        return parsed[xml_path]

    # Inferring classes needs every xml of the dataset; with a fixed list only the split's.
    if not explicit:
        for r in roots:
            for p in sorted((r / "Annotations").glob("*.xml")):
                parse(p)
    names = resolve_class_names(roots, {p: a for p, a in parsed.items() if a is not None}, class_names)
    index = {n: i for i, n in enumerate(names)}

    records: List[ImageRecord] = []
    for r, ids in parts:
        image_files = _list_images(r / "JPEGImages")
        seen = set()
        for image_id in ids:
            if image_id in seen:
                problems.add(r / "ImageSets" / "Main", "duplicate-image-id", f"id '{image_id}' is listed more than "
                             f"once in the '{name}' split list", "; the first is kept")
                continue
            seen.add(image_id)
            xml_path = r / "Annotations" / f"{image_id}.xml"
            ann = parse(xml_path)
            if ann is None:
                continue
            try:
                path = _image_path(r, image_id, ann, image_files)
            except DataError as exc:
                problems.caught(exc, xml_path, "missing-image")
                continue
            keep, classes = [], []
            for k, n in enumerate(ann.names):
                if n in index:
                    keep.append(k)
                    classes.append(index[n])
                else:
                    problems.add(f"{xml_path}:{_line_of(xml_path, n)}", "unknown-class",
                                 f"class '{n}' is not in the class list ({', '.join(names)}), in image {path.name}; "
                                 f"fix the name or add it to the class list", "; object skipped")
            width, height = ann.width, ann.height
            if width <= 0 or height <= 0:
                try:
                    width, height = read_image_size(path)
                except DataError as exc:
                    problems.caught(exc, path, "unreadable-image")
                    continue
            records.append(ImageRecord(path=path, image_id=len(records), width=width, height=height,
                                       boxes=ann.boxes[keep], classes=np.asarray(classes, np.int64),
                                       iscrowd=ann.difficult[keep]))
    return DatasetSplit(records=records, class_names=names, category_ids=list(range(len(names))),
                        name=name, root=root)


def _list_images(folder: Path) -> Dict[str, str]:
    """file name -> file name, plus stem -> file name, from one directory listing."""
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        raise DataError(f"{folder}: image folder not found; VOC images go in <root>/JPEGImages/") from None
    found: Dict[str, str] = {}
    for e in entries:
        stem, ext = os.path.splitext(e)
        if ext.lower() in IMAGE_SUFFIXES:
            found[e] = e
            found.setdefault(stem, e)
    return found


def _image_path(root: Path, image_id: str, ann: VocAnnotation, image_files: Dict[str, str]) -> Path:
    for key in (f"{image_id}.jpg", ann.filename, image_id):
        if key and key in image_files:
            return root / "JPEGImages" / image_files[key]
    raise DataError(f"{ann.xml_path}: image '{ann.filename or image_id}' not found in {root / 'JPEGImages'} "
                    f"(looked for {image_id}.jpg and other extensions); add the image or remove the id "
                    f"from the split list")


def _line_of(path: Path, name: str) -> int:
    """1-based line of the first <name>name</name> in the file (for error messages)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    pos = re.search(r"<name>\s*%s\s*</name>" % re.escape(name), text)
    return text.count("\n", 0, pos.start()) + 1 if pos else 1


def _int_or_zero(text: Optional[str]) -> int:
    try:
        return int(float(text)) if text is not None and text.strip() else 0
    except ValueError:
        return 0
