"""Sliced inference (openyolox.inference.slicing): windows, batching, merging across seams,
and bounded memory on a 10,000 x 10,000 image.

Merging is tested with a back-end whose outputs are known exactly (tests/blob_backend.py): it
reports every red or green blob of its input as a box, the way a perfect detector would, so a
window that cuts an object reports the part it sees, ending at the window edge.
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from blob_backend import blob_detector, canvas
from openyolox.errors import ConfigError
from openyolox.inference.slicing import (SliceConfig, TileDetections, merge_detections, predict_tiles,
                                         tile_windows)


# ----------------------------------------------------------------------------- windows


@pytest.mark.parametrize("hw, size, overlap", [((448, 448), 256, 0.25), ((1000, 3001), 640, 0.2),
                                               ((100, 5000), 512, 0.5), ((300, 200), 640, 0.2)])
def test_windows_cover_the_image_with_the_overlap(hw, size, overlap):
    h, w = hw
    windows = tile_windows(hw, size, overlap)
    covered = np.zeros(hw, bool)
    for x0, y0, x1, y1 in windows:
        assert (x1 - x0, y1 - y0) == (min(size, w), min(size, h))  # full size: no sliver window
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    xs = sorted({x0 for x0, _, _, _ in windows})
    for a, b in zip(xs, xs[1:]):
        assert a + size - b >= overlap * size - 1  # neighbours share at least the overlap (rounding)
    assert max(x1 for _, _, x1, _ in windows) == w and max(y1 for _, _, _, y1 in windows) == h


def test_bad_settings_are_config_errors():
    for kwargs in ({"size": 16}, {"size": 640, "overlap": 1.0}, {"size": 640, "merge": "wbf"},
                   {"size": 640, "batch": 0}):
        with pytest.raises(ConfigError):
            SliceConfig(**kwargs)


# ----------------------------------------------------------------------------- merging across seams

# 448 x 448 with 256 px windows and overlap 0.25: windows start at 0 and 192 on each axis, so
# the seams are x (or y) = 192 (left edge of the second window) and 256 (right edge of the first).


def test_object_cut_by_a_seam_is_reported_once_with_its_whole_box():
    truth = (150, 100, 300, 160)  # 150 px wide: no window holds it whole
    det = blob_detector()
    (res,) = det.predict(canvas(448, 448, [(*truth, 0)]))
    assert len(res) == 1
    np.testing.assert_allclose(res.boxes[0], truth, atol=2)
    assert res.classes.tolist() == [0]
    # the same tiles merged without knowing about edges: the two parts overlap by IoU 0.43 and
    # both survive NMS, so the object is counted twice
    tiles = predict_tiles(det, canvas(448, 448, [(*truth, 0)]), det.slicing)
    assert tiles.cut.sum() == 2
    plain = merge_detections(tiles._replace(cut=np.zeros_like(tiles.cut)), iou=0.45)
    assert len(plain[0]) == 2


def test_nms_merge_keeps_one_part_of_a_cut_object():
    truth = (150, 100, 300, 160)
    (res,) = blob_detector(merge="nms").predict(canvas(448, 448, [(*truth, 0)]))
    assert len(res) == 1  # once, but only the part one window saw
    assert res.boxes[0].tolist() in ([150, 100, 256, 160], [192, 100, 300, 160])


def test_object_cut_by_two_seams_is_united_from_four_parts():
    truth = (170, 150, 290, 300)  # crosses x = 192..256 and y = 192..256
    (res,) = blob_detector().predict(canvas(448, 448, [(*truth, 1)]))
    assert len(res) == 1 and res.classes.tolist() == [1]
    np.testing.assert_allclose(res.boxes[0], truth, atol=2)


def test_object_whole_in_one_window_and_cut_in_another_counts_once():
    objects = [(240, 40, 270, 70, 0),    # cut by x = 256 in window 0, whole in window 1
               (200, 300, 250, 340, 1),  # inside the overlap: whole in both windows
               (20, 20, 60, 60, 0)]      # far from any seam
    (res,) = blob_detector().predict(canvas(448, 448, objects))
    assert len(res) == 3
    got = sorted(map(tuple, res.boxes.round().astype(int).tolist()))
    assert got == sorted(o[:4] for o in objects)


def test_touching_objects_of_other_classes_are_not_merged():
    objects = [(150, 100, 300, 130, 0), (150, 130, 300, 160, 1)]  # stacked, both cut by the seams
    (res,) = blob_detector().predict(canvas(448, 448, objects))
    assert sorted(res.classes.tolist()) == [0, 1]
    for box, cls in zip(res.boxes, res.classes):
        np.testing.assert_allclose(box, objects[cls][:4], atol=2)


def test_full_image_tile_finds_what_no_window_holds():
    truth = (50, 40, 420, 400)  # larger than a window: only the full-image tile sees it whole
    det = blob_detector(full=True, merge="nms")
    (res,) = det.predict(canvas(448, 448, [(*truth, 0)]))
    assert len(res) == 1
    # the full-image tile is the image shrunk to 256 px (ratio 0.57): its box is good to ~1/ratio px
    np.testing.assert_allclose(res.boxes[0], truth, atol=2 / (256 / 448) + 0.5)


def test_tiles_are_batched_and_timed_per_image():
    det = blob_detector(size=128, overlap=0.2, full=True, batch=5)
    image = canvas(448, 448, [(10, 10, 40, 40, 0)])
    n_tiles = len(tile_windows((448, 448), 128, 0.2)) + 1
    results = det.predict([image, image])
    per_image = [5] * (n_tiles // 5) + ([n_tiles % 5] if n_tiles % 5 else [])
    assert det.backend.calls == per_image * 2  # every tile once, five per forward pass
    assert det.timings.images == 2
    assert [len(r) for r in results] == [1, 1] and np.shares_memory(results[0].image, image)  # kept, not copied


def test_image_smaller_than_a_window_is_one_tile():
    det = blob_detector(size=512, full=True)
    (res,) = det.predict(canvas(200, 300, [(10, 10, 60, 60, 1)]))
    assert det.backend.calls == [1]
    np.testing.assert_allclose(res.boxes[0], (10, 10, 60, 60), atol=1)


def test_merge_of_nothing_and_class_agnostic():
    empty = TileDetections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                           np.zeros(0, bool), np.zeros((0, 4), np.float32))
    boxes, scores, classes = merge_detections(empty, 0.45)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and classes.shape == (0,)
    # two parts of one object that the model gave different classes: one box when class-agnostic
    parts = TileDetections(np.array([[150, 100, 256, 160], [192, 100, 300, 160]], np.float32),
                           np.array([0.8, 0.7], np.float32), np.array([0, 1]), np.array([True, True]),
                           np.array([[0, 0, 256, 448], [192, 0, 448, 448]], np.float32))
    assert len(merge_detections(parts, 0.45)[0]) == 2
    boxes, scores, classes = merge_detections(parts, 0.45, class_agnostic=True)
    assert boxes.tolist() == [[150, 100, 300, 160]] and scores.tolist() == [pytest.approx(0.8)]


def test_without_parts_the_merge_is_nms():
    """Whole views only: exactly class-aware greedy NMS (openyolox.ops.nms)."""
    import torch

    from openyolox.ops.nms import batched_nms

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 400, (300, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(10, 60, (300, 2)).astype(np.float32)], 1)
    scores = rng.random(300).astype(np.float32)
    classes = rng.integers(0, 3, 300)
    tiles = TileDetections(boxes, scores, classes, np.zeros(300, bool), np.zeros((300, 4), np.float32))
    keep = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), 0.45).numpy()
    got = merge_detections(tiles, 0.45)
    np.testing.assert_array_equal(got[0], boxes[keep])
    np.testing.assert_array_equal(got[2], classes[keep])


def test_a_part_inside_a_large_false_box_is_kept():
    """A window that sees a shape at its edge may also report a box over the whole window (a
    large object it imagines beyond the edge). The real part lies inside it, but where the two
    windows overlap the large box covers everything and the part only itself: they disagree,
    and the object is kept, whole."""
    seen = np.array([[0, 0, 256, 448], [192, 0, 448, 448], [0, 0, 256, 448]], np.float32)
    tiles = TileDetections(np.array([[150, 100, 256, 160], [192, 100, 300, 160], [0, 0, 256, 448]], np.float32),
                           np.array([0.6, 0.7, 0.95], np.float32), np.array([0, 0, 0]), np.array([True] * 3), seen)
    for method in ("union", "nms"):
        boxes, scores, _ = merge_detections(tiles, 0.45, method)
        assert [0, 0, 256, 448] in boxes.tolist()  # the false box stays a (false) detection
    boxes, scores, _ = merge_detections(tiles, 0.45, "union")
    assert [150, 100, 300, 160] in boxes.tolist()


# ----------------------------------------------------------------------------- a huge image

MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from openyolox.inference.predictor import Detector

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    det = Detector("yolox-nano", weights="none", num_classes=2, imgsz=256, conf=0.25, slice=1024, overlap=0.2)
    rng = np.random.default_rng(0)
    # 10,000 x 10,000 x 3 = 286 MB, textured (random 100 px blocks) so the network sees content;
    # filled a band at a time, so no temporary inflates the peak measured before predicting
    image = np.empty((10000, 10000, 3), np.uint8)
    for y in range(0, 10000, 100):
        image[y:y + 100] = np.repeat(rng.integers(0, 256, (1, 100, 3), dtype=np.uint8), 100, axis=1)
    det.predict(image[:3000, :3000])   # warm-up: full tile batches, the allocator's steady state
    before = peak_mb()
    (res,) = det.predict(image)
    print(json.dumps({"before_mb": before, "after_mb": peak_mb(), "image_mb": image.nbytes / 2**20,
                      "shape": list(res.image_shape), "images": det.timings.images}))
""")


