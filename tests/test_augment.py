"""Augmentations: the fused mosaic against a plain two-step version, boxes following
pixels, flip, mixup, HSV, label filtering and packing."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from openyolox.data import augment as A
from openyolox.data.transforms import letterbox_with_boxes

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255),
           (20, 20, 20), (240, 240, 240)]


# --------------------------------------------------------------------------- helpers

def two_step_mosaic_affine(images, boxes, center, out_hw, matrix):
    """The straightforward version: letterbox-resize each image, paste it on a 2H x 2W
    canvas of 114 around the centre (cut at the canvas border), then warp the canvas.
    Written independently of augment.place_mosaic_tiles on purpose."""
    H, W = out_hw
    canvas = np.full((2 * H, 2 * W, 3), 114, np.uint8)
    xc, yc = center
    placed = []
    for k, (img, b) in enumerate(zip(images, boxes)):
        h0, w0 = img.shape[:2]
        r = min(H / h0, W / w0)
        img = cv2.resize(img, (int(w0 * r), int(h0 * r)), interpolation=cv2.INTER_LINEAR)
        h, w = img.shape[:2]
        x1 = max(xc - w, 0) if k in (0, 2) else xc
        x2 = xc if k in (0, 2) else min(xc + w, 2 * W)
        y1 = max(yc - h, 0) if k in (0, 1) else yc
        y2 = yc if k in (0, 1) else min(yc + h, 2 * H)
        sx1 = w - (x2 - x1) if k in (0, 2) else 0      # left part cut off for left tiles
        sy1 = h - (y2 - y1) if k in (0, 1) else 0      # top part cut off for top tiles
        canvas[y1:y2, x1:x2] = img[sy1:sy1 + (y2 - y1), sx1:sx1 + (x2 - x1)]
        nb = b * np.array([w / w0, h / h0] * 2) + np.array([x1 - sx1, y1 - sy1] * 2)
        nb[:, 0::2] = nb[:, 0::2].clip(0, 2 * W)
        nb[:, 1::2] = nb[:, 1::2].clip(0, 2 * H)
        placed.append(nb[(nb[:, 2] > nb[:, 0]) & (nb[:, 3] > nb[:, 1])])
    out = cv2.warpAffine(canvas, matrix, (W, H), flags=cv2.INTER_LINEAR, borderValue=(114, 114, 114))
    merged = np.concatenate(placed).astype(np.float32)
    return out, A.affine_boxes(merged, matrix, out_hw)


def smooth_image(rng, h, w):
    """Natural-ish content: upsampled noise (bilinear resampling differences stay small)."""
    small = (rng.random((h // 16 + 2, w // 16 + 2, 3)) * 255).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def rect_image(h, w, rects, bg=(128, 128, 128)):
    """(h, w, 3) image of background ``bg`` with filled rectangles; rects: [(x1, y1, x2, y2, colour)]."""
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bg
    for x1, y1, x2, y2, c in rects:
        img[y1:y2, x1:x2] = c
    return img


def colour_fraction(image, box, colour, tol=40):
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    region = image[y1:y2, x1:x2].astype(int)
    return (np.abs(region - np.array(colour)).max(-1) <= tol).mean()


# --------------------------------------------------------------------------- mosaic

@pytest.mark.parametrize("seed", range(8))
def test_fused_mosaic_matches_two_step(seed):
    rng = np.random.default_rng(100 + seed)
    sizes = [(480, 640), (300, 200), (640, 480), (90, 500)]
    images = [smooth_image(rng, h, w) for h, w in sizes]
    boxes = [np.array([[5, 8, 60, 70], [w * 0.3, h * 0.2, w * 0.9, h * 0.95], [0, 0, w, h]], np.float32)
             for h, w in sizes]
    classes = [np.arange(3) for _ in sizes]
    out_hw = (320, 416)
    plan = A.plan_mosaic(np.random.default_rng(seed), sizes, out_hw, scale=(0.1, 2.0))
    fused = A.render_mosaic(plan, images)
    fused_boxes, fused_classes = A.mosaic_boxes(plan, boxes, classes)
    ref, ref_boxes = two_step_mosaic_affine(images, boxes, plan.center, out_hw, plan.matrix)

    assert fused.shape == (320, 416, 3) and fused.dtype == np.uint8
    diff = np.abs(fused.astype(np.int16) - ref.astype(np.int16))
    assert diff.mean() < 1.0, diff.mean()
    assert (diff.max(-1) > 40).mean() < 0.01      # only scattered edge pixels may differ
    assert fused_boxes.shape == ref_boxes.shape
    np.testing.assert_allclose(fused_boxes, ref_boxes, atol=1.0)
    assert len(fused_classes) == len(fused_boxes)


def test_mosaic_tiles_never_overlap_or_leave_the_canvas():
    out_hw = (256, 320)
    for seed in range(30):
        rng = np.random.default_rng(seed)
        sizes = [tuple(int(v) for v in rng.integers(20, 700, 2)) for _ in range(4)]
        plan = A.plan_mosaic(rng, sizes, out_hw)
        covered = np.zeros((2 * out_hw[0], 2 * out_hw[1]), np.int32)
        for tile in plan.tiles:
            x1, y1, x2, y2 = tile.rect
            assert 0 <= x1 <= x2 <= 2 * out_hw[1] and 0 <= y1 <= y2 <= 2 * out_hw[0]
            h, w = tile.size_hw
            assert h <= out_hw[0] and w <= out_hw[1]
            covered[y1:y2, x1:x2] += 1
        assert covered.max() <= 1


def test_invisible_tiles_need_no_image():
    sizes = [(200, 200)] * 4
    for seed in range(40):
        plan = A.plan_mosaic(np.random.default_rng(seed), sizes, (128, 128), scale=(1.5, 2.0))
        visible = [A.tile_visible(plan, k) for k in range(4)]
        images = [np.full((200, 200, 3), 50 * (k + 1), np.uint8) if v else None
                  for k, v in enumerate(visible)]
        out = A.render_mosaic(plan, images)     # must not touch the missing ones
        for k, v in enumerate(visible):
            if not v:
                assert not (out == 50 * (k + 1)).all(-1).any()


def test_boxes_follow_pixels_through_mosaic_and_affine():
    """Distinct filled rectangles: after mosaic + affine each box is mostly its colour."""
    rng = np.random.default_rng(0)
    checked = 0
    for seed in range(12):
        images, boxes, classes = [], [], []
        for k in range(4):
            h, w = (int(v) for v in rng.integers(150, 400, 2))
            c0, c1 = 2 * k, 2 * k + 1
            r0 = (w // 10, h // 10, w // 10 + w // 3, h // 10 + h // 3, COLOURS[c0])
            r1 = (w // 2, h // 2, w - w // 8, h - h // 8, COLOURS[c1])
            images.append(rect_image(h, w, [r0, r1]))
            boxes.append(np.array([r0[:4], r1[:4]], np.float32))
            classes.append(np.array([c0, c1]))
        out, out_boxes, out_classes = A.mosaic(images, boxes, classes, np.random.default_rng(seed),
                                               (320, 320), scale=(0.5, 1.5))
        for box, cls in zip(out_boxes, out_classes):
            if min(box[2] - box[0], box[3] - box[1]) < 10:
                continue
            assert colour_fraction(out, box, COLOURS[cls]) > 0.5, (seed, box, cls)
            checked += 1
    assert checked > 20


def test_affine_boxes_identity_and_clip():
    boxes = np.array([[10, 20, 30, 40], [-5, -5, 500, 500]], np.float32)
    eye = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    out = A.affine_boxes(boxes, eye, (100, 200))
    np.testing.assert_allclose(out, [[10, 20, 30, 40], [0, 0, 200, 100]])
    rot90 = np.array([[0.0, -1.0, 100], [1.0, 0.0, 0]])   # (x, y) -> (100 - y, x)
    np.testing.assert_allclose(A.affine_boxes(boxes[:1], rot90, (500, 500)), [[60, 10, 80, 30]])


def test_random_affine_matrix_ranges():
    for seed in range(50):
        m = A.random_affine_matrix(np.random.default_rng(seed), (640, 640), scale=(0.5, 1.5))
        scale = np.sqrt(abs(np.linalg.det(m[:, :2])))
        assert 0.45 < scale < 1.6
        assert abs(m[0, 2]) <= 64 and abs(m[1, 2]) <= 64


# --------------------------------------------------------------------------- mixup

@pytest.mark.parametrize("seed", range(10))
def test_mixup_labels_concat_and_boxes_follow_pixels(seed):
    H, W = 256, 320
    base = np.zeros((H, W, 3), np.uint8)        # black: the blend shows other // 2
    base_boxes = np.array([[1, 2, 30, 40]], np.float32)
    other = rect_image(300, 200, [(20, 30, 150, 200, (250, 10, 10))], bg=(10, 250, 10))
    other_boxes = np.array([[20, 30, 150, 200]], np.float32)
    out, boxes, classes = A.mixup(base, base_boxes, np.array([3]), other, other_boxes, np.array([7]),
                                  np.random.default_rng(seed))
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    assert classes.tolist() == [3, 7]
    np.testing.assert_allclose(boxes[0], base_boxes[0])
    box = boxes[1]
    assert 0 <= box[0] <= box[2] <= W and 0 <= box[1] <= box[3] <= H
    if min(box[2] - box[0], box[3] - box[1]) > 6:
        assert colour_fraction(out, box, (125, 5, 5), tol=10) > 0.8
    assert out.max() <= 125                     # blended 0.5 / 0.5 with black


def test_mixup_blend_is_the_average():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out, _, _ = A.mixup(a, *A.empty_labels(), b, *A.empty_labels(), np.random.default_rng(5),
                        jitter=(1.0, 1.0))
    # jitter 1 and a square image: the other image lands unscaled, maybe flipped
    mean = (a.astype(np.float32) + b) / 2
    mean_flipped = (a.astype(np.float32) + b[:, ::-1]) / 2
    best = min(np.abs(out - mean).max(), np.abs(out - mean_flipped).max())
    assert best <= 0.5 + 1e-6          # rounded average (the reference truncates: <= 1 apart)


def test_mixup_zero_padding_when_shrunk():
    image = np.full((100, 100, 3), 200, np.uint8)
    other = np.full((100, 100, 3), 50, np.uint8)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        jit = rng.uniform(0.5, 0.9)
        out, _, _ = A.mixup(image, *A.empty_labels(), other, *A.empty_labels(), np.random.default_rng(seed),
                            jitter=(0.5, 0.9))
        size = int(100 * jit)
        assert (out[:size - 1, :size - 1] == 125).all()     # blended with the image
        assert (out[size:, :] == 100).all() and (out[:, size:] == 100).all()  # with the 0 padding


# --------------------------------------------------------------------------- hsv, flip, labels

def reference_hsv(image, offsets):
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + offsets[0]) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] + offsets[1], 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + offsets[2], 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


def test_hsv_lut_matches_int16_arithmetic():
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        offsets = (rng.uniform(-1, 1, 3) * [5, 30, 30] * rng.integers(0, 2, 3)).astype(np.int16)
        out = A.augment_hsv(image, np.random.default_rng(seed))
        if offsets.any():
            np.testing.assert_array_equal(out, reference_hsv(image, offsets))
        else:
            assert out is image


def test_hflip_moves_boxes_with_pixels():
    img = rect_image(50, 80, [(10, 5, 30, 20, (0, 0, 255))])
    flipped, boxes = A.hflip(img, np.array([[10, 5, 30, 20]], np.float32))
    np.testing.assert_allclose(boxes, [[50, 5, 70, 20]])
    assert (flipped[5:20, 50:70] == (0, 0, 255)).all()
    assert colour_fraction(flipped, boxes[0], (0, 0, 255), tol=0) == 1.0
    back, back_boxes = A.hflip(flipped, boxes)
    np.testing.assert_array_equal(back, img)
    np.testing.assert_allclose(back_boxes, [[10, 5, 30, 20]])


def test_filter_tiny_boxes():
    boxes = np.array([[0, 0, 1, 10], [0, 0, 1.5, 10], [5, 5, 5, 5], [0, 0, 10, 0.9], [0, 0, 3, 3]],
                     np.float32)
    kept, cls = A.filter_tiny_boxes(boxes, np.arange(5))
    assert cls.tolist() == [1, 4]
    assert kept.shape == (2, 4)


def test_targets_are_cxcywh_padded_and_capped_at_120():
    boxes = np.tile(np.array([[10, 20, 30, 60]], np.float32), (150, 1))
    targets = A.boxes_to_targets(boxes, np.arange(150) % 7)
    assert targets.shape == (120, 5) and targets.dtype == np.float32
    np.testing.assert_allclose(targets[0], [0, 20, 40, 20, 40])
    assert targets[:, 0].tolist() == (np.arange(120) % 7).tolist()
    few = A.finish_labels(boxes[:3], np.array([1, 2, 3]))
    assert few.shape == (120, 5) and (few[3:] == 0).all() and few[:3, 0].tolist() == [1, 2, 3]
    assert (A.finish_labels(*A.empty_labels()) == 0).all()


def test_letterbox_with_boxes_scales_boxes():
    img = rect_image(100, 200, [(20, 10, 60, 50, (0, 255, 0))])
    canvas, boxes, r = letterbox_with_boxes(img, np.array([[20, 10, 60, 50]], np.float32), (320, 320))
    assert r == pytest.approx(1.6) and canvas.shape == (320, 320, 3)
    np.testing.assert_allclose(boxes, [[32, 16, 96, 80]])
    assert colour_fraction(canvas, boxes[0], (0, 255, 0)) > 0.9
    assert (canvas[200:] == 114).all()


def test_mosaic_of_unlabelled_images():
    images = [np.full((100, 120, 3), 200, np.uint8)] * 4
    out, boxes, classes = A.mosaic(images, [A.empty_labels()[0]] * 4, [A.empty_labels()[1]] * 4,
                                   np.random.default_rng(0), (128, 128))
    assert out.shape == (128, 128, 3) and boxes.shape == (0, 4) and classes.shape == (0,)
