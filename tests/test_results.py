"""The result of a prediction (Detections): objects, subsets, filters, pictures, files, data;
to_coco against the evaluation's writer; and the predict options that map to these methods."""
import json
import sys

import cv2
import numpy as np
import pytest

from blob_backend import blob_detector, canvas
from openyolox.cli import main
from openyolox.data.records import DatasetSplit, ImageRecord
from openyolox.errors import ConfigError, DataError
from openyolox.evaluation.results import to_coco_results
from openyolox.inference.results import Detection, Detections

NAMES = ["person", "car", "dog"]


def _dets(image=True):
    boxes = np.array([[10, 20, 50, 80], [100, 100, 140, 130], [0, 0, 10, 10], [150, 90, 170, 130]], np.float32)
    return Detections(boxes, np.array([0.9, 0.6, 0.3, 0.8], np.float32), np.array([0, 1, 0, 2]), names=NAMES,
                      image_id="street", image_shape=(120, 160),
                      image=np.full((120, 160, 3), 60, np.uint8) if image else None)


def test_objects_and_subsets():
    det = _dets()
    assert len(det) == 4
    first = next(iter(det))
    assert isinstance(first, Detection) and first.name == "person" and first.class_id == 0
    assert first.score == pytest.approx(0.9) and first.box.tolist() == [10, 20, 50, 80]
    assert [d.name for d in det] == ["person", "car", "person", "dog"]
    assert det[3].name == "dog" and det[-1].class_id == 2
    sub = det[det.scores > 0.5]
    assert isinstance(sub, Detections) and len(sub) == 3 and sub.image is det.image
    assert (sub.image_id, sub.image_shape, list(sub.names)) == ("street", (120, 160), NAMES)
    assert len(det[1:3]) == 2 and det[[3, 0]].classes.tolist() == [2, 0]


def test_filter_by_class_score_and_area():
    det = _dets()
    assert det.filter(classes=["person"]).scores.tolist() == pytest.approx([0.9, 0.3])
    assert det.filter(classes=[1, "dog"]).classes.tolist() == [1, 2]
    assert det.filter(classes=["2"]).classes.tolist() == [2]  # a digit string is an id
    assert len(det.filter(classes=None)) == 4
    assert det.filter(min_score=0.6).classes.tolist() == [0, 1, 2]
    assert det.filter(min_area=500, max_area=1500).areas().tolist() == [1200, 800]
    assert len(det) == 4  # filtering makes a new result
    with pytest.raises(ConfigError, match="unknown class 'cat'.*person, car, dog"):
        det.filter(classes=["cat"])
    with pytest.raises(ConfigError, match="outside 0..2"):
        det.filter(classes=[5])
    assert det.top(2).scores.tolist() == pytest.approx([0.9, 0.8])
    assert len(det.top(0)) == 4 and len(det.top(10)) == 4


def test_plot_and_save(tmp_path):
    det = _dets()
    drawn = det.plot()
    assert drawn.shape == det.image.shape and drawn.dtype == np.uint8
    assert (det.image == 60).all()  # drawn on a copy
    thin, thick = det.plot(line_width=1, labels=False), det.plot(line_width=5, labels=False)
    assert (thick != 60).sum() > (thin != 60).sum() > 0
    assert (det.plot(line_width=1) != 60).sum() > (thin != 60).sum()  # labels add pixels
    path = det.save(tmp_path / "out" / "street.png", line_width=2)
    np.testing.assert_array_equal(cv2.imread(str(path)), det.plot(line_width=2))
    with pytest.raises(DataError, match="cannot write"):
        det.save(tmp_path / "street.unknown")


def test_plot_never_fails_on_a_box():
    wild = np.array([[np.nan, 0, 10, 10], [-np.inf, 5, np.inf, 9], [1e30, -1e30, 3e30, 1e30],
                     [50, 50, 10, 10], [-20, -20, -5, -5], [0, 0, 0, 0]], np.float64)
    det = Detections(wild, np.full(6, 0.5), np.array([0, 1, 2, 7, 0, 1]), names=NAMES,
                     image=np.zeros((30, 40, 3), np.uint8), image_shape=(30, 40))
    assert det.plot().shape == (30, 40, 3)
    with pytest.raises(DataError, match="keep no image"):
        _dets(image=False).plot()
    assert _dets(image=False).plot(image=np.zeros((120, 160, 3), np.uint8)).any()


