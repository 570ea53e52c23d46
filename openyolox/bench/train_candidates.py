"""Each training-speed candidate measured against the step as it was before them
(``benchmarks/train_step.py --candidates``).

The baseline is the trainer's step before the speed work: NCHW, SGD one tensor at a time, the
EMA as a Python loop over the state dict, one host read per logged loss value. Each candidate
changes one thing (or adds its change to the best so far, ``all``); every variant starts from
the same weights and gets the same batch, and the variants are timed round-robin in one
process, so machine load hits them alike. The data candidate (making the next batch in a
background thread) is timed separately, on real batches of the built-in set.
"""
from __future__ import annotations

import copy
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

from openyolox.bench.train_step import random_targets
from openyolox.models.yolox import create_model
from openyolox.training.loss import detection_loss
from openyolox.training.schedule import ModelEMA, build_optimizer
from openyolox.training.step import prepare_model

# name -> settings; every setting absent takes the baseline's value
CANDIDATES: Dict[str, Dict[str, object]] = {
    "baseline (before)": {},
    "channels_last": {"channels_last": True},
    "foreach SGD": {"foreach_sgd": True},
    "_foreach EMA": {"foreach_ema": True},
    "one host read": {"one_read": True},
    "bf16 autocast": {"bf16": True},
    "all kept (the default now)": {"channels_last": True, "foreach_sgd": True, "foreach_ema": True, "one_read": True},
    "all kept + bf16": {"channels_last": True, "foreach_sgd": True, "foreach_ema": True, "one_read": True,
                        "bf16": True},
}


def _loop_ema_update(ema: ModelEMA, model) -> None:
    """The EMA update as it was: a Python loop over the state dict, one pair of ops per entry."""
    ema.updates += 1
    d = ema.decay()
    current = model.state_dict()
    with torch.no_grad():
        for key, value in ema.ema.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(current[key].detach(), alpha=1 - d)


def make_variant(net: torch.nn.Module, batch: int, channels_last: bool = False, foreach_sgd: bool = False,
                 foreach_ema: bool = False, one_read: bool = False, bf16: bool = False,
                 compile: bool = False) -> Callable[[torch.Tensor, torch.Tensor], Dict[str, float]]:
    """A full step (forward, loss, the logged values read to the host, backward, SGD, EMA) with
    the given settings, on its own copy of ``net``."""
    model = prepare_model(copy.deepcopy(net), torch.device("cpu"), channels_last).train()
    optimizer = build_optimizer(model, 0.01 / 64 * batch)
    for group in optimizer.param_groups:
        group["foreach"] = foreach_sgd
    ema = ModelEMA(model)
    forward = torch.compile(model) if compile else model
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def step(images: torch.Tensor, targets: torch.Tensor) -> Dict[str, float]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            head_out = forward(images.contiguous(memory_format=fmt))
        losses = detection_loss(head_out, targets)
        if one_read:
            values = dict(zip(losses, torch.stack([v.detach().float() for v in losses.values()]).tolist()))
        else:
            values = {k: float(v.detach()) for k, v in losses.items()}
        optimizer.zero_grad(set_to_none=True)
        losses["total_loss"].backward()
        optimizer.step()
        if foreach_ema:
            ema.update(model)
        else:
            _loop_ema_update(ema, model)
        return values

    return step


def measure_candidates(model: str = "yolox-nano", imgsz: int = 416, batch: int = 8, gts: int = 30,
                       iters: int = 8, warmup: int = 2, names: Optional[List[str]] = None,
                       extra: Optional[Dict[str, Dict[str, object]]] = None, seed: int = 0,
                       log=lambda s: None) -> List[Dict[str, object]]:
    """Median ms/step of each candidate (round-robin), and its speed-up over the baseline."""
    table = dict(CANDIDATES, **(extra or {}))
    names = names or list(table)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = create_model(model, 80)
    images = torch.rand(batch, 3, imgsz, imgsz, generator=gen) * 255
    targets = random_targets(gen, batch, gts, imgsz, 80)
    steps = {name: make_variant(net, batch, **table[name]) for name in names}
    times: Dict[str, List[float]] = {name: [] for name in names}
    for i in range(warmup + iters):
        order = names[i % len(names):] + names[:i % len(names)]  # rotate who goes first
        for name in order:
            t0 = time.perf_counter()
            steps[name](images, targets)
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
        log(f"round {i + 1}/{warmup + iters}")
    base = statistics.median(times[names[0]])
    return [{"candidate": name, "ms_per_step": round(1000 * statistics.median(times[name]), 1),
             "speedup": round(base / statistics.median(times[name]), 3), "settings": table[name]}
            for name in names]


def measure_prefetch(data: str = "builtin", model: str = "yolox-nano", imgsz: int = 256, batch: int = 16,
                     iters: int = 12, seed: int = 0, cv2_threads=(None,)) -> Dict[str, object]:
    """ms per iteration (batch + step) of the main job's setting: the batch made in the loop
    (as before; its share timed apart) and made by a background thread during the previous
    step. ``cv2_threads``: OpenCV thread counts to try (None: OpenCV's default)."""
    import cv2

    from openyolox.config import get_preset
    from openyolox.data.dataset import TrainDataset
    from openyolox.data.layouts import load_split
    from openyolox.data.loader import build_train_loader
    from openyolox.training.prefetch import Prefetcher

    torch.manual_seed(seed)
    split = load_split(data, "train")
    dataset = TrainDataset.from_config(split, get_preset(model), imgsz, seed=seed)
    loader = build_train_loader(dataset, batch, workers=0, shuffle=True, pin_memory=False)
    step = make_variant(create_model(model, len(split.class_names)), batch, channels_last=True, foreach_sgd=True,
                        foreach_ema=True, one_read=True)
    default_threads = cv2.getNumThreads()
    rows = []
    try:
        for threads in cv2_threads:
            cv2.setNumThreads(default_threads if threads is None else threads)
            for name, wrap in (("inline", iter), ("prefetch thread", Prefetcher)):
                batches = wrap(loader)
                next(batches)  # warm-up
                data_s, total_s = 0.0, 0.0
                for _ in range(iters):
                    t0 = time.perf_counter()
                    b = next(batches)
                    t1 = time.perf_counter()
                    step(b.images.float(), b.targets)
                    data_s += t1 - t0
                    total_s += time.perf_counter() - t0
                if hasattr(batches, "close"):
                    batches.close()
                rows.append({"loading": name, "cv2_threads": cv2.getNumThreads(),
                             "ms_per_iter": round(1000 * total_s / iters, 1),
                             "ms_waiting_for_batch": round(1000 * data_s / iters, 1)})
    finally:
        cv2.setNumThreads(default_threads)
    return {"model": model, "imgsz": imgsz, "batch": batch, "iters": iters, "rows": rows}
