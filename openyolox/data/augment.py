"""Training augmentations (docs/yolox.md section 6) as pure functions.

Every function takes a uint8 BGR image (H, W, 3), boxes ``(N, 4) xyxy`` in that image's
pixels and classes ``(N,)``, plus an explicit ``rng: np.random.Generator`` where it draws
anything, and returns new arrays. Images stay uint8 throughout: the model casts to float.

Mosaic + random affine is rendered *fused* (DESIGN.md "Performance by design"): rather than
resizing four images, pasting them onto a 2H x 2W canvas and warping the canvas, each tile's
resize, placement and the affine are composed into one 2x3 matrix and each source image is
warped once, straight onto the (H, W) output, inside the output-space quadrilateral that its
placed rectangle on the canvas becomes. Tiles that land outside the output are never drawn,
and :func:`tile_visible` lets a dataset skip decoding them at all. The geometry (and the
boxes) are those of the two-step version; only pixels on tile edges differ slightly.

Pixel coordinate conventions: OpenCV matrices act on pixel *indices* (pixel i has its centre
at i). Boxes use the reference's continuous convention and are mapped with the same matrices
without half-pixel corrections, as the reference does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from openyolox.data.transforms import PAD_VALUE

MAX_LABELS = 120


# --------------------------------------------------------------------------- small helpers

def empty_labels() -> Tuple[np.ndarray, np.ndarray]:
    """(boxes (0, 4) float32 xyxy, classes (0,) int64): an image without objects."""
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """boxes: (N, 4) xyxy -> (N, 4) xyxy clipped to [0, width] x [0, height]."""
    out = boxes.astype(np.float32, copy=True)
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    return out


def filter_tiny_boxes(boxes: np.ndarray, classes: np.ndarray,
                      min_size: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """Drop boxes whose smaller side is <= ``min_size`` pixels (spec: min side <= 1 px).

    boxes: (N, 4) xyxy; classes: (N,). Such slivers are what clipping leaves of objects
    that were cut away; as targets they only add noise.
    """
    wh = boxes[:, 2:4] - boxes[:, 0:2]
    keep = np.minimum(wh[:, 0], wh[:, 1]) > min_size
    return boxes[keep], classes[keep]


def boxes_to_targets(boxes: np.ndarray, classes: np.ndarray,
                     max_labels: int = MAX_LABELS) -> np.ndarray:
    """boxes (N, 4) xyxy, classes (N,) -> (max_labels, 5) float32 rows (class, cx, cy, w, h).

    Rows past N are zero (padding; w = h = 0 marks them). Only the first ``max_labels``
    objects are kept (spec: up to 120 labels per image).
    """
    n = min(len(boxes), max_labels)
    targets = np.zeros((max_labels, 5), np.float32)
    b = boxes[:n]
    targets[:n, 0] = classes[:n]
    targets[:n, 1] = (b[:, 0] + b[:, 2]) * 0.5
    targets[:n, 2] = (b[:, 1] + b[:, 3]) * 0.5
    targets[:n, 3] = b[:, 2] - b[:, 0]
    targets[:n, 4] = b[:, 3] - b[:, 1]
    return targets


def affine_boxes(boxes: np.ndarray, matrix: np.ndarray, out_hw: Tuple[int, int]) -> np.ndarray:
    """Map boxes through a 2x3 affine: the axis-aligned hull of the 4 transformed corners,
    clipped to the output (H, W). boxes: (N, 4) xyxy -> (N, 4) xyxy float32."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1),
                        np.stack([x1, y2], 1), np.stack([x2, y2], 1)], 1)  # (N, 4, 2)
    mapped = corners.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
    hull = np.concatenate([mapped.min(1), mapped.max(1)], 1)
    return clip_boxes(hull, out_hw[1], out_hw[0])


# --------------------------------------------------------------------------- mosaic + affine

