"""Throughput of one training step: forward + SimOTA + loss + backward + optimiser step + EMA
update, the trainer's own code (openyolox/training/step.py).

Random images and random-but-plausible labels (``gts`` boxes per image); the same batch is
reused so only the model and loss are timed, not data loading. Used by
`openyolox benchmark train-step` and benchmarks/train_step.py.
"""
from __future__ import annotations

import statistics
import time
from typing import Dict, Optional

import torch

from openyolox.models.yolox import YOLOX, create_model
from openyolox.training.schedule import ModelEMA, build_optimizer
from openyolox.training.step import TrainStep, prepare_model


def random_targets(gen: torch.Generator, batch: int, gts: int, size: int, num_classes: int,
                   max_labels: int = 120) -> torch.Tensor:
    """(B, max(gts, max_labels), 5) rows (class, cx, cy, w, h) in pixels, zero-padded."""
    rows = max(gts, max_labels)
    t = torch.zeros(batch, rows, 5)
    wh = (torch.rand(batch, gts, 2, generator=gen) * 0.3 + 0.02) * size
    cxy = wh / 2 + torch.rand(batch, gts, 2, generator=gen) * (size - wh)
    t[:, :gts, 0] = torch.randint(0, num_classes, (batch, gts), generator=gen).float()
    t[:, :gts, 1:3] = cxy
    t[:, :gts, 3:5] = wh
    return t


def build_step(model: str = "yolox-nano", num_classes: int = 80, device: str = "cpu", amp: bool = False,
               bf16: bool = False, channels_last: bool = False, compile: bool = False, batch: int = 8,
               net: Optional[YOLOX] = None) -> TrainStep:
    """A training step as the trainer builds it: network prepared for ``channels_last``, SGD
    with the recipe's parameter groups (lr 0.01/64 per image), EMA."""
    dev = torch.device(device)
    net = prepare_model(net or create_model(model, num_classes), dev, channels_last).train()
    optimizer = build_optimizer(net, 0.01 / 64 * batch)
    return TrainStep(net, optimizer, ModelEMA(net), dev, amp=amp, bf16=bf16, channels_last=channels_last,
                     compile=compile)


def benchmark_train_step(model: str = "yolox-nano", imgsz: int = 416, batch: int = 8, gts: int = 30,
                         iters: int = 10, warmup: int = 2, device: str = "cpu", amp: bool = False,
                         num_classes: int = 80, seed: int = 0, net: Optional[YOLOX] = None,
                         channels_last: bool = True, bf16: bool = False, compile: bool = False
                         ) -> Dict[str, object]:
    """Median time of a full training step; returns {"images_per_s", "ms_per_step", ...}.
    ``net`` reuses a built network."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    dev = torch.device(device)
    step = build_step(model, num_classes, device, amp=amp, bf16=bf16, channels_last=channels_last,
                      compile=compile, batch=batch, net=net)
    images = (torch.rand(batch, 3, imgsz, imgsz, generator=gen) * 255).to(dev)
    targets = random_targets(gen, batch, gts, imgsz, num_classes).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + iters):
        sync()
        t0 = time.perf_counter()
        step(images, targets)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    ms = 1000 * statistics.median(times)
    return {"model": model, "imgsz": imgsz, "batch": batch, "gts": gts, "device": str(dev), "amp": amp,
            "bf16": bf16, "channels_last": channels_last, "compile": compile,
            "ms_per_step": round(ms, 1), "images_per_s": round(batch * 1000 / ms, 1),
            "threads": torch.get_num_threads(), "iters": iters}


# --------------------------------------------------------------------------- against the reference


def machine_description() -> str:
    """CPU model, cores, torch version and threads, for the record next to a timing."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
            + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))


