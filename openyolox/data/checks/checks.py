"""The checks: quick ones (:func:`check_split`, before every training run) and full ones
(:func:`check_split_full`, :func:`check_dataset`: ``openyolox check-data``)."""
from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from openyolox.data.checks.boxes import (add_statistics, box_codes, box_issue, class_name, duplicate_boxes, fmt_box,
                                         gather)
from openyolox.data.checks.report import EDGE_TOLERANCE, CheckReport, DatasetReport, Issue, make_issue
from openyolox.data.formats.problems import without_path
from openyolox.data.records import DatasetSplit, ImageRecord
from openyolox.typing import PathLike


def check_split(split: DatasetSplit, tolerance: float = EDGE_TOLERANCE) -> CheckReport:
    """Quick checks of a split, for every training run: what would stop or spoil it later.

    Image files exist, are not empty and end as they should (:func:`probe_image`: the last
    bytes of each file; only a JPEG/PNG that does not end properly is looked at further),
    image ids are unique, boxes are finite, inside the image (up to ``tolerance`` px), have
    area, their class is in the class list and they are not repeated; plus box statistics."""
    report, present = _check_records(split, tolerance)
    for issue in check_images(split, present, decode=False):
        report.add(issue)
    return report


def _check_records(split: DatasetSplit, tolerance: float) -> Tuple[CheckReport, List[int]]:
    """What the records alone show (no image is opened), -> (report, indices of the records
    whose image file exists)."""
    records = split.records
    report = CheckReport(images=len(records), name=split.name, class_names=list(split.class_names))
    if not records:
        report.add(make_issue(split.root or split.name, "empty-split", f"split '{split.name}' has no images"))
    missing = missing_files([r.path for r in records])
    for i in np.flatnonzero(missing):
        rec = records[i]
        report.add(make_issue(rec.path, "missing-image", f"image file not found (image id {rec.image_id!r})",
                              rec.image_id, int(i)))
    _check_ids(records, report)

    gathered = gather(records)
    codes, over = box_codes(gathered, split.num_classes, tolerance)
    for j in np.flatnonzero(codes):
        report.add(box_issue(records, gathered, int(j), int(codes[j]), over[j], split.class_names))
    for j in np.flatnonzero(duplicate_boxes(gathered, codes == 0)):
        rec_index = int(gathered.owner[j])
        rec = records[rec_index]
        name = class_name(split.class_names, int(gathered.classes[j]))
        report.add(make_issue(rec.path, "duplicate-box", f"box #{gathered.local[j] + 1} ({name}) "
                              f"{fmt_box(gathered.boxes[j])} repeats an earlier box of this image",
                              rec.image_id, rec_index))
    add_statistics(report, gathered, split.num_classes)
    return report, np.flatnonzero(~missing).tolist()


def bad_box_mask(rec: ImageRecord, num_classes: int,
                 tolerance: float = EDGE_TOLERANCE) -> Tuple[np.ndarray, List[Tuple[int, str, str]]]:
    """(N,) bool mask of unusable boxes of one record and (index, kind, detail) per problem."""
    gathered = gather([rec])
    codes, over = box_codes(gathered, num_classes, tolerance)
    problems = []
    for j in np.flatnonzero(codes):
        issue = box_issue([rec], gathered, int(j), int(codes[j]), over[j], None)
        problems.append((int(j), issue.kind, issue.detail))
    return codes > 0, problems


def check_split_full(split: DatasetSplit, layout: Optional[str] = None, workers: Optional[int] = None,
                     progress: bool = False, tolerance: float = EDGE_TOLERANCE) -> CheckReport:
    """:func:`check_split` plus what needs the image data or the files around the
    annotations: every image is decoded (unreadable or truncated images, size mismatches),
    and for ``layout`` "yolo" / "voc" the label and image folders are compared."""
    report, present = _check_records(split, tolerance)
    report.full = True
    for issue in check_images(split, present, workers, progress):
        report.add(issue)
    for issue in layout_issues(layout, split):
        report.add(issue)
    return report


