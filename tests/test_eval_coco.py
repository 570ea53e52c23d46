"""COCO metrics: openyolox.evaluation.coco must score exactly like pycocotools used the usual
way (COCO(gt json) + loadRes(results json) + COCOeval), whatever format the split came from."""
from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from openyolox.data.records import DatasetSplit, ImageRecord
from openyolox.errors import DataError
from openyolox.evaluation import (
    STAT_NAMES,
    evaluate_coco,
    format_coco_summary,
    format_per_class_table,
    load_coco_results,
    predictions_from_coco_results,
    save_coco_results,
    to_coco_results,
)
from openyolox.evaluation.coco import available_library
from openyolox.evaluation.voc import evaluate_voc

CATEGORY_IDS = [3, 1, 7, 12]  # non-contiguous and unsorted on purpose; 12 has no GT
CLASS_NAMES = ["car", "person", "dog", "unicorn"]


def random_dataset(seed: int = 0, num_images: int = 40):
    """GT as a COCO dict (boxes on a 0.5 px grid, so float32 records hold them exactly) plus
    the same data as a DatasetSplit, and float32 predictions: jittered GT + random boxes.
    Covers crowd boxes, images without GT, small/medium/large objects, >100 dets/image."""
    rng = np.random.default_rng(seed)
    coco = {"images": [], "annotations": [],
            "categories": [{"id": c, "name": n} for c, n in zip(CATEGORY_IDS, CLASS_NAMES)]}
    records, preds = [], {}
    for i in range(num_images):
        image_id = 100 + 3 * i  # not 1..N
        w, h = 640, 480
        n = 0 if i % 7 == 3 else int(rng.integers(1, 9))
        size = np.round(np.exp(rng.uniform(np.log(6), np.log(300), (n, 2))) * 2) / 2
        xy = np.round(rng.uniform(0, 1, (n, 2)) * ([w, h] - size) * 2) / 2
        boxes = np.concatenate([xy, xy + size], 1)
        cls = rng.integers(0, 3, n)  # class 3 ("unicorn") never has GT
        crowd = rng.random(n) < 0.1
        coco["images"].append({"id": image_id, "width": w, "height": h, "file_name": f"{i}.jpg"})
        for b, c, cr in zip(boxes.tolist(), cls.tolist(), crowd.tolist()):
            bw, bh = b[2] - b[0], b[3] - b[1]
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id,
                                        "category_id": CATEGORY_IDS[c], "bbox": [b[0], b[1], bw, bh],
                                        "area": bw * bh, "iscrowd": int(cr)})
        records.append(ImageRecord(Path(f"{i}.jpg"), image_id, w, h, boxes.astype(np.float32), cls, crowd))

        k = 3 * n
        src = rng.integers(0, max(n, 1), k)
        jit = rng.uniform(0, 0.3, (k, 1)) * rng.normal(0, 1, (k, 4))
        det = boxes[src] + jit * np.tile(size[src], 2) if n else np.zeros((0, 4))
        det_cls = np.where(rng.random(k) < 0.85, cls[src] if n else 0, rng.integers(0, 4, k))
        m = 130 if i == 5 else int(rng.integers(0, 20))  # one image over maxDets=100
        noise = rng.uniform(0, 400, (m, 2))
        det = np.concatenate([det, np.concatenate([noise, noise + rng.uniform(4, 200, (m, 2))], 1)])
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 1)
        scores = np.concatenate([rng.uniform(0.3, 1, k), rng.uniform(0, 0.5, m)])
        scores[::5] = np.round(scores[::5], 1)  # some exact ties
        preds[image_id] = (det.astype(np.float32), scores.astype(np.float32),
                           np.concatenate([det_cls, rng.integers(0, 4, m)]))
    split = DatasetSplit(records, CLASS_NAMES, CATEGORY_IDS, name="random")
    return coco, split, preds


