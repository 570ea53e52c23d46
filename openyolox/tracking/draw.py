"""Drawing tracks on video frames: a box coloured by track id, an "id class" label, a trail.

``TrackPainter`` remembers the recent centres of each id, so it is one object per video:

    painter = TrackPainter(names=detector.names)
    for frame, tracks in ...:
        out = painter.draw(frame, tracks)     # a new BGR image; ``frame`` is left as it was

Any box is accepted: NaN or infinite coordinates are skipped, huge ones are clipped to a margin
around the image (OpenCV's int32 drawing would overflow, or spend seconds on a line 1e9 px
long), so a bad row never stops a video.
"""
from __future__ import annotations

from collections import deque
from typing import Deque, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from openyolox.inference.visualize import class_color


class TrackPainter:
    """Draw one frame's tracks and the trails of their centres over the last ``trail`` frames.

    names: class names for labels (class index shown when missing); trail: frames of history
    (0: no trail). An id not seen for ``trail`` frames is forgotten, so memory stays bounded."""

    def __init__(self, names: Optional[Sequence[str]] = None, trail: int = 30):
        self.names = list(names) if names is not None else []
        self.trail = max(int(trail), 0)
        self._history: Dict[int, Deque[Tuple[int, int]]] = {}
        self._last_seen: Dict[int, int] = {}
        self._calls = 0

    def reset(self) -> None:
        self._history.clear()
        self._last_seen.clear()
        self._calls = 0

    def draw(self, image: np.ndarray, tracks) -> np.ndarray:
        """image: (H, W, 3) BGR uint8; tracks: an openyolox Tracks (boxes (M, 4) xyxy pixels,
        track_ids, classes). Returns a new annotated image."""
        out = np.ascontiguousarray(image).copy()
        h, w = out.shape[:2]
        self._calls += 1
        thickness = max(1, round(min(h, w) / 400))
        font_scale = max(0.4, min(h, w) / 1200)
        boxes = np.asarray(tracks.boxes, dtype=np.float64).reshape(-1, 4)
        ids = np.asarray(tracks.track_ids).reshape(-1)
        classes = np.asarray(tracks.classes).reshape(-1)
        # Pixel limits: a margin of one image size each way keeps lines' slopes right for boxes
        # a little outside, and keeps every coordinate far inside int32.
        lo = np.array([-w, -h, -w, -h], np.float64)
        hi = np.array([2 * w, 2 * h, 2 * w, 2 * h], np.float64)

        drawn = []
        for box, tid, cls in zip(boxes, ids, classes):
            if not np.isfinite(box).all():
                continue
            tid = int(tid)
            x1, y1, x2, y2 = (int(round(v)) for v in np.clip(box, lo, hi))
            centre = ((x1 + x2) // 2, (y1 + y2) // 2)
            if self.trail:
                self._history.setdefault(tid, deque(maxlen=self.trail)).append(centre)
                self._last_seen[tid] = self._calls
            drawn.append((tid, int(cls), (x1, y1, x2, y2)))

        for tid in [t for t, seen in self._last_seen.items() if self._calls - seen >= self.trail]:
            self._history.pop(tid, None)
            self._last_seen.pop(tid, None)
        if self.trail:
            for tid, points in self._history.items():
                if len(points) > 1:
                    pts = np.array(points, np.int32).reshape(-1, 1, 2)
                    cv2.polylines(out, [pts], False, class_color(tid), thickness, cv2.LINE_AA)

        for tid, cls, (x1, y1, x2, y2) in drawn:
            color = class_color(tid)
            cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
            name = self.names[cls] if 0 <= cls < len(self.names) else str(cls)
            label = f"{tid} {name}"
            (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
            # keep the label inside the image even when the box is not
            lx = min(max(x1, 0), max(w - tw - 2, 0))
            ty = y1 - 2 if y1 - th - base - 2 >= 0 else min(max(y1, 0) + th + base + 2, h - 1)
            cv2.rectangle(out, (lx, ty - th - base), (lx + tw + 2, ty + 1), color, -1)
            cv2.putText(out, label, (lx + 1, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                        (255, 255, 255), 1, cv2.LINE_AA)
        return out
