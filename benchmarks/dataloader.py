"""Throughput of the training data pipeline, ours against a reference-style one.

Ours: ``TrainDataset`` + ``build_train_loader`` (fused mosaic + affine, mixup, HSV LUTs,
uint8 to the batch). Reference-style, timed in the same process on the same images: what the
reference YOLOX does per sample: every image read and resized to fit, mosaic pasted on a
2H x 2W canvas after a second resize, the canvas warped, mixup through a letterboxed
float32 blend, HSV through int16 arrays, float32 CHW output.

    python benchmarks/dataloader.py                  # builtin dataset if available
    python benchmarks/dataloader.py --data synthetic # 64 generated 640x480 JPEGs
    python benchmarks/dataloader.py --cache          # ours with the RAM cache as well

Prints one JSON line per size for ours ({"images_per_s": ..., "ms_per_batch": ...}), the
reference-style numbers and the ratio. ``benchmark_dataloader`` (re-exported here) lives in
``openyolox.bench.dataloader`` so that the installed ``openyolox benchmark dataloader`` can call it.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from openyolox.config import ModelConfig, get_preset
from openyolox.bench.dataloader import BatchTimer, benchmark_dataloader
from openyolox.data.dataset import TrainDataset
from openyolox.data.loader import build_train_loader
from openyolox.data.image_io import read_image
from openyolox.data.records import DatasetSplit, ImageRecord


# --------------------------------------------------------------------------- ours

def our_batches(split: DatasetSplit, size: Tuple[int, int], batch: int, workers: int,
                model_config: ModelConfig, cache: Optional[str] = None, seed: int = 0) -> Iterator:
    """Endless training batches from our dataset and loader."""
    dataset = TrainDataset.from_config(split, model_config, size, cache=cache, seed=seed)
    loader = build_train_loader(dataset, batch, workers=workers, shuffle=True, pin_memory=False)
    while True:
        yield from loader


# --------------------------------------------------------------------------- reference-style

class ReferenceStylePipeline:
    """A straightforward single-process pipeline with the reference's structure and dtypes
    (written here only to measure against; the augmentation parameters are the same)."""

    def __init__(self, split: DatasetSplit, img_size: Tuple[int, int], mosaic_scale=(0.1, 2.0),
                 mixup: bool = True, seed: int = 0) -> None:
        self.records = split.records
        self.size = img_size
        self.mosaic_scale, self.enable_mixup = mosaic_scale, mixup
        self.rand = random.Random(seed)
        self.np_rand = np.random.RandomState(seed)

    def pull_item(self, index: int):
        """Read and resize to fit the input size; labels (N, 5) x1 y1 x2 y2 cls."""
        rec = self.records[index]
        img = read_image(rec.path)
        r = min(self.size[0] / img.shape[0], self.size[1] / img.shape[1])
        img = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
        keep = ~rec.iscrowd
        labels = np.hstack([rec.boxes[keep] * r, rec.classes[keep, None].astype(np.float32)])
        return img, labels

    def mosaic(self, index: int):
        h_in, w_in = self.size
        yc = int(self.rand.uniform(0.5 * h_in, 1.5 * h_in))
        xc = int(self.rand.uniform(0.5 * w_in, 1.5 * w_in))
        indices = [index] + [self.rand.randint(0, len(self.records) - 1) for _ in range(3)]
        canvas = np.full((2 * h_in, 2 * w_in, 3), 114, dtype=np.uint8)
        all_labels = []
        for k, idx in enumerate(indices):
            img, labels = self.pull_item(idx)
            h0, w0 = img.shape[:2]
            s = min(h_in / h0, w_in / w0)
            img = cv2.resize(img, (int(w0 * s), int(h0 * s)), interpolation=cv2.INTER_LINEAR)
            h, w = img.shape[:2]
            x1 = max(xc - w, 0) if k in (0, 2) else xc
            x2 = xc if k in (0, 2) else min(xc + w, 2 * w_in)
            y1 = max(yc - h, 0) if k in (0, 1) else yc
            y2 = yc if k in (0, 1) else min(yc + h, 2 * h_in)
            sx1 = w - (x2 - x1) if k in (0, 2) else 0
            sy1 = h - (y2 - y1) if k in (0, 1) else 0
            canvas[y1:y2, x1:x2] = img[sy1:sy1 + y2 - y1, sx1:sx1 + x2 - x1]
            labels = labels.copy()
            if len(labels):
                labels[:, 0:4:2] = s * labels[:, 0:4:2] + x1 - sx1
                labels[:, 1:4:2] = s * labels[:, 1:4:2] + y1 - sy1
            all_labels.append(labels)
        labels = np.concatenate(all_labels, 0)
        np.clip(labels[:, 0:4:2], 0, 2 * w_in, out=labels[:, 0:4:2])
        np.clip(labels[:, 1:4:2], 0, 2 * h_in, out=labels[:, 1:4:2])
        return self.random_affine(canvas, labels)

    def random_affine(self, img, labels):
        h_in, w_in = self.size
        angle = self.rand.uniform(-10, 10)
        scale = self.rand.uniform(*self.mosaic_scale)
        rot = cv2.getRotationMatrix2D(angle=angle, center=(0, 0), scale=scale)
        m = np.ones((2, 3))
        sh_x = math.tan(self.rand.uniform(-2, 2) * math.pi / 180)
        sh_y = math.tan(self.rand.uniform(-2, 2) * math.pi / 180)
        m[0] = rot[0] + sh_y * rot[1]
        m[1] = rot[1] + sh_x * rot[0]
        m[0, 2] = self.rand.uniform(-0.1, 0.1) * w_in
        m[1, 2] = self.rand.uniform(-0.1, 0.1) * h_in
        img = cv2.warpAffine(img, m, dsize=(w_in, h_in), borderValue=(114, 114, 114))
        if len(labels):
            corners = labels[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(-1, 2)
            corners = (np.hstack([corners, np.ones((len(corners), 1))]) @ m.T).reshape(-1, 8)
            xs, ys = corners[:, 0::2], corners[:, 1::2]
            labels[:, 0], labels[:, 2] = xs.min(1).clip(0, w_in), xs.max(1).clip(0, w_in)
            labels[:, 1], labels[:, 3] = ys.min(1).clip(0, h_in), ys.max(1).clip(0, h_in)
        return img, labels

    def mixup(self, img, labels):
        h_in, w_in = self.size
        jit = self.rand.uniform(0.5, 1.5)
        flip = self.rand.uniform(0, 1) > 0.5
        cp_labels = []
        while len(cp_labels) == 0:
            idx = self.rand.randint(0, len(self.records) - 1)
            cp_labels = self.records[idx].boxes
        cp, cp_labels = self.pull_item(idx)
        cp_img = np.ones((h_in, w_in, 3), dtype=np.uint8) * 114
        r = min(h_in / cp.shape[0], w_in / cp.shape[1])
        resized = cv2.resize(cp, (int(cp.shape[1] * r), int(cp.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
        cp_img[:resized.shape[0], :resized.shape[1]] = resized
        cp_img = cv2.resize(cp_img, (int(w_in * jit), int(h_in * jit)))
        r *= jit
        if flip:
            cp_img = cp_img[:, ::-1, :]
        oh, ow = cp_img.shape[:2]
        padded = np.zeros((max(oh, h_in), max(ow, w_in), 3), dtype=np.uint8)
        padded[:oh, :ow] = cp_img
        y_off = self.rand.randint(0, padded.shape[0] - h_in - 1) if padded.shape[0] > h_in else 0
        x_off = self.rand.randint(0, padded.shape[1] - w_in - 1) if padded.shape[1] > w_in else 0
        crop = padded[y_off:y_off + h_in, x_off:x_off + w_in]
        boxes = cp_labels[:, :4] * r
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, ow)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, oh)
        if flip:
            boxes[:, 0::2] = ow - boxes[:, 2::-2]
        boxes[:, 0::2] = (boxes[:, 0::2] - x_off).clip(0, w_in)
        boxes[:, 1::2] = (boxes[:, 1::2] - y_off).clip(0, h_in)
        labels = np.vstack([labels, np.hstack([boxes, cp_labels[:, 4:5]])])
        img = 0.5 * img.astype(np.float32) + 0.5 * crop.astype(np.float32)
        return img.astype(np.uint8), labels

    def train_transform(self, img, labels, max_labels: int = 120):
        gains = self.np_rand.uniform(-1, 1, 3) * [5, 30, 30] * self.np_rand.randint(0, 2, 3)
        gains = gains.astype(np.int16)
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.int16)
        hsv[..., 0] = (hsv[..., 0] + gains[0]) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] + gains[1], 0, 255)
        hsv[..., 2] = np.clip(hsv[..., 2] + gains[2], 0, 255)
        img = cv2.cvtColor(hsv.astype(img.dtype), cv2.COLOR_HSV2BGR)
        boxes = labels[:, :4].copy()
        if self.rand.random() < 0.5:
            img = img[:, ::-1]
            boxes[:, 0::2] = img.shape[1] - boxes[:, 2::-2]
        h_in, w_in = self.size
        padded = np.ones((h_in, w_in, 3), dtype=np.uint8) * 114
        r = min(h_in / img.shape[0], w_in / img.shape[1])
        resized = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
        padded[:resized.shape[0], :resized.shape[1]] = resized
        chw = np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32)
        boxes = boxes * r
        cxcywh = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                           boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1)
        keep = np.minimum(cxcywh[:, 2], cxcywh[:, 3]) > 1
        targets = np.hstack([labels[keep, 4:5], cxcywh[keep]])[:max_labels]
        padded_targets = np.zeros((max_labels, 5), np.float32)
        padded_targets[:len(targets)] = targets
        return chw, padded_targets

    def __getitem__(self, index: int):
        img, labels = self.mosaic(index)
        if self.enable_mixup and len(labels):
            img, labels = self.mixup(img, labels)
        return self.train_transform(img, labels)


def reference_batches(split: DatasetSplit, size: Tuple[int, int], batch: int, model_config: ModelConfig,
                      seed: int = 0) -> Iterator:
    """Endless float32 batches from the reference-style pipeline, in a shuffled order."""
    pipe = ReferenceStylePipeline(split, size, model_config.mosaic_scale, model_config.mixup, seed)
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(split))
        for start in range(0, len(order) - batch + 1, batch):
            samples = [pipe[int(i)] for i in order[start:start + batch]]
            yield (torch.from_numpy(np.stack([s[0] for s in samples])),
                   torch.from_numpy(np.stack([s[1] for s in samples])))


def compare(split: DatasetSplit, img_size: Union[int, Tuple[int, int]] = 640, batch: int = 8,
            iters: int = 20, model_config: Optional[ModelConfig] = None, warmup: int = 2,
            seed: int = 0) -> Tuple[Dict[str, object], Dict[str, object]]:
    """Ours (workers=0) and the reference-style pipeline, timed batch by batch in
    alternation so that load from other processes hits both alike."""
    model_config = model_config or get_preset("yolox-s")
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    ours = BatchTimer(our_batches(split, size, batch, 0, model_config, None, seed))
    ref = BatchTimer(reference_batches(split, size, batch, model_config, seed))
    for step in range(warmup + iters):
        ours.step(timed=step >= warmup)
        ref.step(timed=step >= warmup)
    return (ours.result(size, batch, workers=0, cache=None, model=model_config.name),
            ref.result(size, batch, workers=0, cache=None, model=model_config.name,
                       pipeline="reference-style"))


# --------------------------------------------------------------------------- data

def generated_split(root: Path, count: int = 64, seed: int = 0) -> DatasetSplit:
    """``count`` 640x480 JPEGs of smooth noise with 1-8 filled boxes, written to ``root``."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(count):
        small = rng.integers(0, 256, (480 // 16, 640 // 16, 3), dtype=np.uint8)
        img = cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC)
        img = cv2.add(img, rng.integers(0, 24, img.shape, dtype=np.uint8))   # sensor-like noise
        boxes = []
        for _ in range(int(rng.integers(1, 9))):
            w, h = rng.uniform(16, 300), rng.uniform(16, 240)
            x1, y1 = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            boxes.append([x1, y1, x1 + w, y1 + h])
            cv2.rectangle(img, (int(x1), int(y1)), (int(x1 + w), int(y1 + h)),
                          tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
        path = root / f"{i:04d}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        records.append(ImageRecord(path, i, 640, 480, np.array(boxes, np.float32),
                                   rng.integers(0, 80, len(boxes))))
    return DatasetSplit(records, [str(c) for c in range(80)], list(range(80)), "generated", root)


