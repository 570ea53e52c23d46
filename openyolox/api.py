"""The Python API: build and load models, detect, train, evaluate.

    import openyolox
    model = openyolox.build_model("yolox-s", num_classes=80)
    openyolox.load_weights(model, "yolox_s.pth")
    det = openyolox.Detector("yolox-s", weights="yolox_s.pth")
"""
from __future__ import annotations

from openyolox.checkpoint import load_weights  # noqa: F401  (re-exported)
from openyolox.inference.predictor import Detections, Detector  # noqa: F401
from openyolox.models.yolox import YOLOX, create_model


def build_model(name: str = "yolox-s", num_classes: int = 80, iou_type: str = "iou") -> YOLOX:
    """A YOLOX preset ("yolox-nano" ... "yolox-x", "yolox-darknet53"/"yolov3") with the YOLOX
    loss attached, so ``model(images, targets)`` in train mode returns the loss dict."""
    from openyolox.training.criterion import YOLOXCriterion

    model = create_model(name, num_classes)
    model.criterion = YOLOXCriterion(iou_type)
    return model


def train(model: str = "yolox-nano", data: str = "builtin", resume=None, **kwargs):
    """Train YOLOX (see TrainConfig for the options); returns the run folder (a Path)."""
    from openyolox.training.trainer import train as _train

    return _train(model=model, data=data, resume=resume, **kwargs)
