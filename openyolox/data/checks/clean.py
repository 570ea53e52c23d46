"""Cleaning: a split without what the checks found unusable, for training (:func:`drop_bad_samples`,
``--skip-bad``) or written out as a new COCO dataset (:func:`write_clean_copy`, ``check-data --fix-out``)."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from openyolox.data.checks.boxes import BOX_KINDS, apply_box_mask, box_codes, duplicate_boxes, gather
from openyolox.data.checks.checks import check_split
from openyolox.data.checks.report import EDGE_TOLERANCE, IMAGE_KINDS, CheckReport, DatasetReport

UNREADABLE_KINDS = ("missing-image", "unreadable-image")  # what training cannot use at all
from openyolox.data.records import DatasetSplit, ImageRecord
from openyolox.typing import PathLike


def drop_bad_samples(split: DatasetSplit, report: Optional[CheckReport] = None) -> Tuple[DatasetSplit, int, int]:
    """A copy of ``split`` without the images training could not read (missing, empty, or
    truncated with rows missing: what :func:`check_split` finds) and without unusable boxes.

    report: ``check_split(split)``, when at hand (saves looking at every file again).
    Returns (clean split, images dropped, boxes dropped)."""
    report = check_split(split) if report is None else report
    unusable = {i.record for i in report.issues if i.kind in UNREADABLE_KINDS and i.record is not None}
    kept = [r for i, r in enumerate(split.records) if i not in unusable]
    gathered = gather(kept)
    codes, _ = box_codes(gathered, split.num_classes, EDGE_TOLERANCE)
    records = apply_box_mask(kept, gathered, codes == 0)
    return replace(split, records=records), len(unusable), int((codes > 0).sum())


@dataclass
class CleanStats:
    images_kept: int = 0
    boxes_kept: int = 0
    images_dropped: Dict[str, int] = field(default_factory=dict)  # kind -> count
    boxes_dropped: Dict[str, int] = field(default_factory=dict)   # kind -> count
    boxes_clipped: int = 0
    images_repaired: int = 0  # JPEGs written complete (they had lost their end marker)


def clean_split(split: DatasetSplit, report: CheckReport,
                tolerance: float = EDGE_TOLERANCE) -> Tuple[DatasetSplit, CleanStats]:
    """``split`` without the images ``report`` found unusable, without unusable and repeated
    boxes, and with boxes that overhang the image by at most ``tolerance`` px clipped to it."""
    stats = CleanStats()
    drop: Dict[int, str] = {}
    for issue in report.issues:
        if issue.kind in IMAGE_KINDS and issue.record is not None and issue.record not in drop:
            drop[issue.record] = issue.kind
    for kind in drop.values():
        stats.images_dropped[kind] = stats.images_dropped.get(kind, 0) + 1
    kept = [r for i, r in enumerate(split.records) if i not in drop]

    gathered = gather(kept)
    codes, _ = box_codes(gathered, split.num_classes, tolerance)
    keep = codes == 0
    duplicate = duplicate_boxes(gathered, keep)
    for code in codes[codes > 0]:
        kind = BOX_KINDS[code]
        stats.boxes_dropped[kind] = stats.boxes_dropped.get(kind, 0) + 1
    if duplicate.any():
        stats.boxes_dropped["duplicate-box"] = int(duplicate.sum())
    keep &= ~duplicate
    # clip what overhangs by at most the tolerance; drop what has no area left then
    limits = np.stack([gathered.width, gathered.height, gathered.width, gathered.height], 1)
    known = (gathered.width > 0) & (gathered.height > 0)
    clipped = gathered.boxes.copy()
    clipped[known] = np.clip(clipped[known], 0, limits[known]).astype(np.float32)
    changed = keep & (clipped != gathered.boxes).any(1)
    gone = keep & ((clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1]))
    if gone.any():
        stats.boxes_dropped["box-no-area"] = stats.boxes_dropped.get("box-no-area", 0) + int(gone.sum())
    keep &= ~gone
    stats.boxes_clipped = int((changed & keep).sum())
    gathered.boxes = clipped
    records = apply_box_mask(kept, gathered, keep)
    stats.images_kept, stats.boxes_kept = len(records), int(keep.sum())
    return replace(split, records=records), stats


def write_clean_copy(report: DatasetReport, out_dir: PathLike,
                     tolerance: float = EDGE_TOLERANCE) -> Dict[str, CleanStats]:
    """Write the checked splits, cleaned (:func:`clean_split`), as a COCO layout:
    ``out_dir/annotations/instances_<split>.json`` + ``out_dir/<split>/`` with copies of the
    images (JPEGs the report says lost their end marker are written complete). ``report``
    should come from a full check (so unreadable images are known). The
    input is only read. ``out_dir`` must be new or empty and outside the input; it appears
    complete or not at all (written beside it, then renamed). -> {split name: CleanStats}."""
    import json

    from openyolox.atomic import write_text_atomic
    from openyolox.data.formats.coco import coco_dict
    from openyolox.errors import DataError

    out = Path(out_dir).expanduser().absolute()
    _refuse_unsafe_output(out, _input_paths(report))
    if not report.loaded:
        raise DataError(f"{report.data}: no split could be read; nothing to write to {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    results: Dict[str, CleanStats] = {}
    try:
        for key, split in report.loaded.items():
            clean, stats = clean_split(split, report.splits[key], tolerance)
            name = _safe_split_name(key)
            folder = tmp / name
            repair = {i.path for i in report.splits[key].issues if i.kind == "image-truncated-trailer"}
            records, stats.images_repaired = _copy_images(clean.records, folder, repair)
            coco = coco_dict(records, clean.class_names, clean.category_ids, image_root=folder)
            write_text_atomic(tmp / "annotations" / f"instances_{name}.json", json.dumps(coco))
            results[name] = stats
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return results


def _copy_images(records: Sequence[ImageRecord], folder: Path, repair: Set[str]) -> Tuple[List[ImageRecord], int]:
    """Copy the records' images into ``folder`` (keeping their paths relative to the images'
    common folder), the JPEGs in ``repair`` (paths) made complete -> (records pointing at
    the copies, with COCO-friendly image ids; number of images repaired)."""
    from openyolox.data.image_io import complete_jpeg

    if not records:
        folder.mkdir(parents=True, exist_ok=True)
        return [], 0
    sources = [os.path.abspath(str(r.path)) for r in records]
    common = os.path.commonpath([os.path.dirname(s) for s in sources])
    ids = [r.image_id for r in records]
    keep_ids = (all(isinstance(i, (int, np.integer)) and i > 0 for i in ids) and len(set(ids)) == len(ids))
    copied: Dict[str, Path] = {}
    out, repaired = [], 0
    for k, (rec, src) in enumerate(zip(records, sources)):
        if src not in copied:
            dst = folder / os.path.relpath(src, common)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if str(rec.path) in repair:
                dst.write_bytes(complete_jpeg(Path(src).read_bytes()))
                repaired += 1
            else:
                shutil.copyfile(src, dst)
            copied[src] = dst
        out.append(replace(rec, path=copied[src], image_id=int(rec.image_id) if keep_ids else k + 1))
    return out, repaired


def _safe_split_name(name: str) -> str:
    import re

    name = name.split("/")[-1]
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "split"


def _input_paths(report: DatasetReport) -> List[Path]:
    """Folders the input lives in: the dataset path, the splits' roots and image folders."""
    paths: List[Path] = []
    data = Path(report.data).expanduser()
    if data.exists():
        data = data.absolute()
        if data.is_file():
            data = data.parent
            if data.name == "annotations":
                paths.append(data.parent)
        paths.append(data)
    for split in report.loaded.values():
        if split.root is not None:
            paths.append(Path(split.root).absolute())
        if split.records:
            paths.append(Path(os.path.commonpath([os.path.abspath(os.path.dirname(str(r.path)))
                                                  for r in split.records])))
    return paths


def check_output_dir(data: PathLike, out_dir: PathLike) -> None:
    """Fail fast (before a long check) when ``out_dir`` cannot take a cleaned copy of ``data``:
    it is the input, inside it, or an existing non-empty folder. Raises DataError."""
    _refuse_unsafe_output(Path(out_dir).expanduser().absolute(), _input_paths(DatasetReport(str(data), "")))


def _refuse_unsafe_output(out: Path, inputs: Iterable[Path]) -> None:
    from openyolox.errors import DataError

    real_out = Path(os.path.realpath(out))
    for p in inputs:
        real = Path(os.path.realpath(p))
        if real_out == real or real in real_out.parents:
            raise DataError(f"--fix-out {out}: is inside the input dataset ({p}); write the cleaned copy "
                            f"somewhere else (the input is never modified)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"--fix-out {out}: already exists and is not an empty folder; choose a new folder")
