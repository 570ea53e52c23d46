"""Tracking a video end to end: the Detector's one prediction step on every frame, then
ByteTrack, frame by frame.

    for frame in track_frames(detector, "video.mp4"):
        frame.boxes, frame.track_ids, frame.scores, frame.classes, frame.image

The detector should keep low-score boxes: ByteTrack's second association stage uses
detections down to the tracker's ``low_thresh`` (0.1), so a detector threshold above it
turns ByteTrack into a one-stage tracker (TRACK_CONF is the default of ``openyolox track``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np

from openyolox.inference.predictor import Detector
from openyolox.inference.results import class_indices as class_filter  # ids or names -> indices
from openyolox.inference.sources import is_video, video_fps
from openyolox.tracking.bytetrack import ByteTracker, Tracks

TRACK_CONF = 0.1     # the detector's score threshold for tracking = ByteTrack's low_thresh
TRACK_IOU = 0.7      # NMS IoU of the ByteTrack paper's YOLOX detector (crowds overlap)


@dataclass
class TrackedFrame:
    """One frame's tracks (openyolox.tracking.Tracks: boxes (M, 4) xyxy pixels, track_ids,
    scores, classes, frame) with the frame itself and its name."""

    tracks: Tracks
    image: np.ndarray = field(repr=False)    # BGR uint8 (H, W, 3)
    image_id: str = ""
    names: Sequence[str] = ()

    @property
    def boxes(self) -> np.ndarray:
        return self.tracks.boxes

    @property
    def track_ids(self) -> np.ndarray:
        return self.tracks.track_ids

    @property
    def scores(self) -> np.ndarray:
        return self.tracks.scores

    @property
    def classes(self) -> np.ndarray:
        return self.tracks.classes

    @property
    def frame(self) -> int:
        return self.tracks.frame

    def __len__(self) -> int:
        return len(self.tracks)


def track_frames(detector: Detector, source: Any, tracker: Optional[ByteTracker] = None, batch_size: int = 1,
                 limit: int = 0, classes: Optional[Sequence[Union[int, str]]] = None,
                 **tracker_options: Any) -> Iterator[TrackedFrame]:
    """Detect and track every frame of ``source`` (a video, webcam index, folder of frames in
    name order, or a list of images), one :class:`TrackedFrame` per frame, in order.

    tracker: a ByteTracker to use (else one is made from ``tracker_options``, with the video's
    frame rate); classes: track only these class ids or names; limit: at most this many frames."""
    if tracker is None:
        if is_video(source) and "frame_rate" not in tracker_options:
            tracker_options["frame_rate"] = video_fps(source, default=30.0)
        tracker = ByteTracker(**tracker_options)
    keep = class_filter(classes, detector.names)
    for det in detector.stream(source, batch_size=batch_size, limit=limit):
        boxes, scores, labels = det.boxes, det.scores, det.classes
        if keep is not None:
            sel = np.isin(labels, keep)
            boxes, scores, labels = boxes[sel], scores[sel], labels[sel]
        yield TrackedFrame(tracker.update(boxes, scores, labels), det.image, str(det.image_id), detector.names)
