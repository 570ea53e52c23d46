"""``Detector``: the one prediction step, letterbox -> back-end -> postprocess -> map back.

Every path that predicts runs it: ``Detector.predict`` (images, folders, arrays), ``openyolox
val`` and :func:`openyolox.evaluate` (openyolox.evaluation.runner feeds it batches letterboxed
by loader workers), the trainer's evaluation, and tracking. Sliced prediction
(openyolox.inference.slicing) runs it on the windows of a large image.

Clipping is the caller's choice: boxes for display are clipped to the image; evaluation
keeps them unclipped, as the reference evaluator does (clipping changes AP slightly).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from openyolox.data.records import ImageId
from openyolox.data.transforms import letterbox
from openyolox.data.transforms import scale_boxes
from openyolox.inference.postprocess import postprocess
from openyolox.inference.resolve import ModelSource, resolve_model
from openyolox.inference.results import Detections
from openyolox.inference.slicing import SliceConfig, predict_sliced
from openyolox.inference.sources import iter_images, prefetch, warn_skipped


class LetterboxedBatch(NamedTuple):
    """Images ready for the network and what maps predictions back to them."""

    images: Union[np.ndarray, torch.Tensor]   # (B, 3, H, W) uint8
    ratios: Sequence[float]                   # (B,) letterbox r: original pixels * r = input pixels
    image_ids: List[ImageId]
    orig_hw: Sequence[Sequence[int]]          # (B, 2) original (h, w)


@dataclass
class Timings:
    """Accumulated seconds per stage and images seen."""

    preprocess: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0
    images: int = 0

    def per_image_ms(self) -> Dict[str, float]:
        n = max(self.images, 1)
        return {k: 1000 * getattr(self, k) / n for k in ("preprocess", "inference", "postprocess")}


class Detector:
    """Detect objects with a YOLOX model.

    model: a preset name ("yolox-s"), a YOLOX module, a checkpoint path whose metadata names
    the model, or an exported file (.onnx, OpenVINO .xml/folder, ncnn .param/folder,
    .torchscript); see openyolox.inference.resolve. weights: checkpoint (ours or reference)
    to load. conf / iou: score threshold and NMS IoU threshold. imgsz: network input size (default the
    model's test size). fuse: fold batch norms (a module passed in is changed in place);
    amp: float16 autocast on CUDA. slice: detect in ``slice`` px windows overlapping by
    ``overlap`` (a fraction), plus the whole image when ``slice_full``, merged by
    ``slice_merge`` ("union" or "nms"); for small objects in large images, see
    openyolox.inference.slicing.
    """

    def __init__(self, model: ModelSource = "yolox-s", weights: Optional[Union[str, Path]] = None,
                 device: str = "cpu", conf: float = 0.25, iou: float = 0.45,
                 imgsz: Optional[Union[int, Tuple[int, int]]] = None, class_agnostic: bool = False,
                 half: bool = False, num_classes: Optional[int] = None,
                 names: Optional[Sequence[str]] = None, strict: bool = True, fuse: bool = True, amp: bool = False,
                 slice: Optional[int] = None, overlap: float = 0.2, slice_full: bool = True,
                 slice_merge: str = "union"):
        self.conf, self.iou, self.class_agnostic = conf, iou, class_agnostic
        self.slicing = SliceConfig(slice, overlap, slice_full, slice_merge) if slice else None
        self.timings = Timings()
        resolved = resolve_model(model, weights, device=device, imgsz=imgsz, half=half, fuse=fuse, amp=amp,
                                 num_classes=num_classes, names=names, strict=strict)
        self.backend = resolved.backend
        self.names, self.category_ids = resolved.names, resolved.category_ids
        self.imgsz = resolved.imgsz
        self.load_report = resolved.load_report
        self.net = resolved.net
        if self.backend.outputs_detections:
            d = self.backend.deployed
            if self.conf < d.nms_conf or self.iou != d.nms_iou or self.class_agnostic != d.nms_class_agnostic:
                warnings.warn(f"{model} has NMS inside (score >= {d.nms_conf}, IoU {d.nms_iou}, "
                              f"class_agnostic={d.nms_class_agnostic}); those settings apply, plus conf={self.conf} "
                              f"when higher", stacklevel=2)

    @property
    def model(self) -> Any:
        """What the back-end runs (the YOLOX module for PyTorch)."""
        return self.backend.model

    # ------------------------------------------------------------------ any source

    def predict(self, source: Any, batch_size: int = 1) -> List[Detections]:
        """Detect in an image path, folder, video, array, PIL image or a list of them; boxes
        clipped to the image, each result keeping its image. For long videos or big folders
        use :meth:`stream`, which holds one batch at a time.

        Unreadable files inside a folder are skipped with a warning; a single unreadable
        path raises DataError naming it."""
        return list(self.stream(source, batch_size))

    def stream(self, source: Any, batch_size: int = 1, limit: int = 0) -> Iterator[Detections]:
        """:meth:`predict` as a generator: one Detections per image or frame, in order, run
        ``batch_size`` at a time; at most ``limit`` video frames (0: all). A background thread
        decodes the next two batches while the model runs."""
        pending: List[Tuple[str, np.ndarray]] = []
        for name, image in prefetch(iter_images(source, limit), 2 * batch_size):
            if isinstance(image, Exception):
                warn_skipped(name, image)
                continue
            pending.append((name, image))
            if len(pending) == batch_size:
                yield from self.predict_images(pending)
                pending = []
        if pending:
            yield from self.predict_images(pending)

    def predict_images(self, named_images: Sequence[Tuple[ImageId, np.ndarray]], clip: bool = True
                       ) -> List[Detections]:
        """One batch of (name, BGR uint8 image) -> one Detections per image."""
        if self.slicing is not None:
            return predict_sliced(self, named_images, self.slicing)
        t0 = time.perf_counter()
        batch = self.preprocess(named_images)
        self.timings.preprocess += time.perf_counter() - t0
        results = self.predict_batch(batch, clip=clip)
        for det, (_, image) in zip(results, named_images):
            det.image = image
        return results

    def preprocess(self, named_images: Sequence[Tuple[ImageId, np.ndarray]]) -> LetterboxedBatch:
        """Letterbox each BGR image to the input size (the same letterbox the evaluation loader
        workers apply)."""
        images = np.empty((len(named_images), 3, *self.imgsz), dtype=np.uint8)
        ratios = []
        for i, (_, img) in enumerate(named_images):
            boxed, r = letterbox(img, self.imgsz)
            images[i] = boxed.transpose(2, 0, 1)
            ratios.append(r)
        return LetterboxedBatch(images, ratios, [name for name, _ in named_images],
                                [img.shape[:2] for _, img in named_images])

    # ------------------------------------------------------------------ the step

    def predict_batch(self, batch: LetterboxedBatch, clip: bool = True) -> List[Detections]:
        """The step after the letterbox: back-end -> score filter + NMS -> original pixels.

        ``batch`` may be any object with the fields of :class:`LetterboxedBatch` (the
        evaluation loader's batches are). clip: clip boxes to the image (display) or not
        (evaluation, like the reference)."""
        t1 = time.perf_counter()
        if self.backend.outputs_detections:  # NMS inside the exported graph
            dets = [d[d[:, 4] * d[:, 5] >= self.conf] for d in self.backend.detect(batch.images)]
            t2 = time.perf_counter()
        else:
            raw = self.backend(batch.images)
            self.backend.synchronize()
            t2 = time.perf_counter()
            dets = postprocess(raw, self.conf, self.iou, self.class_agnostic)
        ratios = batch.ratios.tolist() if isinstance(batch.ratios, torch.Tensor) else list(batch.ratios)
        shapes = batch.orig_hw.tolist() if isinstance(batch.orig_hw, torch.Tensor) else list(batch.orig_hw)
        out = [self._to_detections(d, r, (int(hw[0]), int(hw[1])), image_id, clip)
               for d, r, hw, image_id in zip(dets, ratios, shapes, batch.image_ids)]
        self.timings.inference += t2 - t1
        self.timings.postprocess += time.perf_counter() - t2
        self.timings.images += len(out)
        return out

    def _to_detections(self, det: torch.Tensor, ratio: float, shape: Tuple[int, int], image_id: ImageId,
                       clip: bool) -> Detections:
        det = scale_boxes(det.float(), ratio, shape, clip=clip).cpu().numpy()
        return Detections(boxes=det[:, :4], scores=det[:, 4] * det[:, 5], classes=det[:, 6].astype(np.int64),
                          names=self.names, image_id=image_id, image_shape=shape)


__all__ = ["Detector", "LetterboxedBatch", "Timings"]
