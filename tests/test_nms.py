"""ops.nms against a plain greedy loop written out here, on every internal path.

The reference loop is the textbook algorithm: visit boxes by decreasing score (ties by index),
keep a box unless a kept box overlaps it with IoU > threshold. Its IoU matrix is computed in
numpy in the boxes' dtype with box_iou's formula, so that pairs sitting exactly at the threshold
round the same way in both (a float64 reference would disagree on ulp-close pairs).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import openyolox.ops.nms as nms_module
from openyolox.ops.boxes import box_iou
from openyolox.ops.nms import batched_nms, nms

THRESHOLDS = (0.3, 0.5, 0.7)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def reference_iou(boxes: np.ndarray) -> np.ndarray:
    """boxes: (N, 4) xyxy -> (N, N) IoU, computed the plain way in the boxes' dtype."""
    x1, y1, x2, y2 = boxes.T
    zero = boxes.dtype.type(0)
    area = np.maximum(x2 - x1, zero) * np.maximum(y2 - y1, zero)
    w = np.maximum(np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]), zero)
    h = np.maximum(np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]), zero)
    inter = w * h
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return inter / (area[:, None] + area[None] - inter)


def reference_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list:
    """Greedy NMS, one box at a time."""
    iou = reference_iou(boxes.cpu().numpy()).tolist()
    s = scores.cpu().tolist()
    order = sorted(range(len(s)), key=lambda i: -s[i])  # Python's sort is stable: ties by index
    kept = []
    for i in order:
        if all(not iou[i][k] > threshold for k in kept):
            kept.append(i)
    return kept


def reference_batched_nms(boxes, scores, classes, threshold) -> list:
    """Greedy NMS per class, merged by decreasing score (ties by index)."""
    kept = []
    for c in torch.unique(classes).tolist():
        idx = torch.nonzero(classes == c).squeeze(1)
        kept += [idx[k].item() for k in reference_nms(boxes[idx], scores[idx], threshold)]
    s = scores.tolist()
    return sorted(kept, key=lambda i: (-s[i], i))


def clustered_boxes(seed: int, n: int, size: float = 200.0, ties: bool = False):
    """(n, 4) xyxy boxes jittered around a few centres, (n,) scores, (n,) classes 0..3."""
    g = torch.Generator().manual_seed(seed)
    clusters = int(torch.randint(1, 8, (1,), generator=g))
    centre = torch.rand(clusters, 2, generator=g) * size
    wh = torch.rand(clusters, 2, generator=g) * size / 3 + 4
    which = torch.randint(clusters, (n,), generator=g)
    c = centre[which] + torch.randn(n, 2, generator=g) * wh[which] * 0.15
    s = wh[which] * torch.exp(torch.randn(n, 2, generator=g) * 0.2)
    boxes = torch.cat((c - s / 2, c + s / 2), 1)
    scores = torch.rand(n, generator=g)
    if ties:
        scores = (scores * 4).floor() / 4  # many equal scores
    classes = torch.randint(4, (n,), generator=g)
    return boxes, scores, classes


# Each path of the implementation, forced with the module's constants.
PATHS = {
    "default": {},
    "dense_only": {"_BLOCK": 10_000},
    "settle_then_pairs": {"_PAIRS_PER_BOX": 0, "_BLOCK": 16},
    "settle_only": {"_PAIRS_PER_BOX": 0, "_MAX_EDGES": 0, "_BLOCK": 16},
    "pairs_in_chunks": {"_PAIR_CHUNK": 97, "_BLOCK": 1},
    "sequential_finish": {"_ROUNDS": 1, "_BLOCK": 1},
    "sequential_only": {"_ROUNDS": 0, "_BLOCK": 1},
}


@pytest.fixture(params=list(PATHS))
def path(request, monkeypatch):
    for name, value in PATHS[request.param].items():
        monkeypatch.setattr(nms_module, name, value)
    return request.param


SEEDS = range(10)
_expected: dict = {}  # reference results, shared by all paths