@dataclass(frozen=True)
class TilePlacement:
    """Where one letterbox-fitted image sits on the 2H x 2W mosaic canvas.

    src_hw:  (h, w) of the source image
    size_hw: (h, w) after the letterbox-fit resize, r = min(H/h, W/w)
    rect:    (x1, y1, x2, y2) integer canvas pixels it covers (x2, y2 exclusive); the part of
             the resized image outside the canvas is cut off
    offset:  (dx, dy): canvas pixel = resized pixel + offset
    """

    src_hw: Tuple[int, int]
    size_hw: Tuple[int, int]
    rect: Tuple[int, int, int, int]
    offset: Tuple[int, int]

    @property
    def scale_xy(self) -> Tuple[float, float]:
        """Actual resize factors (x, y): the integer resized size over the source size."""
        return self.size_hw[1] / self.src_hw[1], self.size_hw[0] / self.src_hw[0]

    @property
    def empty(self) -> bool:
        x1, y1, x2, y2 = self.rect
        return x2 <= x1 or y2 <= y1

    def source_to_canvas(self) -> np.ndarray:
        """(3, 3) pixel-index matrix source -> canvas, with the half-pixel terms of
        cv2.resize (INTER_LINEAR maps centre to centre: x' = (x + 0.5) * s - 0.5)."""
        sx, sy = self.scale_xy
        dx, dy = self.offset
        return np.array([[sx, 0.0, 0.5 * sx - 0.5 + dx],
                         [0.0, sy, 0.5 * sy - 0.5 + dy],
                         [0.0, 0.0, 1.0]])

    def boxes_to_canvas(self, boxes: np.ndarray) -> np.ndarray:
        """boxes: (N, 4) xyxy source pixels -> (N, 4) xyxy canvas pixels (not clipped).

        Scaled by the actual (integer-size) resize factors, so boxes follow the pixels; the
        reference scales by r, which is less than a pixel away."""
        sx, sy = self.scale_xy
        dx, dy = self.offset
        return (boxes * np.array([sx, sy, sx, sy], np.float32)
                + np.array([dx, dy, dx, dy], np.float32)).astype(np.float32)


def place_mosaic_tiles(tile_hws: Sequence[Tuple[int, int]], center_xy: Tuple[int, int],
                       out_hw: Tuple[int, int]) -> Tuple[TilePlacement, ...]:
    """Lay four images (their (h, w)) around the mosaic centre on the 2H x 2W canvas.

    Tile k is letterbox-fitted to (H, W) and placed top-left, top-right, bottom-left,
    bottom-right of the centre for k = 0..3, touching it; a tile never enters another
    quadrant, so tiles only get cut by the canvas border.
    """
    out_h, out_w = out_hw
    xc, yc = center_xy
    tiles = []
    for k, (h0, w0) in enumerate(tile_hws):
        r = min(out_h / h0, out_w / w0)
        w, h = max(int(w0 * r), 1), max(int(h0 * r), 1)
        if k == 0:    # top-left: bottom-right corner at the centre
            x1, y1, x2, y2 = max(xc - w, 0), max(yc - h, 0), xc, yc
            sx1, sy1 = w - (x2 - x1), h - (y2 - y1)
        elif k == 1:  # top-right: bottom-left corner at the centre
            x1, y1, x2, y2 = xc, max(yc - h, 0), min(xc + w, 2 * out_w), yc
            sx1, sy1 = 0, h - (y2 - y1)
        elif k == 2:  # bottom-left: top-right corner at the centre
            x1, y1, x2, y2 = max(xc - w, 0), yc, xc, min(yc + h, 2 * out_h)
            sx1, sy1 = w - (x2 - x1), 0
        else:         # bottom-right: top-left corner at the centre
            x1, y1, x2, y2 = xc, yc, min(xc + w, 2 * out_w), min(yc + h, 2 * out_h)
            sx1, sy1 = 0, 0
        tiles.append(TilePlacement((h0, w0), (h, w), (x1, y1, x2, y2), (x1 - sx1, y1 - sy1)))
    return tuple(tiles)


def random_affine_matrix(rng: np.random.Generator, out_hw: Tuple[int, int],
                         degrees: float = 10.0, translate: float = 0.1,
                         scale: Tuple[float, float] = (0.1, 2.0), shear: float = 2.0) -> np.ndarray:
    """Draw the reference's random affine as a (2, 3) float64 matrix (pixel indices).

    Rotation U(-degrees, degrees) and scale U(scale) about the origin, shear U(-shear, shear)
    degrees on both axes, translation U(-translate, translate) * (W, H). As in the current
    reference, rotation and scale act about the canvas origin and the output shows the
    canvas region starting there, so large scales zoom into the top-left of the mosaic.
    """
    out_h, out_w = out_hw
    angle = math.radians(rng.uniform(-degrees, degrees))
    s = rng.uniform(scale[0], scale[1])
    shear_x = math.tan(math.radians(rng.uniform(-shear, shear)))
    shear_y = math.tan(math.radians(rng.uniform(-shear, shear)))
    a, b = s * math.cos(angle), s * math.sin(angle)
    rot = np.array([[a, b], [-b, a]])  # cv2.getRotationMatrix2D about (0, 0)
    m = np.zeros((2, 3))
    m[0, :2] = rot[0] + shear_y * rot[1]
    m[1, :2] = rot[1] + shear_x * rot[0]
    m[0, 2] = rng.uniform(-translate, translate) * out_w
    m[1, 2] = rng.uniform(-translate, translate) * out_h
    return m


