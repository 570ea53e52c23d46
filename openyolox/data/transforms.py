"""Letterbox: the reference YOLOX resize (docs/yolox.md section 3), with what it does to boxes.

The model sees every image letterboxed: resized by r = min(H / h, W / w) (aspect ratio kept)
and pasted at the top-left of an (H, W) canvas filled with PAD_VALUE. A box maps into the
input by multiplying by r (:func:`letterbox_with_boxes`) and back to the image by dividing by
r (:func:`scale_boxes`, which also clips): both directions live here, together.
"""
from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np
import torch

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


def letterbox_with_boxes(image: np.ndarray, boxes: np.ndarray,
                         out_hw: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray, float]:
    """:func:`letterbox` plus its boxes: (canvas (H, W, 3) uint8, boxes (N, 4) xyxy * r, r)."""
    canvas, r = letterbox(image, out_hw)
    return canvas, (boxes * r).astype(np.float32), r


def to_chw(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) uint8, contiguous (one copy; the model casts to float)."""
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def scale_boxes(dets: torch.Tensor, ratio: float, image_hw: Tuple[int, int],
                clip: bool = True) -> torch.Tensor:
    """Map detections from the letterboxed input back to the original image.

    dets: (N, >=4) with xyxy in input pixels first (e.g. postprocess rows); ratio: the letterbox
    resize factor r (input = original * r, pasted at the top-left); image_hw: original (h, w).
    Returns a copy with xyxy / r, clipped to [0, w] x [0, h] when clip (the reference evaluator
    does not clip; pass clip=False to match it).
    """
    out = dets.clone()
    out[:, :4] /= ratio
    if clip:
        h, w = image_hw
        out[:, 0:4:2] = out[:, 0:4:2].clamp(0, w)
        out[:, 1:4:2] = out[:, 1:4:2].clamp(0, h)
    return out
