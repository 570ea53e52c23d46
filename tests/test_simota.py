"""Batched SimOTA and the YOLOX loss against the reference's golden outputs and the slow
per-image reference (tests/reference_simota.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from openyolox.training.loss import yolox_loss
from openyolox.training.simota import assign_simota

sys.path.insert(0, str(Path(__file__).resolve().parent))
import golden  # noqa: E402
from reference_simota import reference_assign, reference_loss  # noqa: E402

CASES = ["two_images_one_empty", "crowded", "tiny_and_border", "max_labels"]
LOSS_KEYS = ["total_loss", "iou_loss", "obj_loss", "cls_loss", "l1_loss", "num_fg"]
INPUTS = ["outputs", "raw_reg", "labels", "grid_x", "grid_y", "strides"]


def load_case(name: str) -> dict[str, np.ndarray]:
    return golden.load(f"simota_{name}")


def as_inputs(case: dict) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(case[k])) for k in INPUTS}


def loss_vector(losses: dict) -> np.ndarray:
    return np.array([float(losses[k]) for k in LOSS_KEYS])


# ---------------------------------------------------------------- golden data (reference YOLOX)


@pytest.mark.parametrize("name", CASES)
def test_assignment_matches_golden(name):
    case = load_case(name)
    x = as_inputs(case)
    fg, matched_gt, matched_iou = assign_simota(x["outputs"], x["labels"], x["grid_x"], x["grid_y"], x["strides"])
    assert fg.dtype == torch.bool and matched_gt.dtype == torch.int64
    np.testing.assert_array_equal(fg.numpy(), case["fg_mask"])
    np.testing.assert_array_equal(matched_gt.numpy(), case["matched_gt"])
    np.testing.assert_allclose(matched_iou.numpy(), case["matched_iou"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("use_l1", [False, True])
def test_loss_matches_golden(name, use_l1):
    case = load_case(name)
    losses = yolox_loss(**as_inputs(case), use_l1=use_l1)
    assert set(losses) == set(LOSS_KEYS)
    assert all(v.dim() == 0 for v in losses.values())
    expected = case["loss_l1" if use_l1 else "loss_nol1"]
    np.testing.assert_allclose(loss_vector(losses), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["two_images_one_empty", "tiny_and_border"])
def test_slow_reference_matches_golden(name):
    """The yardstick for the random tests must itself reproduce the reference YOLOX."""
    case = load_case(name)
    x = as_inputs(case)
    fg, matched_gt, _ = reference_assign(x["outputs"], x["labels"], x["grid_x"], x["grid_y"], x["strides"])
    np.testing.assert_array_equal(fg.numpy(), case["fg_mask"])
    np.testing.assert_array_equal(matched_gt.numpy(), case["matched_gt"])
    np.testing.assert_allclose(loss_vector(reference_loss(**x, use_l1=True)), case["loss_l1"], rtol=1e-4)


# ---------------------------------------------------------------- random cases vs slow reference


def make_anchors(height: int, width: int, strides=(8, 16, 32)):
    """Anchor grid cells and strides, levels concatenated P3, P4, P5 row-major: 3 x (A,)."""
    xs, ys, ss = [], [], []
    for s in strides:
        gy, gx = torch.meshgrid(torch.arange(height // s), torch.arange(width // s), indexing="ij")
        xs.append(gx.flatten())
        ys.append(gy.flatten())
        ss.append(torch.full((gx.numel(),), s))
    return torch.cat(xs).float(), torch.cat(ys).float(), torch.cat(ss).float()


def make_labels(gen, num_gts, height, width, num_classes, max_labels, kind):
    """(B, max_labels, 5) padded labels; kind picks the flavour of boxes."""
    labels = torch.zeros(len(num_gts), max_labels, 5)
    for b, n in enumerate(num_gts):
        if n == 0:
            continue
        size = torch.tensor([width, height], dtype=torch.float32)
        if kind == "tiny":
            wh = 0.5 + 4.0 * torch.rand(n, 2, generator=gen)
        else:
            wh = torch.exp(torch.empty(n, 2).uniform_(np.log(3.0), np.log(0.8 * min(height, width)), generator=gen))
        centre = wh / 2 + torch.rand(n, 2, generator=gen) * (size - wh).clamp(min=0)
        if kind in ("border", "tiny"):
            # push half of the boxes against an edge or a corner (centre at half a box from it)
            at_edge = torch.rand(n, 2, generator=gen) < 0.5
            far = torch.rand(n, 2, generator=gen) < 0.5
            edge = torch.where(far, size - wh / 2, wh / 2)
            centre = torch.where(at_edge, edge, centre)
        if kind == "integer":
            # integer centres: anchors land exactly on the 1.5-stride square's edge
            centre = centre.round()
            wh = wh.round().clamp(min=1)
        labels[b, :n, 0] = torch.randint(0, num_classes, (n,), generator=gen).float()
        labels[b, :n, 1:3] = centre
        labels[b, :n, 3:5] = wh
        if kind == "duplicates" and n >= 3:
            labels[b, 1] = labels[b, 0]  # exact duplicate
            labels[b, 2, 1:] = labels[b, 0, 1:]  # same box, maybe another class
    return labels


def make_outputs(gen, batch, grid_x, grid_y, strides, num_classes):
    """Random head outputs: raw (tx, ty, tw, th) and their decoding, obj and class logits."""
    num_anchors = grid_x.numel()
    raw = torch.empty(batch, num_anchors, 4)
    raw[..., :2] = torch.empty(batch, num_anchors, 2).uniform_(-0.5, 1.5, generator=gen)
    raw[..., 2:] = torch.empty(batch, num_anchors, 2).uniform_(-1.0, 3.0, generator=gen)
    boxes = torch.cat(((raw[..., :2] + torch.stack((grid_x, grid_y), 1)) * strides[:, None],
                       raw[..., 2:].exp() * strides[:, None]), dim=-1)
    logits = torch.randn(batch, num_anchors, 1 + num_classes, generator=gen) * 2.5 - 3.0
    return torch.cat((boxes, logits), dim=-1), raw


RANDOM_CASES = [
    # seed, image (h, w), GTs per image, classes, kind
    (0, (160, 192), [3, 0, 7], 4, "plain"),
    (1, (256, 256), [25, 1, 0, 12], 80, "plain"),
    (2, (192, 160), [9, 14], 3, "border"),
    (3, (128, 128), [10, 6, 0], 5, "tiny"),
    (4, (224, 224), [8, 5], 6, "duplicates"),
    (5, (256, 192), [30, 11], 7, "integer"),
    (6, (320, 320), [60, 40], 20, "plain"),
]


def random_case(seed, hw, num_gts, num_classes, kind):
    gen = torch.Generator().manual_seed(seed)
    grid_x, grid_y, strides = make_anchors(*hw)
    labels = make_labels(gen, num_gts, hw[0], hw[1], num_classes, max(num_gts) + 3, kind)
    outputs, raw = make_outputs(gen, len(num_gts), grid_x, grid_y, strides, num_classes)
    return dict(outputs=outputs, raw_reg=raw, labels=labels, grid_x=grid_x, grid_y=grid_y, strides=strides)


@pytest.mark.parametrize("seed,hw,num_gts,num_classes,kind", RANDOM_CASES)
def test_random_cases_match_slow_reference(seed, hw, num_gts, num_classes, kind):
    x = random_case(seed, hw, num_gts, num_classes, kind)
    anchors = (x["grid_x"], x["grid_y"], x["strides"])
    fg, matched_gt, matched_iou = assign_simota(x["outputs"], x["labels"], *anchors)
    ref_fg, ref_gt, ref_iou = reference_assign(x["outputs"], x["labels"], *anchors)
    assert ref_fg.any()
    assert torch.equal(fg, ref_fg)
    assert torch.equal(matched_gt, ref_gt)
    torch.testing.assert_close(matched_iou, ref_iou, rtol=1e-4, atol=1e-6)
    for b, n in enumerate(num_gts):  # positives only in images with GTs, indices in range
        assert bool(fg[b].any()) == (n > 0)
        assert int(matched_gt[b].max()) < n
    for use_l1, iou_type in [(False, "iou"), (True, "iou"), (True, "giou")]:
        ours = loss_vector(yolox_loss(**x, use_l1=use_l1, iou_type=iou_type))
        ref = loss_vector(reference_loss(**x, use_l1=use_l1, iou_type=iou_type))
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)


def test_chunked_assignment_equals_one_chunk():
    x = random_case(1, (256, 256), [25, 1, 0, 12], 80, "plain")
    args = (x["outputs"], x["labels"], x["grid_x"], x["grid_y"], x["strides"])
    whole = assign_simota(*args)
    one_image_at_a_time = assign_simota(*args, max_pairs=1)
    for a, b in zip(whole, one_image_at_a_time):
        assert torch.equal(a, b)


def test_image_alone_equals_image_in_batch():
    """No dependence on the other images (their GT count, their candidates)."""
    x = random_case(5, (256, 192), [30, 11], 7, "integer")
    anchors = (x["grid_x"], x["grid_y"], x["strides"])
    batch = assign_simota(x["outputs"], x["labels"], *anchors)
    alone = assign_simota(x["outputs"][1:], x["labels"][1:, :11], *anchors)
    for a, b in zip(batch, alone):
        assert torch.equal(a[1:], b)


def test_padding_rows_between_labels_are_skipped():
    """Padding is found by value, not position; matched_gt indexes the rows as given."""
    x = random_case(2, (192, 160), [9, 14], 3, "border")
    anchors = (x["grid_x"], x["grid_y"], x["strides"])
    packed = assign_simota(x["outputs"], x["labels"], *anchors)
    labels = torch.zeros(2, 40, 5)
    rows = torch.arange(14) * 2 + 3  # GT i goes to row 2i + 3
    labels[:, rows] = x["labels"][:, :14]
    spread = assign_simota(x["outputs"], labels, *anchors)
    assert torch.equal(packed[0], spread[0]) and torch.equal(packed[2], spread[2])
    assert torch.equal(torch.where(packed[0], rows[packed[1].clamp(min=0)], -1), spread[1])


def corner_case(seed: int, ties: bool):
    """A GT centred just outside the image has 3 anchors in its square but k ~ 9: it must
    also take outside candidates (cost + 1e6, where float32 steps are 1/16). With `ties`,
    every anchor predicts the same box and logits, so all costs tie exactly."""
    grid_x, grid_y, strides = make_anchors(64, 64)
    gen = torch.Generator().manual_seed(seed)
    num_anchors = grid_x.numel()
    labels = torch.tensor([[[1, -6, -6, 40, 40], [2, 20, 20, 30, 30], [0, 0, 0, 0, 0]],
                           [[0, 30, 30, 50, 50], [0, 30, 30, 50, 50], [2, 60, 10, 12, 12]]], dtype=torch.float32)
    boxes = labels[:, :1, 1:5] + torch.randn(2, num_anchors, 4, generator=gen) * (0.0 if ties else 1.5)
    logits = torch.randn(2, 1 if ties else num_anchors, 4, generator=gen).expand(2, num_anchors, 4)
    outputs = torch.cat((boxes, logits), dim=-1)
    return dict(outputs=outputs, raw_reg=torch.zeros(2, num_anchors, 4), labels=labels,
                grid_x=grid_x, grid_y=grid_y, strides=strides)


@pytest.mark.parametrize("seed,ties", [(0, False), (1, False), (2, False), (0, True)])
def test_gt_with_few_anchors_takes_outside_candidates(seed, ties):
    x = corner_case(seed, ties)
    anchors = (x["grid_x"], x["grid_y"], x["strides"])
    fg, matched_gt, matched_iou = assign_simota(x["outputs"], x["labels"], *anchors)
    ref_fg, ref_gt, ref_iou = reference_assign(x["outputs"], x["labels"], *anchors)
    assert int((matched_gt[0] == 0).sum()) > 3  # more positives than anchors in its square
    assert torch.equal(fg, ref_fg) and torch.equal(matched_gt, ref_gt)
    torch.testing.assert_close(matched_iou, ref_iou, rtol=1e-4, atol=1e-6)
    ours = loss_vector(yolox_loss(**x, use_l1=True))
    np.testing.assert_allclose(ours, loss_vector(reference_loss(**x, use_l1=True)), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- gradients and edge cases


@pytest.mark.parametrize("iou_type", ["iou", "giou"])
def test_loss_backpropagates_into_outputs_and_raw_reg(iou_type):
    x = random_case(3, (128, 128), [10, 6, 0], 5, "tiny")
    outputs = x.pop("outputs").requires_grad_(True)
    raw_reg = x.pop("raw_reg").requires_grad_(True)
    losses = yolox_loss(outputs, raw_reg, **x, use_l1=True, iou_type=iou_type)
    losses["total_loss"].backward()
    for grad in (outputs.grad, raw_reg.grad):
        assert grad is not None and torch.isfinite(grad).all()
    assert outputs.grad[..., :4].abs().sum() > 0  # boxes (IoU loss)
    assert outputs.grad[2, :, 4].abs().sum() > 0  # obj of the empty image (all negatives)
    assert outputs.grad[..., 5:].abs().sum() > 0  # classes
    assert raw_reg.grad.abs().sum() > 0  # L1


def test_batch_without_any_gt():
    x = random_case(0, (160, 192), [3, 0, 7], 4, "plain")
    x["labels"].zero_()
    outputs = x.pop("outputs").requires_grad_(True)
    fg, matched_gt, matched_iou = assign_simota(outputs, x["labels"], x["grid_x"], x["grid_y"], x["strides"])
    assert not fg.any() and (matched_gt == -1).all() and (matched_iou == 0).all()
    losses = yolox_loss(outputs, x.pop("raw_reg"), **x, use_l1=True)
    assert float(losses["num_fg"]) == 0.0
    assert all(float(losses[k].detach()) == 0.0 for k in ("iou_loss", "cls_loss", "l1_loss"))
    losses["total_loss"].backward()
    assert torch.isfinite(outputs.grad).all() and outputs.grad[..., 4].abs().sum() > 0


def test_assignment_accepts_half_precision_outputs():
    x = random_case(4, (224, 224), [8, 5], 6, "duplicates")
    anchors = (x["grid_x"], x["grid_y"], x["strides"])
    fg, matched_gt, matched_iou = assign_simota(x["outputs"].half(), x["labels"], *anchors)
    assert matched_iou.dtype == torch.float32 and fg.any()
    ref_fg, ref_gt, _ = reference_assign(x["outputs"].half().float(), x["labels"], *anchors)
    assert torch.equal(fg, ref_fg) and torch.equal(matched_gt, ref_gt)
