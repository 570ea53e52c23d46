"""inference.postprocess against the reference YOLOX outputs, and scale_boxes.

Golden data: `postprocess.npz` from the reference implementation (see tests/data/reference/README.md),
compared with exact equality: same boxes, same scores, same order. No tolerance is needed since
every number is either copied from the input or computed with the same float32 operations.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from openyolox.data.transforms import scale_boxes
from openyolox.inference.postprocess import postprocess
from openyolox.ops.boxes import cxcywh_to_xyxy
from openyolox.ops.nms import batched_nms, nms



@pytest.fixture(scope="module")
def golden():
    import golden as golden_data  # tests/golden.py

    return golden_data.load("postprocess")


def settings(golden) -> dict:
    """{"eval": (conf, nms, class_agnostic), "demo": (...)} as stored with the data."""
    return {k: tuple(v) for k, v in json.loads(str(golden["settings"])).items()}


@pytest.mark.parametrize("case", ["eval", "demo"])
def test_matches_reference_exactly(golden, case):
    conf, iou, agnostic = settings(golden)[case]
    prediction = torch.from_numpy(golden["prediction"])
    out = postprocess(prediction, conf, iou, agnostic)
    assert len(out) == prediction.shape[0]
    for b, dets in enumerate(out):
        expected = golden[f"{case}_{b}"]
        assert dets.dtype == torch.float32 and dets.shape == expected.shape
        np.testing.assert_array_equal(dets.numpy(), expected)


def test_golden_settings_are_the_documented_ones(golden):
    assert settings(golden) == {"eval": (0.01, 0.65, False), "demo": (0.25, 0.45, True)}


def test_batch_equals_images_one_by_one_and_input_untouched(golden):
    prediction = torch.from_numpy(golden["prediction"])
    before = prediction.clone()
    batched = postprocess(prediction, 0.01, 0.65)
    assert torch.equal(prediction, before)  # the reference overwrites its input; we do not
    for b in range(prediction.shape[0]):
        assert torch.equal(batched[b], postprocess(prediction[b:b + 1], 0.01, 0.65)[0])


def reference_postprocess(prediction, conf, iou, agnostic):
    """The reference algorithm written out: max over classes, score filter, NMS."""
    out = []
    for pred in prediction:
        class_conf, class_pred = pred[:, 5:].max(1)
        score = pred[:, 4] * class_conf
        m = score >= conf
        dets = torch.cat((cxcywh_to_xyxy(pred[m, :4]), pred[m, 4:5], class_conf[m, None],
                          class_pred[m, None].float()), 1)
        keep = (nms(dets[:, :4], score[m], iou) if agnostic
                else batched_nms(dets[:, :4], score[m], dets[:, 6], iou))
        out.append(dets[keep])
    return out


@pytest.mark.parametrize("agnostic", [False, True])
def test_object_filter_shortcut_is_exact(agnostic):
    # probabilities piled up around the threshold: the obj >= conf shortcut must not change rows
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 500, 9, generator=g)
    pred[..., :2] *= 100
    pred[..., 2:4] = pred[..., 2:4] * 30 + 2
    pred[..., 4] = 0.2 + 0.1 * torch.rand(2, 500, generator=g)
    pred[0, :7, 4] = 0.25  # exactly at the threshold
    pred[0, :7, 5] = 1.0
    got = postprocess(pred, 0.25, 0.45, agnostic)
    for a, b in zip(got, reference_postprocess(pred, 0.25, 0.45, agnostic)):
        assert torch.equal(a, b)
    assert got[0].shape[0] > 7


def test_empty_images():
    pred = torch.rand(3, 200, 85) * 0.5
    pred[..., 4] = 0.0  # no objects in images 0 and 2
    pred[1, :10, 4] = 0.9
    pred[1, :10, 5] = 0.9
    out = postprocess(pred, 0.25, 0.45)
    assert [d.shape for d in out] == [(0, 7), out[1].shape, (0, 7)]
    assert out[1].shape[0] >= 1 and out[0].dtype == torch.float32
    assert [d.shape for d in postprocess(torch.zeros(2, 0, 85))] == [(0, 7), (0, 7)]
    assert postprocess(torch.zeros(0, 100, 85)) == []


def test_rows_layout():
    # one object: row = (x1, y1, x2, y2, obj, best class prob, best class)
    pred = torch.zeros(1, 4, 8)
    pred[0, 1] = torch.tensor([50.0, 40.0, 20.0, 10.0, 0.8, 0.1, 0.9, 0.3])
    (dets,) = postprocess(pred, 0.25, 0.45)
    assert dets.tolist() == [[40.0, 35.0, 60.0, 45.0, 0.800000011920929, 0.8999999761581421, 1.0]]


def test_scale_boxes():
    dets = torch.tensor([[10.0, 20.0, 300.0, 90.0, 0.9, 0.8, 3.0],
                         [-8.0, -4.0, 40.0, 50.0, 0.7, 0.6, 1.0]])
    before = dets.clone()
    out = scale_boxes(dets, 0.5, (150, 500))  # image h=150, w=500, letterboxed at r=0.5
    assert torch.equal(dets, before)
    assert torch.equal(out, torch.tensor([[20.0, 40.0, 500.0, 150.0, 0.9, 0.8, 3.0],  # clipped
                                          [0.0, 0.0, 80.0, 100.0, 0.7, 0.6, 1.0]]))
    raw = scale_boxes(dets, 0.5, (150, 500), clip=False)
    assert raw[:, :4].tolist() == [[20.0, 40.0, 600.0, 180.0], [-16.0, -8.0, 80.0, 100.0]]
    assert scale_boxes(torch.zeros(0, 7), 0.5, (10, 10)).shape == (0, 7)