def _reference_step(models, ref_net, images: torch.Tensor, targets: torch.Tensor, amp: bool):
    """The reference trainer's iteration (yolox/core/trainer.py train_one_iter): model(images,
    targets) -> total_loss, zero_grad, (scaled) backward, SGD step, its ModelEMA update."""
    from yolox.utils.ema import ModelEMA as ReferenceEMA  # the reference's own EMA

    from openyolox.bench.reference import reference_optimizer

    optimizer = reference_optimizer(ref_net, 0.01 / 64 * images.shape[0])
    ema = ReferenceEMA(ref_net, 0.9998)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def run():
        with torch.autocast(device_type=images.device.type, dtype=torch.float16, enabled=amp):
            outputs = ref_net(images, targets)
        optimizer.zero_grad()
        scaler.scale(outputs["total_loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        ema.update(ref_net)
        return outputs

    return run


def loss_and_gradient_agreement(ours: TrainStep, ref_net, images: torch.Tensor, targets: torch.Tensor
                                ) -> Dict[str, float]:
    """Losses and gradients of our step and the reference's on the same weights and inputs
    (one forward + backward each, no optimiser step): the largest relative difference of the
    loss terms, and of the gradients (per tensor ||g_ours - g_ref|| / ||g_ref||, the worst
    tensor)."""
    from openyolox.bench.reference import reference_losses

    net = ours.model
    net.zero_grad(set_to_none=True)
    ref_net.zero_grad(set_to_none=True)
    mine = ours.losses(images, targets)
    mine["total_loss"].backward()
    theirs = reference_losses(ref_net, images, targets)
    theirs["total_loss"].backward()
    mine = {k: v.detach() for k, v in mine.items()}
    theirs = {k: v.detach() for k, v in theirs.items()}
    loss_rel = max(abs(float(mine[k]) - float(theirs[k])) / max(abs(float(theirs[k])), 1e-12)
                   for k in ("total_loss", "iou_loss", "obj_loss", "cls_loss"))
    ref_params = dict(ref_net.named_parameters())
    grad_rel = 0.0
    for name, p in net.named_parameters():
        g, r = p.grad, ref_params[name].grad
        grad_rel = max(grad_rel, float((g - r).norm() / r.norm().clamp(min=1e-12)))
    net.zero_grad(set_to_none=True)
    ref_net.zero_grad(set_to_none=True)
    return {"loss_max_rel_diff": loss_rel, "grad_max_rel_diff": grad_rel,
            "total_loss_ours": float(mine["total_loss"]), "total_loss_reference": float(theirs["total_loss"])}


def compare_with_reference(reference: str, model: str = "yolox-nano", imgsz: int = 416, batch: int = 8,
                           gts: int = 30, iters: int = 10, warmup: int = 2, device: str = "cpu",
                           amp: bool = False, channels_last: bool = True, seed: int = 0,
                           log=lambda s: None) -> Dict[str, object]:
    """Our training step against the reference YOLOX's (its model, loss and EMA, from the
    checkout at ``reference``), same weights and inputs, timed alternately in this process.

    Returns medians, the ratio reference / ours (> 1: ours is faster) and the loss/gradient
    agreement measured before timing."""
    from openyolox.bench.reference import build_reference_model, import_reference

    models = import_reference(reference)
    dev = torch.device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = create_model(model, 80)
    ref_net = build_reference_model(models, model, 80)
    ref_net.load_state_dict(net.state_dict(), strict=True)  # the same weights (same key layout)
    ours = build_step(model, 80, device, amp=amp, channels_last=channels_last, batch=batch, net=net)
    ref_net = ref_net.to(dev).train()
    images = (torch.rand(batch, 3, imgsz, imgsz, generator=gen) * 255).to(dev)
    targets = random_targets(gen, batch, gts, imgsz, 80).to(dev)
    agreement = loss_and_gradient_agreement(ours, ref_net, images, targets) if not amp else {}
    log(f"gts {gts}: agreement {agreement}")
    reference_step = _reference_step(models, ref_net, images, targets, amp)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times: Dict[str, list] = {"ours": [], "reference": []}
    sides = {"ours": lambda: ours(images, targets), "reference": reference_step}
    for i in range(warmup + iters):
        order = ("ours", "reference") if i % 2 == 0 else ("reference", "ours")  # no side always goes first
        for name in order:
            sync()
            t0 = time.perf_counter()
            sides[name]()
            sync()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
        log(f"gts {gts}: step {i + 1}/{warmup + iters}")
    ours_ms = 1000 * statistics.median(times["ours"])
    ref_ms = 1000 * statistics.median(times["reference"])
    return {"model": model, "imgsz": imgsz, "batch": batch, "gts": gts, "device": str(dev), "amp": amp,
            "channels_last": channels_last, "iters": iters, "ours_ms": round(ours_ms, 1),
            "reference_ms": round(ref_ms, 1), "ratio": round(ref_ms / ours_ms, 2),
            "ours_images_per_s": round(batch * 1000 / ours_ms, 1),
            "reference_images_per_s": round(batch * 1000 / ref_ms, 1),
            **agreement, "machine": machine_description()}
