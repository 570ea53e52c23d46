"""Multi-object tracking metrics (MOTA, IDF1, HOTA, ...) computed by TrackEval.

TrackEval (Luiten et al., MIT licence) is the code behind the MOTChallenge and KITTI
leaderboards; we call its CLEAR, Identity and HOTA metric classes on data laid out the way its
MOTChallenge loader lays it out, so the numbers are the benchmark's numbers, not ours:

  - per frame: ground-truth ids, predicted ids, and their IoU matrix (TrackEval's own box IoU
    on x, y, w, h boxes);
  - ids relabelled to 0..n-1 per side; ground-truth rows whose "consider" flag (column 7) is
    0 are dropped, as MOTChallenge does.

What we do not do: MOTChallenge's MOT17/MOT20 preprocessing also removes predicted boxes that
match distractor classes (static people, reflections, ...). For leaderboard numbers on those
datasets use TrackEval's own ``run_mot_challenge.py``; here every class counts (class-agnostic).

Install: ``pip install "openyolox[track]"`` (trackeval, scipy).
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from openyolox.errors import ConfigError, DataError
from openyolox.typing import PathLike
from openyolox.tracking.mot_io import check_unique_ids, read_mot

MotInput = Union[PathLike, np.ndarray]

# The figures reported, in print order; percentages are fractions in [0, 1] in the dict.
SUMMARY_KEYS = ("MOTA", "IDF1", "HOTA", "IDSW", "FP", "FN", "MOTP", "DetA", "AssA", "precision",
                "recall", "IDP", "IDR", "MT", "PT", "ML", "Frag", "gt_boxes", "pred_boxes",
                "gt_tracks", "pred_tracks", "frames")


def _trackeval():
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints notes about optional datasets
            import trackeval
    except ImportError as exc:
        raise ConfigError(f"tracking metrics need TrackEval ({exc}): pip install 'openyolox[track]'") from None
    return trackeval


def _rows(source: MotInput, what: str) -> np.ndarray:
    """A MOT file path or (K, >=6) array -> (K, >=6) float64 rows; checks ids are unique per frame."""
    if isinstance(source, (str, Path)):
        rows, name = read_mot(source), str(source)
    else:
        rows, name = np.asarray(source, dtype=np.float64), what
        if rows.size == 0:
            rows = rows.reshape(0, 10)
        if rows.ndim != 2 or rows.shape[1] < 6:
            raise DataError(f"{what}: MOT rows must be (K, >=6) frame,id,x,y,w,h,..., got shape {rows.shape}")
        if rows.shape[0] and (rows[:, 0] < 1).any():
            raise DataError(f"{what}: frames are 1-based; found frame {rows[:, 0].min():g}")
    check_unique_ids(rows, name)
    return rows


def sequence_data(gt: MotInput, pred: MotInput, num_frames: Optional[int] = None) -> dict:
    """Ground truth and predictions of one sequence -> the dict TrackEval's metrics consume.

    gt, pred: MOTChallenge files or (K, >=6) rows frame, id, x, y, w, h[, score/flag, ...].
    num_frames: sequence length (default: the last frame either side mentions)."""
    te = _trackeval()
    gt = _rows(gt, "ground truth")
    pred = _rows(pred, "predictions")
    if gt.shape[1] >= 7:
        gt = gt[gt[:, 6] != 0]  # MOTChallenge "consider" flag
    last = int(max(gt[:, 0].max(initial=0), pred[:, 0].max(initial=0)))
    num_frames = last if num_frames is None else int(num_frames)
    if num_frames < last:
        raise DataError(f"num_frames={num_frames} but boxes go up to frame {last}")

    gt_uid, gt_idx = np.unique(gt[:, 1].astype(np.int64), return_inverse=True)
    pr_uid, pr_idx = np.unique(pred[:, 1].astype(np.int64), return_inverse=True)
    gt_frame, pr_frame = gt[:, 0].astype(np.int64), pred[:, 0].astype(np.int64)
    iou = te.datasets._base_dataset._BaseDataset._calculate_box_ious
    data = {"gt_ids": [], "tracker_ids": [], "similarity_scores": [], "num_timesteps": num_frames,
            "num_gt_ids": len(gt_uid), "num_tracker_ids": len(pr_uid),
            "num_gt_dets": len(gt), "num_tracker_dets": len(pred)}
    for t in range(1, num_frames + 1):
        g, p = gt_frame == t, pr_frame == t
        data["gt_ids"].append(gt_idx[g])
        data["tracker_ids"].append(pr_idx[p])
        data["similarity_scores"].append(iou(gt[g, 2:6].copy(), pred[p, 2:6].copy(), box_format="xywh"))
    return data


def evaluate_mot(gt: Union[MotInput, Sequence[MotInput]], pred: Union[MotInput, Sequence[MotInput]],
                 iou_threshold: float = 0.5) -> Dict[str, float]:
    """MOTA, IDF1, HOTA, ID switches, FP, FN and more, by TrackEval.

    gt, pred: one sequence (a MOTChallenge file path or (K, >=6) rows), or equal-length lists
    of them, which are scored together as MOTChallenge combines sequences. iou_threshold is
    the IoU a predicted box needs to count as a match for CLEAR (MOTA) and Identity (IDF1);
    HOTA averages over thresholds 0.05..0.95 by definition.

    Returns floats/ints: MOTA, IDF1, HOTA, MOTP, DetA, AssA, precision, recall, IDP, IDR as
    fractions; IDSW, FP, FN, MT, PT, ML, Frag, gt_boxes, pred_boxes, gt_tracks, pred_tracks,
    frames as counts."""
    te = _trackeval()
    many = isinstance(gt, (list, tuple))
    gts, preds = (list(gt), list(pred)) if many else ([gt], [pred])
    if len(gts) != len(preds) or not gts:
        raise ValueError(f"need as many prediction files as ground-truth files, got {len(gts)} and {len(preds)}")
    config = {"THRESHOLD": float(iou_threshold), "PRINT_CONFIG": False}
    metrics = [te.metrics.CLEAR(dict(config)), te.metrics.Identity(dict(config)), te.metrics.HOTA()]
    per_seq: List[List[dict]] = [[] for _ in metrics]
    counts = {"gt_tracks": 0, "pred_tracks": 0, "frames": 0}
    for g, p in zip(gts, preds):
        data = sequence_data(g, p)
        for k, m in enumerate(metrics):
            per_seq[k].append(m.eval_sequence(data))
        counts["gt_tracks"] += data["num_gt_ids"]
        counts["pred_tracks"] += data["num_tracker_ids"]
        counts["frames"] += data["num_timesteps"]
    clear, ident, hota = (m.combine_sequences(dict(enumerate(r))) if len(r) > 1 else r[0]
                          for m, r in zip(metrics, per_seq))
    tp, fn, fp = int(clear["CLR_TP"]), int(clear["CLR_FN"]), int(clear["CLR_FP"])
    return {
        "MOTA": float(clear["MOTA"]), "IDF1": float(ident["IDF1"]), "HOTA": float(np.mean(hota["HOTA"])),
        "IDSW": int(clear["IDSW"]), "FP": fp, "FN": fn, "MOTP": float(clear["MOTP"]),
        "DetA": float(np.mean(hota["DetA"])), "AssA": float(np.mean(hota["AssA"])),
        "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
        "IDP": float(ident["IDP"]), "IDR": float(ident["IDR"]),
        "MT": int(clear["MT"]), "PT": int(clear["PT"]), "ML": int(clear["ML"]), "Frag": int(clear["Frag"]),
        "gt_boxes": tp + fn, "pred_boxes": tp + fp, **counts,
    }


def format_mot_summary(metrics: Dict[str, float]) -> str:
    """Two lines: the headline figures, then the detail."""
    m = metrics
    head = (f"MOTA {100 * m['MOTA']:.1f}   IDF1 {100 * m['IDF1']:.1f}   HOTA {100 * m['HOTA']:.1f}   "
            f"IDSW {m['IDSW']}   FP {m['FP']}   FN {m['FN']}")
    detail = (f"MOTP {100 * m['MOTP']:.1f}  DetA {100 * m['DetA']:.1f}  AssA {100 * m['AssA']:.1f}  "
              f"precision {100 * m['precision']:.1f}  recall {100 * m['recall']:.1f}  "
              f"IDP {100 * m['IDP']:.1f}  IDR {100 * m['IDR']:.1f}  MT {m['MT']}  PT {m['PT']}  ML {m['ML']}  "
              f"Frag {m['Frag']}  ({m['frames']} frames, {m['gt_boxes']} GT boxes in {m['gt_tracks']} tracks, "
              f"{m['pred_boxes']} predicted in {m['pred_tracks']})")
    return head + "\n" + detail
