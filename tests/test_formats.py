"""Dataset readers: the same data in every layout gives the same records; bad input gives a
DataError naming the file; the built-in set is deterministic and written atomically."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from openyolox.data.formats import synthetic
from openyolox.data.formats.voc import VOC_CLASSES
from openyolox.data.layouts import detect_layout, load_split
from openyolox.errors import DataError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_data import (CLASS_NAMES, COCO_CATEGORY_IDS, EMPTY_IMAGE_INDEX,  # noqa: E402
                           make_tiny_dataset, write_all, write_coco, write_voc, write_yolo)


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_dataset()


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, tiny):
    return write_all(tmp_path_factory.mktemp("tiny"), tiny)


# ----------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("layout", ["coco", "voc", "yolo"])
@pytest.mark.parametrize("split", ["train", "val"])
def test_layout_matches_ground_truth(layouts, tiny, layout, split):
    data = load_split(layouts[layout], split)
    assert detect_layout(layouts[layout])[0] == layout
    assert data.class_names == list(CLASS_NAMES)
    expected_ids = list(COCO_CATEGORY_IDS) if layout == "coco" else [0, 1, 2]
    assert data.category_ids == expected_ids
    assert [r.path.stem for r in data.records] == [im.name for im in tiny]
    for rec, im in zip(data.records, tiny):
        assert rec.path.is_file()
        assert (rec.width, rec.height) == (im.width, im.height)
        assert rec.boxes.dtype == np.float32 and rec.boxes.shape == (len(im.boxes), 4)
        np.testing.assert_allclose(rec.boxes, im.boxes, atol=1e-3)
        assert rec.classes.dtype == np.int64 and rec.classes.tolist() == im.classes.tolist()
        assert not rec.iscrowd.any()
    assert len(data.records[EMPTY_IMAGE_INDEX].boxes) == 0


def test_coco_single_json_and_other_image_folders(tmp_path, tiny):
    root = write_coco(tmp_path / "c", tiny, splits=("val2017",))
    single = load_split(root / "annotations" / "instances_val2017.json", "val")
    assert len(single) == len(tiny) and single.records[0].path.parent == root / "val2017"
    assert load_split(root, "val").name == "val2017"  # "val" finds instances_val2017.json
    # images moved to <root>/images/val2017
    (root / "images").mkdir()
    (root / "val2017").rename(root / "images" / "val2017")
    moved = load_split(root, "val2017")
    assert moved.records[0].path.parent == root / "images" / "val2017"
    np.testing.assert_allclose(moved.records[0].boxes, tiny[0].boxes, atol=1e-3)


def test_coco_file_name_relative_to_root_and_missing_sizes(tmp_path, tiny):
    root = write_coco(tmp_path / "c", tiny, splits=("train",))
    ann = root / "annotations" / "instances_train.json"
    coco = json.loads(ann.read_text())
    for img in coco["images"]:
        img["file_name"] = "train/" + img["file_name"]
        del img["width"], img["height"]  # some exporters omit sizes: read from headers
    ann.write_text(json.dumps(coco))
    data = load_split(root, "train")
    assert [(r.width, r.height) for r in data.records] == [(im.width, im.height) for im in tiny]


def test_coco_crowd_kept(tmp_path, tiny):
    root = write_coco(tmp_path / "c", tiny, splits=("train",))
    ann = root / "annotations" / "instances_train.json"
    coco = json.loads(ann.read_text())
    coco["annotations"][0]["iscrowd"] = 1
    ann.write_text(json.dumps(coco))
    assert load_split(root, "train").records[0].iscrowd.tolist()[0]


def test_roboflow_style_split_folders(tmp_path, tiny):
    root = write_coco(tmp_path / "c", tiny, splits=("valid",))
    (root / "annotations" / "instances_valid.json").rename(root / "valid" / "_annotations.coco.json")
    (root / "annotations").rmdir()
    assert detect_layout(root)[0] == "coco-split-folders"
    assert len(load_split(root, "val")) == len(tiny)


def test_voc_difficult_is_crowd_and_class_rules(tmp_path, tiny):
    root = write_voc(tmp_path / "v", tiny)
    xml = root / "Annotations" / f"{tiny[0].name}.xml"
    xml.write_text(xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1))
    rec = load_split(root, "train").records[0]
    assert rec.iscrowd.tolist()[0] and len(rec.boxes) == len(tiny[0].boxes)
    # names that are all VOC classes give the standard 20 in the standard order
    for p in (root / "Annotations").glob("*.xml"):
        text = p.read_text()
        for ours, voc in zip(CLASS_NAMES, ("cat", "dog", "person")):
            text = text.replace(f"<name>{ours}</name>", f"<name>{voc}</name>")
        p.write_text(text)
    data = load_split(root, "val")
    assert data.class_names == list(VOC_CLASSES)
    assert data.records[0].classes.tolist() == [VOC_CLASSES.index(("cat", "dog", "person")[c])
                                                for c in tiny[0].classes]


def test_vocdevkit(tmp_path, tiny):
    devkit = tmp_path / "VOCdevkit"
    write_voc(devkit / "VOC2007", tiny, splits=("trainval", "test"))
    write_voc(devkit / "VOC2012", tiny[:3], splits=("trainval", "val"))
    assert detect_layout(tmp_path)[0] == "vocdevkit"
    assert len(load_split(tmp_path, "train")) == len(tiny) + 3  # 07 + 12 trainval
    assert len(load_split(devkit, "val")) == len(tiny)  # 07 test
    assert len(load_split(devkit, "2012_val")) == 3


def test_yolo_variants(tmp_path, tiny):
    yaml_path = write_yolo(tmp_path / "y", tiny)
    root = yaml_path.parent
    # names as a dict, val as a txt list, a missing label file, a polygon row
    (root / "val.txt").write_text("".join(f"./images/val/{im.name}.jpg\n" for im in tiny))
    yaml_path.write_text("train: images/train\nval: val.txt\nnames:\n  0: circle\n  1: square\n  2: triangle\n")
    (root / "labels" / "val" / f"{tiny[0].name}.txt").unlink()
    (root / "labels" / "val" / f"{tiny[2].name}.txt").write_text("1 0.1 0.2 0.5 0.2 0.3 0.6\n")
    data = load_split(root, "val")  # the folder works as well as the yaml
    assert data.class_names == list(CLASS_NAMES)
    assert len(data.records[0].boxes) == 0
    w, h = tiny[2].width, tiny[2].height
    np.testing.assert_allclose(data.records[2].boxes, [[0.1 * w, 0.2 * h, 0.5 * w, 0.6 * h]], atol=1e-3)


# ----------------------------------------------------------------------------- malformed input


def _coco_json(tmp_path, tiny) -> Path:
    root = write_coco(tmp_path / "c", tiny, splits=("train",))
    return root / "annotations" / "instances_train.json"


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ("{not json", "invalid json"),
    ('{"images": [], "annotations": []}', "categories"),
    ('[1, 2]', "not a COCO"),
])
def test_coco_malformed_file(tmp_path, tiny, content, message):
    ann = _coco_json(tmp_path, tiny)
    ann.write_text(content)
    with pytest.raises(DataError, match=f"instances_train.json.*{message}"):
        load_split(ann.parents[1], "train")


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["annotations"][0].update(category_id=99), "category_id 99"),
    (lambda c: c["annotations"][0].update(image_id=12345), "image_id 12345"),
    (lambda c: c["annotations"][0].pop("bbox"), "needs"),
    (lambda c: c["annotations"][0].update(bbox=[1, 2, 3]), "bbox"),
    (lambda c: c["images"].append(dict(c["images"][0])), "more than once"),
])
def test_coco_inconsistent_content(tmp_path, tiny, edit, message):
    ann = _coco_json(tmp_path, tiny)
    coco = json.loads(ann.read_text())
    edit(coco)
    ann.write_text(json.dumps(coco))
    with pytest.raises(DataError, match=f"instances_train.json.*{message}"):
        load_split(ann.parents[1], "train")


def test_coco_missing_images(tmp_path, tiny):
    ann = _coco_json(tmp_path, tiny)
    root = ann.parents[1]
    (root / "train").rename(root / "elsewhere")
    with pytest.raises(DataError, match="cannot find its images.*images/train"):
        load_split(root, "train")
    (root / "elsewhere").rename(root / "train")
    (root / "train" / f"{tiny[3].name}.jpg").unlink()
    with pytest.raises(DataError, match=f"1 of {len(tiny)} images are missing.*{tiny[3].name}"):
        load_split(root, "train")


def test_coco_split_not_found_or_ambiguous(tmp_path, tiny):
    root = write_coco(tmp_path / "c", tiny, splits=("train2014", "train2017"))
    with pytest.raises(DataError, match="several annotation files match split 'train'"):
        load_split(root, "train")
    assert load_split(root, "train2017").name == "train2017"
    with pytest.raises(DataError, match="no annotation json for split 'val'"):
        load_split(root, "val")


def test_voc_malformed(tmp_path, tiny):
    root = write_voc(tmp_path / "v", tiny)
    xml = root / "Annotations" / f"{tiny[2].name}.xml"
    good = xml.read_text()
    xml.write_text(good.replace("</annotation>", ""))
    with pytest.raises(DataError, match=f"{tiny[2].name}.xml.*invalid xml"):
        load_split(root, "train")
    xml.write_text("")
    with pytest.raises(DataError, match=f"{tiny[2].name}.xml.*empty"):
        load_split(root, "train")
    xml.write_text(good.replace("<xmin>", "<xmin>abc", 1))
    with pytest.raises(DataError, match=f"{tiny[2].name}.xml.*numeric"):
        load_split(root, "train")
    xml.write_text(good)
    with pytest.raises(DataError, match="test.txt.*available: train, val"):
        load_split(root, "test")


def test_voc_unknown_class_with_class_list(tmp_path, tiny):
    root = write_voc(tmp_path / "v", tiny)
    (root / "classes.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    assert load_split(root, "train").class_names == list(CLASS_NAMES)
    xml = root / "Annotations" / f"{tiny[0].name}.xml"
    xml.write_text(xml.read_text().replace(f"<name>{CLASS_NAMES[tiny[0].classes[0]]}</name>", "<name>zebra</name>"))
    with pytest.raises(DataError, match=rf"{tiny[0].name}.xml:10: class 'zebra' is not in the class list"):
        load_split(root, "train")


def test_yolo_malformed(tmp_path, tiny):
    yaml_path = write_yolo(tmp_path / "y", tiny)
    label = yaml_path.parent / "labels" / "train" / f"{tiny[0].name}.txt"
    good = label.read_text()
    label.write_text(good + "3 0.5 0.5 0.1 0.1\n")
    line = good.count("\n") + 1
    with pytest.raises(DataError, match=rf"{tiny[0].name}.txt:{line}: class id 3 out of range 0..2"):
        load_split(yaml_path, "train")
    label.write_text("0 0.5 0.5 0.1\n")
    with pytest.raises(DataError, match=rf"{tiny[0].name}.txt:1: expected 'class cx cy w h'"):
        load_split(yaml_path, "train")
    label.write_text("0 120 80 30 20\n")
    with pytest.raises(DataError, match=rf"{tiny[0].name}.txt:1: .*not normalised"):
        load_split(yaml_path, "train")
    label.write_text(good)
    yaml_path.write_text("train: images/train\nval: images/nope\nnames: [a, b, c]\n")
    with pytest.raises(DataError, match="data.yaml: 'val: images/nope'.*does not exist"):
        load_split(yaml_path, "val")
    yaml_path.write_text("train: images/train\n")
    with pytest.raises(DataError, match="data.yaml: missing 'names'"):
        load_split(yaml_path, "train")
    yaml_path.write_text("")
    with pytest.raises(DataError, match="data.yaml.*empty"):
        load_split(yaml_path, "train")


def test_unknown_layout_and_missing_path(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "readme.md").write_text("hi")
    with pytest.raises(DataError, match=r"stuff: unknown dataset layout.*annotations/\*\.json.*data\.yaml"):
        load_split(tmp_path / "stuff", "train")
    with pytest.raises(DataError, match="nowhere: dataset not found"):
        load_split(tmp_path / "nowhere", "train")
    (tmp_path / "labels.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="labels.csv: not a dataset"):
        load_split(tmp_path / "labels.csv", "train")


# ----------------------------------------------------------------------------- built-in set


def test_builtin_deterministic(tmp_path):
    a = synthetic.generate_builtin(tmp_path / "a", num_train=5, num_val=3, seed=7)
    b = synthetic.generate_builtin(tmp_path / "b", num_train=5, num_val=3, seed=7)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 5 + 3 + 3
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    c = synthetic.generate_builtin(tmp_path / "c", num_train=5, num_val=3, seed=8)
    assert (c / "train" / "000000.jpg").read_bytes() != (a / "train" / "000000.jpg").read_bytes()

    data = load_split(a, "train")
    assert data.class_names == list(synthetic.CLASS_NAMES) and 5 <= len(data.class_names) <= 8
    assert data.category_ids == list(range(len(data.class_names)))
    assert len(data) == 5 and len(load_split(a, "val")) == 3
    for rec in data.records:
        assert len(rec.boxes) >= 1
        assert (rec.boxes[:, :2] >= 0).all() and (rec.boxes[:, 2] <= rec.width).all()
        assert (rec.boxes[:, 3] <= rec.height).all()
        sides = np.minimum(rec.boxes[:, 2] - rec.boxes[:, 0], rec.boxes[:, 3] - rec.boxes[:, 1])
        assert (sides >= 3).all()


def test_builtin_boxes_are_tight(monkeypatch):
    """Single shapes on a black, noise-free canvas: each box is exactly the painted extent."""
    monkeypatch.setattr(synthetic, "MAX_OBJECTS", 1)
    monkeypatch.setattr(synthetic, "_background", lambda rng, w, h: np.zeros((h, w, 3), np.float32))
    monkeypatch.setattr(synthetic, "_finish", lambda rng, canvas: canvas.astype(np.uint8))
    for seed in range(12):
        image, boxes, classes = synthetic.render_image(np.random.default_rng(seed), 320, 288)
        assert image.shape == (288, 320, 3) and boxes.dtype == np.float32 and classes.dtype == np.int64
        assert len(boxes) == 1 and 0 <= classes[0] < len(synthetic.CLASS_NAMES)
        ys, xs = np.nonzero(image.max(2) > 0)
        assert boxes[0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_builtin_generation_is_atomic(tmp_path, monkeypatch):
    real_write = synthetic._write_split

    def write_then_fail(root, split, *args):
        real_write(root, split, *args)
        if split == "val":
            raise KeyboardInterrupt  # interrupted after most of the work
    monkeypatch.setattr(synthetic, "_write_split", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        synthetic.generate_builtin(tmp_path / "ds", num_train=2, num_val=1)
    assert list(tmp_path.iterdir()) == []  # no half dataset, no temp folder left behind


def test_builtin_via_load_split(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENYOLOX_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(synthetic, "NUM_TRAIN", 4)
    monkeypatch.setattr(synthetic, "NUM_VAL", 2)
    train = load_split("builtin", "train")
    assert len(train) == 4 and train.name == "builtin/train"
    root = tmp_path / "cache" / synthetic.VERSION
    assert (root / "meta.json").is_file() and train.records[0].path.parent == root / "train"
    assert len(load_split("builtin", "val")) == 2  # reuses, does not regenerate
    (root / "meta.json").unlink()
    with pytest.raises(DataError, match="not a complete built-in dataset"):
        load_split("builtin", "val")


def test_strict_and_lenient_readers_agree(tmp_path, tiny):
    """One reader path: what check-data reports (lenient) is what training refuses (strict)."""
    root = write_voc(tmp_path / "v", tiny, splits=("train",))
    ids = root / "ImageSets" / "Main" / "train.txt"
    ids.write_text(ids.read_text() + f"{tiny[0].name}\n")
    problems = []
    assert len(load_split(root, "train", problems=problems)) == len(tiny)
    assert [(kind, "listed more than once" in detail) for _, kind, detail in problems] == [("duplicate-image-id", True)]
    with pytest.raises(DataError, match=f"'{tiny[0].name}' is listed more than once"):
        load_split(root, "train")
