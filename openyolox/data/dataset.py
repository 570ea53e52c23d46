"""Training and evaluation datasets: one sample per index (batches: :mod:`openyolox.data.loader`).

A training sample is indexed by a :class:`SampleKey` (index, epoch, aug) and draws from its
own ``np.random.default_rng((seed, epoch, index))`` (:func:`sample_rng`), so it is the same
whichever worker process makes it (see :mod:`openyolox.data.loader`).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from torch.utils.data import Dataset

from openyolox.config import ModelConfig
from openyolox.data import augment as aug
from openyolox.data.image_io import read_image
from openyolox.data.records import DatasetSplit, ImageId
from openyolox.data.transforms import letterbox, letterbox_with_boxes, to_chw
from openyolox.errors import ConfigError, DataError


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
    orig_hw: Tuple[int, int]   # the (first) image's original (h, w)
    dropped: Tuple[str, ...] = ()  # paths found unreadable while making it (replaced by others)


class EvalSample(NamedTuple):
    image: np.ndarray          # (3, H, W) uint8, letterboxed
    ratio: float               # letterbox r: original pixels * r = input pixels
    image_id: ImageId
    orig_hw: Tuple[int, int]


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
    """Training samples with the YOLOX augmentations (docs/yolox.md section 6).

    With augmentation on, each sample is a mosaic (prob ``mosaic_prob``) of the indexed
    image and three random ones, randomly affined, then MixUp'ed with a random labelled image
    when ``mixup`` and the mosaic kept labels; otherwise (and in the no-aug phase) the image
    is letterboxed. HSV jitter and a horizontal flip follow in every case; tiny boxes are
    dropped and at most ``max_labels`` kept. COCO crowd boxes are never training targets.

    cache="ram" decodes every image once, shrunk so its long side is at most max(img_size),
    into one contiguous buffer (shared copy-on-write with forked workers); boxes are scaled
    to match. Without a cache, images that a mosaic would not show are never decoded.

    An image that cannot be read (deleted or damaged after the check before training) never
    stops a run: it is replaced, with its labels, by the next readable one (index + 1, + 2,
    ..., wrapping around; in a mosaic tile or as the MixUp image alike), so samples stay a
    function of (seed, epoch, index) and of which files are unreadable. Each process tries a
    file once; the sample that finds it unreadable lists it in ``TrainSample.dropped``.
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

        self._unreadable: Dict[int, str] = {}  # index -> why it cannot be read (this process)
        self._cache: Optional[np.ndarray] = None
        self._offsets: Optional[np.ndarray] = None
        self._cache_failed: Dict[int, str] = {}
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
            try:
                image = read_image(self.split.records[i].path)
            except DataError as exc:  # left to load_image, which raises it where it is handled
                self._cache_failed[i] = str(exc)
                return
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
        :meth:`labels`. A decoded size that disagrees with the record is resized to it.
        Raises DataError when the file cannot be read (samples use :meth:`readable_image`)."""
        h, w = self.image_hw(index)
        if index in self._cache_failed:
            raise DataError(self._cache_failed[index])
        if self._cache is not None:
            return self._cache[self._offsets[index]:self._offsets[index + 1]].reshape(h, w, 3)
        image = read_image(self.split.records[index].path)
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        return image

    def readable_image(self, index: int, dropped: List[str]) -> Tuple[int, np.ndarray]:
        """(index, :meth:`load_image`) of image ``index`` or, when it cannot be read, of the next
        readable one (index + 1, + 2, ..., wrapping around). The paths of images found
        unreadable are appended to ``dropped`` (once per process: they are not tried again)."""
        for k in range(len(self)):
            i = (index + k) % len(self)
            if i in self._unreadable:
                continue
            try:
                return i, self.load_image(i)
            except DataError as exc:
                self._unreadable[i] = str(exc)
                dropped.append(str(self.split.records[i].path))
        raise DataError(f"none of the {len(self)} images of split '{self.split.name}' can be read any more, e.g. "
                        f"{next(iter(self._unreadable.values()))}")

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
        dropped: List[str] = []
        if enable_aug and rng.random() < self.mosaic_prob:
            shown, image, boxes, classes = self._mosaic(index, rng, dropped)
            content_hw = self.img_size
        else:
            shown, image, boxes, classes, content_hw = self._letterboxed(index, dropped)
        image, boxes = self._photometric_and_flip(image, boxes, content_hw, rng)
        targets = aug.finish_labels(boxes, classes, self.max_labels)
        rec = self.split.records[shown]
        return TrainSample(to_chw(image), targets, rec.image_id, (rec.height, rec.width), tuple(dropped))

    def _letterboxed(self, index: int, dropped: List[str]
                     ) -> Tuple[int, np.ndarray, np.ndarray, np.ndarray, Tuple[int, int]]:
        """Letterbox of image ``index`` (or its replacement): (index shown, canvas, boxes (N, 4)
        xyxy, classes, content (h, w))."""
        index, image = self.readable_image(index, dropped)
        boxes, classes = self.labels(index)
        canvas, boxes, r = letterbox_with_boxes(image, boxes, self.img_size)
        content_hw = (int(image.shape[0] * r), int(image.shape[1] * r))  # as letterbox() sizes it
        return index, canvas, boxes, classes, content_hw

    def _mosaic(self, index: int, rng: np.random.Generator, dropped: List[str]
                ) -> Tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """Mosaic + affine (+ mixup) of ``index`` and three random images: (index of the first
        tile, image, boxes, classes). Images of tiles that the output does not show are never
        loaded. A tile whose image cannot be read gets its replacement, and the mosaic is
        planned again from the same random state (the replacement's size differs)."""
        indices = [index, *(int(i) for i in rng.integers(0, len(self), 3))]
        state = rng.bit_generator.state
        loaded: Dict[int, np.ndarray] = {}
        while True:
            plan = aug.plan_mosaic(rng, [self.image_hw(i) for i in indices], self.img_size,
                                   self.mosaic_scale, self.degrees, self.translate, self.shear)
            for k, i in enumerate(indices):
                if i not in loaded and aug.tile_visible(plan, k):
                    j, loaded[j] = self.readable_image(i, dropped)
                    if j != i:
                        indices[k] = j
                        break
            else:
                break
            rng.bit_generator.state = state
        images = [loaded[i] if aug.tile_visible(plan, k) else None for k, i in enumerate(indices)]
        labels = [self.labels(i) for i in indices]
        boxes, classes = aug.mosaic_boxes(plan, [b for b, _ in labels], [c for _, c in labels])
        image = aug.render_mosaic(plan, images)
        if (self.mixup and len(boxes) and len(self._labelled)
                and rng.random() < self.mixup_prob):
            other, other_image = self.readable_image(int(self._labelled[rng.integers(0, len(self._labelled))]),
                                                     dropped)
            other_boxes, other_classes = self.labels(other)
            image, boxes, classes = aug.mixup(image, boxes, classes, other_image,
                                              other_boxes, other_classes, rng, self.mixup_scale)
        return indices[0], image, boxes, classes

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