def check_images(split: DatasetSplit, indices: Optional[Sequence[int]] = None, workers: Optional[int] = None,
                 progress: bool = False, decode: bool = True) -> List[Issue]:
    """Look at the image files of ``split`` (all, or ``indices``) in a thread pool; ->
    unreadable-image, image-truncated-trailer and size-mismatch issues.

    decode: decode every image (:func:`decode_image`); the decoded, displayed size (EXIF
    orientation applied) is the truth the annotation's size is compared with. Without:
    only :func:`probe_image` (the files' last bytes; no size check)."""
    from openyolox.data.image_io import decode_image, probe_image

    records = split.records
    indices = list(range(len(records))) if indices is None else list(indices)

    def check_one(i: int) -> List[Issue]:
        rec = records[i]
        try:
            if decode:
                image, note = decode_image(rec.path)
            else:
                image, note = None, probe_image(rec.path)
        except Exception as exc:  # DataError, or anything a decoder can throw at a broken file
            return [make_issue(rec.path, "unreadable-image", without_path(str(exc) or type(exc).__name__, rec.path),
                               rec.image_id, i)]
        found = []
        if note is not None:
            found.append(make_issue(rec.path, "image-truncated-trailer", note, rec.image_id, i))
        if image is not None and rec.width > 0 and rec.height > 0:
            height, width = image.shape[:2]
            if (width, height) != (rec.width, rec.height):
                found.append(make_issue(rec.path, "size-mismatch", _size_mismatch_detail(rec, width, height),
                                        rec.image_id, i))
        return found

    def check_some(chunk: Sequence[int]) -> List[Issue]:
        return [issue for i in chunk for issue in check_one(i)]

    # a decode is slow enough for one task per image; a probe is not (~10 us)
    size = 1 if decode else 512
    chunks = [indices[k:k + size] for k in range(0, len(indices), size)]
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # decoding and reading release the GIL
        results = pool.map(check_some, chunks)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(chunks), desc=f"{'decoding' if decode else 'probing'} "
                           f"{split.name or 'images'}", unit="img" if decode else "chunk", file=sys.stderr,
                           leave=False, disable=None)
        return [issue for found in results for issue in found]


def layout_issues(layout: Optional[str], split: DatasetSplit) -> List[Issue]:
    """Files the records do not show: YOLO images without a label file and label files
    without an image; VOC images without an xml."""
    if layout == "yolo":
        return _yolo_label_issues(split)
    if layout in ("voc", "vocdevkit"):
        return _voc_unannotated_images(split)
    return []


def _yolo_label_issues(split: DatasetSplit) -> List[Issue]:
    from openyolox.data.formats.yolo import label_path_for
    from openyolox.data.image_io import IMAGE_SUFFIXES

    issues: List[Issue] = []
    expected = [label_path_for(r.path) for r in split.records]
    no_label = missing_files(expected)
    for i in np.flatnonzero(no_label):
        rec = split.records[i]
        issues.append(make_issue(rec.path, "no-label-file", f"no label file {expected[i]}; the image is used as a "
                                 f"background image (no objects)", rec.image_id, int(i)))
    # label folders that are not the image folders: every .txt there needs an image
    image_dirs = {os.path.dirname(str(r.path)) for r in split.records}
    label_dirs = {os.path.dirname(str(p)) for p in expected} - image_dirs
    wanted = {str(p) for p in expected}
    for label_dir in sorted(label_dirs):
        image_dir = _images_dir_of(label_dir)
        try:
            stems = {os.path.splitext(e)[0] for e in os.listdir(image_dir)
                     if os.path.splitext(e)[1].lower() in IMAGE_SUFFIXES}
        except OSError:
            stems = set()
        for entry in sorted(os.listdir(label_dir)):
            stem, ext = os.path.splitext(entry)
            path = os.path.join(label_dir, entry)
            if ext != ".txt" or entry == "classes.txt" or path in wanted or stem in stems:
                continue
            issues.append(make_issue(path, "label-without-image", f"no image {stem}.* in {image_dir}; its labels "
                                     f"are not used"))
    return issues


def _images_dir_of(label_dir: str) -> str:
    """.../labels/a -> .../images/a (the last 'labels' component), the inverse of label_path_for."""
    parts = label_dir.split(os.sep)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "labels":
            parts[i] = "images"
            return os.sep.join(parts)
    return label_dir


def _voc_unannotated_images(split: DatasetSplit) -> List[Issue]:
    from openyolox.data.image_io import IMAGE_SUFFIXES

    issues: List[Issue] = []
    for root in sorted({r.path.parent.parent for r in split.records if r.path.parent.name == "JPEGImages"}):
        try:
            xml_stems = {os.path.splitext(e)[0] for e in os.listdir(root / "Annotations")}
            images = sorted(os.listdir(root / "JPEGImages"))
        except OSError:
            continue
        for entry in images:
            stem, ext = os.path.splitext(entry)
            if ext.lower() in IMAGE_SUFFIXES and stem not in xml_stems:
                issues.append(make_issue(root / "JPEGImages" / entry, "image-without-annotation",
                                         f"no {root / 'Annotations' / (stem + '.xml')}; the image is not used"))
    return issues


