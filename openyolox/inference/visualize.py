"""Drawing detections on images (OpenCV, BGR)."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def class_color(index: int) -> tuple:
    """A stable, distinct BGR colour per class (golden-angle hue steps)."""
    hue = int((index * 137.508) % 180)
    hsv = np.uint8([[[hue, 200, 230]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_detections(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
                    names: Sequence[str]) -> np.ndarray:
    """Return a copy of ``image`` (H, W, 3) BGR with boxes (N, 4) xyxy pixels and labels."""
    out = image.copy()
    thickness = max(1, round(min(out.shape[:2]) / 400))
    font_scale = max(0.4, min(out.shape[:2]) / 1200)
    for box, score, cls in zip(boxes, scores, classes):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        color = class_color(int(cls))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        name = names[int(cls)] if int(cls) < len(names) else str(int(cls))
        label = f"{name} {score:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else y1 + th + base + 2
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 2, ty + 1), color, -1)
        cv2.putText(out, label, (x1 + 1, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return out
