"""Exact greedy non-maximum suppression in plain torch (no torchvision, no C++ kernel).

Semantics are those of `torchvision.ops.nms` / `batched_nms`, which the reference YOLOX calls:
visit boxes by decreasing score (stable sort, so equal scores keep index order); a box is dropped
when its IoU with an already-kept box is > `iou_threshold`; the result is the kept indices in
visiting order. IoU is computed with the arithmetic of `ops.boxes.box_iou`, in the boxes' dtype,
so even pairs exactly at the threshold are decided as the reference decides them. (Under that
formula a box with a non-finite coordinate has IoU 0 or NaN with every box: it never suppresses
and is never suppressed.)

Why not a loop over boxes or a dense IoU matrix: at the evaluation threshold an image has
thousands of candidates; an N x N matrix costs tens of ms on a laptop CPU, a Python loop of
tensor ops as much. Instead, work only where boxes can overlap:

- Candidate pairs. IoU(a, b) > t needs the same group (class) and an x-overlap wider than
  t times either box's width (IoU <= overlap_w / w_a). With boxes sorted by (group, x1), the
  partners of a box form one contiguous run, found with one `searchsorted`; the bound is loosened
  by a few ulps of the dtype so no pair the exact formula puts above t is skipped. Only those
  pairs get an IoU, in bounded chunks; the pairs above t become edges "higher-ranked box
  suppresses lower-ranked box".
- Greedy on the edge graph, in rounds: an undecided box with no edge from an undecided box is
  kept (the top undecided box always is), its targets are suppressed, and edges touching decided
  boxes are dropped. Like Cluster-NMS (Zheng et al. 2020) this takes about as many rounds as the
  longest suppression chain, a handful in practice; after `_ROUNDS` a sequential pass finishes,
  so the result is always the exact greedy one.
- Dense clusters (many boxes around each object, so many pairs per box): first settle the top
  `_BLOCK` ranks with a small dense IoU matrix and drop every box they suppress, which removes
  the big clusters around the strongest boxes; then build the pair list for what is left.
  Repeating that step is also the fallback whenever an edge list would exceed `_MAX_EDGES`, so
  memory stays bounded for any input.

On CPU, gathers use `index_select` and boolean compaction goes through numpy: both several times
faster there than advanced indexing and `torch.nonzero`. CUDA tensors work too (indices come
back on the input's device).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch

from openyolox.ops.boxes import box_area

_PAIR_CHUNK = 1 << 15  # pair IoUs evaluated per step (small temporaries are much faster on CPU)
_PAIRS_PER_BOX = 16  # more candidate pairs per box than this: settle the top block first
_MAX_EDGES = 1 << 21  # an edge list never grows beyond this (memory); settle blocks instead
_BLOCK = 128  # ranks settled densely at a time
_BLOCK_CELLS = 1 << 17  # IoU entries per step when checking the rest against a settled block
_ROUNDS = 16  # vectorised greedy rounds before the sequential finish

Edges = Tuple[torch.Tensor, torch.Tensor]  # (src, dst) ranks, src < dst: src suppresses dst


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS. boxes: (N, 4) xyxy, scores: (N,) -> (K,) int64 kept indices, best first."""
    return _greedy_nms(boxes, scores, None, iou_threshold)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """Class-aware NMS: boxes of different classes never suppress each other.

    boxes: (N, 4) xyxy, scores: (N,), classes: (N,) any dtype, compared by value
    -> (K,) int64 indices kept, by decreasing score. Exactly per-class greedy NMS: IoU is taken
    on the original coordinates (no coordinate-offset trick, whose rounding can flip pairs that
    sit at the threshold).
    """
    if classes.shape != scores.shape:
        raise ValueError(f"classes must be (N,) like scores, got {tuple(classes.shape)}")
    groups = torch.unique(classes, return_inverse=True)[1] if classes.numel() else None
    return _greedy_nms(boxes, scores, groups, iou_threshold)


@torch.no_grad()
def _greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: Optional[torch.Tensor],
                iou_threshold: float) -> torch.Tensor:
    """boxes: (N, 4) xyxy, scores: (N,), groups: (N,) int64 ids or None -> kept indices."""
    if boxes.dim() != 2 or boxes.shape[1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms expects boxes (N, 4) and scores (N,), got {tuple(boxes.shape)} "
                         f"and {tuple(scores.shape)}")
    if not iou_threshold >= 0:
        raise ValueError(f"iou_threshold must be >= 0, got {iou_threshold}")
    n, device = boxes.shape[0], boxes.device
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=device)
    if not boxes.is_floating_point():
        boxes = boxes.float()
    iou_threshold = float(iou_threshold)
    order = torch.sort(scores, descending=True, stable=True)[1]  # rank -> index
    table = _box_table(boxes.index_select(0, order))  # from here on, everything by rank
    groups = groups.index_select(0, order) if groups is not None else None

    keep = torch.zeros(n, dtype=torch.bool, device=device)
    alive = torch.arange(n, device=device)  # undecided ranks, none suppressed by a kept box
    max_pairs = _PAIRS_PER_BOX * n
    while alive.numel():
        edges = None
        if alive.numel() > _BLOCK:
            edges = _suppression_edges(table.index_select(1, alive), _take(groups, alive),
                                       iou_threshold, max_pairs)
        if edges is not None:
            kept = alive.index_select(0, _nonzero(_resolve_greedy(alive.numel(), *edges)))
            alive = alive[:0]
        else:
            kept, alive = _settle_top_block(table, groups, alive, iou_threshold)
            max_pairs = None  # the big clusters are gone: take the pairs, however many
        keep.index_fill_(0, kept, True)
    return order.index_select(0, _nonzero(keep))


