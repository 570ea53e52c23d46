"""``openyolox.Detector``: the core prediction step (openyolox.inference.predictor.Detector)
with the back-end chosen for speed, and tracking.

The core Detector runs what it is given: a PyTorch model, or an exported file with its
runtime. This one, above export and tracking in the layers, first asks openyolox.export.auto
which back-end should run the model (``backend="auto"``: on a CPU, ONNX Runtime or OpenVINO
through an export made once and cached; PyTorch on CUDA or when no runtime can be used) and
hands the core Detector the cached file instead of the model. Prediction itself is the core
Detector's, unchanged; :meth:`Detector.track` adds ByteTrack (openyolox.tracking.video).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Tuple, Union

from openyolox.errors import OpenYoloxError
from openyolox.inference.predictor import Detector as CoreDetector
from openyolox.inference.resolve import ModelSource


class Detector(CoreDetector):
    """Detect (and track) objects with a YOLOX model, on the fastest back-end available.

    model, weights, device, conf, iou, imgsz, class_agnostic, half, num_classes, names,
    strict, fuse, amp, slice, overlap, slice_full, slice_merge: as
    openyolox.inference.predictor.Detector (fuse and amp concern the PyTorch back-end).
    backend: "auto" (default), "torch", "onnxruntime", "openvino", "ncnn" or "torchscript";
    see openyolox.export.auto. ``runtime`` says which one runs.
    """

    def __init__(self, model: ModelSource = "yolox-s", weights: Optional[Union[str, Path]] = None,
                 device: str = "cpu", conf: float = 0.25, iou: float = 0.45,
                 imgsz: Optional[Union[int, Tuple[int, int]]] = None, class_agnostic: bool = False,
                 half: bool = False, num_classes: Optional[int] = None, names: Optional[Sequence[str]] = None,
                 strict: bool = True, fuse: bool = True, amp: bool = False, slice: Optional[int] = None,
                 overlap: float = 0.2, slice_full: bool = True, slice_merge: str = "union", backend: str = "auto"):
        from openyolox.export.auto import canonical_backend, discard_entry, fallback_line, select_backend

        options = dict(device=device, conf=conf, iou=iou, imgsz=imgsz, class_agnostic=class_agnostic, half=half,
                       num_classes=num_classes, names=names, strict=strict, fuse=fuse, amp=amp, slice=slice,
                       overlap=overlap, slice_full=slice_full, slice_merge=slice_merge)
        choice = select_backend(model, weights, backend=backend, device=device, imgsz=imgsz, half=half,
                                num_classes=num_classes, names=names, strict=strict)
        try:
            super().__init__(choice.model, choice.weights, **options)
        except Exception as exc:
            # a cached file the runtime cannot load (damaged, or written by another runtime
            # version): auto drops it and runs PyTorch; anything else is the caller's to see
            if canonical_backend(backend) != "auto" or choice.model is model or isinstance(exc, OpenYoloxError):
                raise
            discard_entry(choice)
            fallback_line(f"{choice.runtime} could not load {choice.model}: {type(exc).__name__}: {exc}")
            super().__init__(model, weights, **options)
            choice.runtime = "pytorch"
        finally:
            choice.cleanup()
        if choice.load_report is not None:
            self.load_report = choice.load_report
        self.runtime = self.backend.name

    def track(self, source: Any, conf: Optional[float] = None, iou: Optional[float] = None, batch_size: int = 1,
              limit: int = 0, classes: Optional[Sequence[Union[int, str]]] = None,
              **tracker_options: Any) -> Iterator[Any]:
        """Detect and track objects in a video, webcam index, folder of frames (name order) or
        list of images: one openyolox.tracking.video.TrackedFrame per frame, in order
        (``frame.boxes`` (M, 4) xyxy pixels, ``frame.track_ids``, ``frame.scores``,
        ``frame.classes``, ``frame.image``)::

            for frame in openyolox.Detector("yolox-s").track("video.mp4"):
                frame.boxes, frame.track_ids

        conf / iou: the detector's thresholds while tracking; default TRACK_CONF (0.1: ByteTrack's
        second stage needs the low-score boxes) and TRACK_IOU (0.7), not the Detector's own.
        classes: track only these ids or names; limit: at most this many frames.
        tracker_options: openyolox.tracking.ByteTracker's (track_thresh, low_thresh,
        new_track_thresh, match_thresh, track_buffer, per_class, frame_rate)."""
        from openyolox.tracking.video import TRACK_CONF, TRACK_IOU, track_frames

        detector = copy.copy(self)  # this Detector keeps its own thresholds; the back-end is shared
        detector.conf = TRACK_CONF if conf is None else conf
        detector.iou = TRACK_IOU if iou is None else iou
        return track_frames(detector, source, batch_size=batch_size, limit=limit, classes=classes,
                            **tracker_options)


__all__ = ["Detector"]
