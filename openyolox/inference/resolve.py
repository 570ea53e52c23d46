"""One resolver from "what the user names as a model" to a back-end and what it predicts.

A model source is one of:

- a YOLOX module (used as it is);
- a preset name ("yolox-s", ...): with ``weights`` None, the published COCO weights of that
  model (downloaded once, openyolox.hub); ``weights`` may also be a checkpoint file, another
  published name, or "none" for random weights;
- a checkpoint path (``.pth``/``.pt``/``.ckpt``) whose metadata names its model (openyolox
  training checkpoints do);
- an exported file or folder (ONNX, OpenVINO, ncnn, TorchScript; see inference.deployed).

Class names, category ids and the input size come from, in order: the caller's arguments,
the checkpoint's or file's metadata, the model's defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from openyolox.checkpoint import LoadReport, load_checkpoint, load_weights
from openyolox.config import check_image_size, get_preset
from openyolox.errors import ConfigError
from openyolox.hub import resolve_weights
from openyolox.inference.backends import load_backend
from openyolox.inference.backends.pytorch import TorchBackend
from openyolox.inference.deployed import is_checkpoint_path, is_exported_model
from openyolox.inference.results import default_category_ids, default_names
from openyolox.models.yolox import YOLOX, create_model

ModelSource = Union[str, Path, YOLOX]
CHECKPOINT_META = ("model_name", "class_names", "category_ids", "imgsz")


@dataclass
class ResolvedModel:
    """A back-end ready to run, and what its outputs mean."""

    backend: Any                           # an openyolox.inference.backends.Backend
    names: List[str]
    category_ids: List[int]
    imgsz: Tuple[int, int]                 # (h, w) letterbox size
    net: Optional[YOLOX] = None            # the PyTorch network (None for exported files)
    load_report: Optional[LoadReport] = None


def resolve_model(model: ModelSource = "yolox-s", weights: Optional[Union[str, Path]] = None, device: str = "cpu",
                  imgsz: Optional[Union[int, Sequence[int]]] = None, half: bool = False, fuse: bool = True,
                  amp: bool = False, num_classes: Optional[int] = None, names: Optional[Sequence[str]] = None,
                  strict: bool = True) -> ResolvedModel:
    """Turn a model source (see the module doc) into a :class:`ResolvedModel`.

    fuse: fold batch norms into the convolutions of a PyTorch network (in place on a module
    passed in); amp: float16 autocast on CUDA; strict: checkpoint keys must match exactly.
    """
    if weights is None and is_exported_model(model):
        return _resolve_exported(Path(model), device, imgsz, names)
    model, weights = model_and_weights(model, weights)
    ckpt = load_checkpoint(weights) if weights is not None else None
    meta: Dict[str, Any] = {k: ckpt[k] for k in CHECKPOINT_META if k in ckpt} if ckpt is not None else {}
    if ckpt is not None and "imgsz" not in meta and "img_size" in ckpt:  # checkpoints written before 0.2
        meta["imgsz"] = ckpt["img_size"]
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
    report = load_weights(net, ckpt, strict=strict) if ckpt is not None else None
    cfg = net.config or get_preset("yolox-s")
    size = imgsz if imgsz is not None else meta.get("imgsz", cfg.test_size)
    imgsz = check_image_size(tuple(size) if not isinstance(size, int) else size)
    class_names = list(names or meta.get("class_names") or default_names(net.num_classes))
    if len(class_names) != net.num_classes:
        raise ConfigError(f"{len(class_names)} class names given for a model with {net.num_classes} classes")
    category_ids = list(meta.get("category_ids") or default_category_ids(class_names))
    backend = TorchBackend(net, device=device, half=half, fuse=fuse, amp=amp)
    return ResolvedModel(backend, class_names, category_ids, imgsz, net=net, load_report=report)



def model_and_weights(model: ModelSource, weights: Optional[Union[str, Path]]
                      ) -> Tuple[Optional[ModelSource], Optional[Union[str, Path]]]:
    """The weights rules shared by every path that loads a checkpoint -> (model, weights file
    or None for random weights): a checkpoint path given as the model is the weights; a model
    name without weights means its published weights (fetched once); "none" means random
    weights; a YOLOX module without weights keeps its own."""
    if weights is None and is_checkpoint_path(model):
        return None, model
    if not isinstance(model, YOLOX) or weights is not None:
        name = model.config.name if isinstance(model, YOLOX) and model.config is not None else model
        weights = resolve_weights(name if isinstance(name, str) else None, weights,
                                  fetch_if_none=not isinstance(model, YOLOX))
    return model, weights

def _resolve_exported(path: Path, device: str, imgsz, names) -> ResolvedModel:
    """An exported file: names, ids and input size from its metadata."""
    backend = load_backend(path, device=device)
    deployed = backend.deployed
    size = check_image_size(imgsz if imgsz is not None else deployed.imgsz)
    if size != tuple(deployed.imgsz) and not deployed.dynamic:
        raise ConfigError(f"{path} was exported for {deployed.imgsz[0]}x{deployed.imgsz[1]} "
                          f"inputs; drop imgsz or export with --dynamic")
    class_names = list(names or deployed.class_names or default_names(backend.num_classes))
    category_ids = list(deployed.category_ids or default_category_ids(class_names))
    return ResolvedModel(backend, class_names, category_ids, size)
