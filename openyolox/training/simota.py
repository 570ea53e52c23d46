"""SimOTA label assignment for a whole batch at once (docs/yolox.md section 4).

SimOTA decides which anchor points are positives for which ground-truth box. Each GT takes
its k cheapest anchors, where the cost says how badly the current prediction at an anchor fits
that GT (class cost + 3 * IoU cost) and k ("dynamic k") is the integer part of the sum of the
GT's 10 best IoUs, so well-fitted objects get more positives. Only anchors whose centre lies
strictly inside the 1.5-stride square around some GT centre ("candidates") take part; an
anchor claimed by several GTs keeps the one of least cost.

The reference YOLOX loops over images and GTs and builds a (G, N, C) tensor for the class
cost. Here the whole batch is one sequence of tensor operations on the padded labels:

- padding rows (all zeros) and images without GTs are masked, never looped over;
- the geometry prior is separable: an anchor is in a GT's square iff its column is inside in x
  and its row inside in y, so it is evaluated on the few distinct (stride, x) and (stride, y)
  values, and each GT's in-square anchors (at most 3 x 3 per level) are listed directly;
- candidate anchors are compacted per image into a (b, N) block; the only dense pairwise
  tensor is the (b, G, N) IoU, which dynamic k needs (a GT's best IoUs may come from any
  candidate);
- costs are needed only on the (b, G, S) in-square pairs (S <= 9 per level): an outside pair costs
  >= 1e6, more than any inside pair, so it can only be picked when a GT has fewer than k
  anchors in its square (a rare fallback, handled for those GTs alone), and a contested anchor
  always goes to one of the GTs whose square holds it;
- the class cost never builds a (G, N, C) tensor: BCE against a one-hot target summed over
  classes is sum_c -log(1 - p_c) (one value per anchor) plus, per pair, the correction
  -log(p_g) + log(1 - p_g) for the GT's own class g;
- dynamic k needs no loop over GTs: rank each GT's pairs by cost and keep ranks < k;
- the pairwise part runs on chunks of images so that (images x GTs x candidates) stays below
  `max_pairs` (a single chunk for a batch of 8 with 200 GTs each at 640x640).

Costs are float32 with torch's BCE clamping (log >= -100), so the choices agree with the
reference (checked against its golden outputs in tests/). Exact cost ties, which the reference
leaves to `torch.topk`, go to the lower anchor index (and, between GTs, to the lower GT row),
so the result does not depend on the device or on the other images in the batch.
"""
from __future__ import annotations

import torch

from openyolox.ops.boxes import box_iou_cxcywh

CENTER_RADIUS = 1.5  # half-size of the geometry-prior square, in strides
IOU_COST_WEIGHT = 3.0
OUTSIDE_COST = 1e6  # added for anchors outside this GT's square
MAX_TOPK_IOUS = 10  # dynamic k = int(sum of a GT's best MAX_TOPK_IOUS IoUs)
LOG_CLAMP = -100.0  # torch.nn.functional.binary_cross_entropy clamps log() here


