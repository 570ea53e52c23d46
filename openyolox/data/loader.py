"""Batches for training and evaluation: samplers, collate functions and the two DataLoaders.

Samples are uint8 from disk to the batch (``(B, 3, H, W)`` uint8 tensors); the model casts
to float. Targets are ``(B, 120, 5)`` float32 rows (class, cx, cy, w, h) in input pixels,
zero-padded.

Reproducibility with worker processes: the training sampler yields :class:`SampleKey`
(index, epoch, aug) and every sample draws from its own RNG (see
:func:`openyolox.data.dataset.sample_rng`). So a run is reproducible for a fixed seed whatever
the number of workers, workers never repeat each other's augmentations, and because the
epoch and the augmentation switch travel with each key, ``set_epoch`` / ``set_aug`` called on
the main-process dataset reach persistent workers too (their dataset copies are stale).
"""
from __future__ import annotations

import math
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from openyolox.data.dataset import EvalDataset, EvalSample, SampleKey, TrainDataset, TrainSample
from openyolox.data.records import ImageId


class TrainBatch(NamedTuple):
    images: torch.Tensor       # (B, 3, H, W) uint8
    targets: torch.Tensor      # (B, max_labels, 5) float32 (class, cx, cy, w, h) input pixels
    image_ids: List[ImageId]
    orig_hw: torch.Tensor      # (B, 2) int64
    dropped: Tuple[str, ...] = ()  # images found unreadable while making the batch (replaced by others)


class EvalBatch(NamedTuple):
    images: torch.Tensor       # (B, 3, H, W) uint8
    ratios: torch.Tensor       # (B,) float64
    image_ids: List[ImageId]
    orig_hw: torch.Tensor      # (B, 2) int64


def collate_train(samples: Sequence[TrainSample]) -> TrainBatch:
    """Stack training samples: images (B, 3, H, W) uint8, targets (B, max_labels, 5) float32;
    the samples' dropped paths, sorted, once each."""
    return TrainBatch(torch.from_numpy(np.stack([s.image for s in samples])),
                      torch.from_numpy(np.stack([s.targets for s in samples])),
                      [s.image_id for s in samples],
                      torch.tensor([s.orig_hw for s in samples], dtype=torch.int64).reshape(-1, 2),
                      tuple(sorted({path for s in samples for path in s.dropped})))


def collate_eval(samples: Sequence[EvalSample]) -> EvalBatch:
    """Stack evaluation samples: images (B, 3, H, W) uint8, ratios (B,) float64."""
    return EvalBatch(torch.from_numpy(np.stack([s.image for s in samples])),
                     torch.tensor([s.ratio for s in samples], dtype=torch.float64),
                     [s.image_id for s in samples],
                     torch.tensor([s.orig_hw for s in samples], dtype=torch.int64).reshape(-1, 2))


class TrainSampler(Sampler):
    """Yields :class:`SampleKey` for one epoch, shuffled by (seed, epoch), optionally one
    shard of ``num_replicas`` (same padding rule as DistributedSampler: the order is padded
    by wrapping so every rank gets the same count).

    The epoch and the augmentation switch are read from the main-process dataset when an
    epoch starts (``dataset.set_epoch`` / ``dataset.set_aug``). If the epoch was not set
    again by the end of a full pass, it advances by one, so forgetting set_epoch does not
    repeat the same order and augmentations every epoch.
    """

    def __init__(self, dataset: TrainDataset, shuffle: bool = True, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} not in [0, {num_replicas})")
        self.dataset, self.shuffle, self.seed = dataset, shuffle, int(seed)
        self.num_replicas, self.rank = num_replicas, rank

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.num_replicas)

    def __iter__(self) -> Iterator[SampleKey]:
        epoch, enable_aug = self.dataset.epoch, self.dataset.enable_aug
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        total = len(self) * self.num_replicas
        while len(order) < total:
            order += order[:total - len(order)]
        for index in order[self.rank:total:self.num_replicas]:
            yield SampleKey(index, epoch, enable_aug)
        if self.dataset.epoch == epoch:
            self.dataset.epoch = epoch + 1


class ShardSampler(Sampler):
    """Indices rank, rank + R, rank + 2R, ...: every image exactly once over all ranks (no
    padding, so distributed evaluation does not count any image twice)."""

    def __init__(self, length: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.length, self.num_replicas, self.rank = length, num_replicas, rank

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.num_replicas))


def _replicas(distributed: bool) -> Tuple[int, int]:
    if not distributed:
        return 1, 0
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        raise RuntimeError("distributed=True needs torch.distributed.init_process_group() first")
    return torch.distributed.get_world_size(), torch.distributed.get_rank()


def _loader(dataset: Dataset, batch_size: int, sampler: Sampler, collate, workers: int,
            pin_memory: Optional[bool], drop_last: bool) -> DataLoader:
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate, pin_memory=pin_memory, drop_last=drop_last,
                      persistent_workers=workers > 0)
    # no worker_init_fn calling cv2.setNumThreads: in a forked worker it deadlocks on the
    # parent's idle OpenCV thread pool; OpenCV itself copes with being forked


def build_train_loader(dataset: TrainDataset, batch_size: int, workers: int = 0, shuffle: bool = True,
                       seed: Optional[int] = None, distributed: bool = False,
                       pin_memory: Optional[bool] = None, drop_last: bool = False) -> DataLoader:
    """DataLoader of :class:`TrainBatch` (batch_size per process).

    Keys from :class:`TrainSampler`; persistent workers when workers > 0; with
    ``distributed`` each rank gets its shard (torch.distributed must be initialised);
    pin_memory defaults to "a CUDA device is present". seed (shuffle) defaults to the
    dataset's seed. Per epoch call ``dataset.set_epoch(e)``, and ``dataset.set_aug(False)``
    for the no-aug phase, before iterating.
    """
    replicas, rank = _replicas(distributed)
    sampler = TrainSampler(dataset, shuffle, dataset.seed if seed is None else seed, replicas, rank)
    return _loader(dataset, batch_size, sampler, collate_train, workers, pin_memory, drop_last)


def build_eval_loader(dataset: EvalDataset, batch_size: int, workers: int = 0,
                      distributed: bool = False, pin_memory: Optional[bool] = None) -> DataLoader:
    """DataLoader of :class:`EvalBatch` in dataset order (each rank a disjoint shard)."""
    replicas, rank = _replicas(distributed)
    return _loader(dataset, batch_size, ShardSampler(len(dataset), replicas, rank), collate_eval,
                   workers, pin_memory, drop_last=False)
