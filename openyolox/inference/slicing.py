"""Sliced inference: small objects in large images, found window by window, then merged.

A large image shrunk to the network's input loses its small objects: at 640, a 4000 px photo
is scaled by 0.16 and an 8-24 px object becomes 1-4 px, below what any detector resolves.
Slicing runs the same prediction step (``Detector.predict_batch``) on overlapping windows at
close to full resolution and merges what they find:

    tile_windows      windows of ``size`` px, neighbours sharing >= ``overlap * size`` px
    predict_tiles     each window letterboxed from a view of the image (never a copy of the
                      whole image), ``batch`` windows per forward pass, boxes clipped to their
                      window, shifted by its offset, and flagged ``cut`` when they touch an
                      inner window edge (the window may show only part of the object);
                      plus the whole image as one more tile (a downscale), so objects larger
                      than a window are found whole
    merge_detections  one box per object (see there)

Memory for a huge image: the image itself, plus ``batch`` letterboxed tiles and the network's
activations for them; nothing else grows with the image except the detections.

Merging ("union", the default, or "nms"; benchmarks/slicing.py measures both). An object that
lies in a window overlap is seen whole twice and gives two near-identical boxes: class-aware
NMS at the detector's IoU removes one. An object cut by a window edge is seen as a part in
that window: when another tile saw it whole (every object up to ``overlap * size`` px wide is
whole in some window, larger ones in the full-image tile), the part is dropped, matched by the
share of the part that the whole box covers, since its IoU with the whole box can be far below
any NMS threshold. Parts of an object no tile saw whole are grouped; "nms" keeps the best part,
"union" the box around all parts, which is the whole object when the parts come from windows
on both sides of a seam.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from openyolox.data.records import ImageId
from openyolox.errors import ConfigError
from openyolox.inference.results import Detections
from openyolox.ops.nms import batched_nms

if TYPE_CHECKING:  # the Detector imports this module
    from openyolox.inference.predictor import Detector

MERGE_METHODS = ("union", "nms")
EDGE_MARGIN = 2.0   # network-input px: a box this close to an inner window edge may be a part
MATCH_IOS = 0.5     # a part matches a box covering more than this share of the part
_MATCH_CELLS = 1 << 22  # pairwise entries computed at a time when matching parts (memory bound)


@dataclass(frozen=True)
class SliceConfig:
    """How to slice: ``size`` px windows (original pixels) overlapping by ``overlap * size``;
    ``full``: also run the whole image, downscaled, as one tile; ``merge``: "union" or "nms";
    ``batch``: tiles per forward pass (bounds memory; larger is faster on a GPU)."""

    size: int
    overlap: float = 0.2
    full: bool = True
    merge: str = "union"
    batch: int = 8

    def __post_init__(self) -> None:
        if int(self.size) != self.size or self.size < 32:
            raise ConfigError(f"slice size must be an integer >= 32 px, got {self.size}")
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"slice overlap must be in [0, 1), got {self.overlap}")
        if self.merge not in MERGE_METHODS:
            raise ConfigError(f"unknown slice merge {self.merge!r}; choose {' or '.join(MERGE_METHODS)}")
        if self.batch < 1:
            raise ConfigError(f"slice batch must be >= 1, got {self.batch}")


class Window(NamedTuple):
    """A window of the image in original pixels; x1, y1 exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int


class TileDetections(NamedTuple):
    """Every tile's detections of one image, before merging, in original pixels."""

    boxes: np.ndarray    # (N, 4) xyxy; window boxes clipped to their window
    scores: np.ndarray   # (N,)
    classes: np.ndarray  # (N,) int64
    cut: np.ndarray      # (N,) bool: touches an inner window edge (maybe a part of the object)


def _starts(length: int, size: int, overlap: float) -> List[int]:
    """Window starts along one side: as few windows as keep the overlap, spread evenly so the
    last one ends at the image edge (every window full size, no sliver window)."""
    if length <= size:
        return [0]
    stride = max(1, math.floor(size * (1 - overlap)))
    n = math.ceil((length - size) / stride) + 1
    return [round(i * (length - size) / (n - 1)) for i in range(n)]


def tile_windows(image_hw: Tuple[int, int], size: int, overlap: float) -> List[Window]:
    """Windows covering an image of (h, w): ``size`` x ``size`` (a side shorter than ``size``
    is taken whole), row by row; neighbours share at least ``overlap * size`` px."""
    h, w = image_hw
    return [Window(x, y, min(x + size, w), min(y + size, h))
            for y in _starts(h, size, overlap) for x in _starts(w, size, overlap)]


