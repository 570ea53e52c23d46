"""``Detector``: letterbox -> network -> decode -> score filter -> NMS -> original pixels."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from openyolox.checkpoint import load_checkpoint, load_weights
from openyolox.config import check_image_size, get_preset
from openyolox.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES
from openyolox.data.transforms import letterbox
from openyolox.errors import ConfigError
from openyolox.inference.backends import TorchBackend
from openyolox.inference.postprocess import postprocess, scale_boxes
from openyolox.inference.runtimes import is_exported_model, load_backend
from openyolox.inference.sources import iter_images, warn_skipped
from openyolox.models.yolox import YOLOX, create_model


@dataclass
class Detections:
    """Detections of one image, in original image pixels.

    boxes: (N, 4) xyxy; scores: (N,) obj * class prob; classes: (N,) contiguous class index.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    names: Sequence[str]
    image_id: str = ""
    image_shape: Tuple[int, int] = (0, 0)  # (h, w)

    def __len__(self) -> int:
        return len(self.scores)

    def labels(self) -> List[str]:
        return [self.names[int(c)] for c in self.classes]

    def to_coco(self, category_ids: Optional[Sequence[int]] = None) -> List[dict]:
        """COCO results rows: image_id, category_id, bbox [x, y, w, h], score."""
        ids = category_ids if category_ids is not None else range(len(self.names))
        return [{"image_id": self.image_id, "category_id": int(ids[int(c)]),
                 "bbox": [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2),
                          round(float(y2 - y1), 2)],
                 "score": round(float(s), 5)}
                for (x1, y1, x2, y2), s, c in zip(self.boxes, self.scores, self.classes)]


def default_names(num_classes: int) -> List[str]:
    return list(COCO_CLASSES) if num_classes == 80 else [f"class{i}" for i in range(num_classes)]