def pycocotools_reference(gt_path: Path, res_path: Path):
    """pycocotools the usual way: files in, stats and the per-class precision out."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(res_path))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def write_results_json(path: Path, preds) -> None:
    """Results json written here, independently of openyolox's writer."""
    out = []
    for image_id, (boxes, scores, classes) in preds.items():
        for (x1, y1, x2, y2), s, c in zip(boxes.astype(np.float64).tolist(), scores.tolist(), classes.tolist()):
            out.append({"image_id": image_id, "category_id": CATEGORY_IDS[c],
                        "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s})
    path.write_text(json.dumps(out))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("coco")
    coco, split, preds = random_dataset()
    (tmp / "gt.json").write_text(json.dumps(coco))
    write_results_json(tmp / "res.json", preds)
    ev = pycocotools_reference(tmp / "gt.json", tmp / "res.json")
    return split, preds, ev, tmp


def _expected(stat: float):
    return None if stat == -1 else float(stat)


def test_equals_pycocotools_to_the_last_digit(reference):
    split, preds, ev, tmp = reference
    m = evaluate_coco(split, preds, library="pycocotools")
    assert [m[n] for n in STAT_NAMES] == [_expected(s) for s in ev.stats]
    # Per-class AP straight from pycocotools' precision array (K in sorted category id order).
    sorted_ids = sorted(CATEGORY_IDS)
    for row in m["per_class"]:
        p = ev.eval["precision"][:, :, sorted_ids.index(row["category_id"]), 0, -1]
        if row["num_gt"]:
            assert row["AP50_95"] == np.mean(p[p > -1])
            assert row["AP50"] == np.mean(p[0][p[0] > -1])
    # Results read back from the independently written file score the same.
    m_file = evaluate_coco(split, load_coco_results(tmp / "res.json", split), library="pycocotools")
    assert [m_file[n] for n in STAT_NAMES] == [m[n] for n in STAT_NAMES]


def test_default_library_agrees_with_pycocotools(reference):
    split, preds, ev, _ = reference
    m = evaluate_coco(split, preds)  # faster-coco-eval when installed
    assert m["library"] == available_library()
    assert all(s > -1 for s in ev.stats)  # every area range has GT in this dataset
    for name, stat in zip(STAT_NAMES, ev.stats):
        assert m[name] == pytest.approx(stat, abs=1e-12), name
        assert f"{m[name]:.3f}" == f"{stat:.3f}"


def test_results_roundtrip_through_file(reference, tmp_path):
    split, preds, _, _ = reference
    results = to_coco_results(split, preds)
    path = save_coco_results(results, tmp_path / "sub" / "results.json")
    assert load_coco_results(path, split) == results
    back = predictions_from_coco_results(split, results)
    assert to_coco_results(split, {k: back[k] for k in preds}) == results


def test_class_without_gt_is_none_not_nan(reference):
    split, preds, _, _ = reference
    m = evaluate_coco(split, preds)
    unicorn = m["per_class"][3]
    assert unicorn["num_gt"] == 0 and unicorn["AP50_95"] is None and unicorn["AP50"] is None
    for row in m["per_class"][:3]:
        assert 0 < row["AP50_95"] < row["AP50"] <= 1
    assert "no GT" in format_per_class_table(m)
    assert "nan" not in (format_coco_summary(m) + format_per_class_table(m)).lower()


def test_empty_predictions_score_zero(reference):
    split, _, _, _ = reference
    for library in ("pycocotools", available_library()):
        m = evaluate_coco(split, [], library=library)
        assert all(m[n] == 0.0 for n in STAT_NAMES), library
        assert [r["AP50"] for r in m["per_class"]] == [0.0, 0.0, 0.0, None]
    assert evaluate_coco(split, {})["AP50_95"] == 0.0


def test_split_without_any_gt_does_not_crash():
    split = DatasetSplit([ImageRecord(Path("a.jpg"), 1, 50, 50), ImageRecord(Path("b.jpg"), 2, 50, 50)],
                         ["thing"], [1])
    pred = {1: (np.array([[0, 0, 10, 10]], np.float32), np.array([0.9], np.float32), np.array([0]))}
    m = evaluate_coco(split, pred)
    assert all(m[n] is None for n in STAT_NAMES)
    assert m["per_class"][0]["AP50"] is None
    assert "n/a" in format_coco_summary(m) and "no GT" in format_per_class_table(m)


def test_string_image_ids_score_like_int_ids(reference):
    split, preds, _, _ = reference
    stems = {r.image_id: f"img_{r.image_id:05d}" for r in split.records}
    str_split = DatasetSplit([ImageRecord(r.path, stems[r.image_id], r.width, r.height, r.boxes, r.classes,
                                          r.iscrowd) for r in split.records], CLASS_NAMES, CATEGORY_IDS)
    str_preds = {stems[k]: v for k, v in preds.items()}
    results = to_coco_results(str_split, str_preds)
    assert isinstance(results[0]["image_id"], str)
    a = evaluate_coco(split, preds, library="pycocotools")
    b = evaluate_coco(str_split, results, library="pycocotools")
    assert [a[n] for n in STAT_NAMES] == [b[n] for n in STAT_NAMES]


def test_unknown_ids_raise_data_error(reference, tmp_path):
    split, preds, _, _ = reference
    results = to_coco_results(split, preds)
    bad = results[:10] + [dict(results[0], image_id=99999), dict(results[1], image_id=99999),
                          dict(results[2], image_id=5)]
    with pytest.raises(DataError, match=r"3 of 13 detections name image ids.*99999"):
        evaluate_coco(split, bad)
    path = tmp_path / "bad_cat.json"
    save_coco_results(results[:4] + [dict(results[0], category_id=2)], path)
    with pytest.raises(DataError, match=r"bad_cat\.json.*1 of 5 detections name category ids.*2"):
        load_coco_results(path, split)
    with pytest.raises(DataError, match="not in split"):
        to_coco_results(split, {"nope": preds[100]})


@pytest.mark.parametrize("content, message", [
    ('{"image_id": 1}', "expected a JSON list"),
    ('[{"image_id": 100, "bbox": [0, 0, 1, 1], "score": 0.5}]', "lacks category_id"),
    ('[{"image_id": 100, "category_id": 1, "bbox": [0, 0, 1], "score": 0.5}]', "4 finite numbers"),
    ('[{"image_id": 100, ', "not valid JSON"),
])
def test_malformed_results_file_names_the_file(reference, tmp_path, content, message):
    split = reference[0]
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        load_coco_results(path, split)
    assert "results.json" in str(info.value)
    with pytest.raises(DataError, match="not found"):
        load_coco_results(tmp_path / "missing.json", split)


def test_plots_are_written(reference, tmp_path):
    from openyolox.evaluation.plots import confusion_matrix, save_plots

    split, preds, _, _ = reference
    m = evaluate_coco(split, preds)
    paths = save_plots(split, preds, m, tmp_path)
    for p in paths.values():
        assert p.exists() and p.read_bytes()[:4] == b"\x89PNG"
    cm = confusion_matrix(split, preds)
    num_gt = sum(int((~r.iscrowd).sum()) for r in split.records)
    assert cm.shape == (5, 5) and cm[:4].sum() == num_gt  # every non-crowd GT counted once
    assert cm[4, 4] == 0


def test_confusion_matrix_hand_case():
    rec = ImageRecord(Path("a.jpg"), 1, 100, 100, [[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], [0, 1, 1])
    split = DatasetSplit([rec], ["a", "b"], [0, 1])
    pred = {1: (np.array([[0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 40, 40], [70, 70, 80, 80], [50, 50, 60, 60]]),
                np.array([0.9, 0.8, 0.7, 0.6, 0.1]), np.array([0, 0, 0, 1, 1]))}
    from openyolox.evaluation.plots import confusion_matrix

    cm = confusion_matrix(split, pred, iou=0.5, conf=0.25)
    # GT a found as a; duplicate a -> background row; GT b found as a; FP b; GT b at 50 missed (score 0.1).
    expected = np.array([[1, 0, 0],
                         [1, 0, 1],
                         [1, 1, 0]])
    np.testing.assert_array_equal(cm, expected)


# ---- the same dataset as COCO json, VOC xml and YOLO txt scores the same ----------------

sys.path.insert(0, str(Path(__file__).resolve().parent))


def test_same_metrics_from_coco_voc_and_yolo_layouts(tmp_path):
    fixtures = pytest.importorskip("fixtures_data")
    sources = pytest.importorskip("openyolox.data.layouts")
    paths = fixtures.write_all(tmp_path)
    rng = np.random.default_rng(1)
    # Predictions keyed by file stem: jittered GT (tight to loose, some wrong class) + noise.
    by_stem = {}
    for im in fixtures.make_tiny_dataset():
        n = len(im.boxes)
        src = np.repeat(np.arange(n), 3)
        size = np.tile(im.boxes[src, 2:] - im.boxes[src, :2], 2)
        det = im.boxes[src] + rng.uniform(-0.25, 0.25, (len(src), 4)) * size
        cls = np.where(rng.random(len(src)) < 0.8, im.classes[src], rng.integers(0, 3, len(src)))
        noise = rng.uniform(0, 40, (2, 2))
        det = np.concatenate([det, np.concatenate([noise, noise + 15], 1)]).astype(np.float32)
        by_stem[im.name] = (det, rng.random(len(det)).astype(np.float32), np.concatenate([cls, [0, 2]]))
    metrics = {}
    for layout, path in paths.items():
        split = sources.load_split(path, "val")
        preds = {r.image_id: by_stem[r.path.stem] for r in split.records}
        coco = evaluate_coco(split, to_coco_results(split, preds))
        voc = evaluate_voc(split, preds)
        metrics[layout] = ([coco[n] for n in STAT_NAMES], [(r["AP50_95"], r["AP50"]) for r in coco["per_class"]],
                           voc["mAP_area"], voc["mAP_11point"])
    assert 0 < metrics["coco"][0][0] < 1 and not any(isinstance(v, float) and math.isnan(v) for v in metrics["coco"][0])
    assert metrics["voc"] == metrics["coco"]
    assert metrics["yolo"] == metrics["coco"]