def _size_mismatch_detail(rec: ImageRecord, width: int, height: int) -> str:
    detail = f"the image is {width}x{height} (as displayed) but the annotation says {rec.width}x{rec.height}"
    if (width, height) == (rec.height, rec.width):
        orientation = _exif_orientation(rec.path)
        if orientation in (5, 6, 7, 8):
            detail += (f"; the file has EXIF orientation {orientation} (a 90-degree turn): the annotation "
                       f"describes the stored, un-rotated pixels; re-annotate the displayed image or remove "
                       f"the orientation tag")
    return detail


def _exif_orientation(path: Path) -> int:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:
        return 1


def check_dataset(data: PathLike, splits: Union[str, Sequence[str]] = "all", full: bool = True,
                  workers: Optional[int] = None, progress: bool = False,
                  tolerance: float = EDGE_TOLERANCE) -> DatasetReport:
    """Check splits of a dataset in any layout (``splits``: "all" or names for load_split).

    Splits are read in the readers' lenient mode, so every bad entry of every file is
    reported instead of the first one stopping the check. Unknown layouts or a missing path
    raise DataError; a split that cannot be read at all is a "load-failed" error.
    """
    from openyolox.data.layouts import list_splits, load_split
    from openyolox.errors import DataError

    layout, where, available = list_splits(data)
    names = list(available) if splits == "all" else [splits] if isinstance(splits, str) else list(splits)
    report = DatasetReport(str(data), layout)
    if not names:
        report.splits["-"] = CheckReport(name="-")
        report.splits["-"].add(make_issue(where, "empty-split", "the dataset lists no splits"))
    for name in names:
        problems: List[tuple] = []
        try:
            split = load_split(data, name, problems=problems)
        except DataError as exc:
            failed = CheckReport(name=name)
            path, detail = _split_path(str(exc))
            failed.add(make_issue(path or where, "load-failed", detail))
            report.splits[name] = failed
            continue
        if full:
            checked = check_split_full(split, layout, workers, progress, tolerance)
        else:
            checked = check_split(split, tolerance)
        # what the readers found first (in file order), then what the checks found
        found, checked.issues = checked.issues, []
        for issue in [make_issue(path, kind, detail) for path, kind, detail in problems] + found:
            checked.add(issue)
        report.splits[name] = checked
        report.loaded[name] = split
    return report


def _split_path(message: str) -> Tuple[Optional[str], str]:
    """'path: detail' or 'path:line: detail' -> (path, detail) when path exists, else (None, message)."""
    head, sep, tail = message.partition(": ")
    file_part = head.rsplit(":", 1)[0] if head.rsplit(":", 1)[-1].isdigit() else head
    if sep and file_part and os.path.exists(file_part):
        return head, tail
    return None, message


def missing_files(paths: Sequence[PathLike]) -> np.ndarray:
    """(N,) bool: the file does not exist. One directory listing per folder, not N stats."""
    listing: Dict[str, set] = {}
    missing = np.zeros(len(paths), bool)
    for i, p in enumerate(paths):
        folder, name = os.path.split(str(p))
        if folder not in listing:
            try:
                listing[folder] = set(os.listdir(folder or "."))
            except OSError:
                listing[folder] = set()
        if name not in listing[folder]:
            missing[i] = not os.path.isfile(p)  # e.g. a case-insensitive file system
    return missing


def _check_ids(records: Sequence[ImageRecord], report: CheckReport) -> None:
    ids: Dict[object, int] = {}
    files: Dict[str, int] = {}
    for i, rec in enumerate(records):
        key = rec.image_id
        if key in ids:
            report.add(make_issue(rec.path, "duplicate-image-id", f"image id {key!r} is also used by "
                                  f"{records[ids[key]].path}", key, i))
        else:
            ids[key] = i
        path = str(rec.path)
        if path in files:
            report.add(make_issue(path, "duplicate-image-file", f"listed twice (image ids "
                                  f"{records[files[path]].image_id!r} and {key!r})", key, i))
        else:
            files[path] = i