def expected_keep(seed: int, ties: bool, t: float, class_aware: bool) -> list:
    key = (seed, ties, t, class_aware)
    if key not in _expected:
        boxes, scores, classes = clustered_boxes(seed, n=20 + 25 * seed, ties=ties)
        _expected[key] = (reference_batched_nms(boxes, scores, classes, t) if class_aware
                          else reference_nms(boxes, scores, t))
    return _expected[key]


@pytest.mark.parametrize("ties", [False, True])
def test_nms_matches_reference_loop(path, ties):
    for seed in SEEDS:
        boxes, scores, _ = clustered_boxes(seed, n=20 + 25 * seed, ties=ties)
        for t in THRESHOLDS:
            assert nms(boxes, scores, t).tolist() == expected_keep(seed, ties, t, False), (seed, t)


@pytest.mark.parametrize("ties", [False, True])
def test_batched_nms_matches_per_class_reference(path, ties):
    for seed in SEEDS:
        boxes, scores, classes = clustered_boxes(seed, n=20 + 25 * seed, ties=ties)
        for t in THRESHOLDS:
            keep = batched_nms(boxes, scores, classes, t).tolist()
            assert keep == expected_keep(seed, ties, t, True), (seed, t)


def test_batched_nms_classes_compared_by_value():
    boxes, scores, classes = clustered_boxes(7, n=150)
    expected = batched_nms(boxes, scores, classes, 0.5).tolist()
    for other in (classes.float() * 2.5 - 3, classes.to(torch.int32) - 7, classes * 1000):
        assert batched_nms(boxes, scores, other, 0.5).tolist() == expected
    # one class for all is plain NMS
    assert (batched_nms(boxes, scores, torch.zeros_like(classes), 0.5).tolist()
            == nms(boxes, scores, 0.5).tolist())


def test_empty_and_single():
    empty = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.dtype == torch.long and empty.shape == (0,)
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), 0.5).shape == (0,)
    one = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert nms(one, torch.tensor([0.3]), 0.5).tolist() == [0]
    assert batched_nms(one, torch.tensor([0.3]), torch.tensor([2]), 0.5).tolist() == [0]


def test_identical_boxes_keep_only_the_first_best(path):
    boxes = torch.tensor([[10.0, 10.0, 50.0, 60.0]]).repeat(300, 1)
    same = torch.full((300,), 0.5)
    assert nms(boxes, same, 0.5).tolist() == [0]  # equal scores: lowest index wins
    scores = torch.rand(300, generator=torch.Generator().manual_seed(0))
    assert nms(boxes, scores, 0.99).tolist() == [int(scores.argmax())]
    classes = torch.arange(300) % 3
    assert batched_nms(boxes, same, classes, 0.5).tolist() == [0, 1, 2]


def test_threshold_edges():
    boxes, scores, _ = clustered_boxes(3, n=200)
    by_score = torch.sort(scores, descending=True, stable=True)[1]
    assert nms(boxes, scores, 1.0).tolist() == by_score.tolist()  # IoU is never > 1
    assert nms(boxes, scores, 0.0).tolist() == reference_nms(boxes, scores, 0.0)
    # touching boxes (zero-width overlap) never suppress, even at threshold 0
    touching = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0]])
    assert nms(touching, torch.tensor([0.9, 0.8]), 0.0).tolist() == [0, 1]
    with pytest.raises(ValueError):
        nms(boxes, scores, -0.1)


def test_iou_exactly_at_threshold_is_kept():
    # IoU exactly 0.5 (overlap 50, union 100): "> threshold" suppresses, "=" does not
    boxes = torch.tensor([[0.0, 0.0, 10.0, 7.5], [0.0, 2.5, 10.0, 10.0]])
    assert box_iou(boxes[:1], boxes[1:]).item() == 0.5
    assert nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert nms(boxes, torch.tensor([0.9, 0.8]), 0.4999).tolist() == [0]


