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
components of the "allowed pair" graph, nearly all of them one track and one detection. We
match those singletons directly and run the extended solve per remaining component: the same
answer, in about a millisecond.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

_EMPTY_PAIRS = np.zeros((0, 2), dtype=np.int64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU. a: (N, 4) xyxy, b: (M, 4) xyxy -> (N, M) in [0, 1].

    Boxes with no area have IoU 0 with everything (no division by zero, no NaN)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_cost(track_boxes: np.ndarray, det_boxes: np.ndarray) -> np.ndarray:
    """track_boxes: (T, 4) xyxy, det_boxes: (D, 4) xyxy -> (T, D) cost 1 - IoU."""
    return 1.0 - box_iou(track_boxes, det_boxes)


def fuse_score(cost: np.ndarray, det_scores: np.ndarray) -> np.ndarray:
    """cost: (T, D) 1 - IoU, det_scores: (D,) -> (T, D) cost 1 - IoU * score.

    A confident detection wins a contested track over an unsure one at the same overlap; the
    price is that a score-s detection needs IoU >= (1 - thresh) / s to be matched at all."""
    return 1.0 - (1.0 - cost) * np.asarray(det_scores, dtype=np.float64)[None, :]


def gate_classes(cost: np.ndarray, track_classes: np.ndarray, det_classes: np.ndarray) -> np.ndarray:
    """Forbid (cost = inf) every pair whose classes differ. cost: (T, D), classes: (T,), (D,)."""
    return np.where(np.asarray(track_classes)[:, None] == np.asarray(det_classes)[None, :], cost, np.inf)


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

    # Components of the bipartite graph: nodes 0..n-1 are rows, n..n+m-1 columns.
    graph = coo_matrix((np.ones(rows.size), (rows, cols + n)), shape=(n + m, n + m))
    _, label = connected_components(graph, directed=False)
    row_label, col_label = label[:n], label[n:]

    # A row with one allowed column that has no other allowed row is a component of its own:
    # matching it is optimal (c <= thresh, never worse than two unmatched slots).
    row_deg = allowed.sum(1)
    col_deg = allowed.sum(0)
    single = (row_deg[rows] == 1) & (col_deg[cols] == 1)
    pairs = [np.stack((rows[single], cols[single]), axis=1)]

    # Everything else: one extended solve per component (they are small; a component's
    # rows and columns meet nowhere else, so solving them apart gives the global optimum).
    hard_labels = np.unique(row_label[rows[~single]])
    for lab in hard_labels:
        r = np.flatnonzero(row_label == lab)
        c = np.flatnonzero(col_label == lab)
        pairs.append(_solve_extended(cost[np.ix_(r, c)], thresh, r, c))

    matches = np.concatenate(pairs).astype(np.int64)
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
