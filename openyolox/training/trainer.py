"""The YOLOX training loop (docs/yolox.md sections 6-7), top to bottom.

setup: data (checked) -> model (+ fine-tune weights) -> optimiser, schedule, EMA, AMP scaler
loop:  per epoch [switch to no-aug + L1 near the end] -> per batch [lr, multi-scale resize,
       forward+loss, finite check, backward, step, EMA] -> eval (EMA weights) -> checkpoints
end:   final evaluation, predictions, plots, metrics.json; the run folder is returned.

Checkpoints (`last.pth`, `best.pth`) are written atomically and hold everything `--resume`
needs to continue exactly where a run stopped.
"""
from __future__ import annotations

import dataclasses
import math
import random
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from tqdm import tqdm

from openyolox.checkpoint import load_checkpoint, load_weights, save_checkpoint
from openyolox.config import ModelConfig, get_preset
from openyolox.data.checks import check_split, drop_bad_samples
from openyolox.data.dataset import TrainDataset
from openyolox.data.loader import build_train_loader
from openyolox.data.records import DatasetSplit
from openyolox.data.layouts import load_split
from openyolox.errors import CheckpointError, ConfigError, DataError, OpenYoloxError
from openyolox.evaluation.coco import evaluate_coco
from openyolox.evaluation.runner import predict_split
from openyolox.hub import resolve_weights
from openyolox.inference.predictor import Detector
from openyolox.models.yolox import YOLOX, create_model
from openyolox.run_dir import make_run_dir
from openyolox.training.distributed import (DistInfo, any_rank, broadcast_object, gather_objects,
                                            init_distributed, shutdown_distributed)
from openyolox.training.freeze import Freezer
from openyolox.training.logs import RunLogger
from openyolox.training.multiscale import multiscale_size_range, random_size, resize_batch
from openyolox.training.prefetch import Prefetcher
from openyolox.training.recipe import BUILTIN_RECIPE, TrainConfig, recipe_for, resolve_defaults
from openyolox.training.schedule import ModelEMA, WarmCosineSchedule, build_optimizer, set_lr, unwrap
from openyolox.training.step import TrainStep, prepare_model

MULTISCALE_EVERY = 10  # iterations between input-size changes


