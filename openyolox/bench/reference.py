"""The reference YOLOX (Megvii-BaseDetection/YOLOX, commit 6ddff48), imported from a checkout the
user points at, for side-by-side measurements. Nothing of it ships with openyolox.

    git clone https://github.com/Megvii-BaseDetection/YOLOX /path/YOLOX
    git -C /path/YOLOX checkout 6ddff48
    python benchmarks/train_step.py --reference /path/YOLOX

Only ``yolox.models`` (and the ``yolox.utils`` box helpers it imports) is needed; the
checkout need not be installed. When ``loguru`` (a dependency of the reference, used there only
for log lines) is missing, a stand-in logger is registered so the import works.
"""
from __future__ import annotations

import importlib
import logging
import sys
import types
from pathlib import Path
from typing import Dict, Optional, Union

import torch
from torch import nn

from openyolox.config import ModelConfig, get_preset
from openyolox.errors import ConfigError

REFERENCE_COMMIT = "6ddff48"


class ReferenceNotFound(ConfigError):
    """The given path holds no importable reference YOLOX (a user error: one line on the CLI)."""


def import_reference(path: Union[str, Path]) -> types.ModuleType:
    """``yolox.models`` of the reference checkout at ``path`` (the folder holding ``yolox/``)."""
    root = Path(path).expanduser().resolve()
    if not (root / "yolox" / "models" / "yolo_head.py").is_file():
        raise ReferenceNotFound(f"{root}: no yolox/models/yolo_head.py there; clone Megvii-BaseDetection/YOLOX "
                                f"at commit {REFERENCE_COMMIT} and pass its folder")
    loaded = sys.modules.get("yolox")
    if loaded is not None and Path(loaded.__file__ or "").resolve().parent != root / "yolox":
        raise ReferenceNotFound(f"another 'yolox' package is already imported from {loaded.__file__}")
    if "loguru" not in sys.modules:
        try:
            importlib.import_module("loguru")
        except ImportError:  # the reference logs through loguru; a plain logger does as well
            sys.modules["loguru"] = types.SimpleNamespace(logger=logging.getLogger("reference_yolox"))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module("yolox.models")


def build_reference_model(models: types.ModuleType, preset: Union[str, ModelConfig], num_classes: int = 80
                          ) -> nn.Module:
    """The reference network of a CSPDarknet preset, set up as the reference's ``Exp.get_model``
    does: BN eps 1e-3 and momentum 0.03, class/objectness biases at the 0.01 prior."""
    cfg = get_preset(preset) if isinstance(preset, str) else preset
    if cfg.backbone != "cspdarknet":
        raise ValueError(f"{cfg.name}: only CSPDarknet models are wired to the reference here")
    in_channels = [256, 512, 1024]
    backbone = models.YOLOPAFPN(cfg.depth, cfg.width, in_channels=in_channels, act=cfg.act,
                                depthwise=cfg.depthwise)
    head = models.YOLOXHead(num_classes, cfg.width, in_channels=in_channels, act=cfg.act, depthwise=cfg.depthwise)
    model = models.YOLOX(backbone, head)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps, m.momentum = 1e-3, 0.03
    model.head.initialize_biases(1e-2)
    return model


def reference_optimizer(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4
                        ) -> torch.optim.SGD:
    """The optimiser of the reference's ``Exp.get_optimizer`` (yolox/exp/yolox_base.py, not part
    of the model package): BN weights without decay, other weights with, biases without; SGD
    Nesterov with PyTorch's default implementation on the CPU (one update per tensor)."""
    bn_weights, weights, biases = [], [], []
    for name, module in model.named_modules():
        if hasattr(module, "bias") and isinstance(module.bias, nn.Parameter):
            biases.append(module.bias)
        if isinstance(module, nn.BatchNorm2d) or "bn" in name:
            bn_weights.append(module.weight)
        elif hasattr(module, "weight") and isinstance(module.weight, nn.Parameter):
            weights.append(module.weight)
    optimizer = torch.optim.SGD(bn_weights, lr=lr, momentum=momentum, nesterov=True)
    optimizer.add_param_group({"params": weights, "weight_decay": weight_decay})
    optimizer.add_param_group({"params": biases})
    return optimizer


def reference_losses(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, use_l1: bool = False
                     ) -> Dict[str, torch.Tensor]:
    """Train-mode forward of the reference with its own loss, keys renamed to ours
    (``conf_loss`` is our ``obj_loss``)."""
    model.head.use_l1 = use_l1
    out = model(images, targets)
    as_tensor = (lambda v: v if torch.is_tensor(v) else torch.tensor(float(v)))
    return {"total_loss": out["total_loss"], "iou_loss": out["iou_loss"], "obj_loss": out["conf_loss"],
            "cls_loss": out["cls_loss"], "l1_loss": as_tensor(out["l1_loss"]), "num_fg": as_tensor(out["num_fg"])}


def reference_head_loss(models: types.ModuleType, outputs: torch.Tensor, raw_reg: torch.Tensor,
                        labels: torch.Tensor, grid_x: torch.Tensor, grid_y: torch.Tensor, strides: torch.Tensor,
                        use_l1: bool, num_classes: Optional[int] = None) -> torch.Tensor:
    """The reference's loss on given head outputs (the golden SimOTA cases): its
    ``YOLOXHead.get_losses`` with the anchors as one level. Returns [total, 5*iou, obj, cls, l1,
    num_fg/num_gt] like the golden files."""
    head = models.YOLOXHead(num_classes or outputs.shape[-1] - 5, 0.25)
    head.use_l1 = use_l1
    dtype = outputs.dtype
    losses = head.get_losses(None, [grid_x[None].to(dtype)], [grid_y[None].to(dtype)], [strides[None].to(dtype)],
                             labels, outputs, [raw_reg], dtype)
    return torch.tensor([float(v) for v in losses], dtype=torch.float64)
