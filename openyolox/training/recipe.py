"""What a training run is asked to do (:class:`TrainConfig`) and the recipe that fills in
whatever the user left unset (:func:`resolve_defaults`).

Three recipes (docs/yolox.md section 7):

- the report's, for training from scratch on real data: 300 epochs, batch 64, lr 0.01 per 64
  images, warm-up 5 epochs, 15 final epochs without mosaic/mixup, evaluation every 10 epochs,
  multi-scale;
- fine-tuning published weights on your data (FINETUNE_RECIPE), the default for real data;
- a short CPU schedule for the built-in synthetic set (BUILTIN_RECIPE).

The epoch counts derived from the recipe (warm-up, no-aug, evaluation interval) scale with
the ``epochs`` the run actually has, down to 1 epoch, so that no value the user did not set
can contradict one they did. Only a contradiction between values the user gave is an error,
and its message names those options.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional

from openyolox.config import check_image_size, get_preset
from openyolox.errors import ConfigError

BASIC_LR_PER_IMAGE = 0.01 / 64  # the report: lr 0.01 at batch 64


@dataclass
class TrainConfig:
    """Everything a run needs; plain values, stored in every checkpoint.

    None means "the recipe's value for this model and dataset" (see :func:`resolve_defaults`).
    """

    model: str = "yolox-nano"
    data: str = "builtin"
    epochs: Optional[int] = None
    batch: Optional[int] = None            # total over all processes
    imgsz: Optional[int] = None
    weights: Optional[str] = None
    device: str = "cpu"
    amp: bool = False                      # float16 autocast + gradient scaler (CUDA)
    bf16: bool = False                     # bfloat16 autocast for the network (opt-in; see docs/benchmarks.md)
    channels_last: bool = True             # NHWC activations: every conv in oneDNN on the CPU
    compile: bool = False                  # torch.compile the network's forward (opt-in; slower on CPU)
    workers: Optional[int] = None          # None: 0 on a CPU with <= 4 cores, else up to 8
    cache: Optional[str] = None
    out: Optional[str] = None
    seed: int = 0
    warmup_epochs: Optional[int] = None
    no_aug_epochs: Optional[int] = None
    eval_interval: Optional[int] = None
    lr_per_image: Optional[float] = None
    min_lr_ratio: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    multiscale: Optional[bool] = None
    ema: bool = True
    skip_bad: bool = False
    freeze: Optional[str] = None           # "backbone", "neck" or a number of blocks (training/freeze.py)
    save_every: int = 0                    # also checkpoint every N iterations (0: per epoch only)
    eval_batch: int = 16
    progress: bool = True


@dataclass(frozen=True)
class Recipe:
    """Default values of one recipe. The three epoch counts are those of a run of ``epochs``
    epochs, and are scaled for runs of another length."""

    epochs: int
    batch: int
    lr_per_image: float
    multiscale: bool
    warmup_epochs: int
    no_aug_epochs: int
    eval_interval: int
    imgsz: Optional[int] = None            # None: the model's test size


REPORT_RECIPE = Recipe(epochs=300, batch=64, lr_per_image=BASIC_LR_PER_IMAGE, multiscale=True,
                       warmup_epochs=5, no_aug_epochs=15, eval_interval=10)

# The built-in synthetic set: the main job (`openyolox train`, no arguments), ~7.5 minutes on 2
# CPU cores. From scratch in ~1,300 steps the reference's 0.01 per 64 images is far too slow:
# 0.01 per 16 left AP50 at 0.43 after 15 epochs, 0.02 per 16 learns the classes ~2.5x faster.
# 17 epochs at 256 px (measured in docs/benchmarks.md, "The main job"): AP50 0.621 in 7.6 min,
# where the old default (18 epochs at 320 px, before the step speed-ups) gave 0.594 in 15.8 min;
# 14 epochs at 288 px gave only 0.443 (7.3 min).
# Evaluation every 7 epochs and in each no-aug epoch.
BUILTIN_RECIPE = Recipe(epochs=17, batch=16, lr_per_image=0.02 / 16, multiscale=False,
                        warmup_epochs=1, no_aug_epochs=3, eval_interval=7, imgsz=256)

# Fine-tuning published (COCO) weights on a few hundred images of your own, the usual budget
# being 20-100 epochs: the network already detects, so the warm-up is short (1 epoch: the
# re-initialised class layers and BN statistics settle in a few dozen steps), the batch is 16
# (a batch of 64 would leave a few hundred images a handful of steps per epoch), the lr per
# image is the report's, the last 10% of the epochs run without mosaic (the report's 15 of 300
# is 5%; short runs profit from more clean-image epochs at the end), and evaluation comes every
# 5 epochs. Measured against training from scratch: docs/benchmarks.md, "Fine-tuning".
FINETUNE_RECIPE = Recipe(epochs=50, batch=16, lr_per_image=BASIC_LR_PER_IMAGE, multiscale=True,
                         warmup_epochs=1, no_aug_epochs=5, eval_interval=5)

# option name on the command line, for error messages
FLAGS = {"epochs": "--epochs", "warmup_epochs": "--warmup-epochs", "no_aug_epochs": "--no-aug-epochs",
         "eval_interval": "--eval-interval", "batch": "--batch"}


def recipe_for(cfg: TrainConfig) -> Recipe:
    """The built-in set's recipe; for other data, the fine-tuning recipe when the run starts
    from weights (the default: the published weights of the model) and the report's when it
    trains from scratch (``--weights none``)."""
    if str(cfg.data).strip().lower() == "builtin":
        return BUILTIN_RECIPE
    from_scratch = cfg.weights is not None and str(cfg.weights).strip().lower() == "none"
    return REPORT_RECIPE if from_scratch else FINETUNE_RECIPE


def scaled_epochs(recipe: Recipe, epochs: int, warmup: Optional[int], no_aug: Optional[int],
                  eval_interval: Optional[int]) -> Dict[str, int]:
    """Warm-up, no-aug and evaluation-interval epochs for a run of ``epochs`` epochs: the
    values given (not None) are kept; the others are the recipe's, scaled by
    epochs / recipe.epochs and fitted around the given ones.

    A run of one epoch has no no-aug phase; a longer one keeps at least one augmented epoch
    and at least one no-aug epoch. The warm-up takes at least one epoch and never reaches
    into the no-aug phase.
    """
    scale = epochs / recipe.epochs
    if no_aug is None:
        no_aug = 0 if epochs == 1 else min(max(1, round(recipe.no_aug_epochs * scale)), epochs - 1)
    if warmup is None:
        warmup = max(1, min(round(recipe.warmup_epochs * scale), max(epochs - no_aug, 1)))
    if eval_interval is None:
        eval_interval = max(1, min(round(recipe.eval_interval * scale), recipe.eval_interval))
    return {"warmup_epochs": warmup, "no_aug_epochs": no_aug, "eval_interval": eval_interval}


def default_workers(device: str) -> int:
    """Loader processes. On a small CPU-only machine the training step itself uses every core,
    and extra processes only make the OpenMP threads wait (augmenting a batch costs ~5% of
    a CPU step), so load in-process there."""
    cores = os.cpu_count() or 1
    if device == "cpu" and cores <= 4:
        return 0
    return min(8, max(1, cores // 2))


def resolve_defaults(cfg: TrainConfig) -> TrainConfig:
    """A copy of ``cfg`` with every None filled from the recipe (see the module doc).

    Raises ConfigError, naming the options, when values the user gave contradict each other
    or are out of range."""
    recipe = recipe_for(cfg)
    given = {k for k, v in dataclasses.asdict(cfg).items() if v is not None}
    values: Dict[str, Any] = dataclasses.asdict(cfg)
    for key in ("epochs", "batch", "lr_per_image", "multiscale"):
        if values[key] is None:
            values[key] = getattr(recipe, key)
    if values["imgsz"] is None:
        values["imgsz"] = recipe.imgsz or get_preset(cfg.model).test_size[0]
    for key in ("epochs", "batch"):
        if values[key] < 1:
            raise ConfigError(f"{FLAGS[key]} must be >= 1, got {values[key]}")
    for key in ("warmup_epochs", "no_aug_epochs"):
        if values[key] is not None and values[key] < 0:
            raise ConfigError(f"{FLAGS[key]} must be >= 0, got {values[key]}")
    if values["eval_interval"] is not None and values["eval_interval"] < 1:
        raise ConfigError(f"--eval-interval must be >= 1, got {values['eval_interval']}")
    epochs = values["epochs"]
    for key in ("warmup_epochs", "no_aug_epochs"):
        if key in given and values[key] > epochs:
            source = f"{FLAGS['epochs']} {epochs}" if "epochs" in given else \
                f"the default {epochs} epochs (set {FLAGS['epochs']})"
            raise ConfigError(f"{FLAGS[key]} {values[key]} is longer than the run: {source}")
    values.update(scaled_epochs(recipe, epochs, values["warmup_epochs"], values["no_aug_epochs"],
                                values["eval_interval"]))
    if values["workers"] is None:
        values["workers"] = default_workers(values["device"])
    check_image_size(values["imgsz"])
    return TrainConfig(**values)


__all__ = ["BASIC_LR_PER_IMAGE", "BUILTIN_RECIPE", "FINETUNE_RECIPE", "REPORT_RECIPE", "Recipe", "TrainConfig", "default_workers",
           "resolve_defaults", "scaled_epochs"]
