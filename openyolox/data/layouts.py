"""``load_split(data, split)``: one entry point for every dataset layout.

``data`` is what users type after ``--data``: ``builtin``, a dataset folder, a COCO json or
a YOLO ``data.yaml``. The layout is detected from what is on disk (see :func:`detect_layout`)
and the matching reader in :mod:`openyolox.data.formats` produces the one record format.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

from openyolox.data.formats.coco import SPLIT_ALIASES, coco_split_names, load_coco_json, load_coco_root
from openyolox.data.formats.synthetic import ensure_builtin
from openyolox.data.formats.voc import is_voc_root, load_voc, load_vocdevkit
from openyolox.data.formats.yolo import load_yolo, read_data_yaml
from openyolox.data.records import DatasetSplit
from openyolox.errors import DataError
from openyolox.typing import PathLike

BUILTIN = "builtin"
YOLO_YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")
LAYOUTS = ("builtin", "coco", "coco-json", "coco-split-folders", "voc", "vocdevkit", "yolo")

_WHAT_WE_LOOK_FOR = (
    "'builtin' (the synthetic set); <root>/annotations/*.json (COCO, images in <root>/<split>/ or "
    "<root>/images/<split>/); a COCO .json file; <root>/<split>/*.json (COCO per-split folders, e.g. "
    "Roboflow); <root>/Annotations/ + JPEGImages/ (Pascal VOC, splits in ImageSets/Main/<split>.txt); "
    "<root>/VOC2007, VOC2012 (VOCdevkit); a YOLO .yaml file or <root>/data.yaml"
)


def load_split(data: PathLike, split: str, problems: Optional[list] = None) -> DatasetSplit:
    """Load one split of a dataset in any supported layout.

    split: "train" or "val", or an explicit name the layout knows ("val2017", "trainval",
    "test", "2007_test", a data.yaml key). A single COCO json is used as is, whatever the split.
    Raises DataError (naming what was looked for) when the layout is not recognised.
    problems: None (raise at the first bad entry) or a list that collects per-file problems
    as ``(file, kind, detail)`` while unusable entries are skipped (the readers' lenient
    mode, used by ``openyolox check-data``); file-level problems raise either way.
    """
    layout, where = detect_layout(data)
    if layout == "builtin":
        result = load_coco_root(where, split, problems=problems)
        result.name = f"builtin/{result.name}"
        return result
    if layout == "coco":
        return load_coco_root(where, split, problems=problems)
    if layout == "coco-json":
        return load_coco_json(where, problems=problems)
    if layout == "coco-split-folders":
        return load_coco_json(_split_folder_json(where, split), name=split, root=where, problems=problems)
    if layout == "voc":
        return load_voc(where, split, problems=problems)
    if layout == "vocdevkit":
        return load_vocdevkit(where, split, problems=problems)
    return load_yolo(where, split, problems=problems)


def list_splits(data: PathLike) -> Tuple[str, Path, List[str]]:
    """-> (layout, path, names of the splits the dataset has), each name loadable with
    :func:`load_split`: COCO: one per detection json (train2017, val2017, ...); a single json:
    its stem; VOC: train/val/test lists (else every list); VOCdevkit: train and val; YOLO:
    train/val/test keys of the yaml."""
    layout, where = detect_layout(data)
    if layout in ("builtin", "coco"):
        return layout, where, coco_split_names(where)
    if layout == "coco-json":
        return layout, where, [where.stem]
    if layout == "coco-split-folders":
        return layout, where, [s for s in ("train", "val", "test") if _find_split_folder_json(where, s)]
    if layout == "voc":
        lists = sorted(p.stem for p in (where / "ImageSets" / "Main").glob("*.txt") if "_" not in p.stem)
        usual = [s for s in ("train", "val", "test") if s in lists]
        return layout, where, usual if {"train", "val"} & set(usual) else lists
    if layout == "vocdevkit":
        return layout, where, ["train", "val"]
    cfg = read_data_yaml(where)
    keys = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
    return layout, where, [s for s, ks in keys.items() if any(cfg.get(k) for k in ks)]


def detect_layout(data: PathLike) -> Tuple[str, Path]:
    """-> (layout, path to hand to its reader). Generates the built-in set when asked for.

    layout is one of LAYOUTS. Raises DataError for a missing path or an unknown layout.
    """
    if isinstance(data, str) and data.strip().lower() == BUILTIN:
        return "builtin", ensure_builtin()
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError(f"{path}: dataset not found; pass a dataset folder, a COCO .json, a YOLO data.yaml "
                        f"or 'builtin'")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".json":
            return "coco-json", path
        if suffix in (".yaml", ".yml"):
            return "yolo", path
        raise DataError(f"{path}: not a dataset description (expected a COCO .json or a YOLO .yaml file, "
                        f"or a dataset folder)")
    if any((path / "annotations").glob("*.json")):
        return "coco", path
    if is_voc_root(path):
        return "voc", path
    devkit = path / "VOCdevkit" if (path / "VOCdevkit").is_dir() else path
    if any(is_voc_root(p) for p in devkit.glob("VOC*")):
        return "vocdevkit", devkit
    for name in YOLO_YAML_NAMES:
        if (path / name).is_file():
            return "yolo", path / name
    if _find_split_folder_json(path, "train") or _find_split_folder_json(path, "val"):
        return "coco-split-folders", path
    contents = ", ".join(sorted(p.name for p in path.iterdir())[:12]) or "empty folder"
    raise DataError(f"{path}: unknown dataset layout (it contains: {contents}); looked for: {_WHAT_WE_LOOK_FOR}")


def _find_split_folder_json(root: Path, split: str) -> Optional[Path]:
    for folder in SPLIT_ALIASES.get(split, (split,)):
        jsons = sorted((root / folder).glob("*.json"))
        if len(jsons) == 1:
            return jsons[0]
    return None


def _split_folder_json(root: Path, split: str) -> Path:
    found = _find_split_folder_json(root, split)
    if found is None:
        tried = ", ".join(f"{root / f}/*.json" for f in SPLIT_ALIASES.get(split, (split,)))
        raise DataError(f"{root}: no annotation json for split '{split}' (tried {tried}; exactly one json "
                        f"per split folder)")
    return found
