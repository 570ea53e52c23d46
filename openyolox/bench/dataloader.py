"""Throughput of the training data pipeline (``openyolox benchmark dataloader``,
``benchmarks/dataloader.py``)."""
from __future__ import annotations

import time
from typing import Dict, Iterator, Optional, Tuple, Union

from openyolox.config import ModelConfig, get_preset
from openyolox.data.dataset import TrainDataset
from openyolox.data.loader import build_train_loader
from openyolox.data.records import DatasetSplit


class BatchTimer:
    """Wall and process-CPU time spent producing batches from an iterator."""

    def __init__(self, batches: Iterator) -> None:
        self.batches = batches
        self.wall = self.cpu = 0.0
        self.count = 0

    def step(self, timed: bool = True) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        next(self.batches)
        if timed:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu
            self.count += 1

    def result(self, size: Tuple[int, int], batch: int, **extra) -> Dict[str, object]:
        return {"images_per_s": round(self.count * batch / self.wall, 1),
                "ms_per_batch": round(1000 * self.wall / self.count, 1),
                "cpu_ms_per_batch": round(1000 * self.cpu / self.count, 1),
                "img_size": list(size), "batch": batch, "iters": self.count, **extra}


def benchmark_dataloader(split: DatasetSplit, img_size: Union[int, Tuple[int, int]] = 640, batch: int = 8,
                         workers: int = 0, iters: int = 20, model_config: Optional[ModelConfig] = None,
                         cache: Optional[str] = None, warmup: int = 2, seed: int = 0) -> Dict[str, object]:
    """Time ``iters`` training batches (after ``warmup`` untimed ones, which also absorb
    worker start-up) with the augmentations of ``model_config`` (default yolox-s: mosaic +
    mixup + affine + hsv + flip).

    Returns {"images_per_s", "ms_per_batch", "cpu_ms_per_batch" (this process only: only
    meaningful with workers=0, and steadier than wall time on a busy machine), "img_size",
    "batch", "iters", "workers", "cache", "model"}.
    """
    model_config = model_config or get_preset("yolox-s")
    dataset = TrainDataset.from_config(split, model_config, img_size, cache=cache, seed=seed)
    size = dataset.img_size
    loader = build_train_loader(dataset, batch, workers=workers, shuffle=True, pin_memory=False)

    def endless():
        while True:
            yield from loader

    timer = BatchTimer(endless())
    for step in range(warmup + iters):
        timer.step(timed=step >= warmup)
    return timer.result(size, batch, workers=workers, cache=cache, model=model_config.name)
