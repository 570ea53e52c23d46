"""ByteTrack: multi-object tracking by associating every detection box, one frame at a time.

Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection Box" (ECCV 2022).
The idea: low-score detections are mostly real objects that are partly hidden or blurred, so
instead of dropping them, match them to the tracks that the confident detections left over.

Per frame (``ByteTracker.update``):
  0. split detections: high (score > track_thresh) and low (low_thresh < score <= track_thresh);
  1. predict every live track one frame ahead with the Kalman filter;
  2. confirmed tracks (tracked or lost) <-> high detections, cost 1 - IoU * score, <= match_thresh;
  3. tracks still unmatched (tracked or lost, as in the paper's Algorithm 1) <-> low detections,
     cost 1 - IoU, <= second_match_thresh; tracks left over now become lost;
  4. unconfirmed tracks (born in the previous frame) <-> high detections left over, cost
     1 - IoU * score, <= unconfirmed_match_thresh; an unconfirmed track left over is dropped;
  5. a high detection still unmatched with score >= new_track_thresh starts an unconfirmed track;
  6. a track lost for more than track_buffer * frame_rate / 30 frames is dropped, and a lost
     track that overlaps a tracked one with IoU > 0.85 is a duplicate: the younger one goes.
Only confirmed tracks updated in this frame are reported, with the box of the detection each
took (``report_boxes="kalman"``: the filtered box, as the official code reports).

Defaults follow the paper where it and the official code differ (measured on the synthetic
scenes, docs/tracking.md):
- the paper's Algorithm 1 keeps lost tracks in the track set for both associations; the
  official code lets only tracks seen in the previous frame take low-score boxes
  (``revive_with_low=False``). Objects coming back from an occlusion or the image border often
  score low at first: the paper's rule gains 2-4 MOTA and 4-6 IDF1 on the busy scene;
- the paper rejects every match with IoU < 0.2 (``second_match_thresh=0.8`` = 1 - 0.2); the
  official code asks IoU >= 0.5 of low-score matches (``second_match_thresh=0.5``);
- reported boxes are the detector's (a detector box is the measurement; the filtered box lags
  behind objects cut by the image border): +0.8 to +2.9 MOTA on the busy scene.

Differences from the official code beyond those:
- ``per_class=True`` (the default) only pairs detections and tracks of the same class. The
  paper tracks one class (pedestrians); for a multi-class detector, class gating stops a track
  from jumping onto an overlapping object of another class. ``per_class=False`` is the
  published behaviour, and the track then takes the class of its latest detection;
- small ones: track ids are given when a track is confirmed, so reported ids run 1, 2, 3, ...
  without the gaps left by one-frame false positives, and each tracker counts its own (the
  official counter is shared by every tracker in the process); unconfirmed tracks are
  Kalman-predicted like the others (the official code skips them; their velocity is zero, so
  only the covariance of their second update differs); IoU is computed on continuous
  pixel-edge boxes (the official cython_bbox adds 1 pixel to widths and heights).

State lives in flat arrays (one row per live track), so a frame costs a handful of vectorised
numpy calls plus the assignments, whatever the number of tracks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from openyolox.tracking.kalman import KalmanBoxFilter, xyah_to_xyxy, xyxy_to_xyah
from openyolox.tracking.matching import association_cost, box_iou, linear_assignment

TRACKED, LOST = 0, 1


@dataclass(frozen=True)
class Tracks:
    """The confirmed tracks seen in one frame (all arrays share the first dimension M).

    boxes: (M, 4) xyxy pixels, the box of the detection the track took in this frame (or the
    Kalman-filtered box, with report_boxes="kalman");
    track_ids: (M,) int64 >= 1, the same object keeps its id across frames;
    scores: (M,) float32, score of the detection that updated the track in this frame;
    classes: (M,) int64;
    detection_indices: (M,) int64, row of that detection in the arrays given to ``update``
    (to carry anything else the detector gave, e.g. masks or class names);
    frame: 1-based number of the frame (the count of ``update`` calls since the last reset).
    Rows are sorted by track id."""

    boxes: np.ndarray
    track_ids: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    detection_indices: np.ndarray
    frame: int

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])


class ByteTracker:
    """ByteTrack on detections from any source: arrays in, tracks out, one frame per ``update``.

    Defaults are the paper's and the official repository's (MOT17 settings):
      track_thresh=0.5     detections scoring above it are "high" and take part in the first
                           association; the others, down to low_thresh, in the second;
      low_thresh=0.1       detections at or below it are ignored as background;
      new_track_thresh     score a leftover high detection needs to start a track (None:
                           track_thresh + 0.1, as the official code does);
      match_thresh=0.8     largest cost 1 - IoU*score of a first-stage match (IoU >= 0.2 at s=1);
      second_match_thresh=0.8   largest cost 1 - IoU of a low-detection match (IoU >= 0.2, the
                           paper's rule; the official code uses 0.5);
      unconfirmed_match_thresh=0.7  largest cost 1 - IoU*score to confirm a new track;
      track_buffer=30      frames a lost track is kept for re-identification, at 30 fps;
      frame_rate=30        the buffer scales with it: int(frame_rate / 30 * track_buffer) frames;
      fuse_score=True      weigh IoU by detection score in stages 1 and 4 (the official code
                           does this unless run with --mot20);
      per_class=True       only match a detection to a track of the same class (see module doc);
      revive_with_low=True lost tracks, too, take low-score detections in the second
                           association (the paper's Algorithm 1; False: the official code);
      duplicate_iou=0.85   a lost track overlapping a tracked one more than this is dropped;
      report_boxes="detection"  the box reported per track: the detection it took in this
                           frame, or "kalman" for the filtered state (the official output).
    """

    def __init__(self, track_thresh: float = 0.5, low_thresh: float = 0.1,
                 new_track_thresh: Optional[float] = None, match_thresh: float = 0.8,
                 second_match_thresh: float = 0.8, unconfirmed_match_thresh: float = 0.7,
                 track_buffer: int = 30, frame_rate: float = 30.0, fuse_score: bool = True,
                 per_class: bool = True, revive_with_low: bool = True, duplicate_iou: float = 0.85,
                 report_boxes: str = "detection"):
        if report_boxes not in ("detection", "kalman"):
            raise ValueError(f"report_boxes must be 'detection' or 'kalman', got {report_boxes!r}")
        if not 0 <= low_thresh <= track_thresh <= 1:
            raise ValueError(f"need 0 <= low_thresh ({low_thresh}) <= track_thresh ({track_thresh}) <= 1")
        for name, value in (("match_thresh", match_thresh), ("second_match_thresh", second_match_thresh),
                            ("unconfirmed_match_thresh", unconfirmed_match_thresh),
                            ("duplicate_iou", duplicate_iou)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if track_buffer < 0 or frame_rate <= 0:
            raise ValueError(f"need track_buffer >= 0 and frame_rate > 0, got {track_buffer} and {frame_rate}")
        self.track_thresh = float(track_thresh)
        self.low_thresh = float(low_thresh)
        self.new_track_thresh = float(track_thresh + 0.1 if new_track_thresh is None else new_track_thresh)
        self.match_thresh = float(match_thresh)
        self.second_match_thresh = float(second_match_thresh)
        self.unconfirmed_match_thresh = float(unconfirmed_match_thresh)
        self.max_time_lost = int(frame_rate / 30.0 * track_buffer)
        self.fuse_score = bool(fuse_score)
        self.per_class = bool(per_class)
        self.revive_with_low = bool(revive_with_low)
        self.report_boxes = report_boxes
        self.duplicate_iou = float(duplicate_iou)
        self.kalman = KalmanBoxFilter()
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart frame and id counting (call between videos)."""
        self.frame = 0
        self._next_id = 1
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 8, 8))
        self._id = np.zeros(0, np.int64)           # 0 until confirmed
        self._state = np.zeros(0, np.int8)         # TRACKED or LOST
        self._score = np.zeros(0, np.float32)
        self._class = np.zeros(0, np.int64)
        self._start = np.zeros(0, np.int64)        # frame the track was born
        self._last = np.zeros(0, np.int64)         # last frame it was matched
        self._det = np.zeros(0, np.int64)          # detection row that matched it then

    @property
    def num_tracks(self) -> int:
        """Live tracks (tracked, lost or unconfirmed)."""
        return int(self._id.shape[0])

    def update(self, boxes, scores, classes=None) -> Tracks:
        """Advance one frame. boxes: (N, 4) xyxy pixels, scores: (N,), classes: (N,) ints or None.

        Rows with a non-finite number or no area are ignored (they cannot be a Kalman
        measurement). Returns the confirmed tracks of this frame."""
        self.frame += 1
        boxes, scores, classes, valid = _check_detections(boxes, scores, classes)

        high = valid & (scores > self.track_thresh)
        low = valid & ~high & (scores > self.low_thresh)
        det_hi, det_lo = np.flatnonzero(high), np.flatnonzero(low)

        # 1. prediction. A lost track keeps drifting at its velocity (so it can be found where
        # the object reappears) but stops changing size: vh = 0, as in the official code.
        if self.num_tracks:
            self._mean[self._state == LOST, 7] = 0.0
            self._mean, self._cov = self.kalman.predict(self._mean, self._cov)
        track_boxes = xyah_to_xyxy(self._mean)
        confirmed = self._id > 0
        pool = np.flatnonzero(confirmed)
        unconfirmed = np.flatnonzero(~confirmed)

        # 2. confirmed tracks <-> high detections
        m1, rest_pool, rest_hi = self._associate(pool, det_hi, track_boxes, boxes, scores, classes,
                                                 self.match_thresh, self.fuse_score)
        # 3. tracks still unmatched <-> low detections; the official code leaves lost tracks out
        # (revive_with_low=False), the paper's Algorithm 1 keeps them in
        still_tracked = rest_pool if self.revive_with_low else rest_pool[self._state[rest_pool] == TRACKED]
        m2, unmatched_tracked, _ = self._associate(still_tracked, det_lo, track_boxes, boxes, scores,
                                                   classes, self.second_match_thresh, False)
        # 4. unconfirmed tracks <-> high detections left over
        left_hi = det_hi[rest_hi]
        m3, dead_unconfirmed, rest_new = self._associate(unconfirmed, left_hi, track_boxes, boxes, scores,
                                                         classes, self.unconfirmed_match_thresh, self.fuse_score)

        matched_tracks = np.concatenate((m1[0], m2[0], m3[0]))
        matched_dets = np.concatenate((m1[1], m2[1], m3[1]))
        self._apply_matches(matched_tracks, matched_dets, boxes, scores, classes)

        # 5. drop stale lost tracks (lost before this frame and unmatched for more than the
        # buffer) and unconfirmed tracks left over; tracks missed in this frame become lost;
        # then start new tracks
        stale = (self._state == LOST) & (self.frame - self._last > self.max_time_lost)
        self._state[unmatched_tracked] = LOST
        drop = np.zeros(self.num_tracks, bool)
        drop[dead_unconfirmed] = True
        self._keep(~(drop | stale))
        new = left_hi[rest_new]
        new = new[scores[new] >= self.new_track_thresh]
        self._start_tracks(new, boxes, scores, classes)

        # 6. a lost track sitting on a tracked one is the same object twice: keep the older
        self._remove_duplicates()
        return self._report(boxes)

    # ------------------------------------------------------------------ steps

    def _associate(self, tracks, dets, track_boxes, boxes, scores, classes, thresh, fuse):
        """Match track rows ``tracks`` (K,) to detection rows ``dets`` (D,).

        Returns ((matched track rows, matched detection rows), unmatched track rows,
        positions in ``dets`` left unmatched)."""
        track_cls, det_cls = (self._class[tracks], classes[dets]) if self.per_class else (None, None)
        cost = association_cost(track_boxes[tracks], boxes[dets], scores[dets] if fuse else None, track_cls, det_cls)
        pairs, rest_tracks, rest_dets = linear_assignment(cost, thresh)
        return (tracks[pairs[:, 0]], dets[pairs[:, 1]]), tracks[rest_tracks], rest_dets

    def _apply_matches(self, rows, dets, boxes, scores, classes) -> None:
        """Kalman-update the matched tracks in one batch and mark them tracked this frame."""
        if rows.size == 0:
            return
        mean, cov = self.kalman.update(self._mean[rows], self._cov[rows], xyxy_to_xyah(boxes[dets]))
        self._mean[rows], self._cov[rows] = mean, cov
        self._state[rows] = TRACKED
        self._score[rows] = scores[dets]
        self._last[rows] = self.frame
        self._det[rows] = dets
        if not self.per_class:
            self._class[rows] = classes[dets]
        # An unconfirmed track matched again is confirmed now and gets its id.
        newly = rows[self._id[rows] == 0]
        self._id[newly] = np.arange(self._next_id, self._next_id + newly.size)
        self._next_id += newly.size

    def _start_tracks(self, dets, boxes, scores, classes) -> None:
        if dets.size == 0:
            return
        mean, cov = self.kalman.initiate(xyxy_to_xyah(boxes[dets]))
        ids = np.zeros(dets.size, np.int64)
        if self.frame == 1:  # nothing to confuse them with yet: confirmed at once, as in the paper
            ids = np.arange(self._next_id, self._next_id + dets.size)
            self._next_id += dets.size
        self._mean = np.concatenate((self._mean, mean))
        self._cov = np.concatenate((self._cov, cov))
        self._id = np.concatenate((self._id, ids))
        self._state = np.concatenate((self._state, np.full(dets.size, TRACKED, np.int8)))
        self._score = np.concatenate((self._score, scores[dets]))
        self._class = np.concatenate((self._class, classes[dets]))
        self._start = np.concatenate((self._start, np.full(dets.size, self.frame)))
        self._last = np.concatenate((self._last, np.full(dets.size, self.frame)))
        self._det = np.concatenate((self._det, dets))

    def _remove_duplicates(self) -> None:
        tracked = np.flatnonzero(self._state == TRACKED)
        lost = np.flatnonzero(self._state == LOST)
        if tracked.size == 0 or lost.size == 0:
            return
        boxes = xyah_to_xyxy(self._mean)
        p, q = np.nonzero(box_iou(boxes[tracked], boxes[lost]) > self.duplicate_iou)
        if p.size == 0:
            return
        age = self._last - self._start
        drop = np.zeros(self.num_tracks, bool)
        lost_older = age[lost[q]] >= age[tracked[p]]  # ties drop the tracked one, as the official code
        drop[tracked[p[lost_older]]] = True
        drop[lost[q[~lost_older]]] = True
        self._keep(~drop)

    def _keep(self, mask: np.ndarray) -> None:
        for name in ("_mean", "_cov", "_id", "_state", "_score", "_class", "_start", "_last", "_det"):
            setattr(self, name, getattr(self, name)[mask])

    def _report(self, detections: np.ndarray) -> Tracks:
        """detections: this frame's (N, 4) xyxy input boxes."""
        rows = np.flatnonzero((self._state == TRACKED) & (self._id > 0) & (self._last == self.frame))
        rows = rows[np.argsort(self._id[rows], kind="stable")]
        boxes = detections[self._det[rows]] if self.report_boxes == "detection" else xyah_to_xyxy(self._mean[rows])
        return Tracks(boxes=np.asarray(boxes, dtype=np.float64).copy(), track_ids=self._id[rows].copy(),
                      scores=self._score[rows].copy(), classes=self._class[rows].copy(),
                      detection_indices=self._det[rows].copy(), frame=self.frame)


def _check_detections(boxes, scores, classes):
    """Arrays in the tracker's dtypes, and which rows can be used.

    boxes: (N, 4) xyxy, scores: (N,), classes: (N,) or None -> float64 boxes, float32 scores,
    int64 classes (zeros when None), valid (N,) bool."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) xyxy, got shape {boxes.shape}")
    n = boxes.shape[0]
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if scores.shape[0] != n:
        raise ValueError(f"scores must be ({n},) to go with boxes (N, 4), got shape {scores.shape}")
    if classes is None:
        classes = np.zeros(n, np.int64)
    else:
        classes = np.asarray(classes)
        if classes.reshape(-1).shape[0] != n:
            raise ValueError(f"classes must be ({n},) to go with boxes (N, 4), got shape {classes.shape}")
        classes = classes.reshape(-1).astype(np.int64)
    with np.errstate(invalid="ignore"):
        valid = (np.isfinite(boxes).all(1) & np.isfinite(scores)
                 & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
    return boxes, scores, classes, valid
