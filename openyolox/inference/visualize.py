"""Drawing detections on images (OpenCV, BGR)."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np


def class_color(index: int) -> tuple:
    """A stable, distinct BGR colour per class (golden-angle hue steps)."""
    hue = int((index * 137.508) % 180)
    hsv = np.uint8([[[hue, 200, 230]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def drawable_boxes(boxes: np.ndarray, image_hw: Tuple[int, int]) -> List[Optional[Tuple[int, int, int, int]]]:
    """Integer pixel corners safe to hand to OpenCV, one per box (N, 4) xyxy: clipped to a
    band around the image (OpenCV wants C ints; a box of 1e30 px or inf would not convert),
    None for a box with a non-finite coordinate."""
    h, w = image_hw
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    limits = np.array([w, h, w, h], dtype=np.float64) + 1
    out: List[Optional[Tuple[int, int, int, int]]] = []
    for box in boxes:
        if not np.isfinite(box).all():
            out.append(None)
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in np.clip(box, -1.0, limits))
        out.append((x1, y1, x2, y2))
    return out


def draw_detections(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
                    names: Sequence[str], line_width: Optional[int] = None, labels: bool = True,
                    show_scores: bool = True) -> np.ndarray:
    """Return a copy of ``image`` (H, W, 3) BGR with boxes (N, 4) xyxy pixels and labels.

    line_width: box line in px (default: grows with the image); labels: draw "name score"
    tags (show_scores: with the score)."""
    out = image.copy()
    thickness = max(1, int(line_width)) if line_width else max(1, round(min(out.shape[:2]) / 400))
    font_scale = max(0.4, min(out.shape[:2]) / 1200)
    for box, score, cls in zip(drawable_boxes(boxes, out.shape[:2]), scores, classes):
        if box is None:
            continue
        x1, y1, x2, y2 = box
        color = class_color(int(cls))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        if not labels:
            continue
        name = names[int(cls)] if 0 <= int(cls) < len(names) else str(int(cls))
        label = f"{name} {float(score):.2f}" if show_scores else name
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else y1 + th + base + 2
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 2, ty + 1), color, -1)
        cv2.putText(out, label, (x1 + 1, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return out