def test_save_txt_yolo_format(tmp_path):
    det = _dets()
    det.boxes[3] = [150, 90, 175, 130]  # beyond the right and bottom edges: clipped to 160 x 120 first
    lines = det.save_txt(tmp_path / "labels" / "street.txt").read_text().splitlines()
    assert lines[0] == "0 0.187500 0.416667 0.250000 0.500000"  # cx 30/160, cy 50/120, w 40/160, h 60/120
    assert lines[3] == "2 0.968750 0.875000 0.062500 0.250000"  # 150..160 x 90..120
    scored = det.save_txt(tmp_path / "s.txt", scores=True).read_text().splitlines()
    assert scored[1].split()[-1] == "0.600000" and len(scored[1].split()) == 6
    assert det[det.scores > 1].save_txt(tmp_path / "none.txt").read_text() == ""
    with pytest.raises(DataError, match="size is unknown"):
        Detections(det.boxes, det.scores, det.classes).save_txt(tmp_path / "x.txt")


def test_save_crops(tmp_path):
    det = _dets()
    det.image[20:80, 10:50] = 200
    det.boxes[2] = [-30, -30, -10, -10]  # no pixel inside the image: skipped
    paths = det.save_crops(tmp_path / "crops")
    rel = sorted(str(p.relative_to(tmp_path / "crops")) for p in paths)
    assert rel == ["car/street_1.jpg", "dog/street_3.jpg", "person/street_0.jpg"]
    crop = cv2.imread(str(tmp_path / "crops" / "person" / "street_0.jpg"))
    assert crop.shape == (60, 40, 3) and abs(int(crop.mean()) - 200) <= 2


def test_to_json_and_pandas(monkeypatch):
    det = _dets()
    rows = json.loads(det.to_json())
    assert rows[1] == {"name": "car", "class": 1, "score": pytest.approx(0.6),
                       "box": {"x1": 100.0, "y1": 100.0, "x2": 140.0, "y2": 130.0}}
    pd = pytest.importorskip("pandas")
    frame = det.to_pandas()
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["x1", "y1", "x2", "y2", "score", "class", "name"]
    assert frame["name"].tolist() == ["person", "car", "person", "dog"]
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if it were not installed
    with pytest.raises(ImportError, match="pip install pandas"):
        det.to_pandas()


def test_to_coco_equals_the_evaluation_writer():
    det = _dets()
    det.boxes[0] = [10.123456789, 20.5, 50.25, 80.000001]  # no rounding on either side
    split = DatasetSplit([ImageRecord("street.jpg", "street", 160, 120)], NAMES, [3, 7, 18])
    assert det.to_coco([3, 7, 18]) == to_coco_results(split, {"street": det})
    assert det.to_coco()[1]["category_id"] == 1  # not COCO's names: the class index


# ----------------------------------------------------------------------------- the CLI options


@pytest.fixture
def blob_cli(monkeypatch, tmp_path):
    """`openyolox predict` with the blob back-end: known detections, no network."""
    import openyolox.cli.predict as predict_cli

    monkeypatch.setattr(predict_cli, "load_detector", lambda args, **kw: blob_detector(size=None))
    image = canvas(120, 160, [(10, 20, 50, 80, 0), (100, 30, 140, 60, 1), (60, 90, 70, 100, 1)])
    cv2.imwrite(str(tmp_path / "scene.png"), image)
    return tmp_path / "scene.png"


def _predict(args, out):
    assert main(["predict", *map(str, args), "--model", "yolox-nano", "--weights", "none", "--out", str(out)]) == 0
    return json.loads((out / "predictions.json").read_text())


def test_cli_save_txt_crops_classes_max_det(blob_cli, tmp_path):
    out = tmp_path / "a"
    rows = _predict([blob_cli, "--save-txt", "--save-crops", "--classes", "green", "--max-det", "1"], out)
    assert len(rows) == 1 and rows[0]["category_id"] == 1  # the larger green blob only
    assert (out / "labels" / "scene.txt").read_text().split()[0] == "1"
    assert [p.name for p in (out / "crops" / "green").iterdir()] == ["scene_0.jpg"]
    assert (out / "scene.jpg").is_file()


def test_cli_no_save_and_drawing_options(blob_cli, tmp_path):
    rows = _predict([blob_cli, "--no-save"], tmp_path / "b")
    assert len(rows) == 3 and not list((tmp_path / "b").glob("*.jpg"))
    _predict([blob_cli, "--line-width", "1", "--hide-labels"], tmp_path / "thin")
    _predict([blob_cli, "--line-width", "4"], tmp_path / "thick")
    thin, thick = (cv2.imread(str(tmp_path / d / "scene.jpg")) for d in ("thin", "thick"))
    background = canvas(120, 160, [(10, 20, 50, 80, 0), (100, 30, 140, 60, 1), (60, 90, 70, 100, 1)])
    changed = [int((np.abs(x.astype(int) - background).max(2) > 40).sum()) for x in (thin, thick)]
    assert 0 < changed[0] < changed[1]


def test_cli_unknown_class_is_one_line(blob_cli, capsys):
    assert main(["predict", str(blob_cli), "--weights", "none", "--classes", "blue"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown class 'blue'" in err[0] and "red, green" in err[0]
