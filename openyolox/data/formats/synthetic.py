"""The built-in synthetic dataset: simple shapes on textured backgrounds.

It exists so that ``openyolox train`` works out of the box (no download, no internet) and
teaches something checkable in minutes on a CPU: six shape classes that a yolox-nano learns
to tell apart quickly, with the variety detection needs (sizes from ~14 px to about half the
image, aspect ratios, rotations, colours, partial occlusion, objects cut by the border,
gradient / smooth-noise / stripe backgrounds, sensor noise, JPEG artefacts).

It is written to disk as an ordinary COCO layout, so users can look at it and it is loaded
by the same code as any COCO dataset::

    <cache>/builtin-v1/annotations/instances_train.json   train/000000.jpg ...
    <cache>/builtin-v1/annotations/instances_val.json     val/000000.jpg ...
    <cache>/builtin-v1/meta.json                           version, seed, counts, classes

``<cache>`` is openyolox.cache.cache_dir() (``$OPENYOLOX_HOME`` or ``~/.cache/openyolox``).

Guarantees:
- deterministic: every image has its own generator seeded by (seed, split, index), so the
  same version and seed give the same files byte for byte (with the same OpenCV build);
- atomic: everything is written to a temporary sibling folder that is renamed into place
  only when complete, so an interrupted run never leaves a dataset that looks finished;
- boxes are the tight box of each shape's whole extent (occluded parts included, clipped to
  the image), in xyxy pixel-edge coordinates; a shape is never placed where it would hide
  more than 60% of an earlier one, and any object more than 70% hidden is dropped.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np

from openyolox.cache import cache_dir
from openyolox.data.formats.coco import coco_dict
from openyolox.data.records import ImageRecord
from openyolox.errors import DataError
from openyolox.typing import PathLike

VERSION = "builtin-v1"
CLASS_NAMES: Tuple[str, ...] = ("circle", "rectangle", "triangle", "star", "cross", "ring")
NUM_TRAIN = 1200
NUM_VAL = 200
SEED = 20210718
IMAGE_SIZES: Tuple[Tuple[int, int], ...] = ((320, 320), (320, 320), (352, 288), (288, 352))  # (w, h)
MIN_SIZE, MAX_SIZE_FRACTION = 14.0, 0.5  # shape extent in px; max as a fraction of the short side
MAX_OBJECTS = 8
MIN_VISIBLE_AT_PLACEMENT = 0.4  # never hide more than 60% of an earlier shape
MIN_VISIBLE = 0.3               # final guard: drop objects more than 70% hidden
JPEG_QUALITY = 92
_STALE_TMP_SECONDS = 3600


# ----------------------------------------------------------------------------- public API


def builtin_root() -> Path:
    """Where the built-in dataset lives (it may not exist yet)."""
    return cache_dir() / VERSION


def ensure_builtin(root: Optional[PathLike] = None) -> Path:
    """Return the built-in dataset's root, generating it first if it is not there."""
    root = Path(root) if root is not None else builtin_root()
    if not root.exists():
        print(f"openyolox: generating the built-in dataset in {root} (first use only, ~10 s)",
              file=sys.stderr, flush=True)
        generate_builtin(root)
    elif not (root / "meta.json").is_file():
        raise DataError(f"{root}: exists but is not a complete built-in dataset (no meta.json); delete the "
                        f"folder and it will be generated again")
    return root