def load_benchmark_split(data: str, tmp: Path) -> DatasetSplit:
    """The builtin train split when asked for (and loadable), else generated JPEGs."""
    if data == "builtin":
        try:
            from openyolox.data.layouts import load_split
            return load_split("builtin", "train")
        except Exception as err:  # the builtin set is optional here
            print(f"builtin dataset unavailable ({err}); using generated images", file=sys.stderr)
    return generated_split(tmp)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("builtin", "synthetic"), default="builtin")
    parser.add_argument("--model", default="yolox-s")
    parser.add_argument("--sizes", type=int, nargs="+", default=[640, 416])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--cache", action="store_true", help="also time ours with cache='ram'")
    parser.add_argument("--no-reference", action="store_true",
                        help="time ours only (also the case with --workers > 0)")
    args = parser.parse_args(argv)
    model = get_preset(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        split = load_benchmark_split(args.data, Path(tmp))
        print(f"# data: {split.name} ({len(split)} images), model {model.name}, batch {args.batch}, "
              f"workers {args.workers}, {args.iters} iterations", file=sys.stderr)
        for size in args.sizes:
            if args.no_reference or args.workers:
                print(json.dumps(benchmark_dataloader(split, size, args.batch, args.workers, args.iters, model)))
            else:
                ours, ref = compare(split, size, args.batch, args.iters, model)
                print(json.dumps(ours))
                print(json.dumps(ref))
                print(json.dumps({"img_size": size, "speedup_vs_reference_style": {
                    "wall": round(ours["images_per_s"] / ref["images_per_s"], 2),
                    "cpu": round(ref["cpu_ms_per_batch"] / ours["cpu_ms_per_batch"], 2)}}))
            if args.cache:
                print(json.dumps(benchmark_dataloader(split, size, args.batch, args.workers, args.iters, model,
                                                      cache="ram")))


if __name__ == "__main__":
    main()