def default_category_ids(names: Sequence[str]) -> List[int]:
    return list(COCO_CATEGORY_IDS) if tuple(names) == COCO_CLASSES else list(range(len(names)))


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

    model: a preset name ("yolox-s"), a YOLOX module, a checkpoint path whose metadata
    names the model, or an exported file (.onnx, OpenVINO .xml/folder, ncnn .param/folder,
    .torchscript; see openyolox.inference.runtimes). weights: checkpoint (ours or reference)
    to load. conf / nms: score and IoU thresholds. imgsz: network input size (default the
    model's test size).
    """

    def __init__(self, model: Union[str, YOLOX, Path] = "yolox-s", weights: Optional[Union[str, Path]] = None,
                 device: str = "cpu", conf: float = 0.25, nms: float = 0.45,
                 imgsz: Optional[Union[int, Tuple[int, int]]] = None, class_agnostic: bool = False,
                 half: bool = False, num_classes: Optional[int] = None,
                 names: Optional[Sequence[str]] = None, strict: bool = True, fuse: bool = True):
        self.conf, self.nms, self.class_agnostic = conf, nms, class_agnostic
        self.timings = Timings()
        if weights is None and is_exported_model(model):
            self._init_exported(Path(model), device, imgsz, names)
            return
        meta: Dict[str, Any] = {}
        if isinstance(model, (str, Path)) and Path(model).suffix in (".pth", ".pt", ".ckpt") and weights is None:
            weights, model = model, None
        ckpt = load_checkpoint(weights) if weights is not None else None
        if ckpt is not None:
            meta = {k: ckpt[k] for k in ("model_name", "class_names", "category_ids", "img_size") if k in ckpt}
        if model is None:
            if "model_name" not in meta:
                raise ConfigError(f"{weights}: the checkpoint does not say which model it is; pass model='yolox-s' etc.")
            model = meta["model_name"]
        if isinstance(model, YOLOX):
            net = model
        else:
            if num_classes is None:
                if "class_names" in meta:
                    num_classes = len(meta["class_names"])
                elif ckpt is not None and "head.cls_preds.0.bias" in ckpt["model"]:
                    num_classes = int(ckpt["model"]["head.cls_preds.0.bias"].shape[0])
                else:
                    num_classes = 80
            net = create_model(str(model), num_classes)
        self.load_report = load_weights(net, ckpt, strict=strict) if ckpt is not None else None
        cfg = net.config or get_preset("yolox-s")
        size = imgsz if imgsz is not None else meta.get("img_size", cfg.test_size)
        self.input_size = check_image_size(tuple(size) if not isinstance(size, int) else size)
        self.names = list(names or meta.get("class_names") or default_names(net.num_classes))
        if len(self.names) != net.num_classes:
            raise ConfigError(f"{len(self.names)} class names given for a model with {net.num_classes} classes")
        self.category_ids = list(meta.get("category_ids") or default_category_ids(self.names))
        self.backend = TorchBackend(net, device=device, half=half, fuse=fuse)

    def _init_exported(self, path: Path, device: str, imgsz, names) -> None:
        """An exported file (ONNX, OpenVINO, ncnn, TorchScript): metadata from the file."""
        self.backend = load_backend(path, device=device)
        self.load_report = None
        size = check_image_size(imgsz if imgsz is not None else self.backend.input_size)
        if size != self.backend.input_size and not self.backend.dynamic:
            raise ConfigError(f"{path} was exported for {self.backend.input_size[0]}x{self.backend.input_size[1]} "
                              f"inputs; drop imgsz or export with --dynamic")
        self.input_size = size
        self.names = list(names or self.backend.names or default_names(self.backend.num_classes))
        self.category_ids = list(self.backend.metadata.get("category_ids") or default_category_ids(self.names))
        meta = self.backend.metadata
        if self.backend.outputs_detections and (self.conf < meta["nms_conf"] or self.nms != meta["nms_iou"]
                                                or self.class_agnostic != meta["nms_class_agnostic"]):
            warnings.warn(f"{path} has NMS inside (score >= {meta['nms_conf']}, IoU {meta['nms_iou']}, "
                          f"class_agnostic={meta['nms_class_agnostic']}); those settings apply, plus conf={self.conf} "
                          f"when higher", stacklevel=3)

    @property
    def model(self) -> YOLOX:
        return self.backend.model

    def predict(self, source: Any, batch_size: int = 1) -> List[Detections]:
        """Detect in an image path, folder, array, PIL image or a list of them.

        Unreadable files inside a folder are skipped with a warning; a single unreadable
        path raises DataError naming it."""
        results: List[Detections] = []
        pending: List[Tuple[str, np.ndarray]] = []
        for name, image in iter_images(source):
            if isinstance(image, Exception):
                warn_skipped(name, image)
                continue
            pending.append((name, image))
            if len(pending) == batch_size:
                results += self.predict_images(pending)
                pending = []
        if pending:
            results += self.predict_images(pending)
        return results

    def predict_images(self, named_images: Sequence[Tuple[str, np.ndarray]]) -> List[Detections]:
        """One batch of (name, BGR uint8 image) -> one Detections per image."""
        t0 = time.perf_counter()
        batch, ratios = self.preprocess([img for _, img in named_images])
        t1 = time.perf_counter()
        if getattr(self.backend, "outputs_detections", False):  # NMS inside the exported graph
            dets = [d[d[:, 4] * d[:, 5] >= self.conf] for d in self.backend.detect(batch)]
            t2 = time.perf_counter()
        else:
            raw = self.backend(batch)
            self.backend.synchronize()
            t2 = time.perf_counter()
            dets = postprocess(raw, self.conf, self.nms, self.class_agnostic)
        out = [self._to_detections(d, r, img.shape[:2], name)
               for d, r, (name, img) in zip(dets, ratios, named_images)]
        t3 = time.perf_counter()
        self.timings.preprocess += t1 - t0
        self.timings.inference += t2 - t1
        self.timings.postprocess += t3 - t2
        self.timings.images += len(named_images)
        return out

    def preprocess(self, images: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[float]]:
        """Letterbox each BGR image to the input size: (B, 3, H, W) uint8 and the ratios."""
        batch = np.empty((len(images), 3, *self.input_size), dtype=np.uint8)
        ratios = []
        for i, img in enumerate(images):
            boxed, r = letterbox(img, self.input_size)
            batch[i] = boxed.transpose(2, 0, 1)
            ratios.append(r)
        return batch, ratios

    def _to_detections(self, det: torch.Tensor, ratio: float, shape: Tuple[int, int], name: str) -> Detections:
        det = scale_boxes(det, ratio, shape).cpu().numpy()
        return Detections(boxes=det[:, :4].astype(np.float32), scores=(det[:, 4] * det[:, 5]).astype(np.float32),
                          classes=det[:, 6].astype(np.int64), names=self.names, image_id=name, image_shape=shape)
