"""A back-end whose outputs are known exactly, for tests of what happens after the network.

:class:`BlobFinder` follows the Backend protocol (openyolox/inference/backends) with NMS
"inside": it reports every connected blob of bright red (class 0) or bright green (class 1)
pixels in its letterboxed input as one box, as a perfect detector would. Draw objects with
:func:`canvas`; :func:`blob_detector` is a Detector running it.
"""
import numpy as np
import torch

from openyolox.inference.predictor import Detector
from openyolox.inference.slicing import SliceConfig

BACKGROUND = 30


class BlobFinder:
    """The Backend protocol, with NMS "inside": (B, 3, H, W) uint8 letterboxed inputs -> per
    image (N, 7) rows (x1, y1, x2, y2, score, 1, class) in input pixels, one per connected
    blob of red (class 0) or green (class 1) pixels. Records each call's batch size."""

    name = "blobs"
    num_classes = 2
    device = torch.device("cpu")
    outputs_detections = True

    def __init__(self):
        self.calls = []

    def detect(self, batch):
        import cv2

        batch = np.asarray(batch)
        self.calls.append(len(batch))
        out = []
        for image in batch:
            rows = []
            for cls, channel in ((0, 2), (1, 1)):
                mask = ((image[channel] > 200) & (image.min(0) < 100)).astype(np.uint8)
                n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
                for x, y, w, h, area in stats[1:]:
                    rows.append([x, y, x + w, y + h, 0.5 + min(area / 1e5, 0.4), 1.0, cls])
            out.append(torch.tensor(rows, dtype=torch.float32).reshape(-1, 7))
        return out

    def __call__(self, batch):
        raise AssertionError("NMS is inside: the detector calls detect()")

    def synchronize(self):
        pass


def blob_detector(size=256, overlap=0.25, full=False, merge="union", batch=8, imgsz=256):
    """A Detector (classes "red", "green") whose back-end is a BlobFinder; sliced with these
    settings unless size is None."""
    det = Detector("yolox-nano", weights="none", num_classes=2, names=["red", "green"], imgsz=imgsz,
                   conf=0.3, iou=0.45)
    det.backend = BlobFinder()
    det.slicing = SliceConfig(size, overlap, full, merge, batch) if size else None
    return det


def canvas(h, w, objects):
    """A dark image with filled rectangles: objects = [(x1, y1, x2, y2, class)], xyxy exclusive."""
    image = np.full((h, w, 3), BACKGROUND, np.uint8)
    for x1, y1, x2, y2, cls in objects:
        image[y1:y2, x1:x2] = (0, 0, 255) if cls == 0 else (0, 255, 0)
    return image