"""Freezing the first part of a network for fine-tuning (``--freeze backbone|neck|N``).

A frozen module keeps its weights and its batch-norm statistics exactly: its parameters get
no gradient (so the optimiser never touches them, weight decay included), and its batch norms
stay in eval mode while the rest trains (so their running mean and variance are not updated
by the new data). The EMA copy of a frozen tensor stays equal to it bit for bit.

What can be frozen, in forward order (the network's "blocks"):
  backbone: stem, dark2, dark3, dark4, dark5 (CSPDarknet or Darknet-53);
  neck:     the backbone, then the neck's own modules (PAFPN or FPN), everything before the head;
  N:        the first N blocks of that order (1..5 stay inside the backbone).
"""
from __future__ import annotations

from typing import List, Optional, Set, Tuple

from torch import nn

from openyolox.errors import ConfigError
from openyolox.models.yolox import YOLOX

BACKBONE_STAGES = ("stem", "dark2", "dark3", "dark4", "dark5")


def blocks(model: YOLOX) -> List[Tuple[str, nn.Module]]:
    """(state-dict prefix, module) of every freezable block, in forward order."""
    neck = model.backbone
    out = [(f"backbone.backbone.{name}", getattr(neck.backbone, name)) for name in BACKBONE_STAGES]
    out += [(f"backbone.{name}", m) for name, m in neck.named_children()
            if name != "backbone" and any(True for _ in m.parameters())]
    return out


def frozen_blocks(model: YOLOX, spec: Optional[str]) -> List[Tuple[str, nn.Module]]:
    """The blocks ``spec`` names: None/"" nothing, "backbone", "neck" or a count N."""
    if not spec:
        return []
    order = blocks(model)
    if spec == "backbone":
        return order[:len(BACKBONE_STAGES)]
    if spec == "neck":
        return order
    try:
        n = int(spec)
    except ValueError:
        raise ConfigError(f"--freeze {spec}: expected backbone, neck or a number of blocks 1..{len(order)}") from None
    if not 1 <= n <= len(order):
        raise ConfigError(f"--freeze {n}: the model has {len(order)} freezable blocks "
                          f"({', '.join(p.rsplit('.', 1)[-1] for p, _ in order)}); use 1..{len(order)}")
    return order[:n]


class Freezer:
    """Applies a freeze to a model and keeps it applied across ``model.train()`` calls."""

    def __init__(self, model: YOLOX, spec: Optional[str]):
        self.blocks = frozen_blocks(model, spec)
        self.keys: Set[str] = set()
        for prefix, module in self.blocks:
            for name, p in module.named_parameters():
                p.requires_grad_(False)
                self.keys.add(f"{prefix}.{name}")
            self.keys.update(f"{prefix}.{name}" for name, _ in module.named_buffers())
        self.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.total = sum(p.numel() for p in model.parameters())

    def keep_frozen_bn_in_eval(self) -> None:
        """Call after every ``model.train()``: frozen blocks go back to eval mode (batch norm
        uses and keeps its stored statistics)."""
        for _, module in self.blocks:
            module.eval()

    def describe(self) -> str:
        if not self.blocks:
            return f"{self.trainable:,} trainable parameters"
        names = ", ".join(p.replace("backbone.backbone.", "").replace("backbone.", "") for p, _ in self.blocks)
        return (f"frozen: {names}; {self.trainable:,} of {self.total:,} parameters trainable "
                f"({100 * self.trainable / max(self.total, 1):.0f}%)")
