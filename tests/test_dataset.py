"""Datasets, loaders and batch-level multi-scale."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from openyolox.config import get_preset
from openyolox.data.dataset import EvalDataset, SampleKey, TrainDataset
from openyolox.data.loader import TrainSampler, build_eval_loader, build_train_loader
from openyolox.data.records import DatasetSplit, ImageRecord
from openyolox.data.transforms import letterbox
from openyolox.errors import DataError
from openyolox.training.multiscale import multiscale_size_range, random_size, resize_batch

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255)]
SIZES = [(120, 160), (200, 90), (96, 96), (150, 300), (64, 100), (180, 140)]  # (h, w)
SIZE = (128, 128)


def write_split(root, sizes=SIZES, empty=(4,), crowd=(5,)):
    """PNG images (lossless, so colours are exact) of a grey background with one or two
    filled rectangles, class = colour index; images in ``empty`` have none; images in
    ``crowd`` get an extra crowd box."""
    records = []
    for i, (h, w) in enumerate(sizes):
        img = np.full((h, w, 3), 128, np.uint8)
        boxes, classes = [], []
        if i not in empty:
            for j, (fx1, fy1, fx2, fy2) in enumerate([(0.1, 0.1, 0.45, 0.5), (0.55, 0.4, 0.95, 0.9)]):
                cls = (i + j) % len(COLOURS)
                box = [int(fx1 * w), int(fy1 * h), int(fx2 * w), int(fy2 * h)]
                img[box[1]:box[3], box[0]:box[2]] = COLOURS[cls]
                boxes.append(box)
                classes.append(cls)
        iscrowd = [False] * len(boxes)
        if i in crowd:
            boxes.append([0, 0, w // 4, h // 4])
            classes.append(0)
            iscrowd.append(True)
        path = root / f"img{i}.png"
        cv2.imwrite(str(path), img)
        records.append(ImageRecord(path, i, w, h, np.array(boxes, np.float32).reshape(-1, 4),
                                   np.array(classes, np.int64), np.array(iscrowd, bool)))
    return DatasetSplit(records, [f"c{k}" for k in range(len(COLOURS))], list(range(len(COLOURS))),
                        "test", root)


@pytest.fixture
def split(tmp_path):
    return write_split(tmp_path)


def targets_to_boxes(targets):
    t = targets[(targets[:, 3] > 0)]
    cx, cy, w, h = t[:, 1], t[:, 2], t[:, 3], t[:, 4]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1), t[:, 0].astype(int)


def assert_boxes_show_their_colour(image_chw, targets, min_fraction=0.5):
    image = image_chw.transpose(1, 2, 0)
    checked = 0
    for box, cls in zip(*targets_to_boxes(targets)):
        if min(box[2] - box[0], box[3] - box[1]) < 8:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        region = image[y1:y2, x1:x2].astype(int)
        frac = (np.abs(region - np.array(COLOURS[cls])).max(-1) <= 40).mean()
        assert frac > min_fraction, (box, cls, frac)
        checked += 1
    return checked


# --------------------------------------------------------------------------- TrainDataset

def test_sample_format(split):
    ds = TrainDataset(split, SIZE, mixup=True, seed=1)
    image, targets, image_id, orig_hw, dropped = ds[0]
    assert image.shape == (3, 128, 128) and image.dtype == np.uint8 and image.flags.c_contiguous
    assert targets.shape == (120, 5) and targets.dtype == np.float32
    assert image_id == 0 and orig_hw == (120, 160) and dropped == ()
    valid = targets[:, 3] > 0
    assert (targets[~valid] == 0).all()
    assert (targets[valid, 3:] > 1).all()


def test_same_seed_same_samples_and_epochs_differ(split):
    a = TrainDataset(split, SIZE, seed=3)
    b = TrainDataset(split, SIZE, seed=3)
    for i in range(len(split)):
        np.testing.assert_array_equal(a[i].image, b[i].image)
        np.testing.assert_array_equal(a[i].targets, b[i].targets)
        np.testing.assert_array_equal(a[SampleKey(i, 0, True)].image, a[i].image)
    assert any(not np.array_equal(a[SampleKey(i, 0, True)].image, a[SampleKey(i, 1, True)].image)
               for i in range(len(split)))
    c = TrainDataset(split, SIZE, seed=4)
    assert any(not np.array_equal(a[i].image, c[i].image) for i in range(len(split)))


def test_augmented_boxes_follow_pixels(split):
    ds = TrainDataset(split, SIZE, mosaic_scale=(0.5, 1.5), mixup=False, hsv_prob=0.0, seed=0)
    checked = 0
    for epoch in range(6):
        for i in range(len(split)):
            sample = ds[SampleKey(i, epoch, True)]
            checked += assert_boxes_show_their_colour(sample.image, sample.targets)
    assert checked > 30


def test_no_aug_path_equals_letterbox(split):
    ds = TrainDataset(split, SIZE, enable_aug=False, flip_prob=0.0, hsv_prob=0.0)
    for i, rec in enumerate(split.records):
        image, targets, _, _, _ = ds[i]
        expected, r = letterbox(cv2.imread(str(rec.path)), SIZE)
        np.testing.assert_array_equal(image, expected.transpose(2, 0, 1))
        boxes, classes = targets_to_boxes(targets)
        keep = ~rec.iscrowd
        np.testing.assert_allclose(boxes, rec.boxes[keep] * r, atol=1e-4)
        assert classes.tolist() == rec.classes[keep].tolist()


def test_no_aug_flip_keeps_padding_and_boxes_follow(split):
    ds = TrainDataset(split, SIZE, enable_aug=False, flip_prob=1.0, hsv_prob=0.0)
    rec = split.records[3]                          # 150 x 300: padding below the content
    image, targets, _, _, _ = ds[3]
    expected, r = letterbox(cv2.imread(str(rec.path)), SIZE)
    h, w = int(rec.height * r), int(rec.width * r)
    expected[:h, :w] = expected[:h, :w, :][:, ::-1]
    np.testing.assert_array_equal(image.transpose(1, 2, 0), expected)
    assert (image[:, h:, :] == 114).all()
    assert assert_boxes_show_their_colour(image, targets, 0.9) == 2


def test_set_aug_switches_mosaic_off(split):
    ds = TrainDataset(split, SIZE, flip_prob=0.0, hsv_prob=0.0)
    ds.set_aug(False)
    expected, _ = letterbox(cv2.imread(str(split.records[0].path)), SIZE)
    np.testing.assert_array_equal(ds[0].image, expected.transpose(2, 0, 1))


def test_empty_label_images_are_valid_samples(tmp_path):
    split = write_split(tmp_path, sizes=SIZES[:3], empty=(0, 1, 2), crowd=())
    for aug_on in (True, False):
        ds = TrainDataset(split, SIZE, mixup=True, enable_aug=aug_on)
        for i in range(3):
            sample = ds[i]
            assert sample.image.shape == (3, 128, 128)
            assert (sample.targets == 0).all()


def test_crowd_boxes_are_not_targets(split):
    ds = TrainDataset(split, SIZE, enable_aug=False, flip_prob=0.0, hsv_prob=0.0)
    boxes, _ = ds.labels(5)
    assert len(boxes) == 2
    assert (ds[5].targets[:, 3] > 0).sum() == 2


def test_ram_cache_shrinks_and_keeps_boxes_consistent(tmp_path):
    sizes = [(400, 600), (90, 70), (500, 250)]
    split = write_split(tmp_path, sizes=sizes, empty=(), crowd=())
    ds = TrainDataset(split, SIZE, cache="ram", enable_aug=False, flip_prob=0.0, hsv_prob=0.0)
    assert ds.image_hw(0) == (85, 128) and ds.image_hw(1) == (90, 70)     # small ones not upscaled
    assert ds.cache_bytes == sum(h * w * 3 for h, w in (ds.image_hw(i) for i in range(3)))
    plain = TrainDataset(split, SIZE, enable_aug=False, flip_prob=0.0, hsv_prob=0.0)
    np.testing.assert_array_equal(ds[1].image, plain[1].image)             # untouched by the cache
    for i in range(3):
        np.testing.assert_allclose(ds[i].targets, plain[i].targets, atol=1.0)
    aug = TrainDataset(split, SIZE, cache="ram", mosaic_scale=(0.5, 1.5), mixup=False, hsv_prob=0.0)
    assert sum(assert_boxes_show_their_colour(aug[SampleKey(i, e, True)].image,
                                              aug[SampleKey(i, e, True)].targets)
               for e in range(4) for i in range(3)) > 5


def test_from_config_uses_preset_defaults(split):
    ds = TrainDataset.from_config(split, get_preset("yolox-nano"))
    assert ds.img_size == (416, 416) and ds.mosaic_prob == 0.5 and not ds.mixup
    assert ds.mosaic_scale == (0.5, 1.5)


# --------------------------------------------------------------------------- unreadable images mid-run (issue 15.8)

def cut_to_half_jpeg(split, i):
    """Image i becomes a JPEG cut at half of its bytes (a copy interrupted after the check)."""
    rec = split.records[i]
    ok, data = cv2.imencode(".jpg", cv2.imread(str(rec.path)))
    rec.path.unlink()
    rec.path = rec.path.with_suffix(".jpg")
    rec.path.write_bytes(data.tobytes()[:len(data) // 2])
    return str(rec.path)


def test_unreadable_image_is_replaced_by_the_next_and_reported_once(split):
    ds = TrainDataset(split, SIZE, enable_aug=False, flip_prob=0.0, hsv_prob=0.0)
    expected = ds[3]
    split.records[2].path.unlink()                       # deleted mid-run
    sample = ds[2]
    assert sample.dropped == (str(split.records[2].path),)
    assert np.array_equal(sample.image, expected.image) and np.array_equal(sample.targets, expected.targets)
    assert sample.image_id == 3 and sample.orig_hw == expected.orig_hw
    again = ds[2]                                        # known now: not tried (nor reported) again
    assert again.dropped == () and np.array_equal(again.image, expected.image)
    cut = cut_to_half_jpeg(split, 5)                     # cut short mid-run; the last one wraps to 0
    wrapped = ds[5]
    assert wrapped.dropped == (cut,) and np.array_equal(wrapped.image, ds[0].image)


def test_mosaic_and_mixup_survive_unreadable_images_deterministically(split):
    kwargs = dict(img_size=SIZE, mixup=True, mixup_prob=1.0, seed=5)
    keys = [SampleKey(i, e, True) for e in range(4) for i in range(len(split))]
    gone = str(split.records[1].path)
    split.records[1].path.unlink()
    cut = cut_to_half_jpeg(split, 4)
    samples = [TrainDataset(split, **kwargs)[k] for k in keys]       # a fresh dataset (process) per sample
    dropped = {p for s in samples for p in s.dropped}
    assert dropped == {gone, cut}
    ds = TrainDataset(split, **kwargs)                               # one process: each file reported once
    again = [ds[k] for k in keys]
    assert sorted(p for s in again for p in s.dropped) == sorted(dropped)
    for a, b in zip(samples, again):                                 # same samples either way
        assert np.array_equal(a.image, b.image) and np.array_equal(a.targets, b.targets)
    plain = TrainDataset(split, SIZE, mosaic_scale=(0.5, 1.5), mixup=False, hsv_prob=0.0, seed=0)
    # the labels are the replacement's: boxes still show their colour (wrong labels show ~0 of it)
    assert sum(assert_boxes_show_their_colour(plain[k].image, plain[k].targets, 0.4) for k in keys) > 20


def test_ram_cache_and_loader_workers_carry_dropped_paths(split):
    gone = str(split.records[0].path)
    split.records[0].path.unlink()                       # unreadable already when the cache is filled
    ds = TrainDataset(split, SIZE, cache="ram", seed=2)
    batches = list(build_train_loader(ds, batch_size=3, workers=2, seed=2))
    assert len(batches) == 2
    assert {p for b in batches for p in b.dropped} == {gone}
    with pytest.raises(DataError):
        ds.load_image(0)


def test_no_readable_image_left_is_an_error(tmp_path):
    split = write_split(tmp_path, sizes=SIZES[:2], empty=(), crowd=())
    ds = TrainDataset(split, SIZE, enable_aug=False)
    for rec in split.records:
        rec.path.unlink()
    with pytest.raises(DataError, match="none of the 2 images of split 'test' can be read any more"):
        ds[0]


# --------------------------------------------------------------------------- loaders

def test_train_loader_batches_and_worker_independence(split):
    ds = TrainDataset(split, SIZE, seed=7)
    batches0 = list(build_train_loader(ds, batch_size=4, workers=0, seed=7))
    ds.set_epoch(0)
    batches2 = list(build_train_loader(ds, batch_size=4, workers=2, seed=7))
    assert len(batches0) == 2
    b = batches0[0]
    assert b.images.shape == (4, 3, 128, 128) and b.images.dtype == torch.uint8
    assert b.targets.shape == (4, 120, 5) and b.targets.dtype == torch.float32
    assert b.orig_hw.shape == (4, 2) and len(b.image_ids) == 4
    for x, y in zip(batches0, batches2):
        assert torch.equal(x.images, y.images) and torch.equal(x.targets, y.targets)
        assert x.image_ids == y.image_ids


def test_persistent_workers_see_set_aug_and_epochs_advance(split):
    ds = TrainDataset(split, SIZE, seed=0, flip_prob=0.0, hsv_prob=0.0)
    loader = build_train_loader(ds, batch_size=6, workers=1, shuffle=False)
    first = list(loader)[0]
    assert ds.epoch == 1    # a full pass advances the epoch when nobody set it
    second = list(loader)[0]
    assert ds.epoch == 2 and not torch.equal(first.images, second.images)
    ds.set_aug(False)
    no_aug = next(iter(loader))
    for i in range(len(split)):
        expected, _ = letterbox(cv2.imread(str(split.records[i].path)), SIZE)
        assert torch.equal(no_aug.images[i], torch.from_numpy(expected.transpose(2, 0, 1).copy()))
    assert not torch.equal(first.images, no_aug.images)


def test_sampler_shards_cover_everything(split):
    ds = TrainDataset(split, SIZE)
    shards = []
    for rank in range(4):   # each rank has its own dataset; here they share one
        ds.set_epoch(2)
        shards.append(list(TrainSampler(ds, True, 0, num_replicas=4, rank=rank)))
    assert all(len(s) == 2 for s in shards)
    indices = [k.index for s in shards for k in s]
    assert set(indices) == set(range(len(split)))
    assert all(k.epoch == 2 and k.aug for s in shards for k in s)


def test_eval_dataset_equals_letterbox(split):
    ds = EvalDataset(split, (96, 128))
    batches = list(build_eval_loader(ds, batch_size=4))
    assert [len(b.image_ids) for b in batches] == [4, 2]
    for i, rec in enumerate(split.records):
        image, ratio, image_id, orig_hw = ds[i]
        expected, r = letterbox(cv2.imread(str(rec.path)), (96, 128))
        np.testing.assert_array_equal(image, expected.transpose(2, 0, 1))
        assert ratio == r and image_id == rec.image_id and orig_hw == (rec.height, rec.width)
    assert batches[0].images.dtype == torch.uint8 and batches[0].ratios.shape == (4,)


# --------------------------------------------------------------------------- multi-scale

def test_resize_batch_scales_boxes():
    images = torch.zeros((2, 3, 64, 128), dtype=torch.uint8)
    images[0, :, 16:32, 32:64] = 200
    targets = torch.zeros((2, 120, 5))
    targets[0, 0] = torch.tensor([1.0, 48.0, 24.0, 32.0, 16.0])
    out, t = resize_batch(images, targets, (128, 192))
    assert out.shape == (2, 3, 128, 192) and out.dtype == torch.uint8
    torch.testing.assert_close(t[0, 0], torch.tensor([1.0, 72.0, 48.0, 48.0, 32.0]))
    assert (t[0, 1:] == 0).all() and (t[1] == 0).all()
    assert targets[0, 0, 1] == 48.0                      # input untouched
    assert (out[0, :, 36:60, 52:92] == 200).all()        # the bright block moved with its box
    f, _ = resize_batch(images.float(), targets, (32, 64))
    assert f.dtype == torch.float32 and f.shape == (2, 3, 32, 64)
    same, same_t = resize_batch(images, targets, (64, 128))
    assert same is images and same_t is targets


def test_random_size_range():
    rng = np.random.default_rng(0)
    sizes = {random_size(rng, (640, 640), 5) for _ in range(500)}
    assert sizes == {(s, s) for s in range(480, 801, 32)}
    nano = multiscale_size_range(get_preset("yolox-nano"))
    assert nano == (320, 640)
    sizes = {random_size(rng, (416, 416), size_range=nano) for _ in range(500)}
    assert sizes == {(s, s) for s in range(320, 641, 32)}
    assert multiscale_size_range(get_preset("yolox-s")) == (480, 800)
    h, w = random_size(rng, (384, 640), 2)
    assert h % 32 == 0 and w % 32 == 0 and 320 <= h <= 448 and w == 32 * int(h / 32 * 640 / 384)


def test_targets_stay_within_input(split):
    ds = TrainDataset(split, SIZE, mixup=True, seed=11)
    for e in range(3):
        for i in range(len(split)):
            boxes, _ = targets_to_boxes(ds[SampleKey(i, e, True)].targets)
            assert (boxes >= -1e-3).all() and (boxes[:, [0, 2]] <= 128 + 1e-3).all()
            assert (boxes[:, [1, 3]] <= 128 + 1e-3).all()