@dataclass(frozen=True)
class MosaicPlan:
    """Everything random about one mosaic + affine, drawn before any pixel is touched.

    out_hw: (H, W) output; center: (xc, yc) on the 2H x 2W canvas; tiles: 4 placements;
    matrix: (2, 3) canvas -> output pixel-index affine.
    """

    out_hw: Tuple[int, int]
    center: Tuple[int, int]
    tiles: Tuple[TilePlacement, ...]
    matrix: np.ndarray


def plan_mosaic(rng: np.random.Generator, tile_hws: Sequence[Tuple[int, int]],
                out_hw: Tuple[int, int], scale: Tuple[float, float] = (0.1, 2.0),
                degrees: float = 10.0, translate: float = 0.1, shear: float = 2.0) -> MosaicPlan:
    """Draw a mosaic centre U(0.5, 1.5) * (W, H) and a random affine for four images of
    the given (h, w). Needs only image sizes, so a dataset can plan before decoding."""
    out_h, out_w = out_hw
    yc = int(rng.uniform(0.5 * out_h, 1.5 * out_h))
    xc = int(rng.uniform(0.5 * out_w, 1.5 * out_w))
    tiles = place_mosaic_tiles(tile_hws, (xc, yc), out_hw)
    matrix = random_affine_matrix(rng, out_hw, degrees, translate, scale, shear)
    return MosaicPlan(out_hw, (xc, yc), tiles, matrix)


def _tile_quad(plan: MosaicPlan, k: int) -> np.ndarray:
    """(4, 2) output-pixel corners of tile k's canvas rectangle (pixel edges at +-0.5)."""
    x1, y1, x2, y2 = plan.tiles[k].rect
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64) - 0.5
    return corners @ plan.matrix[:, :2].T + plan.matrix[:, 2]