def generate_builtin(root: PathLike, num_train: Optional[int] = None, num_val: Optional[int] = None,
                     seed: Optional[int] = None) -> Path:
    """Generate the synthetic dataset as a COCO layout at ``root``, atomically.

    Defaults: NUM_TRAIN, NUM_VAL, SEED (read at call time). A dataset already at ``root`` is
    kept as it is (only complete ones ever get there). Returns ``root``.
    """
    num_train = NUM_TRAIN if num_train is None else int(num_train)
    num_val = NUM_VAL if num_val is None else int(num_val)
    seed = SEED if seed is None else int(seed)
    root = Path(root)
    if root.exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp_dirs(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's 0o700 would stick to the renamed dataset
        (tmp / "annotations").mkdir()
        for split_index, (split, count) in enumerate((("train", num_train), ("val", num_val))):
            _write_split(tmp, split, split_index, count, seed)
        meta = {"version": VERSION, "seed": seed, "num_train": num_train, "num_val": num_val,
                "class_names": list(CLASS_NAMES)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / "meta.json").is_file():  # not a concurrent generator winning the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def render_image(rng: np.random.Generator, width: int, height: int, sizes: Optional[Tuple[float, float]] = None,
                 max_objects: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one image -> (BGR uint8 (height, width, 3), boxes (N, 4) xyxy px, classes (N,) int64).

    sizes: (min, max) shape extent in px, drawn log-uniformly (default: MIN_SIZE to
    MAX_SIZE_FRACTION of the short side); 1..max_objects shapes are tried (default
    MAX_OBJECTS; both read at call time). Other scales of the same world: benchmarks/slicing.py
    draws small objects in large images."""
    canvas = _background(rng, width, height)
    owner = np.full((height, width), -1, np.int16)  # which object each pixel shows
    areas: List[int] = []    # pixels of each shape inside the image
    visible: List[int] = []  # of those, pixels not hidden by later shapes
    boxes: List[Tuple[int, int, int, int]] = []
    classes: List[int] = []
    num_objects = int(rng.integers(1, (MAX_OBJECTS if max_objects is None else max_objects) + 1))
    lo, hi = sizes if sizes is not None else (MIN_SIZE, MAX_SIZE_FRACTION * min(width, height))
    for _ in range(num_objects):
        cls = int(rng.integers(len(CLASS_NAMES)))
        placed = _place_shape(rng, cls, width, height, owner, areas, visible, (lo, hi))
        if placed is None:
            continue
        x0, y0, mask = placed
        h, w = mask.shape
        roi = (slice(y0, y0 + h), slice(x0, x0 + w))
        covered = owner[roi][mask]
        for k, n in enumerate(np.bincount(covered[covered >= 0], minlength=len(areas))):
            visible[k] -= int(n)
        owner[roi][mask] = len(areas)
        _paint(rng, canvas[roi], mask)
        ys, xs = np.nonzero(mask)
        boxes.append((x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1))
        areas.append(int(mask.sum()))
        visible.append(areas[-1])
        classes.append(cls)
    keep = [k for k in range(len(areas)) if visible[k] >= MIN_VISIBLE * areas[k]]
    image = _finish(rng, canvas)
    return (image, np.asarray([boxes[k] for k in keep], np.float32).reshape(-1, 4),
            np.asarray([classes[k] for k in keep], np.int64))


# ----------------------------------------------------------------------------- writing


def _write_split(root: Path, split: str, split_index: int, count: int, seed: int) -> None:
    image_dir = root / split
    image_dir.mkdir()
    records = []
    for i in range(count):
        rng = np.random.default_rng([seed, split_index, i])
        width, height = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
        image, boxes, classes = render_image(rng, width, height)
        path = image_dir / f"{i:06d}.jpg"
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise DataError(f"{path}: JPEG encoding failed")
        path.write_bytes(encoded.tobytes())
        records.append(ImageRecord(path=path, image_id=i + 1, width=width, height=height,
                                   boxes=boxes, classes=classes))
    coco = coco_dict(records, CLASS_NAMES, image_root=image_dir)
    coco["info"] = {"description": f"openyolox built-in synthetic shapes ({VERSION}, {split})"}
    text = json.dumps(coco, separators=(",", ":"))
    (root / "annotations" / f"instances_{split}.json").write_text(text)


def _remove_stale_tmp_dirs(root: Path) -> None:
    """Leftovers of killed generations (never renamed into place, so harmless but wasteful)."""
    now = time.time()
    for p in root.parent.glob(f".{root.name}.tmp-*"):
        try:
            if now - p.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


# ----------------------------------------------------------------------------- drawing


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Muted gradient, smooth noise or stripes: texture without shape-like structure.

    -> float32 (height, width, 3). Smooth patterns are computed small and upsampled (speed).
    """
    kind = int(rng.integers(3))
    base = rng.uniform(40, 215, 3).astype(np.float32)
    if kind == 0:  # linear gradient between two colours
        other = np.clip(base + rng.uniform(-70, 70, 3), 0, 255).astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        xs = np.linspace(-0.5, 0.5, 16, dtype=np.float32)
        t = np.clip(np.cos(angle) * xs[None, :] + np.sin(angle) * xs[:, None] + 0.5, 0, 1)
        small = base + t[..., None] * (other - base)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    if kind == 1:  # smooth blotches: coarse random grid, cubic upsampling
        gh, gw = int(rng.integers(2, 7)), int(rng.integers(2, 7))
        grid = base + rng.uniform(-45, 45, (gh, gw, 3)).astype(np.float32)
        return np.clip(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), 0, 255)
    # soft stripes at a random angle
    period = rng.uniform(12, 60)
    angle = rng.uniform(0, np.pi)
    xs = np.arange(width, dtype=np.float32) * np.float32(np.cos(angle) * 2 * np.pi / period)
    ys = np.arange(height, dtype=np.float32) * np.float32(np.sin(angle) * 2 * np.pi / period)
    wave = np.sin(xs[None, :] + ys[:, None])
    amp = rng.uniform(8, 25, 3).astype(np.float32)
    return np.clip(base + wave[..., None] * amp, 0, 255)


