"""Throughput of one training step: forward + SimOTA + loss + backward + optimiser step.

Random images and random-but-plausible labels (``gts`` boxes per image); the same batch is
reused so only the model and loss are timed, not data loading. Used by
`openyolox benchmark train-step` and benchmarks/train_step.py.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, Optional

import torch

from openyolox.models.yolox import YOLOX, create_model
from openyolox.training.loss import detection_loss
from openyolox.training.schedule import build_optimizer


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


def benchmark_train_step(model: str = "yolox-nano", imgsz: int = 416, batch: int = 8, gts: int = 30,
                         iters: int = 10, warmup: int = 2, device: str = "cpu", amp: bool = False,
                         num_classes: int = 80, criterion: Optional[Callable] = None, seed: int = 0,
                         net: Optional[YOLOX] = None) -> Dict[str, object]:
    """Median time of a full training step; returns {"images_per_s", "ms_per_step", ...}.

    ``criterion(head_out, targets, use_l1)`` replaces the loss (for comparisons); ``net``
    reuses a built network."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    dev = torch.device(device)
    net = net or create_model(model, num_classes)
    criterion = criterion or detection_loss
    net = net.to(dev).train()
    optimizer = build_optimizer(net, 0.01 / 64 * batch)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    images = (torch.rand(batch, 3, imgsz, imgsz, generator=gen) * 255).to(dev)
    targets = random_targets(gen, batch, gts, imgsz, num_classes).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    for step in range(warmup + iters):
        sync()
        t0 = time.perf_counter()
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=amp):
            losses = criterion(net(images), targets, False)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses["total_loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        sync()
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    ms = 1000 * statistics.median(times)
    return {"model": model, "imgsz": imgsz, "batch": batch, "gts": gts, "device": str(dev), "amp": amp,
            "ms_per_step": round(ms, 1), "images_per_s": round(batch * 1000 / ms, 1),
            "threads": torch.get_num_threads(), "iters": iters}