def _tile_roi(plan: MosaicPlan, k: int) -> Optional[Tuple[int, int, int, int]]:
    """Integer output box (x0, y0, x1, y1), exclusive end, bounding tile k; None if the
    tile is empty or falls entirely outside the output."""
    if plan.tiles[k].empty:
        return None
    quad = _tile_quad(plan, k)
    out_h, out_w = plan.out_hw
    x0 = max(int(math.floor(quad[:, 0].min())), 0)
    y0 = max(int(math.floor(quad[:, 1].min())), 0)
    x1 = min(int(math.ceil(quad[:, 0].max())) + 1, out_w)
    y1 = min(int(math.ceil(quad[:, 1].max())) + 1, out_h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def tile_visible(plan: MosaicPlan, k: int) -> bool:
    """Whether any of tile k can appear in the output (if not, its image need not be read)."""
    return _tile_roi(plan, k) is not None


def render_mosaic(plan: MosaicPlan, images: Sequence[Optional[np.ndarray]]) -> np.ndarray:
    """Fused mosaic + affine: warp each source image once onto the (H, W) uint8 output.

    images[k]: (h, w, 3) uint8 with h, w = plan.tiles[k].src_hw, or None for a tile that is
    not visible. Each tile is warped (source -> canvas -> output in one matrix) into the
    bounding box of its quadrilateral only, and copied under a mask of that quadrilateral, so
    the parts of the image that the canvas border cut off never appear.
    """
    out_h, out_w = plan.out_hw
    out = np.full((out_h, out_w, 3), PAD_VALUE, np.uint8)
    canvas_to_out = np.vstack([plan.matrix, [0.0, 0.0, 1.0]])
    for k, tile in enumerate(plan.tiles):
        roi = _tile_roi(plan, k)
        if roi is None:
            continue
        image = images[k]
        if image is None:
            raise ValueError(f"mosaic tile {k} is visible but no image was given")
        if image.shape[:2] != tuple(tile.src_hw):
            raise ValueError(f"mosaic tile {k}: image is {image.shape[:2]}, planned {tile.src_hw}")
        x0, y0, x1, y1 = roi
        to_roi = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        m = (to_roi @ canvas_to_out @ tile.source_to_canvas())[:2]
        # replicate, not 114: on a seam with the next tile the edge pixel is the better guess
        patch = cv2.warpAffine(image, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        quad = (_tile_quad(plan, k) - (x0, y0)) * 256.0
        cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 255, cv2.LINE_8, 8)
        cv2.copyTo(patch, mask, out[y0:y1, x0:x1])
    return out


def mosaic_boxes(plan: MosaicPlan, boxes: Sequence[np.ndarray],
                 classes: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Labels of a planned mosaic: boxes[k] (N_k, 4) xyxy in tile k's source pixels ->
    (N, 4) xyxy output pixels and (N,) classes.

    Boxes are moved onto the canvas, clipped to it, then mapped through the affine (hull of
    the corners, clipped to the output). Boxes clipped to nothing on the canvas are dropped
    before the affine: the reference keeps them, and rotation turns such zero-width slivers
    on the canvas edge into spurious boxes of real width.
    """
    out_h, out_w = plan.out_hw
    all_boxes, all_classes = [], []
    for tile, b, c in zip(plan.tiles, boxes, classes):
        if len(b) == 0 or tile.empty:
            continue
        cb = clip_boxes(tile.boxes_to_canvas(b), 2 * out_w, 2 * out_h)
        keep = (cb[:, 2] > cb[:, 0]) & (cb[:, 3] > cb[:, 1])
        all_boxes.append(cb[keep])
        all_classes.append(np.asarray(c, np.int64)[keep])
    if not all_boxes:
        return empty_labels()
    merged = np.concatenate(all_boxes)
    return affine_boxes(merged, plan.matrix, plan.out_hw), np.concatenate(all_classes)


def mosaic(images: Sequence[np.ndarray], boxes: Sequence[np.ndarray], classes: Sequence[np.ndarray],
           rng: np.random.Generator, out_hw: Tuple[int, int], scale: Tuple[float, float] = (0.1, 2.0),
           degrees: float = 10.0, translate: float = 0.1,
           shear: float = 2.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mosaic of four images followed by the random affine, rendered fused.

    images: four (h_k, w_k, 3) uint8; boxes[k]: (N_k, 4) xyxy; classes[k]: (N_k,).
    Returns (image (H, W, 3) uint8, boxes (N, 4) xyxy output pixels, classes (N,)).
    """
    plan = plan_mosaic(rng, [im.shape[:2] for im in images], out_hw, scale, degrees, translate, shear)
    out_boxes, out_classes = mosaic_boxes(plan, boxes, classes)
    return render_mosaic(plan, images), out_boxes, out_classes


# --------------------------------------------------------------------------- mixup

def mixup(image: np.ndarray, boxes: np.ndarray, classes: np.ndarray,
          other: np.ndarray, other_boxes: np.ndarray, other_classes: np.ndarray,
          rng: np.random.Generator,
          jitter: Tuple[float, float] = (0.5, 1.5)) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MixUp ``other`` into ``image`` (H, W, 3) uint8; labels are concatenated.

    As the reference: ``other`` is letterboxed to (H, W) (114 padding), that canvas rescaled
    by U(jitter), flipped with p 0.5, padded with 0 to at least (H, W) and randomly cropped
    to (H, W); then the two are blended 0.5 / 0.5. The two resizes are done as one (the
    image straight to its jittered size), the flip and crop are slicing, and the blend
    rounds (cv2.addWeighted) where the reference truncates: at most 1 grey level apart.
    boxes / other_boxes: (N, 4) xyxy in their image's pixels; classes: (N,).
    """
    out_h, out_w = image.shape[:2]
    jit = rng.uniform(jitter[0], jitter[1])
    flip = rng.uniform(0.0, 1.0) > 0.5
    h0, w0 = other.shape[:2]
    r = min(out_h / h0, out_w / w0)
    cw, ch = max(int(out_w * jit), 1), max(int(out_h * jit), 1)      # jittered letterbox canvas
    # the letterboxed content, rescaled with its canvas
    content_w = max(int(round(int(w0 * r) * cw / out_w)), 1)
    content_h = max(int(round(int(h0 * r) * ch / out_h)), 1)
    y_off = int(rng.integers(0, ch - out_h)) if ch > out_h else 0
    x_off = int(rng.integers(0, cw - out_w)) if cw > out_w else 0

    # layer = crop [y_off, +H) x [x_off, +W) of: 0 everywhere, 114 on the jittered canvas,
    # the (flipped) image on its content part
    layer = np.zeros((out_h, out_w, 3), np.uint8)
    layer[:max(ch - y_off, 0), :max(cw - x_off, 0)] = PAD_VALUE
    content = cv2.resize(other, (content_w, content_h), interpolation=cv2.INTER_LINEAR)
    left = cw - content_w if flip else 0                 # content columns on the padded canvas
    if flip:
        content = cv2.flip(content, 1)   # much faster than a negative-stride numpy copy
    src_x0, src_y0 = max(x_off - left, 0), y_off
    dst_x0 = max(left - x_off, 0)
    width = min(content_w - src_x0, out_w - dst_x0)
    height = min(content_h - src_y0, out_h)
    if width > 0 and height > 0:
        layer[:height, dst_x0:dst_x0 + width] = content[src_y0:src_y0 + height, src_x0:src_x0 + width]

    blended = cv2.addWeighted(image, 0.5, layer, 0.5, 0.0)

    sx, sy = content_w / w0, content_h / h0
    ob = other_boxes.astype(np.float32) * np.array([sx, sy, sx, sy], np.float32)
    ob = clip_boxes(ob, cw, ch)
    if flip:
        ob[:, [0, 2]] = cw - ob[:, [2, 0]]
    ob -= np.array([x_off, y_off, x_off, y_off], np.float32)
    ob = clip_boxes(ob, out_w, out_h)
    return (blended, np.concatenate([boxes.astype(np.float32), ob]),
            np.concatenate([np.asarray(classes, np.int64), np.asarray(other_classes, np.int64)]))


# --------------------------------------------------------------------------- photometric, flip

def hsv_lut(hue: int, sat: int, val: int) -> np.ndarray:
    """(1, 256, 3) uint8 lookup table adding integer offsets to OpenCV HSV channels:
    hue wraps modulo 180, saturation and value clip to 0..255."""
    i = np.arange(256, dtype=np.int32)
    return np.stack([(i + hue) % 180, np.clip(i + sat, 0, 255), np.clip(i + val, 0, 255)],
                    axis=1).astype(np.uint8)[None]


def augment_hsv(image: np.ndarray, rng: np.random.Generator,
                gains: Tuple[float, float, float] = (5.0, 30.0, 30.0)) -> np.ndarray:
    """Random HSV jitter of a BGR uint8 image (returns a new array).

    Offsets U(-1, 1) * gain for h, s, v, each kept with p 0.5 and truncated to integers as
    in the reference, applied through one 3-channel LUT (no int16 intermediate image).
    """
    offsets = rng.uniform(-1.0, 1.0, 3) * np.asarray(gains) * rng.integers(0, 2, 3)
    offsets = offsets.astype(np.int16)
    if not offsets.any():
        return image
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    cv2.LUT(hsv, hsv_lut(*(int(o) for o in offsets)), dst=hsv)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def hflip(image: np.ndarray, boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mirror left-right. image (H, W, 3); boxes (N, 4) xyxy -> x' = W - x (x1, x2 swap)."""
    width = image.shape[1]
    flipped = boxes.astype(np.float32, copy=True)
    flipped[:, [0, 2]] = width - boxes[:, [2, 0]]
    return cv2.flip(image, 1), flipped


def finish_labels(boxes: np.ndarray, classes: np.ndarray,
                  max_labels: int = MAX_LABELS) -> np.ndarray:
    """Drop tiny boxes and pack: (N, 4) xyxy + (N,) -> (max_labels, 5) (class, cx, cy, w, h)."""
    boxes, classes = filter_tiny_boxes(boxes, classes)
    return boxes_to_targets(boxes, classes, max_labels)


__all__: List[str] = [
    "MAX_LABELS", "TilePlacement", "MosaicPlan", "empty_labels", "clip_boxes", "filter_tiny_boxes",
    "boxes_to_targets", "affine_boxes", "place_mosaic_tiles", "random_affine_matrix",
    "plan_mosaic", "tile_visible", "render_mosaic", "mosaic_boxes", "mosaic", "mixup", "hsv_lut",
    "augment_hsv", "hflip", "finish_labels",
]
