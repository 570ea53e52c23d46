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


def evaluate(model, data: str = "builtin", split: str = "val", imgsz=None, conf: float = 0.01, nms: float = 0.65,
             batch: int = 8, workers: int = 2, metric: str = "coco", weights=None, device: str = "cpu",
             out=None, progress: bool = True) -> dict:
    """COCO metrics (plus VOC with metric="voc") of a Detector, a YOLOX module, a model name
    (with ``weights``) or an exported file, on a split of ``data``. Writes metrics.json,
    predictions.json and plots to ``out`` when given. Returns the metrics dict."""
    from openyolox.data.sources import load_split
    from openyolox.evaluation.validate import validate, write_outputs

    detector = model if isinstance(model, Detector) else Detector(model, weights=weights, device=device,
                                                                  imgsz=imgsz, conf=conf, nms=nms)
    ds = load_split(data, split)
    summary, preds = validate(detector, ds, conf, nms, batch, workers, metric, progress)
    if out is not None:
        write_outputs(out, ds, summary, preds)
    return {k: v for k, v in summary.items() if not k.startswith("_")}