def test_huge_image_runs_in_bounded_memory(tmp_path):
    """Peak RSS of a 10,000 x 10,000 sliced prediction, in its own process. The bound: less
    than half the image's own 286 MB above the warm-up peak. Any full-resolution copy of the
    image (a letterbox canvas, a float conversion, a contiguous copy) would add >= 286 MB."""
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    assert m["shape"] == [10000, 10000] and m["images"] == 2
    grown = m["after_mb"] - m["before_mb"]
    print(f"peak RSS {m['before_mb']:.0f} MB before, {m['after_mb']:.0f} MB after (+{grown:.0f} MB) "
          f"for a {m['image_mb']:.0f} MB image")
    assert grown < m["image_mb"] / 2


def test_cli_slice_options_reach_the_detector(monkeypatch, tmp_path, capsys):
    import cv2

    import openyolox.cli.predict as predict_cli
    from openyolox.cli import main
    from openyolox.cli.common import load_detector

    made = []
    monkeypatch.setattr(predict_cli, "load_detector", lambda args, **kw: made.append(load_detector(args, **kw))
                        or made[-1])
    cv2.imwrite(str(tmp_path / "big.png"), np.zeros((300, 400, 3), np.uint8))
    common = ["predict", str(tmp_path / "big.png"), "--model", "yolox-nano", "--weights", "none", "--imgsz", "64"]
    assert main([*common, "--slice", "128", "--overlap", "0.3", "--no-slice-full", "--slice-merge", "nms",
                 "--out", str(tmp_path / "out")]) == 0
    assert made[0].slicing == SliceConfig(128, 0.3, False, "nms")
    assert (tmp_path / "out" / "big.jpg").is_file()
    capsys.readouterr()
    assert main([*common, "--slice", "128", "--overlap", "1.5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "overlap must be in [0, 1)" in err[0]
    assert len(made) == 1  # refused before a model was loaded


# ----------------------------------------------------------------------------- evaluation


def _seam_split(tmp_path):
    """Three 448 x 448 images with objects across the seams of 256 px windows (overlap 0.25),
    written as a COCO dataset."""
    import cv2

    from openyolox.data.formats.coco import coco_dict
    from openyolox.data.records import DatasetSplit, ImageRecord

    scenes = [[(150, 100, 300, 160, 0), (20, 300, 80, 350, 1)], [(170, 150, 290, 300, 1)],
              [(240, 40, 270, 70, 0), (150, 330, 300, 400, 0)]]
    (tmp_path / "val").mkdir()
    records = []
    for k, objects in enumerate(scenes):
        path = tmp_path / "val" / f"{k}.png"
        cv2.imwrite(str(path), canvas(448, 448, objects))
        records.append(ImageRecord(path, k + 1, 448, 448, [o[:4] for o in objects], [o[4] for o in objects]))
    (tmp_path / "annotations").mkdir()
    coco = coco_dict(records, ["red", "green"], image_root=tmp_path / "val")
    (tmp_path / "annotations" / "instances_val.json").write_text(json.dumps(coco))
    return DatasetSplit(records, ["red", "green"], [0, 1], name="seams")


def test_sliced_evaluation_scores_objects_across_seams(tmp_path):
    from openyolox.evaluation.validate import validate

    split = _seam_split(tmp_path)
    summary, preds = validate(blob_detector(), split, progress=False)
    assert summary["AP50"] == pytest.approx(1.0) and summary["AP50_95"] == pytest.approx(1.0)
    assert summary["settings"]["slice"] == {"size": 256, "overlap": 0.25, "full": False, "merge": "union",
                                            "batch": 8}
    assert all(p.image is None for p in preds.values())  # evaluation keeps no images
    parts, _ = validate(blob_detector(merge="nms"), split, progress=False)
    assert parts["AP50_95"] < 0.8  # the best part of a cut object is a poor box


def test_val_cli_slices(tmp_path):
    from openyolox.checkpoint import save_checkpoint
    from openyolox.cli import main
    from openyolox.models.yolox import create_model

    _seam_split(tmp_path)
    ckpt = save_checkpoint(tmp_path / "two.pth", {"model": create_model("yolox-nano", 2).state_dict(),
                                                  "model_name": "yolox-nano", "class_names": ["red", "green"]})
    out = tmp_path / "run"
    assert main(["val", "--data", str(tmp_path), "--model", str(ckpt), "--imgsz", "64",
                 "--slice", "256", "--overlap", "0.25", "--no-slice-full", "--out", str(out), "--no-plots"]) == 0
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert settings["slice"]["size"] == 256 and settings["slice"]["full"] is False