def test_degenerate_and_non_finite_boxes(path):
    boxes, scores, _ = clustered_boxes(11, n=120)
    boxes[5] = torch.tensor([30.0, 30.0, 30.0, 80.0])  # zero width
    boxes[6] = torch.tensor([50.0, 50.0, 40.0, 40.0])  # inverted
    bad = [10, 20, 30, 40]
    boxes[10, 0] = float("nan")
    boxes[20, 2] = float("inf")
    boxes[30] = torch.tensor([-float("inf"), 0.0, float("inf"), 100.0])
    boxes[40] = boxes[41]
    boxes[40, 3] = float("nan")
    got = nms(boxes, scores, 0.5).tolist()
    # boxes with a non-finite coordinate never suppress and are never suppressed
    finite = [i for i in range(120) if i not in bad]
    expected = [finite[k] for k in reference_nms(boxes[finite], scores[finite], 0.5)] + bad
    assert got == sorted(expected, key=lambda i: -scores[i].item())
    nan_but_one = torch.full((3, 4), float("nan"))
    nan_but_one[1] = torch.tensor([0.0, 0.0, 5.0, 5.0])
    assert nms(nan_but_one, torch.tensor([0.2, 0.1, 0.3]), 0.5).tolist() == [2, 0, 1]


def test_bad_shapes():
    with pytest.raises(ValueError):
        nms(torch.zeros(5, 5), torch.zeros(5), 0.5)
    with pytest.raises(ValueError):
        nms(torch.zeros(5, 4), torch.zeros(4), 0.5)
    with pytest.raises(ValueError):
        batched_nms(torch.zeros(5, 4), torch.zeros(5), torch.zeros(4), 0.5)


def test_long_suppression_chain(path):
    # each box overlaps only its neighbours (IoU 0.6) and scores fall along the chain: greedy
    # keeps every other box, which takes one round per box for the vectorised rounds
    n = 200
    x = torch.arange(n, dtype=torch.float32) * 2.5
    boxes = torch.stack((x, torch.zeros(n), x + 10, torch.full((n,), 10.0)), 1)
    scores = torch.linspace(1, 0.1, n)
    assert nms(boxes, scores, 0.5).tolist() == list(range(0, n, 2))
    assert nms(boxes, scores, 0.5).tolist() == reference_nms(boxes, scores, 0.5)


def test_dtypes():
    boxes, scores, classes = clustered_boxes(5, n=200)
    b64 = boxes.double() + 1e-9  # float64 arithmetic in both
    assert nms(b64, scores, 0.5).tolist() == reference_nms(b64, scores, 0.5)
    grid = (boxes * 4).round()  # integer boxes are taken as float32
    assert nms(grid.int(), scores, 0.5).tolist() == reference_nms(grid, scores, 0.5)
    half = boxes.half()
    assert nms(half, scores, 0.5).tolist() == reference_nms(half, scores, 0.5)
    assert nms(boxes, scores.double(), 0.5).tolist() == nms(boxes, scores, 0.5).tolist()


def test_iou_above_is_bit_identical_to_box_iou():
    boxes, _, _ = clustered_boxes(9, n=300)
    boxes[:20] = boxes[:20].flip(1)  # some inverted boxes
    iou = box_iou(boxes, boxes)
    table = nms_module._box_table(boxes)
    for t in torch.unique(iou)[::97].tolist():  # thresholds at actual IoU values
        assert torch.equal(nms_module._iou_above(table[:, :, None], table[:, None, :], t), iou > t)


def test_large_input_and_input_untouched():
    boxes, scores, classes = clustered_boxes(21, n=4000, size=640)
    before = boxes.clone(), scores.clone(), classes.clone()
    keep = batched_nms(boxes, scores, classes, 0.65)
    assert keep.tolist() == reference_batched_nms(boxes, scores, classes, 0.65)
    assert all(torch.equal(a, b) for a, b in zip(before, (boxes, scores, classes)))


@pytest.mark.parametrize("device", DEVICES)
def test_result_on_input_device(device):
    boxes, scores, classes = clustered_boxes(4, n=300)
    keep = batched_nms(boxes.to(device), scores.to(device), classes.to(device), 0.5)
    assert keep.device.type == device and keep.dtype == torch.long
    assert keep.cpu().tolist() == reference_batched_nms(boxes, scores, classes, 0.5)
