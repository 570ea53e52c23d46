"""VOC mAP@0.5: a hand-computed precision/recall curve, both AP definitions, difficult boxes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openyolox.data.records import DatasetSplit, ImageRecord
from openyolox.errors import DataError
from openyolox.evaluation import to_coco_results
from openyolox.evaluation.voc import evaluate_voc, format_voc_table, voc_ap_11point, voc_ap_area

# One class, 3 GT: image "A" has g1 = [0,0,10,10] and g2 = [20,0,30,10]; image "B" has
# g3 = [0,0,10,10]. Five detections, by score:
#
#   rank det score image box            best GT, IoU     result   TP FP  precision  recall
#   1    d1  0.9   A     [0,0,10,10]    g1, 1.0          TP       1  0   1          1/3
#   2    d2  0.8   A     [20,0,24,10]   g2, 40/100=0.4   FP (IoU) 1  1   1/2        1/3
#   3    d3  0.7   B     [0,0,10,9]     g3, 0.9          TP       2  1   2/3        2/3
#   4    d4  0.6   A     [0,0,10,9]     g1, 0.9 (taken)  FP (dup) 2  2   1/2        2/3
#   5    d5  0.5   A     [20,0,30,10]   g2, 1.0          TP       3  2   3/5        1
#
# Area AP (VOC2010+): the precision envelope is 1 on (0, 1/3], max(2/3, 1/2, 3/5) = 2/3 on
# (1/3, 2/3] and 3/5 on (2/3, 1]:  1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5 = 34/45 = 0.75556
# 11-point AP (VOC2007): r = 0, .1, .2, .3 -> 1 (recall 1/3 >= .3);  r = .4, .5, .6 -> 2/3;
# r = .7, .8, .9, 1 -> 3/5:  (4 * 1 + 3 * 2/3 + 4 * 3/5) / 11 = 8.4 / 11 = 0.76364
AREA_AP = 34 / 45
ELEVEN_POINT_AP = 8.4 / 11


def _hand_case(difficult_extra: bool = False):
    a_boxes = [[0, 0, 10, 10], [20, 0, 30, 10]]
    b_boxes, b_crowd = [[0, 0, 10, 10]], [False]
    if difficult_extra:  # a difficult GT in B, and a high-scoring detection exactly on it
        b_boxes.append([50, 50, 60, 60])
        b_crowd.append(True)
    records = [ImageRecord(Path("A.jpg"), "A", 100, 100, a_boxes, [0, 0]),
               ImageRecord(Path("B.jpg"), "B", 100, 100, b_boxes, [0] * len(b_boxes), b_crowd),
               ImageRecord(Path("C.jpg"), "C", 100, 100)]  # no GT, no detections
    split = DatasetSplit(records, ["thing"], [0])
    preds = {
        "A": (np.array([[0, 0, 10, 10], [20, 0, 24, 10], [0, 0, 10, 9], [20, 0, 30, 10]], np.float32),
              np.array([0.9, 0.8, 0.6, 0.5], np.float32), np.zeros(4, int)),
        "B": (np.array([[0, 0, 10, 9]], np.float32), np.array([0.7], np.float32), np.zeros(1, int)),
    }
    if difficult_extra:
        preds["B"] = (np.array([[0, 0, 10, 9], [50, 50, 60, 60]], np.float32),
                      np.array([0.7, 0.75], np.float32), np.zeros(2, int))
    return split, preds


def test_hand_computed_curve_both_definitions():
    split, preds = _hand_case()
    m = evaluate_voc(split, preds)
    row = m["per_class"][0]
    assert row["num_gt"] == 3 and row["num_detections"] == 5
    assert row["AP_area"] == pytest.approx(AREA_AP, abs=1e-12)
    assert row["AP_11point"] == pytest.approx(ELEVEN_POINT_AP, abs=1e-12)
    assert m["mAP_area"] == row["AP_area"] and m["mAP_11point"] == row["AP_11point"]


def test_ap_functions_on_the_curve_directly():
    recall = np.array([1, 1, 2, 2, 3]) / 3
    precision = np.array([1, 1 / 2, 2 / 3, 1 / 2, 3 / 5])
    assert voc_ap_area(recall, precision) == pytest.approx(AREA_AP, abs=1e-12)
    assert voc_ap_11point(recall, precision) == pytest.approx(ELEVEN_POINT_AP, abs=1e-12)
    # Recall exactly 3/10 reaches the 0.3 point (np.arange(0, 1.1, .1) would give 0.30000000000000004).
    assert voc_ap_11point(np.array([3 / 10]), np.array([1.0])) == pytest.approx(4 / 11)
    assert voc_ap_area(np.zeros(0), np.zeros(0)) == 0.0


def test_difficult_detection_is_neither_tp_nor_fp():
    split, preds = _hand_case(difficult_extra=True)
    m = evaluate_voc(split, preds)
    row = m["per_class"][0]
    # The difficult GT does not count in recall, and the 0.75 detection on it is ignored:
    # the curve, and both APs, are exactly those of the case without it.
    assert row["num_gt"] == 3 and row["num_difficult"] == 1
    assert row["AP_area"] == pytest.approx(AREA_AP, abs=1e-12)
    assert row["AP_11point"] == pytest.approx(ELEVEN_POINT_AP, abs=1e-12)


def test_best_gt_taken_means_fp_even_if_another_gt_overlaps():
    # Devkit rule: a detection is judged only against its highest-IoU GT.
    rec = ImageRecord(Path("A.jpg"), 1, 100, 100, [[0, 0, 10, 10], [0, 0, 10, 8]], [0, 0])
    split = DatasetSplit([rec], ["thing"], [0])
    det = np.array([[0, 0, 10, 10], [0, 0, 10, 9.5]], np.float32)  # d2: IoU .95 with g1 (taken), .84 with g2
    m = evaluate_voc(split, {1: (det, np.array([0.9, 0.8]), np.array([0, 0]))})
    # TP then FP, recall stays 1/2: area AP = 1/2, 11-point = 6/11 (r = 0 .. .5 at precision 1).
    assert m["mAP_area"] == pytest.approx(0.5)
    assert m["mAP_11point"] == pytest.approx(6 / 11)


def test_classes_without_gt_and_empty_predictions():
    split, preds = _hand_case()
    split = DatasetSplit(split.records, ["thing", "ghost"], [0, 1])
    ghost = {"C": (np.array([[1, 1, 5, 5]]), np.array([0.9]), np.array([1]))}
    m = evaluate_voc(split, {**preds, **ghost})
    assert m["per_class"][1]["AP_area"] is None and m["per_class"][1]["AP_11point"] is None
    assert m["mAP_area"] == pytest.approx(AREA_AP)  # the no-GT class is not averaged in
    assert "no GT" in format_voc_table(m)
    empty = evaluate_voc(split, {})
    assert empty["per_class"][0]["AP_area"] == 0.0 and empty["mAP_11point"] == 0.0


def test_coco_results_list_and_bad_ids():
    split, preds = _hand_case()
    a = evaluate_voc(split, preds)
    b = evaluate_voc(split, to_coco_results(split, preds))
    assert a == b
    with pytest.raises(DataError, match="not in split"):
        evaluate_voc(split, {"Z": preds["A"]})
    with pytest.raises(DataError, match="class indices outside"):
        evaluate_voc(split, {"A": (preds["A"][0], preds["A"][1], np.full(4, 3))})


def test_vectorised_matching_equals_a_plain_greedy_loop():
    """The numpy matcher against the devkit's per-detection loop on random data."""
    from openyolox.evaluation.voc import match_class

    rng = np.random.default_rng(0)
    n_img, G, D = 30, 60, 400
    gt_img = rng.integers(0, n_img, G)
    xy = rng.uniform(0, 80, (G, 2))
    gt_box = np.concatenate([xy, xy + rng.uniform(5, 30, (G, 2))], 1)
    gt_diff = rng.random(G) < 0.15
    src = rng.integers(0, G, D)
    det_img = np.where(rng.random(D) < 0.9, gt_img[src], rng.integers(0, n_img, D))
    det_box = gt_box[src] + rng.normal(0, 3, (D, 4))
    det_box[:, 2:] = np.maximum(det_box[:, 2:], det_box[:, :2] + 1)
    det_score = np.round(rng.random(D), 2)  # ties

    order, tp, fp = match_class(det_img, det_box, det_score, gt_img, gt_box, gt_diff, 0.5)
    taken = np.zeros(G, bool)
    for rank, d in enumerate(order):
        cand = np.flatnonzero(gt_img == det_img[d])
        best, best_iou = -1, -np.inf
        for g in cand:
            lt, rb = np.maximum(det_box[d, :2], gt_box[g, :2]), np.minimum(det_box[d, 2:], gt_box[g, 2:])
            inter = np.prod(np.clip(rb - lt, 0, None))
            iou = inter / (np.prod(det_box[d, 2:] - det_box[d, :2]) + np.prod(gt_box[g, 2:] - gt_box[g, :2]) - inter)
            if iou > best_iou:
                best, best_iou = g, iou
        exp_tp = exp_fp = False
        if best >= 0 and best_iou >= 0.5:
            if not gt_diff[best]:
                exp_tp, exp_fp = not taken[best], taken[best]
                taken[best] = True
        else:
            exp_fp = True
        assert (tp[rank], fp[rank]) == (exp_tp, exp_fp), rank
    assert tp.sum() > 50 and fp.sum() > 50
