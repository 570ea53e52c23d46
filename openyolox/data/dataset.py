"""Training and evaluation datasets, loaders, and batch-level multi-scale.

Samples are uint8 from disk to the batch (``(B, 3, H, W)`` uint8 tensors); the model casts
to float. Targets are ``(B, 120, 5)`` float32 rows (class, cx, cy, w, h) in input pixels,
zero-padded.

Reproducibility with worker processes: the training sampler yields :class:`SampleKey`
(index, epoch, aug) and every sample draws from its own ``np.random.default_rng((seed,
epoch, index))``. So a run is reproducible for a fixed seed whatever the number of workers,
workers never repeat each other's augmentations, and because the epoch and the
augmentation switch travel with each key, ``set_epoch`` / ``set_aug`` called on the
main-process dataset reach persistent workers too (their dataset copies are stale).
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from openyolox.config import ModelConfig, get_preset
from openyolox.data import augment as aug
from openyolox.data.image_io import read_image
from openyolox.data.transforms import letterbox, letterbox_with_boxes, to_chw
from openyolox.data.records import DatasetSplit, ImageId
from openyolox.errors import ConfigError

# nano / tiny train at 320..640 whatever their 416 base (reference exps: random_size (10, 20))
_MULTISCALE_PIXELS = {"yolox-nano": (320, 640), "yolox-tiny": (320, 640)}


class SampleKey(NamedTuple):
    """What the training sampler hands the dataset: which image, which epoch (for the
    per-sample RNG), and whether mosaic/mixup/affine are on."""

    index: int
    epoch: int
    aug: bool


class TrainSample(NamedTuple):
    image: np.ndarray          # (3, H, W) uint8
    targets: np.ndarray        # (max_labels, 5) float32 (class, cx, cy, w, h), zero-padded
    image_id: ImageId
    orig_hw: Tuple[int, int]   # the indexed image's original (h, w)


class TrainBatch(NamedTuple):
    images: torch.Tensor       # (B, 3, H, W) uint8
    targets: torch.Tensor      # (B, max_labels, 5) float32 (class, cx, cy, w, h) input pixels
    image_ids: List[ImageId]
    orig_hw: torch.Tensor      # (B, 2) int64


class EvalSample(NamedTuple):
    image: np.ndarray          # (3, H, W) uint8, letterboxed
    ratio: float               # letterbox r: original pixels * r = input pixels
    image_id: ImageId
    orig_hw: Tuple[int, int]


class EvalBatch(NamedTuple):
    images: torch.Tensor       # (B, 3, H, W) uint8
    ratios: torch.Tensor       # (B,) float64
    image_ids: List[ImageId]
    orig_hw: torch.Tensor      # (B, 2) int64


def _as_hw(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = (int(s) for s in size)
    return h, w


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The RNG of one training sample: a pure function of (seed, epoch, index)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


# --------------------------------------------------------------------------- datasets

class TrainDataset(Dataset):
    """Training samples with the YOLOX augmentations (YOLOX_SPEC.md section 6).

    With augmentation on, each sample is a mosaic (prob ``mosaic_prob``) of the indexed
    image and three random ones, randomly affined, then MixUp'ed with a random labelled image
    when ``mixup`` and the mosaic kept labels; otherwise (and in the no-aug phase) the image
    is letterboxed. HSV jitter and a horizontal flip follow in every case; tiny boxes are
    dropped and at most ``max_labels`` kept. COCO crowd boxes are never training targets.

    cache="ram" decodes every image once, shrunk so its long side is at most max(img_size),
    into one contiguous buffer (shared copy-on-write with forked workers); boxes are scaled
    to match. Without a cache, images that a mosaic would not show are never decoded.
    """

    def __init__(self, split: DatasetSplit, img_size: Union[int, Tuple[int, int]] = (640, 640),
                 mosaic_prob: float = 1.0, mosaic_scale: Tuple[float, float] = (0.1, 2.0),
                 mixup: bool = True, enable_aug: bool = True, cache: Optional[str] = None,
                 seed: int = 0, max_labels: int = aug.MAX_LABELS, flip_prob: float = 0.5,
                 hsv_prob: float = 1.0, mixup_prob: float = 1.0,
                 mixup_scale: Tuple[float, float] = (0.5, 1.5), degrees: float = 10.0,
                 translate: float = 0.1, shear: float = 2.0) -> None:
        if cache not in (None, "ram"):
            raise ConfigError(f"unknown cache mode {cache!r}; use 'ram' or leave it off")
        if len(split) == 0:
            raise ConfigError(f"dataset split '{split.name}' has no images")
        self.split = split
        self.img_size = _as_hw(img_size)
        self.mosaic_prob = float(mosaic_prob)
        self.mosaic_scale = tuple(mosaic_scale)
        self.mixup = bool(mixup)
        self.enable_aug = bool(enable_aug)
        self.seed = int(seed)
        self.epoch = 0
        self.max_labels = max_labels
        self.flip_prob, self.hsv_prob, self.mixup_prob = flip_prob, hsv_prob, mixup_prob
        self.mixup_scale = tuple(mixup_scale)
        self.degrees, self.translate, self.shear = degrees, translate, shear

        # labels without crowd regions, and the size images are served at (h, w)
        self._boxes: List[np.ndarray] = []
        self._classes: List[np.ndarray] = []
        self._hw = np.zeros((len(split), 2), np.int64)
        for i, rec in enumerate(split.records):
            keep = ~rec.iscrowd
            self._boxes.append(rec.boxes[keep].astype(np.float32))
            self._classes.append(rec.classes[keep].astype(np.int64))
            self._hw[i] = rec.height, rec.width
        self._labelled = np.flatnonzero([len(b) > 0 for b in self._boxes])

        self._cache: Optional[np.ndarray] = None
        self._offsets: Optional[np.ndarray] = None
        if cache == "ram":
            self._fill_ram_cache()

    @classmethod
    def from_config(cls, split: DatasetSplit, model: ModelConfig,
                    img_size: Optional[Union[int, Tuple[int, int]]] = None, **kwargs) -> "TrainDataset":
        """A dataset with the model preset's augmentation defaults (mosaic prob/scale, mixup)."""
        return cls(split, img_size or model.test_size, mosaic_prob=model.mosaic_prob,
                   mosaic_scale=model.mosaic_scale, mixup=model.mixup, **kwargs)

    # ---- switches (call on the main-process dataset; keys carry them to workers)

    def set_aug(self, enable: bool) -> None:
        """Turn mosaic / mixup / affine on or off (off for the last no-aug epochs)."""
        self.enable_aug = bool(enable)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: the shuffle order and every sample's augmentation depend on it."""
        self.epoch = int(epoch)

    # ---- images

    def _fill_ram_cache(self) -> None:
        """Decode all images once, shrinking those larger than max(img_size)."""
        long_side = max(self.img_size)
        shapes = np.zeros_like(self._hw)
        for i, (h, w) in enumerate(self._hw):
            r = min(1.0, long_side / max(h, w))
            shapes[i] = max(int(h * r), 1), max(int(w * r), 1)
            scale = np.array([shapes[i, 1] / w, shapes[i, 0] / h] * 2, np.float32)
            self._boxes[i] = self._boxes[i] * scale
        sizes = shapes[:, 0] * shapes[:, 1] * 3
        self._offsets = np.concatenate([[0], np.cumsum(sizes)])
        self._cache = np.empty(int(self._offsets[-1]), np.uint8)
        self._hw = shapes

        def fill(i: int) -> None:
            h, w = (int(v) for v in shapes[i])
            image = read_image(self.split.records[i].path)
            if image.shape[:2] != (h, w):
                image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            self._cache[self._offsets[i]:self._offsets[i + 1]] = image.reshape(-1)

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(fill, range(len(self))))   # OpenCV decodes without the GIL
        self._cache.flags.writeable = False          # load_image hands out views of it

    @property
    def cache_bytes(self) -> int:
        """Bytes held by the RAM cache (0 without one)."""
        return 0 if self._cache is None else int(self._cache.nbytes)

    def image_hw(self, index: int) -> Tuple[int, int]:
        """(h, w) at which image ``index`` is served (the record's size, or the cached size)."""
        h, w = self._hw[index]
        return int(h), int(w)

    def load_image(self, index: int) -> np.ndarray:
        """Image ``index`` as BGR uint8 (h, w, 3) with (h, w) = :meth:`image_hw`, matching
        :meth:`labels`. A decoded size that disagrees with the record is resized to it."""
        h, w = self.image_hw(index)
        if self._cache is not None:
            return self._cache[self._offsets[index]:self._offsets[index + 1]].reshape(h, w, 3)
        image = read_image(self.split.records[index].path)
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        return image

    def labels(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """(boxes (N, 4) xyxy in :meth:`image_hw` pixels, classes (N,)), crowd excluded."""
        return self._boxes[index], self._classes[index]

    # ---- samples

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: Union[int, SampleKey]) -> TrainSample:
        if isinstance(key, SampleKey):
            index, epoch, enable_aug = key
        else:
            index, epoch, enable_aug = int(key), self.epoch, self.enable_aug
        rng = sample_rng(self.seed, epoch, index)
        if enable_aug and rng.random() < self.mosaic_prob:
            image, boxes, classes = self._mosaic(index, rng)
            content_hw = self.img_size
        else:
            image, boxes, classes, content_hw = self._letterboxed(index)
        image, boxes = self._photometric_and_flip(image, boxes, content_hw, rng)
        targets = aug.finish_labels(boxes, classes, self.max_labels)
        rec = self.split.records[index]
        return TrainSample(to_chw(image), targets, rec.image_id, (rec.height, rec.width))

    def _letterboxed(self, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Tuple[int, int]]:
        """Letterbox of image ``index``: (canvas, boxes (N, 4) xyxy, classes, content (h, w))."""
        image = self.load_image(index)
        boxes, classes = self.labels(index)
        canvas, boxes, r = letterbox_with_boxes(image, boxes, self.img_size)
        content_hw = (int(image.shape[0] * r), int(image.shape[1] * r))  # as letterbox() sizes it
        return canvas, boxes, classes, content_hw

    def _mosaic(self, index: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mosaic + affine (+ mixup) of ``index`` and three random images; images of tiles
        that the output does not show are never loaded."""
        indices = [index, *(int(i) for i in rng.integers(0, len(self), 3))]
        plan = aug.plan_mosaic(rng, [self.image_hw(i) for i in indices], self.img_size,
                               self.mosaic_scale, self.degrees, self.translate, self.shear)
        images = [self.load_image(i) if aug.tile_visible(plan, k) else None
                  for k, i in enumerate(indices)]
        labels = [self.labels(i) for i in indices]
        boxes, classes = aug.mosaic_boxes(plan, [b for b, _ in labels], [c for _, c in labels])
        image = aug.render_mosaic(plan, images)
        if (self.mixup and len(boxes) and len(self._labelled)
                and rng.random() < self.mixup_prob):
            other = int(self._labelled[rng.integers(0, len(self._labelled))])
            other_boxes, other_classes = self.labels(other)
            image, boxes, classes = aug.mixup(image, boxes, classes, self.load_image(other),
                                              other_boxes, other_classes, rng, self.mixup_scale)
        return image, boxes, classes

    def _photometric_and_flip(self, image: np.ndarray, boxes: np.ndarray, content_hw: Tuple[int, int],
                              rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """HSV jitter (prob ``hsv_prob``) then horizontal flip (prob ``flip_prob``) of the
        top-left ``content_hw`` region. boxes: (N, 4) xyxy.

        For a letterboxed image the content is the resized image, so the 114 padding is
        neither jittered nor moved, exactly as in the reference, which jitters and flips
        before letterboxing (flip commutes with the resize), at a fraction of the cost on
        large photos. For a mosaic the content is the whole output, padding included (as in
        the reference).
        """
        do_hsv = rng.random() < self.hsv_prob
        do_flip = rng.random() < self.flip_prob
        if not (do_hsv or do_flip):
            return image, boxes
        h, w = content_hw
        whole = (h, w) == image.shape[:2]
        region = image if whole else image[:h, :w]
        if do_hsv:
            region = aug.augment_hsv(region, rng)
        if do_flip:
            region, boxes = aug.hflip(region, boxes)
        if whole:
            return region, boxes
        image[:h, :w] = region  # the canvas is fresh from letterbox, ours to write
        return image, boxes


class EvalDataset(Dataset):
    """Evaluation samples: each image letterboxed to ``img_size``, no augmentation."""

    def __init__(self, split: DatasetSplit, img_size: Union[int, Tuple[int, int]] = (640, 640)) -> None:
        self.split = split
        self.img_size = _as_hw(img_size)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> EvalSample:
        rec = self.split.records[index]
        image = read_image(rec.path)
        canvas, ratio = letterbox(image, self.img_size)
        return EvalSample(to_chw(canvas), ratio, rec.image_id, (image.shape[0], image.shape[1]))
# --------------------------------------------------------------------------- batching

def collate_train(samples: Sequence[TrainSample]) -> TrainBatch:
    """Stack training samples: images (B, 3, H, W) uint8, targets (B, max_labels, 5) float32."""
    return TrainBatch(torch.from_numpy(np.stack([s.image for s in samples])),
                      torch.from_numpy(np.stack([s.targets for s in samples])),
                      [s.image_id for s in samples],
                      torch.tensor([s.orig_hw for s in samples], dtype=torch.int64).reshape(-1, 2))


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


# --------------------------------------------------------------------------- multi-scale

def multiscale_size_range(model: ModelConfig,
                          base_hw: Optional[Tuple[int, int]] = None) -> Tuple[int, int]:
    """(min, max) training height in pixels for multi-scale: base +- 32 * multiscale_range,
    except nano / tiny, which train at 320..640 (YOLOX_SPEC.md section 7)."""
    if model.name in _MULTISCALE_PIXELS:
        return _MULTISCALE_PIXELS[model.name]
    base = (base_hw or model.test_size)[0]
    return max(32, base - 32 * model.multiscale_range), base + 32 * model.multiscale_range


def random_size(rng: np.random.Generator, base_hw: Tuple[int, int], multiscale_range: int = 5,
                size_range: Optional[Tuple[int, int]] = None) -> Tuple[int, int]:
    """Pick a multi-scale input size (h, w), both multiples of 32.

    The height is uniform among multiples of 32 in [base_h/32 - r, base_h/32 + r] (or
    within ``size_range`` = (min_px, max_px) when given); the width keeps base_w / base_h.
    In distributed training every rank must draw from an identically seeded rng.
    """
    h, w = base_hw
    if size_range is not None:
        lo, hi = math.ceil(size_range[0] / 32), size_range[1] // 32
    else:
        lo, hi = h // 32 - multiscale_range, h // 32 + multiscale_range
    lo = max(lo, 1)
    if hi < lo:
        raise ConfigError(f"empty multi-scale range {size_range or (lo * 32, hi * 32)}")
    k = int(rng.integers(lo, hi + 1))
    return 32 * k, 32 * max(int(k * w / h), 1)


def resize_batch(images: torch.Tensor, targets: torch.Tensor,
                 new_hw: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Multi-scale: resize a batch bilinearly and scale its boxes.

    images: (B, 3, H, W) uint8 or float; targets: (B, M, 5) (class, cx, cy, w, h) input
    pixels, zero rows stay zero. Returns images of the same dtype (uint8 is rounded back;
    pass float to avoid the re-quantisation) and new targets (the input is not modified).
    """
    h, w = images.shape[-2:]
    new_h, new_w = int(new_hw[0]), int(new_hw[1])
    if (h, w) == (new_h, new_w):
        return images, targets
    x = images if images.is_floating_point() else images.float()
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
    if not images.is_floating_point():
        x = x.round_().clamp_(0, 255).to(images.dtype)
    targets = targets.clone()
    targets[..., 1::2] *= new_w / w   # cx, w
    targets[..., 2::2] *= new_h / h   # cy, h
    return x, targets


# --------------------------------------------------------------------------- throughput

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
    size = _as_hw(img_size)
    dataset = TrainDataset.from_config(split, model_config, size, cache=cache, seed=seed)
    loader = build_train_loader(dataset, batch, workers=workers, shuffle=True, pin_memory=False)

    def endless():
        while True:
            yield from loader

    timer = BatchTimer(endless())
    for step in range(warmup + iters):
        timer.step(timed=step >= warmup)
    return timer.result(size, batch, workers=workers, cache=cache, model=model_config.name)
