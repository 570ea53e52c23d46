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

Merging ("union", the default, or "nms"; benchmarks/slicing.py measures both) is NMS that
knows about window edges. An object that lies in a window overlap is seen whole twice: the
two boxes overlap as in NMS, and one goes. An object cut by a window edge is seen as a part
in that window, and a part's IoU with the whole object, or with the part on the other side
of the seam, can be far below any NMS threshold. So a part is compared with other tiles'
boxes where both tiles saw the same pixels: each box is cut to the two tiles' common area,
and the pieces must overlap (IoU > ``match``). A part and the whole object, or two parts of
one object, agree there; a part inside a much larger box (another object, or a large false
box at a window edge) does not, which plain IoU or the intersection over the smaller box
cannot tell. Among views that agree, the most confident decides: a whole view keeps its box;
a part gets the box around the parts ("union", which is the whole object when the parts come
from both sides of a seam) or keeps its own ("nms"). Every object up to ``overlap * size``
px is whole in some window, larger ones in the full-image tile.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from openyolox.data.records import ImageId
from openyolox.errors import ConfigError
from openyolox.inference.results import Detections

if TYPE_CHECKING:  # the Detector imports this module
    from openyolox.inference.predictor import Detector

MERGE_METHODS = ("union", "nms")
EDGE_MARGIN = 2.0   # network-input px: a box this close to an inner window edge may be a part
MATCH_IOU = 0.5     # two views agree when their pieces in the tiles' common area overlap this much
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
    tiles: np.ndarray    # (N, 4) xyxy: the area its tile saw (its window, or the whole image)


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
            area = np.array(win if win is not None else (0, 0, w, h), dtype=np.float32)
            parts.append((boxes, det.scores, det.classes, cut, np.tile(area, (len(det), 1))))
    detector.timings.images -= len(windows) - 1  # predict_batch counted tiles; this is one image
    boxes, scores, classes, cut, areas = (np.concatenate(p) for p in zip(*parts))
    return TileDetections(boxes.reshape(-1, 4), scores.astype(np.float32), classes.astype(np.int64), cut,
                          areas.reshape(-1, 4))


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
                     match: float = MATCH_IOU) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One box per object from every tile's detections -> (boxes (K, 4) xyxy, scores (K,),
    classes (K,)), by decreasing score.

    Greedy, best score first (a whole view before a part of equal score), like NMS: the best
    view not yet taken leads, and takes the views
    of its class that show the same object: two whole views (``cut`` False) when their IoU is
    above ``iou``, as NMS does; a part and any view from another tile when they agree where
    the two tiles looked (cut to the tiles' common area, IoU above ``match``). The most
    confident view decides the box: a whole leader keeps its own; a part leader gets the box
    around the parts it took ("union") or keeps its own ("nms"). Groups led by parts then
    merge in rounds, each seen by the union of its tiles, until none agree (an object across
    three windows). With ``cut`` all False this is plain class-aware NMS; ``class_agnostic``:
    classes play no part (as in the detector's NMS).
    """
    if method not in MERGE_METHODS:
        raise ConfigError(f"unknown slice merge {method!r}; choose {' or '.join(MERGE_METHODS)}")
    order = np.lexsort((tiles.cut, -tiles.scores))  # by score; at equal scores the whole view first
    boxes, scores, classes, cut, seen = (x[order] for x in tiles)
    groups = np.zeros_like(classes) if class_agnostic else classes
    whole, parts = np.flatnonzero(~cut), np.flatnonzero(cut)
    everywhere = np.broadcast_to(np.array([-np.inf, -np.inf, np.inf, np.inf], np.float32), seen.shape)
    ww = _agreeing(boxes[whole], everywhere[whole], groups[whole], boxes[whole], everywhere[whole], groups[whole],
                   iou, other_tiles=False)  # plain IoU: NMS among whole views
    pa = _agreeing(boxes[parts], seen[parts], groups[parts], boxes, seen, groups, match, other_tiles=True)
    src = np.concatenate([whole[ww[0]], parts[pa[0]], pa[1]])
    dst = np.concatenate([whole[ww[1]], pa[1], parts[pa[0]]])
    keep = src != dst
    src, dst = src[keep], dst[keep]
    by_src = np.lexsort((dst, src))
    leader = _group_greedily(src[by_src], dst[by_src], len(boxes))
    leaders = np.flatnonzero(leader == np.arange(len(boxes)))
    part_led = leaders[cut[leaders]]
    taken = np.flatnonzero(cut & np.isin(leader, part_led))  # parts in groups led by a part
    label = _merge_groups(boxes[taken], seen[taken], groups[taken], np.searchsorted(taken, leader[taken]), match)
    heads = np.unique(label)
    if method == "union":
        part_boxes = _union_boxes(boxes[taken], label)[heads]
    else:
        part_boxes = boxes[taken[heads]]
    whole_led = leaders[~cut[leaders]]
    out = [np.concatenate(pair) for pair in ((boxes[whole_led], part_boxes), (scores[whole_led], scores[taken[heads]]),
                                             (classes[whole_led], classes[taken[heads]]))]
    order = np.argsort(-out[1], kind="stable")
    return out[0][order].reshape(-1, 4), out[1][order], out[2][order]


def _agreeing(a: np.ndarray, a_seen: np.ndarray, a_cls: np.ndarray, b: np.ndarray, b_seen: np.ndarray,
              b_cls: np.ndarray, threshold: float, other_tiles: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) of boxes a[i], b[j] (xyxy, (M, 4) and (K, 4); a_seen, b_seen: the areas
    their tiles saw) of one class that agree where both tiles looked: cut to the intersection
    of the two areas, they overlap by IoU > ``threshold``. ``other_tiles``: only pairs from
    different tile areas. -> (ia, ib) int64, sorted by (ia, ib).

    Rows of a are taken in chunks of at most _MATCH_CELLS pairs, each against only the b boxes
    that reach the chunk's bounding box, so memory stays bounded for any count."""
    ia, ib = [], []
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    by_x = np.argsort(a[:, 0], kind="stable")  # neighbours in a chunk: fewer b boxes reach it
    step = max(1, _MATCH_CELLS // len(b))
    for first in range(0, len(a), step):
        rows = by_x[first:first + step]
        x0, y0 = a[rows, 0].min(), a[rows, 1].min()
        x1, y1 = a[rows, 2].max(), a[rows, 3].max()
        cols = np.flatnonzero((b[:, 2] > x0) & (b[:, 0] < x1) & (b[:, 3] > y0) & (b[:, 1] < y1))
        common = np.concatenate([np.maximum(a_seen[rows, None, :2], b_seen[None, cols, :2]),
                                 np.minimum(a_seen[rows, None, 2:], b_seen[None, cols, 2:])], axis=2)
        pa = _clip_to(a[rows, None, :], common)
        pb = _clip_to(b[None, cols, :], common)
        inter = _area(np.concatenate([np.maximum(pa[..., :2], pb[..., :2]), np.minimum(pa[..., 2:], pb[..., 2:])], 2))
        union = _area(pa) + _area(pb) - inter
        hit = (inter > threshold * union) & (union > 0) & (a_cls[rows, None] == b_cls[None, cols])
        if other_tiles:
            hit &= (a_seen[rows, None, :] != b_seen[None, cols, :]).any(2)
        r, c = np.nonzero(hit)
        ia.append(rows[r])
        ib.append(cols[c])
    ia, ib = np.concatenate(ia), np.concatenate(ib)
    order = np.lexsort((ib, ia))
    return ia[order], ib[order]


def _clip_to(boxes: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Boxes (..., 4) xyxy cut to areas (..., 4) xyxy (broadcast); empty where they miss."""
    return np.concatenate([np.clip(boxes[..., :2], area[..., :2], area[..., 2:]),
                           np.clip(boxes[..., 2:], area[..., :2], area[..., 2:])], axis=-1)


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 2] - boxes[..., 0]).clip(0) * (boxes[..., 3] - boxes[..., 1]).clip(0)


def _merge_groups(boxes: np.ndarray, seen: np.ndarray, classes: np.ndarray, label: np.ndarray,
                  match: float) -> np.ndarray:
    """Groups of parts (boxes (n, 4) xyxy, best first; seen: their tiles' areas; label: each
    part's group as the index of its best part) -> the labels after merging groups that agree:
    greedy rounds, each group seen as the box around its parts from the area around its
    tiles, until a round merges nothing."""
    while True:
        leaders = np.unique(label)
        around, looked = _union_boxes(boxes, label)[leaders], _union_boxes(seen, label)[leaders]
        cls = classes[leaders]
        lead = _group_greedily(*_agreeing(around, looked, cls, around, looked, cls, match, other_tiles=True),
                               len(leaders))
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