def _shape_polygons(rng: np.random.Generator, cls: int, size: float) -> List[np.ndarray]:
    """Local polygons (K, 2) float, centred at 0, extent about ``size``. A second polygon is a hole."""
    r = size / 2
    name = CLASS_NAMES[cls]
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    if name == "circle":
        aspect = rng.uniform(0.75, 1.0)
        polys = [np.stack([r * np.cos(t), r * aspect * np.sin(t)], 1)]
    elif name == "ring":
        aspect = rng.uniform(0.8, 1.0)
        inner = rng.uniform(0.45, 0.62)
        outer = np.stack([r * np.cos(t), r * aspect * np.sin(t)], 1)
        polys = [outer, outer * inner]
    elif name == "rectangle":
        aspect = rng.uniform(max(0.3, 8.0 / size), 1.0)  # short side at least ~8 px
        w, h = r, r * aspect
        polys = [np.array([[-w, -h], [w, -h], [w, h], [-w, h]])]
    elif name == "triangle":
        angles = np.deg2rad(np.array([90.0, 210.0, 330.0]) + rng.uniform(-12, 12, 3))
        squash = rng.uniform(0.7, 1.0)
        polys = [np.stack([r * np.cos(angles), r * squash * np.sin(angles)], 1)]
    elif name == "star":
        inner = rng.uniform(0.38, 0.5)
        a = np.linspace(0, 2 * np.pi, 10, endpoint=False) - np.pi / 2
        radius = np.where(np.arange(10) % 2 == 0, r, r * inner)
        polys = [np.stack([radius * np.cos(a), radius * np.sin(a)], 1)]
    else:  # cross (plus sign); rotation makes some of them x-shaped
        arm = max(r * rng.uniform(0.15, 0.22), 1.6)  # arms at least ~3 px wide
        length = r * rng.uniform(0.85, 1.0)
        polys = [np.array([[-arm, -length], [arm, -length], [arm, -arm], [length, -arm], [length, arm],
                           [arm, arm], [arm, length], [-arm, length], [-arm, arm], [-length, arm],
                           [-length, -arm], [-arm, -arm]])]
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return [p @ rot.T for p in polys]