@torch.no_grad()
def assign_simota(
    outputs: torch.Tensor,
    labels: torch.Tensor,
    grid_x: torch.Tensor,
    grid_y: torch.Tensor,
    strides: torch.Tensor,
    max_pairs: int = 1 << 23,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Assign GTs to anchors with SimOTA, for the whole batch.

    outputs: (B, A, 5+C) decoded boxes cxcywh in input pixels, obj logit, class logits
    labels:  (B, M, 5) rows (class, cx, cy, w, h) in input pixels; all-zero rows are padding
    grid_x, grid_y, strides: (A,) grid cell of each anchor and its stride
    max_pairs: the pairwise part runs on chunks of images holding at most this many
        (image, GT, candidate) triples (one image per chunk at least); bounds memory

    Returns fg_mask (B, A) bool, matched_gt (B, A) int64 row index into `labels` (-1 for
    background), matched_iou (B, A) float32 IoU of the prediction with its GT (0 background).
    """
    batch, num_anchors = outputs.shape[:2]
    device = outputs.device
    fg_mask = torch.zeros(batch, num_anchors, dtype=torch.bool, device=device)
    matched_gt = torch.full((batch, num_anchors), -1, dtype=torch.int64, device=device)
    matched_iou = torch.zeros(batch, num_anchors, dtype=torch.float32, device=device)

    gt_valid = (labels != 0).any(dim=-1)  # (B, M)
    if not gt_valid.any():
        return fg_mask, matched_gt, matched_iou
    num_rows = int(gt_valid.nonzero()[:, 1].max()) + 1  # drop trailing all-padding columns
    labels = labels[:, :num_rows].float()  # (B, G, 5)
    gt_valid = gt_valid[:, :num_rows]  # (B, G)

    # 1. Geometry prior: the anchors strictly inside each GT's 1.5-stride square.
    grid = _AnchorGrid(grid_x.float(), grid_y.float(), strides.float())
    sq_anchor = grid.anchors_in_squares(labels[:, :, 1:3])  # (B, G, S) ascending, A = padding
    sq_anchor.masked_fill_(~gt_valid[:, :, None], num_anchors)

    # 2. Candidates: anchors inside any GT's square of their image.
    is_cand = torch.zeros(batch, num_anchors + 1, dtype=torch.bool, device=device)
    is_cand = is_cand.scatter_(1, sq_anchor.flatten(1), True)[:, :num_anchors]  # (B, A)
    num_cand = is_cand.sum(dim=1)  # (B,)
    images = num_cand.nonzero()[:, 0]  # images with anything to assign
    if images.numel() == 0:
        return fg_mask, matched_gt, matched_iou

    # 3-7. Costs and matching on the candidates, a chunk of images at a time.
    images_per_chunk = max(1, max_pairs // (num_rows * int(num_cand.max())))
    for chunk in images.split(images_per_chunk):
        fg, gt, iou = _match(outputs, chunk, labels[chunk], gt_valid[chunk], sq_anchor[chunk], is_cand[chunk])
        fg_mask[chunk] = fg
        matched_gt[chunk] = gt
        matched_iou[chunk] = iou
    return fg_mask, matched_gt, matched_iou


def _match(outputs, images, labels, gt_valid, sq_anchor, is_cand):
    """SimOTA matching for b images of the batch.

    outputs (B, A, 5+C) the whole batch; images (b,) which of them; labels (b, G, 5);
    gt_valid (b, G); sq_anchor (b, G, S) anchors in each GT's square (A = padding);
    is_cand (b, A) -> fg (b, A) bool, matched_gt (b, A) int64, matched_iou (b, A) float32.
    """
    b, num_anchors = is_cand.shape
    num_gt = labels.shape[1]
    device = outputs.device

    # Compact each image's candidates, in anchor order, into slots (b, N); slots past an
    # image's own count are padding and point at non-candidate anchors.
    num_cand = is_cand.sum(dim=1)  # (b,)
    n = int(num_cand.max())
    cand_anchor = torch.argsort((~is_cand).to(torch.uint8), dim=1, stable=True)[:, :n]  # (b, N)
    cand_valid = torch.arange(n, device=device) < num_cand[:, None]  # (b, N)
    padding_slot = torch.full((b, 1), n, dtype=torch.int64, device=device)
    slot_of_anchor = torch.cat((is_cand.cumsum(dim=1) - 1, padding_slot), dim=1)  # (b, A+1)
    sq_slot = slot_of_anchor.gather(1, sq_anchor.flatten(1)).view_as(sq_anchor)  # (b, G, S), N = padding
    sq_valid = sq_slot < n  # (b, G, S)
    pred = outputs[images[:, None], cand_anchor].float()  # (b, N, 5+C)

    # 3. IoU of every GT with every candidate's predicted box, and dynamic k per GT:
    #    int(sum of its best 10 IoUs), at least 1.
    ious = box_iou_cxcywh(labels[:, :, 1:5], pred[:, :, :4])  # (b, G, N)
    ious.masked_fill_(~cand_valid[:, None, :], 0.0)  # padding GT rows are masked below
    dynamic_k = ious.topk(min(MAX_TOPK_IOUS, n), dim=2).values.sum(dim=2).int().clamp(min=1)  # (b, G)

    # 4. Cost of the in-square pairs: class cost + 3 * -log(IoU + 1e-8).
    cost_of = _PairCost(pred, labels[:, :, 0].long(), ious)
    img = torch.arange(b, device=device).repeat_interleave(num_gt)  # (b*G,)
    gt = torch.arange(num_gt, device=device).repeat(b)  # (b*G,)
    safe_slot = sq_slot.clamp(max=n - 1).flatten(0, 1)  # (b*G, S) padding pairs read slot N-1 ...
    sq_cost = cost_of(img, gt, safe_slot).view_as(sq_slot).masked_fill(~sq_valid, float("inf"))  # ... get inf

    # 5. Each GT takes its k cheapest in-square anchors: rank by (cost, anchor index).
    order = sq_cost.sort(dim=2, stable=True).indices  # (b, G, S); sq_anchor is ascending
    rank = torch.empty_like(order).scatter_(2, order, torch.arange(order.shape[2], device=device).expand_as(order))
    take = sq_valid & (rank < dynamic_k[:, :, None])  # (b, G, S)
    claims = torch.zeros(b, n + 1, dtype=torch.int64, device=device)  # per slot, + a padding slot
    claims.scatter_add_(1, sq_slot.flatten(1), take.flatten(1).long())
    claimed_by = torch.full((b, n + 1), -1, dtype=torch.int64, device=device)
    gt_index = torch.arange(num_gt, device=device)[None, :, None].expand_as(sq_slot)  # (b, G, S)
    claimed_by.scatter_(1, sq_slot.masked_fill(~take, n).flatten(1), gt_index.flatten(1))

    #    Rare: a GT with fewer than k anchors in its square also takes the cheapest outside
    #    candidates (their cost carries the +1e6).
    missing = dynamic_k - sq_valid.sum(dim=2)  # (b, G)
    short = gt_valid & (missing > 0)
    if short.any():
        pick_img, pick_gt, pick_slot = _outside_picks(cost_of, short, missing, sq_slot, cand_valid)
        claims.index_put_((pick_img, pick_slot), torch.ones_like(pick_slot), accumulate=True)
        claimed_by[pick_img, pick_slot] = pick_gt

    # 6. Anchors claimed by several GTs go to the GT of least cost over all GTs; that is always
    #    a GT whose square holds the anchor (every outside pair costs more), lowest row on ties.
    claims, claimed_by = claims[:, :n], claimed_by[:, :n]  # (b, N)
    fg = claims > 0  # (b, N)
    contested = claims > 1
    if contested.any():
        flat_slot = sq_slot.flatten(1)  # (b, G*S)
        least = torch.full((b, n + 1), float("inf"), device=device)
        least.scatter_reduce_(1, flat_slot, sq_cost.flatten(1), reduce="amin")
        is_least = sq_valid.flatten(1) & (sq_cost.flatten(1) == least.gather(1, flat_slot))
        winner = torch.full((b, n + 1), num_gt, dtype=torch.int64, device=device)
        winner.scatter_reduce_(1, flat_slot.masked_fill(~is_least, n), gt_index.flatten(1), reduce="amin")
        claimed_by = torch.where(contested, winner[:, :n], claimed_by)
    matched_iou = ious.gather(1, claimed_by.clamp(min=0)[:, None, :])[:, 0] * fg  # (b, N)

    # 7. Back from slots to anchors (padding slots write background to non-candidates).
    fg_out = torch.zeros(b, num_anchors, dtype=torch.bool, device=device).scatter_(1, cand_anchor, fg)
    gt_out = torch.full((b, num_anchors), -1, dtype=torch.int64, device=device)
    gt_out.scatter_(1, cand_anchor, torch.where(fg, claimed_by, -1))
    iou_out = torch.zeros(b, num_anchors, device=device).scatter_(1, cand_anchor, matched_iou)
    return fg_out, gt_out, iou_out


class _AnchorGrid:
    """Anchor centres, split into distinct columns (stride, x) and rows (stride, y).

    anchor_at[col, row] is the anchor index there, or -1 (the column and row belong to
    different levels). Lets the geometry prior run on ~(W/8 + W/16 + W/32) columns instead of
    all anchors.
    """

    def __init__(self, grid_x: torch.Tensor, grid_y: torch.Tensor, strides: torch.Tensor):
        self.num_anchors = grid_x.numel()
        device = grid_x.device
        level_stride, level_of = torch.unique(strides, return_inverse=True)  # (L,), (A,)
        self.col_x, self.col_radius, col_of = _distinct((grid_x + 0.5) * strides, level_of, level_stride)
        self.row_y, self.row_radius, row_of = _distinct((grid_y + 0.5) * strides, level_of, level_stride)
        self.anchor_at = torch.full((self.col_x.numel(), self.row_y.numel()), -1, dtype=torch.int64, device=device)
        self.anchor_at[col_of, row_of] = torch.arange(self.num_anchors, device=device)
        if int((self.anchor_at >= 0).sum()) != self.num_anchors:
            raise ValueError("two anchors share the same centre and stride")

    def anchors_in_squares(self, centres: torch.Tensor) -> torch.Tensor:
        """centres: (b, G, 2) GT centres -> (b, G, S) ascending indices of the anchors whose
        centre lies strictly inside the GT's square (S <= 9 per level), padded with A."""
        # Same float operations as the reference (centre > cx - r, centre < cx + r) so that
        # anchors on a square's edge fall on the same side.
        cx, cy = centres[..., 0:1], centres[..., 1:2]  # (b, G, 1)
        in_col = (self.col_x > cx - self.col_radius) & (self.col_x < cx + self.col_radius)  # (b, G, X)
        in_row = (self.row_y > cy - self.row_radius) & (self.row_y < cy + self.row_radius)  # (b, G, Y)
        cols, col_ok = _true_indices(in_col)  # (b, G, Sx)
        rows, row_ok = _true_indices(in_row)  # (b, G, Sy)
        anchors = self.anchor_at[cols[..., :, None], rows[..., None, :]]  # (b, G, Sx, Sy)
        ok = col_ok[..., :, None] & row_ok[..., None, :] & (anchors >= 0)
        anchors = anchors.masked_fill(~ok, self.num_anchors).flatten(2).sort(dim=2).values
        return anchors[..., : max(int((anchors < self.num_anchors).sum(2).max()), 1)]


def _distinct(centre: torch.Tensor, level_of: torch.Tensor, level_stride: torch.Tensor):
    """Distinct (level, centre) pairs of one axis: their centre (U,), square radius (U,), and
    the pair of each anchor (A,)."""
    values, value_of = torch.unique(centre, return_inverse=True)
    keys, key_of = torch.unique(level_of * values.numel() + value_of, return_inverse=True)
    return values[keys % values.numel()], CENTER_RADIUS * level_stride[keys // values.numel()], key_of


def _true_indices(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mask: (..., X) bool -> indices of its True entries (..., K) and their validity, K = max count."""
    count = mask.sum(-1, keepdim=True)  # (..., 1)
    k = max(int(count.max()), 1)
    idx = mask.to(torch.uint8).sort(dim=-1, descending=True, stable=True).indices[..., :k]
    return idx, torch.arange(k, device=mask.device) < count


class _PairCost:
    """SimOTA cost of (GT, candidate) pairs: cls cost + 3 * -log(IoU + 1e-8).

    The class cost sum_c BCE(sqrt(sigmoid(cls_c) * sigmoid(obj)), one_hot(g)_c) is split into
    sum_c -log(1 - p_c), once per candidate, plus -log(p_g) + log(1 - p_g) per pair, with
    torch's BCE clamping of log() at -100, so no (G, N, C) tensor is ever built.
    """

    def __init__(self, pred: torch.Tensor, gt_class: torch.Tensor, ious: torch.Tensor):
        # pred (b, N, 5+C), gt_class (b, G), ious (b, G, N)
        self.scores = (pred[:, :, 5:].sigmoid() * pred[:, :, 4:5].sigmoid()).sqrt()  # (b, N, C)
        self.all_negative = _bce_negative(self.scores).sum(dim=2)  # (b, N)
        self.gt_class = gt_class
        self.ious = ious

    def __call__(self, img: torch.Tensor, gt: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """img, gt: (R,) image and GT row; slots: (R, S) candidate slots -> (R, S) costs."""
        img, gt = img[:, None], gt[:, None]  # (R, 1)
        p_own = self.scores[img, slots, self.gt_class[img, gt]]  # (R, S) score of the GT's class
        cls_cost = self.all_negative[img, slots] + (_bce_positive(p_own) - _bce_negative(p_own))
        return cls_cost + IOU_COST_WEIGHT * -torch.log(self.ious[img, gt, slots] + 1e-8)


def _bce_negative(p: torch.Tensor) -> torch.Tensor:
    return -torch.log1p(-p).clamp(min=LOG_CLAMP)


def _bce_positive(p: torch.Tensor) -> torch.Tensor:
    return -torch.log(p).clamp(min=LOG_CLAMP)


def _outside_picks(cost_of: _PairCost, short, missing, sq_slot, cand_valid):
    """For GTs with fewer in-square anchors than k: their `missing` cheapest candidates outside
    the square (cost + 1e6, ties to the lower anchor). Returns (image, GT row, slot), each (P,)."""
    img, gt = short.nonzero(as_tuple=True)  # (R,) each
    n = cand_valid.shape[1]
    all_slots = torch.arange(n, device=img.device).expand(img.numel(), n)  # (R, N)
    cost = cost_of(img, gt, all_slots) + OUTSIDE_COST  # (R, N)
    inside = torch.zeros(img.numel(), n + 1, dtype=torch.bool, device=img.device)
    inside.scatter_(1, sq_slot[img, gt], True)
    cost = cost.masked_fill(inside[:, :n] | ~cand_valid[img], float("inf"))
    order = cost.sort(dim=1, stable=True)
    pick = (torch.arange(n, device=img.device) < missing[img, gt][:, None]) & order.values.isfinite()
    r, j = pick.nonzero(as_tuple=True)
    return img[r], gt[r], order.indices[r, j]