class NonFiniteLossError(OpenYoloxError):
    """The loss became NaN/inf; the last good weights were saved."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> Dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def prepare_split(data: str, split: str, skip_bad: bool, log) -> DatasetSplit:
    """Load a split and check it; errors stop here (before any training step) unless
    ``skip_bad``, which drops bad boxes/images and says how many."""
    ds = load_split(data, split)
    report = check_split(ds)
    repaired = [i for i in report.warnings if i.kind == "image-truncated-trailer"]
    if repaired:  # used as they are: every pixel decodes (`openyolox check-data --fix-out` rewrites them)
        log(f"warning: {len(repaired)} image(s) in the {split} split lack their JPEG end marker but decode whole; "
            f"training uses them (e.g. {repaired[0].path})")
    if report.errors:
        if not skip_bad:
            raise DataError(f"{len(report.errors)} problem(s) in the {split} split of {data}:\n"
                            f"{report.summary()}\nfix them, or pass --skip-bad to train on the valid part")
        ds, n_img, n_box = drop_bad_samples(ds, report)
        log(f"warning: --skip-bad: dropped {n_img} image(s) and {n_box} box(es) from the {split} split "
            f"({len(report.errors)} problem(s))")
    if len(ds) == 0:
        raise DataError(f"the {split} split of {data} has no usable images")
    return ds


class Trainer:
    """One training run. ``Trainer(cfg).run()`` returns the run folder."""

    def __init__(self, cfg: TrainConfig, resume: Optional[str] = None):
        self.dist: DistInfo = init_distributed(cfg.device)
        self.resume_state: Optional[Dict[str, Any]] = None
        if resume:
            self.resume_state = self._read_resume(resume)
            known = {f.name for f in dataclasses.fields(TrainConfig)}
            stored = {k: v for k, v in self.resume_state["train_config"].items() if k in known}
            stored.update(device=cfg.device, workers=cfg.workers, progress=cfg.progress)
            cfg = TrainConfig(**stored)
            cfg.out = str(self.resume_dir)
        self.cfg = resolve_defaults(cfg)
        self.preset: ModelConfig = get_preset(self.cfg.model)
        self.device = torch.device(self._device_name())
        if self.cfg.amp and self.device.type != "cuda":
            self.log("warning: --amp needs CUDA; training in float32 on the CPU (--bf16 is the CPU's mixed precision)")
            self.cfg.amp = False
        if self.cfg.amp and self.cfg.bf16:
            raise ConfigError("--amp (float16) and --bf16 exclude each other; choose one")
        self.imgsz: Tuple[int, int] = (self.cfg.imgsz, self.cfg.imgsz)

        # made by setup()
        self.run_dir: Optional[Path] = None
        self.created_run_dir = False           # this run made run_dir (so a failed start may remove it)
        self.train_split: Optional[DatasetSplit] = None
        self.val_split: Optional[DatasetSplit] = None
        self.class_names: List[str] = []
        self.model: Any = None                 # YOLOX, or DistributedDataParallel around it
        self.dataset: Optional[TrainDataset] = None
        self.loader: Any = None
        self.iters_per_epoch = 0
        self.optimizer: Optional[torch.optim.Optimizer] = None
        self.schedule: Optional[WarmCosineSchedule] = None
        self.ema: Optional[ModelEMA] = None
        self.scaler: Optional[torch.amp.GradScaler] = None
        self.step: Optional[TrainStep] = None  # forward+loss, backward+optimiser+EMA (training/step.py)
        self.size_range: Optional[Tuple[int, int]] = None   # multi-scale (min, max) pixels, or None
        self.logger: Optional[RunLogger] = None
        self.freezer: Optional[Freezer] = None

        # progress (saved in checkpoints)
        self.epoch, self.iteration, self.best_ap = 0, 0, -1.0
        self.history: List[Dict[str, Any]] = []
        self.use_l1 = False                    # the L1 term is on in the no-aug phase
        self.start_time = 0.0
        self.last_metrics: Optional[Dict[str, Any]] = None      # of the latest evaluation
        self.last_predictions: Optional[Dict[Any, Any]] = None
        self.last_eval_images = 0
        self._size_block, self._size = -1, self.imgsz   # multi-scale: the current block and size
        self.dropped_images: set = set()       # files that failed to read mid-run (replaced, logged once)

    # ------------------------------------------------------------------ setup

    def _device_name(self) -> str:
        dev = self.cfg.device
        if dev.startswith("cuda"):
            if not torch.cuda.is_available():
                raise ConfigError(f"--device {dev}: CUDA is not available; use --device cpu")
            return f"cuda:{self.dist.local_rank}" if self.dist.enabled else dev
        if dev != "cpu":
            raise ConfigError(f"--device {dev}: expected cpu, cuda or cuda:N")
        return "cpu"

    def _read_resume(self, resume: str) -> Dict[str, Any]:
        path = Path(resume)
        path = path / "last.pth" if path.is_dir() else path
        if not path.is_file():
            raise CheckpointError(f"{path}: nothing to resume (no last.pth in the run folder)")
        state = load_checkpoint(path)
        if "train_config" not in state or "optimizer" not in state:
            raise CheckpointError(f"{path}: not an openyolox training checkpoint (no optimizer/config); "
                                  f"use --weights to fine-tune from it instead")
        self.resume_dir = path.parent
        return state

    def log(self, msg: str) -> None:
        if self.dist.is_main:
            tqdm.write(msg, file=sys.stderr)

    def setup(self) -> None:
        cfg = self.cfg
        self.run_dir = self._make_run_dir()  # first: an unwritable --out fails before any work
        seed_everything(cfg.seed + self.dist.rank)
        self.train_split = prepare_split(cfg.data, "train", cfg.skip_bad, self.log)
        self.val_split = prepare_split(cfg.data, "val", cfg.skip_bad, self.log)
        self.class_names = list(self.train_split.class_names)

        model = create_model(self.preset, len(self.class_names))
        if self.resume_state is None:
            # custom data starts from the published COCO weights unless --weights says otherwise;
            # the built-in set trains from scratch (no network needed for the main job)
            weights = resolve_weights(cfg.model, cfg.weights, fetch_if_none=recipe_for(cfg) is not BUILTIN_RECIPE,
                                      progress=self.dist.is_main)
            if weights is not None:
                self._load_finetune_weights(model, str(weights))
            else:
                self.log("training from scratch (random initial weights)")
        self.freezer = Freezer(model, cfg.freeze)
        self.log(self.freezer.describe())
        self.model = prepare_model(model, self.device, cfg.channels_last)
        if self.dist.enabled:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

        per_rank = max(1, cfg.batch // self.dist.world_size)
        self.dataset = TrainDataset.from_config(self.train_split, self.preset, self.imgsz, cache=cfg.cache,
                                                seed=cfg.seed)
        self.loader = build_train_loader(self.dataset, per_rank, workers=cfg.workers, shuffle=True,
                                         seed=cfg.seed, distributed=self.dist.enabled, drop_last=False)
        self.iters_per_epoch = len(self.loader)
        lr = cfg.lr_per_image * cfg.batch
        self.optimizer = build_optimizer(unwrap(self.model), lr, cfg.momentum, cfg.weight_decay)
        self.schedule = WarmCosineSchedule(lr, cfg.epochs * self.iters_per_epoch,
                                           cfg.warmup_epochs * self.iters_per_epoch,
                                           cfg.no_aug_epochs * self.iters_per_epoch, cfg.min_lr_ratio)
        self.ema = ModelEMA(self.model, frozen=self.freezer.keys) if cfg.ema else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp)
        self.step = TrainStep(self.model, self.optimizer, self.ema, self.device, amp=cfg.amp, bf16=cfg.bf16,
                              channels_last=cfg.channels_last, compile=cfg.compile, scaler=self.scaler)
        self.size_range = (multiscale_size_range(self.preset, self.imgsz) if cfg.multiscale else None)
        if self.resume_state is not None:
            self._restore(self.resume_state)
        self.logger = RunLogger(self.run_dir, enabled=self.dist.is_main)

    def _load_finetune_weights(self, model: YOLOX, path: str) -> None:
        report = load_weights(model, path, strict=False)
        cls_layers = [k for k, _, _ in report.mismatched if k.startswith("head.cls_preds")]
        if cls_layers:
            self.log(f"fine-tuning: re-initialised the class prediction layers ({len(cls_layers)} tensors): "
                     f"the checkpoint predicts another number of classes than the {model.num_classes} here")
        others = [k for k, _, _ in report.mismatched if not k.startswith("head.cls_preds")]
        if others or report.missing or report.unexpected:
            raise CheckpointError(f"{path} does not fit {self.cfg.model} beyond the class layers: "
                                  f"{report.describe()}")
        self.log(f"loaded {report.loaded} tensors from {path}")

    def _make_run_dir(self) -> Path:
        """Rank 0 creates the folder; every rank gets its path."""
        self.created_run_dir = not (self.cfg.out and Path(self.cfg.out).exists())
        path = make_run_dir(self.cfg.out, "train") if self.dist.is_main else None
        return Path(broadcast_object(str(path) if path else None, self.dist))

    def _remove_empty_run_dir(self) -> None:
        """After a failure: a folder this run created and left with nothing in it (only empty
        sub-folders, e.g. a failure before the first checkpoint) is removed."""
        run_dir = self.run_dir
        if not (self.dist.is_main and run_dir is not None and self.created_run_dir and run_dir.is_dir()):
            return
        if any(p.is_file() for p in run_dir.rglob("*")):
            return
        shutil.rmtree(run_dir, ignore_errors=True)

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint_payload(self) -> Dict[str, Any]:
        model = unwrap(self.model)
        return {
            "model": (self.ema.ema if self.ema else model).state_dict(),
            "model_name": self.preset.name, "class_names": self.class_names,
            "category_ids": list(self.train_split.category_ids), "imgsz": list(self.imgsz),
            "epoch": self.epoch, "iteration": self.iteration, "best_ap": self.best_ap,
            "train_model": model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None, "scaler": self.scaler.state_dict(),
            "rng": rng_state(), "train_config": dataclasses.asdict(self.cfg), "history": self.history,
        }

    def save(self, name: str = "last.pth", payload: Optional[Dict[str, Any]] = None) -> Optional[Path]:
        if not self.dist.is_main:
            return None
        payload = payload or self._checkpoint_payload()
        for key in ("model", "train_model"):
            if not all(torch.isfinite(v).all() for v in payload[key].values() if v.dtype.is_floating_point):
                raise NonFiniteLossError(f"refusing to write non-finite weights to {self.run_dir / name}")
        return save_checkpoint(self.run_dir / name, payload)

    def _restore(self, state: Dict[str, Any]) -> None:
        unwrap(self.model).load_state_dict(state["train_model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        self.iteration = int(state["iteration"])
        self.epoch = self.iteration // self.iters_per_epoch
        self.best_ap = float(state["best_ap"])
        self.history = list(state.get("history", []))
        self.log(f"resuming at epoch {self.epoch + 1}, iteration {self.iteration}")

    # ------------------------------------------------------------------ the loop

    def in_no_aug_phase(self, epoch: int) -> bool:
        return epoch >= self.cfg.epochs - self.cfg.no_aug_epochs

    def run(self) -> Path:
        try:
            self.setup()
            self.log(f"training {self.cfg.model} on {self.cfg.data}: {len(self.train_split)} train / "
                     f"{len(self.val_split)} val images, {len(self.class_names)} classes, {self.cfg.epochs} epochs "
                     f"x {self.iters_per_epoch} iterations, batch {self.cfg.batch}, {self.imgsz[0]} px, "
                     f"{self.device}" + (f" x {self.dist.world_size} processes" if self.dist.enabled else ""))
            self.start_time = time.time()
            while self.epoch < self.cfg.epochs:
                self.train_epoch()
            self.finish()
            return self.run_dir
        except BaseException:
            self._remove_empty_run_dir()  # a run that failed before writing anything leaves no folder
            raise
        finally:
            shutdown_distributed(self.dist)

    def train_epoch(self) -> None:
        cfg, epoch = self.cfg, self.epoch
        no_aug = self.in_no_aug_phase(epoch)
        self.dataset.set_aug(not no_aug)
        self.use_l1 = no_aug
        self.dataset.set_epoch(epoch)
        if no_aug and epoch == cfg.epochs - cfg.no_aug_epochs:
            self.log(f"epoch {epoch + 1}: mosaic/mixup/affine off, L1 loss on (last {cfg.no_aug_epochs} epochs)")
        self.model.train()
        self.freezer.keep_frozen_bn_in_eval()
        skip = self.iteration - epoch * self.iters_per_epoch  # batches already done (resume mid-epoch)
        sums: Dict[str, float] = {}
        seen, t_epoch = 0, time.time()
        bar = tqdm(total=self.iters_per_epoch, initial=skip, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (cfg.progress and self.dist.is_main), file=sys.stderr, dynamic_ncols=True)
        # in-process loading (no workers): the next batch is made in a thread during this step
        batches = Prefetcher(self.loader) if self.loader.num_workers == 0 else nullcontext(self.loader)
        with batches:
            for i, batch in enumerate(batches):
                if i < skip:
                    continue
                losses = self.train_step(batch)
                self._log_dropped(batch.dropped)
                n = batch.images.shape[0]
                seen += n * self.dist.world_size
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                if self.dist.is_main and (self.iteration % 10 == 0 or i == self.iters_per_epoch - 1):
                    self.logger.scalars("train", {**losses, "lr": self.optimizer.param_groups[0]["lr"]},
                                        self.iteration)
                bar.set_postfix(loss=f"{losses['total_loss']:.2f}", iou=f"{losses['iou_loss']:.2f}",
                                obj=f"{losses['obj_loss']:.2f}", cls=f"{losses['cls_loss']:.2f}",
                                lr=f"{self.optimizer.param_groups[0]['lr']:.2e}",
                                img_s=f"{seen / max(time.time() - t_epoch, 1e-9):.1f}",
                                eta=self._eta(), refresh=False)
                bar.update(1)
                if cfg.save_every and self.iteration % cfg.save_every == 0:
                    self.save("last.pth")
        bar.close()
        self.epoch += 1
        steps = max(self.iters_per_epoch - skip, 1)
        record: Dict[str, Any] = {"epoch": self.epoch, **{k: v / steps for k, v in sums.items()},
                                  "lr": self.optimizer.param_groups[0]["lr"], "epoch_time_s": time.time() - t_epoch}
        improved = False
        if self._should_evaluate(self.epoch):
            metrics = self.evaluate()
            record.update(AP50_95=metrics.get("AP50_95"), AP50=metrics.get("AP50"))
            ap = metrics.get("AP50_95") or 0.0
            self.log(f"epoch {self.epoch}: AP50_95 {ap:.4f}  AP50 {metrics.get('AP50') or 0.0:.4f}")
            improved = ap > self.best_ap
            self.best_ap = max(self.best_ap, ap)
        self.history.append(record)
        self.logger.epoch(record)
        payload = self._checkpoint_payload() if self.dist.is_main else None
        if improved:
            self.save("best.pth", payload)
        self.save("last.pth", payload)

    def _log_dropped(self, paths) -> None:
        """An image that fails to read mid-run never stops the run: the dataset replaces it by
        the next readable one and reports it (each worker once); say so, once per file."""
        new = [p for p in paths if p not in self.dropped_images]
        if new:
            self.dropped_images.update(new)
            self.log(f"warning: dropped {len(new)} unreadable image(s), replaced by the next readable ones "
                     f"({len(self.dropped_images)} so far): {', '.join(map(str, new))}")

    def _should_evaluate(self, epoch_done: int) -> bool:
        return (epoch_done % self.cfg.eval_interval == 0 or self.in_no_aug_phase(epoch_done - 1)
                or epoch_done == self.cfg.epochs)

    def _eta(self) -> str:
        done = self.iteration - (self.resume_state or {}).get("iteration", 0)
        left = self.cfg.epochs * self.iters_per_epoch - self.iteration
        if done <= 0:
            return "?"
        secs = (time.time() - self.start_time) / done * left
        return f"{int(secs // 3600)}:{int(secs % 3600 // 60):02d}:{int(secs % 60):02d}"

    def train_step(self, batch) -> Dict[str, float]:
        it = self.iteration
        set_lr(self.optimizer, self.schedule(it))
        images = batch.images.to(self.device, non_blocking=True).float()
        targets = batch.targets.to(self.device, non_blocking=True)
        if self.size_range is not None:
            images, targets = resize_batch(images, targets, self._multiscale_size(it))
        losses = self.step.losses(images, targets, use_l1=self.use_l1)
        # one host read for every logged value (on a GPU each read waits for the step so far)
        values = dict(zip(losses, torch.stack([v.detach().float() for v in losses.values()]).tolist()))
        if any_rank(not math.isfinite(values["total_loss"]), self.dist):
            self._stop_non_finite(batch, losses)
        self.step.update(losses["total_loss"])
        self.iteration += 1
        return values

    def _multiscale_size(self, it: int):
        """Multi-scale: a new size every MULTISCALE_EVERY iterations, drawn on rank 0 from an
        RNG that depends only on (seed, iteration block), and broadcast to every rank."""
        block = it // MULTISCALE_EVERY
        if self._size_block != block:
            rng = np.random.default_rng([self.cfg.seed, block, 7])
            size = random_size(rng, self.imgsz, self.preset.multiscale_range, self.size_range)
            self._size = tuple(broadcast_object(size, self.dist))
            self._size_block = block
        return self._size

    def _stop_non_finite(self, batch, losses: Dict[str, torch.Tensor]) -> None:
        in_epoch = self.iteration - self.epoch * self.iters_per_epoch
        where = self.save("last.pth")  # the weights before this step are still the last good ones
        parts = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in losses.items())
        raise NonFiniteLossError(
            f"non-finite loss at epoch {self.epoch + 1}, iteration {in_epoch + 1} (global {self.iteration + 1}) "
            f"on images {list(batch.image_ids)}: {parts}. The last good weights are in {where}; lower the "
            f"learning rate or check these images' labels, then --resume {self.run_dir}")

    # ------------------------------------------------------------------ evaluation

    def evaluate(self) -> Dict[str, Any]:
        """COCO metrics of the EMA weights on the val split (all ranks predict their shard),
        through the same prediction step as ``openyolox val``."""
        model = self.ema.ema if self.ema else unwrap(self.model)
        was_training = model.training
        detector = Detector(model, device=str(self.device), conf=0.01, iou=0.65, imgsz=self.imgsz,
                            names=self.class_names, fuse=False, amp=self.cfg.amp)
        try:
            preds = predict_split(detector, self.val_split, batch_size=self.cfg.eval_batch,
                                  workers=min(self.cfg.workers, 2), distributed=self.dist.enabled,
                                  progress=self.cfg.progress and self.dist.is_main)
        finally:
            model.train(was_training)
            if was_training:
                self.freezer.keep_frozen_bn_in_eval()
        merged: Dict[Any, Any] = {}
        parts = gather_objects(preds, self.dist)
        for part in parts:
            merged.update(part)
        self.last_eval_images = sum(len(part) for part in parts)  # == len(split): each image once
        self.last_predictions = merged
        self.last_metrics = evaluate_coco(self.val_split, merged) if self.dist.is_main else {}
        return self.last_metrics

    def finish(self) -> None:
        """Final evaluation with the best weights' run state, predictions, plots, metrics.json."""
        # the last epoch always evaluates (see _should_evaluate), except when a resumed run
        # had nothing left to train; the same decision on every rank (evaluate is collective)
        metrics = self.last_metrics if self.last_metrics is not None else self.evaluate()
        if not self.dist.is_main:
            return
        self.logger.finish(self.val_split, self.last_predictions, metrics, self.history,
                           extra={"best_AP50_95": self.best_ap, "epochs": self.cfg.epochs,
                                  "val_images_predicted": self.last_eval_images,
                                  "train_time_s": round(time.time() - self.start_time, 1)})
        self.log(f"final: AP50_95 {metrics.get('AP50_95') or 0:.4f}  AP50 {metrics.get('AP50') or 0:.4f}  "
                 f"(best checkpoint {self.run_dir / 'best.pth'})")


def train(cfg: Optional[TrainConfig] = None, resume: Optional[str] = None, **kwargs) -> Path:
    """Train YOLOX; returns the run folder. Keyword arguments are TrainConfig fields."""
    cfg = dataclasses.replace(cfg, **kwargs) if cfg else TrainConfig(**kwargs)
    return Trainer(cfg, resume=resume).run()