def _place_shape(rng: np.random.Generator, cls: int, width: int, height: int, owner: np.ndarray,
                 areas: List[int], visible: List[int], sizes: Tuple[float, float],
                 tries: int = 10) -> Optional[Tuple[int, int, np.ndarray]]:
    """Pick size (log-uniform in ``sizes``, px) and position; -> (x0, y0, mask (h, w) bool in
    image coordinates) or None.

    Positions that would hide too much of an earlier shape, or leave too little of this one
    inside the image, are rejected and re-drawn.
    """
    for _ in range(tries):
        size = float(np.exp(rng.uniform(np.log(sizes[0]), np.log(sizes[1]))))
        polys = _shape_polygons(rng, cls, size)
        lo, hi = polys[0].min(0), polys[0].max(0)
        ext = hi - lo
        # mostly fully inside; sometimes cut by the border by up to 25% of the extent
        slack = 0.25 * ext if rng.random() < 0.2 else np.zeros(2)
        tx = rng.uniform(-lo[0] - slack[0], width - hi[0] + slack[0])
        ty = rng.uniform(-lo[1] - slack[1], height - hi[1] + slack[1])
        x0 = max(int(np.floor(tx + lo[0])) - 1, 0)
        y0 = max(int(np.floor(ty + lo[1])) - 1, 0)
        x1 = min(int(np.ceil(tx + hi[0])) + 2, width)
        y1 = min(int(np.ceil(ty + hi[1])) + 2, height)
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for k, p in enumerate(polys):  # 4 fractional bits: sub-pixel accurate edges
            pts = np.round((p + [tx - x0, ty - y0]) * 16).astype(np.int32)
            cv2.fillPoly(mask, [pts], 0 if k else 1, lineType=cv2.LINE_8, shift=4)
        mask = mask.astype(bool)
        full_area = abs(cv2.contourArea(polys[0].astype(np.float32)))
        if len(polys) > 1:
            full_area -= abs(cv2.contourArea(polys[1].astype(np.float32)))
        if mask.sum() < 0.75 * full_area or mask.sum() < 40:
            continue  # too much of it outside the image, or degenerate
        if areas:
            covered = owner[y0:y1, x0:x1][mask]
            lost = np.bincount(covered[covered >= 0], minlength=len(areas))
            if np.any(np.asarray(visible) - lost < MIN_VISIBLE_AT_PLACEMENT * np.asarray(areas)):
                continue
        return x0, y0, mask
    return None


def _paint(rng: np.random.Generator, roi: np.ndarray, mask: np.ndarray) -> None:
    """Fill the shape with a colour that stands out from what is under it, lightly shaded."""
    under = roi[mask].mean(0)
    for _ in range(8):
        hsv = np.uint8([[[rng.integers(0, 180), rng.integers(110, 256), rng.integers(90, 256)]]])
        colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
        if rng.random() < 0.15:  # some near-black / near-white shapes
            colour = np.full(3, rng.choice([rng.uniform(0, 40), rng.uniform(215, 255)]), np.float32)
        if np.linalg.norm(colour - under) > 90:
            break
    else:
        colour = np.where(under > 127, 0.0, 255.0).astype(np.float32)
    h, w = mask.shape
    shade = 1.0 + rng.uniform(-0.15, 0.15) * np.linspace(-1, 1, w, dtype=np.float32)[None, :] \
        + rng.uniform(-0.15, 0.15) * np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    fill = colour[None, None, :] * shade[..., None]
    roi[mask] = np.clip(fill[mask], 0, 255)


def _finish(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    """Optional slight blur, then sensor noise (sum of two uniforms, ~N(0, sigma)); -> uint8."""
    if rng.random() < 0.3:
        canvas = cv2.GaussianBlur(canvas, (3, 3), 0)
    half_range = int(rng.integers(3, 13))
    noise = rng.integers(-half_range, half_range + 1, canvas.shape, dtype=np.int16)
    noise += rng.integers(-half_range, half_range + 1, canvas.shape, dtype=np.int16)
    image = canvas.astype(np.int16) + (noise >> 1)
    return np.clip(image, 0, 255).astype(np.uint8)