def _box_table(boxes: torch.Tensor) -> torch.Tensor:
    """boxes: (N, 4) xyxy -> (5, N) rows x1, y1, x2, y2, area (box_area): what IoU needs."""
    return torch.cat((boxes.T, box_area(boxes)[None]))


def _iou_above(a: torch.Tensor, b: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """IoU > threshold for box tables a, b of shapes (5, ...) broadcasting to (5, *S) -> (*S,) bool.

    box_iou's arithmetic (same operations in the same order, so bit-identical), reorganised
    for speed: areas come precomputed, intermediates are updated in place.
    """
    w = torch.minimum(a[2], b[2]).sub_(torch.maximum(a[0], b[0])).clamp_(min=0)
    h = torch.minimum(a[3], b[3]).sub_(torch.maximum(a[1], b[1])).clamp_(min=0)
    inter = w.mul_(h)
    union = (a[4] + b[4]).sub_(inter)
    return inter.div_(union) > iou_threshold


def _suppression_edges(table: torch.Tensor, groups: Optional[torch.Tensor], iou_threshold: float,
                       max_pairs: Optional[int]) -> Optional[Edges]:
    """All pairs of one group with IoU > threshold, as edges between ranks (positions in table).

    table: (5, N) box table in rank order; groups: (N,) int64 or None. Returns None when there
    are more than max_pairs candidate pairs (None: no limit) or more than `_MAX_EDGES` edges.
    """
    n, device = table.shape[1], table.device
    finite = torch.isfinite(table[:4]).all(0)
    if not bool(finite.all()):  # non-finite boxes have no edges: work on the others
        sub = _nonzero(finite)
        edges = _suppression_edges(table.index_select(1, sub), _take(groups, sub),
                                   iou_threshold, max_pairs)
        if edges is None:
            return None
        return sub.index_select(0, edges[0]), sub.index_select(0, edges[1])
    if n < 2:
        empty = torch.empty(0, dtype=torch.long, device=device)
        return empty, empty

    # A box starting at or after box b (x1 >= x1_b) can pair with b only if it starts before
    # x2_b - t * w_b. Compare in float64, bound loosened by a few ulps of the boxes' dtype.
    x1, x2 = table[0].double(), table[2].double()
    slack = max(0.0, 1.0 - 64 * torch.finfo(table.dtype).eps)
    reach = x2 - (iou_threshold * slack) * (x2 - x1)
    # Exact lexicographic (group, x) keys: integer ranks of all x values, offset by group.
    xrank = torch.unique(torch.cat((x1, reach)), return_inverse=True)[1]
    offset = groups * (2 * n) if groups is not None else 0
    start_key, by_x = torch.sort(xrank[:n] + offset, stable=True)  # by_x: x position -> rank
    stop = torch.searchsorted(start_key, (xrank[n:] + offset).index_select(0, by_x), right=True)
    count = (stop - torch.arange(1, n + 1, device=device)).clamp_(min=0)  # partners after each
    ends = torch.cumsum(count, 0)
    total = int(ends[-1])
    if max_pairs is not None and total > max_pairs:
        return None

    table_x = table.index_select(1, by_x)  # in x order
    src: List[torch.Tensor] = []
    dst: List[torch.Tensor] = []
    edges = 0
    for first, last in _chunks(ends, total):
        cnt = count[first:last]
        before = torch.cumsum(cnt, 0) - cnt  # pairs of earlier positions in this chunk
        left = torch.repeat_interleave(cnt)  # pair -> its position - first
        # pair k of position p goes with position p + 1 + (k - before[p])
        shift = torch.arange(first + 1, last + 1, device=device) - before
        right = torch.arange(left.shape[0], device=device) + shift.index_select(0, left)
        hit = _nonzero(_iou_above(table_x[:, first:last].index_select(1, left),
                                  table_x.index_select(1, right), iou_threshold))
        edges += hit.numel()
        if edges > _MAX_EDGES:
            return None
        a = by_x.index_select(0, left.index_select(0, hit) + first)
        b = by_x.index_select(0, right.index_select(0, hit))
        src.append(torch.minimum(a, b))
        dst.append(torch.maximum(a, b))
    if not src:
        empty = torch.empty(0, dtype=torch.long, device=device)
        return empty, empty
    return torch.cat(src), torch.cat(dst)


def _chunks(ends: torch.Tensor, total: int) -> List[Tuple[int, int]]:
    """Split positions into runs of about `_PAIR_CHUNK` pairs. ends: (N,) cumulative pair counts."""
    if total == 0:
        return []
    if total <= _PAIR_CHUNK:
        return [(0, ends.shape[0])]
    targets = torch.arange(_PAIR_CHUNK, total, _PAIR_CHUNK, device=ends.device)
    cuts = torch.searchsorted(ends, targets, right=True).tolist()
    bounds = sorted({0, ends.shape[0], *cuts})
    return list(zip(bounds[:-1], bounds[1:]))


def _resolve_greedy(n: int, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """(n,) bool greedy keep mask over ranks 0..n-1, given edges src -> dst (src < dst)."""
    keep = torch.zeros(n, dtype=torch.bool, device=src.device)
    undecided = torch.ones_like(keep)
    for _ in range(_ROUNDS):
        if src.numel() == 0:
            return keep | undecided  # nothing left can suppress them
        # No edge from an undecided box: every box above is decided and no kept one reaches
        # it (those edges made their targets dead, and edges from dead boxes are dropped).
        roots = undecided.clone().index_fill_(0, dst, False)
        dead = torch.zeros_like(keep).index_fill_(
            0, dst.index_select(0, _nonzero(roots.index_select(0, src))), True)
        keep |= roots
        undecided &= ~(roots | dead)
        live = _nonzero(undecided.index_select(0, src) & undecided.index_select(0, dst))
        src, dst = src.index_select(0, live), dst.index_select(0, live)
    return _finish_sequentially(keep, undecided, src, dst)


def _finish_sequentially(keep: torch.Tensor, undecided: torch.Tensor, src: torch.Tensor,
                         dst: torch.Tensor) -> torch.Tensor:
    """Plain greedy over the undecided ranks; the remaining edges all join undecided ranks."""
    device, n = keep.device, keep.shape[0]
    keep = keep.cpu().numpy().copy()
    src, dst = src.cpu().numpy(), dst.cpu().numpy()
    by_src = np.argsort(src, kind="stable")
    src, dst = src[by_src], dst[by_src]
    start = np.searchsorted(src, np.arange(n + 1))
    suppressed = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(undecided.cpu().numpy()).tolist():
        if not suppressed[i]:
            keep[i] = True
            suppressed[dst[start[i]:start[i + 1]]] = True
    return torch.from_numpy(keep).to(device)


def _settle_top_block(table: torch.Tensor, groups: Optional[torch.Tensor], alive: torch.Tensor,
                      iou_threshold: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Decide the top `_BLOCK` undecided ranks exactly, and drop the other ranks they suppress.

    table: (5, N) box table in rank order; groups: (N,) or None; alive: (M,) undecided ranks,
    increasing, none suppressed by a kept box. Every rank above alive[0] is decided, so greedy
    NMS within the top block is exact. Returns (kept ranks of the block, ranks still undecided).
    """
    head, rest = alive[:_BLOCK], alive[_BLOCK:]
    size = head.numel()
    ht, hg = table.index_select(1, head), _take(groups, head)
    over = _iou_above(ht[:, :, None], ht[:, None, :], iou_threshold)  # [higher, lower] once triu
    if hg is not None:
        over &= hg[:, None] == hg[None, :]
    pairs = _nonzero(torch.triu(over, diagonal=1).flatten())
    kept = head.index_select(0, _nonzero(_resolve_greedy(size, pairs // size, pairs % size)))
    if rest.numel() == 0 or kept.numel() == 0:
        return kept, rest
    kt, kg = table.index_select(1, kept)[:, None, :], _take(groups, kept)
    survivors = []
    for part in rest.split(max(1, _BLOCK_CELLS // kept.numel())):
        hit = _iou_above(table.index_select(1, part)[:, :, None], kt, iou_threshold)
        if kg is not None:
            hit &= groups.index_select(0, part)[:, None] == kg[None, :]
        survivors.append(part.index_select(0, _nonzero(~hit.any(1))))
    return kept, torch.cat(survivors)


def _take(values: Optional[torch.Tensor], index: torch.Tensor) -> Optional[torch.Tensor]:
    """values[index] for an optional (N,) tensor."""
    return values.index_select(0, index) if values is not None else None


def _nonzero(mask: torch.Tensor) -> torch.Tensor:
    """(M,) bool -> int64 indices of the True entries, on the mask's device."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask).squeeze(1)
