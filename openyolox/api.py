"""The Python API: build and load models, detect, train, evaluate.

    import openyolox
    model = openyolox.build_model("yolox-s", num_classes=80)
    openyolox.load_weights(model, "yolox_s.pth")
    det = openyolox.Detector("yolox-s", weights="yolox_s.pth")
"""
from __future__ import annotations

import copy

from openyolox.checkpoint import load_weights  # noqa: F401  (re-exported)
from openyolox.detector import Detector  # noqa: F401  (the core Detector + automatic back-end)
from openyolox.inference.predictor import Detector as CoreDetector
from openyolox.inference.results import Detections  # noqa: F401
from openyolox.models.yolox import YOLOX, create_model


def build_model(name: str = "yolox-s", num_classes: int = 80, iou_type: str = "iou") -> YOLOX:
    """A YOLOX preset ("yolox-nano" ... "yolox-x", "yolox-darknet53"/"yolov3"). Besides the
    plain network's calls, ``model(images, targets)`` in train mode returns the loss dict, as
    in the reference (see openyolox.training.loss.YOLOXWithLoss)."""
    from openyolox.training.loss import YOLOXWithLoss

    return YOLOXWithLoss(create_model(name, num_classes), iou_type)


def train(model: str = "yolox-nano", data: str = "builtin", resume=None, **kwargs):
    """Train YOLOX (see TrainConfig for the options); returns the run folder (a Path)."""
    from openyolox.training.trainer import train as _train

    return _train(model=model, data=data, resume=resume, **kwargs)


def evaluate(model, data: str = "builtin", split: str = "val", imgsz=None, conf: float = 0.01, iou: float = 0.65,
             batch: int = 8, workers: int = 2, metric: str = "coco", weights=None, device: str = "cpu",
             out=None, progress: bool = True, backend: str = "auto") -> dict:
    """COCO metrics (plus VOC with metric="voc") of a Detector, a YOLOX module, a model name
    (with ``weights``) or an exported file, on a split of ``data``. Writes metrics.json,
    predictions.json and plots to ``out`` when given. ``backend``: as for Detector (a Detector
    passed in keeps its own). Returns the metrics dict."""
    from openyolox.data.layouts import load_split
    from openyolox.evaluation.validate import validate, write_outputs

    if isinstance(model, CoreDetector):  # its back-end, at the evaluation thresholds
        detector = copy.copy(model)
        detector.conf, detector.iou, detector.class_agnostic = conf, iou, False
    else:  # a module passed in is evaluated as it is, not fused in place
        detector = Detector(model, weights=weights, device=device, imgsz=imgsz, conf=conf, iou=iou,
                            fuse=not isinstance(model, YOLOX), backend=backend)
    ds = load_split(data, split)
    summary, preds = validate(detector, ds, batch, workers, metric, progress)
    if out is not None:
        write_outputs(out, ds, summary, preds)
    return {k: v for k, v in summary.items() if not k.startswith("_")}