def predict_tiles(detector: "Detector", image: np.ndarray, cfg: SliceConfig) -> TileDetections:
    """Run ``detector`` on the windows of ``image`` (H, W, 3) BGR uint8 (and on the whole
    image when ``cfg.full`` and there is more than one window), ``cfg.batch`` tiles per forward
    pass. Timings go to ``detector.timings`` (letterboxing as preprocess)."""
    h, w = image.shape[:2]
    windows: List[Optional[Window]] = list(tile_windows((h, w), cfg.size, cfg.overlap))
    if cfg.full and len(windows) > 1:
        windows.append(None)  # the whole image: letterbox shrinks it in one resize
    parts = []
    for first in range(0, len(windows), cfg.batch):
        chunk = windows[first:first + cfg.batch]
        t0 = time.perf_counter()
        batch = detector.preprocess([(k, image if win is None else image[win.y0:win.y1, win.x0:win.x1])
                                     for k, win in enumerate(chunk)])   # views, not copies
        detector.timings.preprocess += time.perf_counter() - t0
        for win, det, ratio in zip(chunk, detector.predict_batch(batch, clip=True), batch.ratios):
            boxes = det.boxes.astype(np.float32)
            cut = np.zeros(len(det), dtype=bool)
            if win is not None:
                boxes += np.array([win.x0, win.y0, win.x0, win.y0], dtype=np.float32)
                cut = _touches_inner_edge(boxes, win, (h, w), EDGE_MARGIN / ratio)
            parts.append((boxes, det.scores, det.classes, cut))
    detector.timings.images -= len(windows) - 1  # predict_batch counted tiles; this is one image
    boxes, scores, classes, cut = (np.concatenate(p) for p in zip(*parts))
    return TileDetections(boxes.reshape(-1, 4), scores.astype(np.float32), classes.astype(np.int64), cut)


def _touches_inner_edge(boxes: np.ndarray, win: Window, image_hw: Tuple[int, int], margin: float) -> np.ndarray:
    """(N,) bool: boxes (N, 4) xyxy (original px) within ``margin`` of an edge of ``win`` that
    is not an edge of the image (there the window may have cut the object)."""
    h, w = image_hw
    cut = np.zeros(len(boxes), dtype=bool)
    if win.x0 > 0:
        cut |= boxes[:, 0] <= win.x0 + margin
    if win.y0 > 0:
        cut |= boxes[:, 1] <= win.y0 + margin
    if win.x1 < w:
        cut |= boxes[:, 2] >= win.x1 - margin
    if win.y1 < h:
        cut |= boxes[:, 3] >= win.y1 - margin
    return cut


