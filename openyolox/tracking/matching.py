"""Association costs and a thresholded linear assignment, in numpy/scipy.

ByteTrack matches tracks to detections by minimising the total cost 1 - IoU, where a pair may
only be matched if its cost is at most a threshold. The official code hands that to
``lap.lapjv(cost, extend_cost=True, cost_limit=thresh)``, which is the assignment on the
matrix extended with one "stay unmatched" slot per row and column costing thresh / 2 each. So a
pair (i, j) is taken only when c_ij beats leaving both unmatched (thresh), and the solver may
prefer two unmatched items to a poor pair that would free a better one. We solve that same
problem with scipy's ``linear_sum_assignment``.

The extended matrix is (N + M) x (M + N), and the dense solve costs ~100 ms at 500 tracks. But
a track can only be matched to detections that overlap it, so the problem splits into connected
components of the "allowed pair" graph, nearly all of them one track with one or two
detections. We take the cheapest edge of every such star at once and run the extended solve
only on the rest: the same answer, in about a millisecond.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

_EMPTY_PAIRS = np.zeros((0, 2), dtype=np.int64)
SMALL_PROBLEM = 24  # rows + columns up to which one extended solve beats finding components


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU. a: (N, 4) xyxy, b: (M, 4) xyxy -> (N, M) float64 in [0, 1].

    Boxes with no area have IoU 0 with everything (no division by zero, no NaN). Written
    with in-place steps: at 500 x 500 the temporaries, not the arithmetic, cost the time."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    inter = np.minimum(a[:, None, 2], b[None, :, 2])
    inter -= np.maximum(a[:, None, 0], b[None, :, 0])
    np.maximum(inter, 0, out=inter)
    ih = np.minimum(a[:, None, 3], b[None, :, 3])
    ih -= np.maximum(a[:, None, 1], b[None, :, 1])
    np.maximum(ih, 0, out=ih)
    inter *= ih
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    union = ih  # reuse the buffer
    np.add(area_a[:, None], area_b[None, :], out=union)
    union -= inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def association_cost(track_boxes: np.ndarray, det_boxes: np.ndarray, det_scores: Optional[np.ndarray] = None,
                     track_classes: Optional[np.ndarray] = None, det_classes: Optional[np.ndarray] = None
                     ) -> np.ndarray:
    """ByteTrack's cost of pairing tracks with detections -> (T, D).

    track_boxes: (T, 4) xyxy, det_boxes: (D, 4) xyxy. The cost is 1 - IoU; with det_scores (D,)
    it is 1 - IoU * score ("score fusion": a confident detection wins a contested track over
    an unsure one at the same overlap, and a score-s detection needs IoU >= (1 - thresh) / s
    to be matched at all). With classes (T,), (D,) a pair of different classes costs inf.
    Computed in place on the IoU matrix: at 500 x 500 every extra (T, D) array shows."""
    cost = box_iou(track_boxes, det_boxes)
    if det_scores is not None:
        cost *= np.asarray(det_scores, dtype=np.float64)[None, :]
    np.subtract(1.0, cost, out=cost)
    if track_classes is not None and det_classes is not None:
        cost[np.asarray(track_classes)[:, None] != np.asarray(det_classes)[None, :]] = np.inf
    return cost


def linear_assignment(cost: np.ndarray, thresh: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost matching where a pair costs cost[i, j] and an unmatched row or column thresh / 2.

    cost: (N, M), inf or NaN meaning "never". Returns matches (K, 2) of (row, column) sorted by
    row, unmatched rows (N - K,) and unmatched columns (M - K,), all int64 ascending."""
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    allowed = cost <= thresh  # NaN and inf compare False
    rows, cols = np.nonzero(allowed)
    if rows.size == 0:
        return _EMPTY_PAIRS, np.arange(n, dtype=np.int64), np.arange(m, dtype=np.int64)
    if n + m <= SMALL_PROBLEM:
        return _finish(_solve_extended(cost, thresh, np.arange(n), np.arange(m)), n, m)

    # Components of the bipartite graph: nodes 0..n-1 are rows, n..n+m-1 columns.
    graph = coo_matrix((np.ones(rows.size), (rows, cols + n)), shape=(n + m, n + m))
    _, label = connected_components(graph, directed=False)
    row_label, col_label = label[:n], label[n:]

    # A component with one row (or one column) is a star: any allowed pair (c <= thresh) beats
    # leaving its centre unmatched, so the optimum is its cheapest edge. That covers nearly
    # every component in practice (one track, one or two detections), all at once.
    lab = row_label[rows]
    rows_in = np.bincount(row_label[np.unique(rows)], minlength=label.max() + 1)
    cols_in = np.bincount(col_label[np.unique(cols)], minlength=label.max() + 1)
    star = (rows_in[lab] == 1) | (cols_in[lab] == 1)
    order = np.lexsort((cost[rows, cols], lab))           # by component, then cost
    first = order[np.r_[True, lab[order][1:] != lab[order][:-1]]]
    first = first[star[first]]
    pairs = [np.stack((rows[first], cols[first]), axis=1)]

    # Everything else: one extended solve per component (they are small; a component's
    # rows and columns meet nowhere else, so solving them apart gives the global optimum).
    for component in np.unique(lab[~star]):
        r = np.flatnonzero(row_label == component)
        c = np.flatnonzero(col_label == component)
        pairs.append(_solve_extended(cost[np.ix_(r, c)], thresh, r, c))

    return _finish(np.concatenate(pairs), n, m)


def _finish(pairs: np.ndarray, n: int, m: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K, 2) pairs -> (pairs sorted by row, unmatched rows, unmatched columns), int64."""
    matches = pairs.astype(np.int64).reshape(-1, 2)
    matches = matches[np.argsort(matches[:, 0], kind="stable")]
    unmatched_rows = np.setdiff1d(np.arange(n), matches[:, 0]).astype(np.int64)
    unmatched_cols = np.setdiff1d(np.arange(m), matches[:, 1]).astype(np.int64)
    return matches, unmatched_rows, unmatched_cols


def _solve_extended(sub: np.ndarray, thresh: float, row_ids: np.ndarray, col_ids: np.ndarray) -> np.ndarray:
    """The assignment on [[C, U_r], [U_c, 0]] with every slot U at thresh / 2; returns (K, 2) ids."""
    n, m = sub.shape
    big = np.inf
    ext = np.full((n + m, m + n), big)
    ext[:n, :m] = np.where(sub <= thresh, sub, big)
    ext[np.arange(n), m + np.arange(n)] = thresh / 2   # row i left unmatched
    ext[n + np.arange(m), np.arange(m)] = thresh / 2   # column j left unmatched
    ext[n:, m:] = 0.0                                  # the two kinds of slot pair up for free
    r, c = linear_sum_assignment(ext)
    real = (r < n) & (c < m)
    return np.stack((row_ids[r[real]], col_ids[c[real]]), axis=1)
