"""Learning-rate schedule, parameter groups and EMA of the YOLOX recipe (docs/yolox.md section 7)."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Dict, Iterable

import torch
from torch import nn


@dataclass(frozen=True)
class WarmCosineSchedule:
    """Quadratic warm-up from 0, cosine down to min_lr_ratio*lr, then flat for the final
    no-augmentation iterations. All counts are in iterations."""

    base_lr: float
    total_iters: int
    warmup_iters: int
    no_aug_iters: int
    min_lr_ratio: float = 0.05
    warmup_lr_start: float = 0.0

    def __call__(self, it: int) -> float:
        min_lr = self.base_lr * self.min_lr_ratio
        if it <= self.warmup_iters:
            if self.warmup_iters == 0:
                return self.base_lr
            return (self.base_lr - self.warmup_lr_start) * (it / self.warmup_iters) ** 2 + self.warmup_lr_start
        if it >= self.total_iters - self.no_aug_iters:
            return min_lr
        span = max(self.total_iters - self.warmup_iters - self.no_aug_iters, 1)
        progress = (it - self.warmup_iters) / span
        return min_lr + 0.5 * (self.base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4
                    ) -> torch.optim.SGD:
    """SGD Nesterov with three groups: BN weights (no decay), conv/linear weights (decay),
    biases (no decay).

    The update runs as one multi-tensor ("foreach") operation per step instead of one call per
    tensor (~300 for yolox-nano); the result is bit-identical, PyTorch picks it by itself only
    on GPUs."""
    bn_weights, weights, biases = [], [], []
    for module in model.modules():  # frozen parameters (requires_grad False) are left out
        if hasattr(module, "bias") and isinstance(module.bias, nn.Parameter) and module.bias.requires_grad:
            biases.append(module.bias)
        weight = getattr(module, "weight", None)
        if not (isinstance(weight, nn.Parameter) and weight.requires_grad):
            continue
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            bn_weights.append(weight)
        else:
            weights.append(weight)
    optimizer = torch.optim.SGD(bn_weights, lr=lr, momentum=momentum, nesterov=True, foreach=True)
    optimizer.add_param_group({"params": weights, "weight_decay": weight_decay})
    optimizer.add_param_group({"params": biases})
    return optimizer


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class ModelEMA:
    """Exponential moving average of every float entry of the state dict.

    decay(updates) = 0.9998 * (1 - exp(-updates / 2000)): close to 0 at the start so the
    average follows the fast-changing early weights, approaching 0.9998 later.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998, ramp: float = 2000.0, updates: int = 0,
                 frozen: Iterable[str] = ()):
        self.ema = copy.deepcopy(unwrap(model)).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay_max, self.ramp, self.updates = decay, ramp, updates
        self.frozen = set(frozen)  # state-dict keys that never change: their copy stays exact
        self._pairs = None  # (source module, its float tensors, ours): see update()

    def decay(self) -> float:
        return self.decay_max * (1 - math.exp(-self.updates / self.ramp))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """ema = d * ema + (1 - d) * model, for every float entry of the state dict, as two
        multi-tensor operations. The tensor lists are made once per source module (state
        dicts alias the live parameters and buffers, which training updates in place);
        building them every step cost more than the update itself."""
        self.updates += 1
        d = self.decay()
        source = unwrap(model)
        if self._pairs is None or self._pairs[0] is not source:
            current = source.state_dict()
            keys = [k for k, v in self.ema.state_dict().items()
                    if v.dtype.is_floating_point and k not in self.frozen]
            self._pairs = (source, [current[k] for k in keys], [self.ema.state_dict()[k] for k in keys])
        _, theirs, ours = self._pairs
        if ours:
            torch._foreach_mul_(ours, d)
            torch._foreach_add_(ours, theirs, alpha=1 - d)

    def state_dict(self) -> Dict:
        return {"model": self.ema.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: Dict) -> None:
        self.ema.load_state_dict(state["model"])  # copies into the same tensors: the lists stay valid
        self.updates = int(state["updates"])


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel / DataParallel."""
    return model.module if hasattr(model, "module") else model