def merge_detections(tiles: TileDetections, iou: float, method: str = "union", class_agnostic: bool = False,
                     match: float = MATCH_IOS) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One box per object from every tile's detections -> (boxes (K, 4) xyxy, scores (K,),
    classes (K,)), by decreasing score.

    1. Whole views (``cut`` False): class-aware greedy NMS at ``iou``.
    2. A part (``cut`` True) is dropped when a kept whole box of its class covers more than
       ``match`` of its area: the object was seen whole elsewhere.
    3. The other parts are grouped: parts of one class sharing more than ``match`` of the
       smaller one's area, greedily by score, then groups whose boxes around their parts do
       (the four parts of an object at a window corner). "nms" keeps the best part's box,
       "union" the box around the group; the score is the best part's.
    With ``cut`` all False this is plain class-aware NMS. ``class_agnostic``: classes do not
    matter for any of the steps (as the detector's NMS).
    """
    if method not in MERGE_METHODS:
        raise ConfigError(f"unknown slice merge {method!r}; choose {' or '.join(MERGE_METHODS)}")
    boxes, scores, classes, cut = tiles
    groups = np.zeros_like(classes) if class_agnostic else classes
    whole = np.flatnonzero(~cut)
    keep = whole[batched_nms(torch.from_numpy(boxes[whole]), torch.from_numpy(scores[whole]),
                             torch.from_numpy(groups[whole]), iou).numpy()]
    parts = np.flatnonzero(cut)
    covered, _ = _matches(boxes[parts], groups[parts], boxes[keep], groups[keep], match)
    parts = np.delete(parts, np.unique(covered))
    parts = parts[np.argsort(-scores[parts], kind="stable")]
    group = _group_parts(boxes[parts], groups[parts], match)
    leaders = np.unique(group)  # the best-scored part of each group (parts are by score)
    part_boxes = _union_boxes(boxes[parts], group)[leaders] if method == "union" else boxes[parts[leaders]]
    out_boxes = np.concatenate([boxes[keep], part_boxes]).reshape(-1, 4)
    out_scores = np.concatenate([scores[keep], scores[parts[leaders]]])
    out_classes = np.concatenate([classes[keep], classes[parts[leaders]]])
    order = np.argsort(-out_scores, kind="stable")
    return out_boxes[order], out_scores[order], out_classes[order]


def _matches(a: np.ndarray, a_cls: np.ndarray, b: np.ndarray, b_cls: np.ndarray, threshold: float,
             among_themselves: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) of boxes a[i], b[j] (xyxy; (M, 4) and (K, 4)) of one class whose
    intersection is more than ``threshold`` of a[i]'s area; ``among_themselves`` (a and b the
    same boxes): of the smaller area, and i != j. -> (ia, ib) int64, sorted by (ia, ib).

    Rows of a are taken in chunks of at most _MATCH_CELLS pairs, each against only the b boxes
    that reach the chunk's bounding box, so memory stays bounded for any count."""
    ia, ib = [], []
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    by_x = np.argsort(a[:, 0], kind="stable")  # neighbours in a chunk: fewer b boxes reach it
    step = max(1, _MATCH_CELLS // len(b))
    for first in range(0, len(a), step):
        rows = by_x[first:first + step]
        x0, y0 = a[rows, 0].min(), a[rows, 1].min()
        x1, y1 = a[rows, 2].max(), a[rows, 3].max()
        cols = np.flatnonzero((b[:, 2] > x0) & (b[:, 0] < x1) & (b[:, 3] > y0) & (b[:, 1] < y1))
        ra, cb = a[rows, None, :], b[None, cols, :]
        iw = (np.minimum(ra[..., 2], cb[..., 2]) - np.maximum(ra[..., 0], cb[..., 0])).clip(0)
        ih = (np.minimum(ra[..., 3], cb[..., 3]) - np.maximum(ra[..., 1], cb[..., 1])).clip(0)
        denom = area_a[rows, None]
        if among_themselves:
            denom = np.minimum(denom, area_b[None, cols])
        hit = (iw * ih > threshold * denom) & (a_cls[rows, None] == b_cls[None, cols])
        if among_themselves:
            hit &= rows[:, None] != cols[None, :]
        r, c = np.nonzero(hit)
        ia.append(rows[r])
        ib.append(cols[c])
    ia, ib = np.concatenate(ia), np.concatenate(ib)
    order = np.lexsort((ib, ia))
    return ia[order], ib[order]


def _group_parts(boxes: np.ndarray, classes: np.ndarray, match: float) -> np.ndarray:
    """Group parts (boxes (n, 4) xyxy, best first) -> (n,) index of each part's group leader
    (its best part). Greedy rounds: each leader, best first, takes the untaken groups whose
    boxes (around their parts) match its own; until a round merges nothing."""
    label = np.arange(len(boxes))
    while True:
        leaders = np.unique(label)
        around = _union_boxes(boxes, label)[leaders]
        cls = classes[leaders]
        lead = _group_greedily(*_matches(around, cls, around, cls, match, among_themselves=True), len(leaders))
        if (lead == np.arange(len(leaders))).all():
            return label
        label = leaders[lead[np.searchsorted(leaders, label)]]


def _union_boxes(boxes: np.ndarray, label: np.ndarray) -> np.ndarray:
    """(n, 4) xyxy boxes, (n,) group labels in 0..n-1 -> (n, 4): row k is the box around the
    boxes labelled k (inf/-inf rows for unused labels)."""
    lo = np.full((len(boxes), 2), np.inf, dtype=boxes.dtype)
    hi = np.full((len(boxes), 2), -np.inf, dtype=boxes.dtype)
    np.minimum.at(lo, label, boxes[:, :2])
    np.maximum.at(hi, label, boxes[:, 2:])
    return np.concatenate([lo, hi], axis=1)


def _group_greedily(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    """Greedy grouping of n items ranked 0..n-1 (best first) over matches src[k] ~ dst[k]
    (both directions listed, sorted by src): each item not yet taken leads a group and takes
    its untaken matches. -> (n,) index of each item's leader."""
    leader = np.full(n, -1, dtype=np.int64)
    start = np.searchsorted(src, np.arange(n + 1))
    for i in range(n):
        if leader[i] >= 0:
            continue
        leader[i] = i
        nbrs = dst[start[i]:start[i + 1]]
        leader[nbrs[leader[nbrs] < 0]] = i
    return leader


def predict_sliced(detector: "Detector", named_images: Sequence[Tuple[ImageId, np.ndarray]],
                   cfg: SliceConfig) -> List[Detections]:
    """Sliced prediction of (name, BGR uint8 image) pairs, one Detections per image, each
    keeping its image. Boxes are always within the image (tiles are clipped to their windows)."""
    out = []
    for name, image in named_images:
        tiles = predict_tiles(detector, image, cfg)
        t0 = time.perf_counter()
        boxes, scores, classes = merge_detections(tiles, detector.iou, cfg.merge, detector.class_agnostic)
        detector.timings.postprocess += time.perf_counter() - t0
        out.append(Detections(boxes, scores, classes, names=detector.names, image_id=name,
                              image_shape=image.shape[:2], image=image))
    return out


__all__ = ["MERGE_METHODS", "SliceConfig", "TileDetections", "Window", "merge_detections", "predict_sliced",
           "predict_tiles", "tile_windows"]
