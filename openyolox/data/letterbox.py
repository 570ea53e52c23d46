"""Letterbox: the reference YOLOX test-time resize (YOLOX_SPEC.md section 3)."""
from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

PAD_VALUE = 114


def letterbox(image: np.ndarray, size: Tuple[int, int]) -> Tuple[np.ndarray, float]:
    """Resize ``image`` (H, W, 3) uint8 BGR to fit ``size`` = (height, width), keeping its
    aspect ratio, paste it at the top-left of a canvas filled with 114.

    Returns (canvas (h, w, 3) uint8, ratio r). A box in original pixels maps to
    letterboxed pixels by multiplying by r, and back by dividing.
    """
    h, w = size
    r = min(h / image.shape[0], w / image.shape[1])
    new_w, new_h = int(image.shape[1] * r), int(image.shape[0] * r)
    canvas = np.full((h, w, 3), PAD_VALUE, dtype=np.uint8)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas[:new_h, :new_w] = resized
    return canvas, r


def to_chw_float(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 0..255, contiguous (the model's input)."""
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
