"""`openyolox check-data` and openyolox.data.checks: bad datasets in every layout are
reported per file, clean ones pass, and --fix-out writes a clean copy without touching the input."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_data import make_tiny_dataset, write_coco, write_voc, write_yolo  # noqa: E402

from openyolox.cli import main  # noqa: E402
from openyolox.data.checks import (bad_box_mask, check_dataset, check_split, drop_bad_samples,  # noqa: E402
                                   write_clean_copy)
from openyolox.data.image_io import decode_image  # noqa: E402
from openyolox.data.records import DatasetSplit, ImageRecord  # noqa: E402
from openyolox.data.layouts import load_split  # noqa: E402
from openyolox.errors import DataError  # noqa: E402
from openyolox.training.trainer import prepare_split  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_dataset()


def by_kind(report):
    """{kind: [issue, ...]} over every split of a DatasetReport."""
    found = {}
    for split in report.splits.values():
        for issue in split.issues:
            found.setdefault(issue.kind, []).append(issue)
    return found


def tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def truncate(path: Path, nbytes: int = 300) -> None:
    path.write_bytes(path.read_bytes()[:-nbytes])


def bad_coco(root: Path, tiny) -> Path:
    """A COCO train split with one instance of most problems (see the asserts below)."""
    root = write_coco(root, tiny, splits=("train",))
    ann_file = root / "annotations" / "instances_train.json"
    ann = json.loads(ann_file.read_text())
    # tiny[0] is 64x48 with a box at annotations[0]
    ann["annotations"][0]["bbox"] = [50, 5, 30, 10]                        # 16 px past the right edge
    ann["annotations"][1]["bbox"] = [5, 5, 0, 10]                          # zero width
    ann["annotations"].append(dict(ann["annotations"][2], id=1000))        # the same box twice
    ann["annotations"].append(dict(ann["annotations"][2], id=1001, category_id=9))  # unknown category
    ann["annotations"].append(dict(ann["annotations"][2], id=1002, image_id=777))   # unknown image
    ann["images"].append(dict(ann["images"][3], file_name="other.jpg"))    # image id 4 again
    ann["images"].append({"id": 50, "file_name": "gone.jpg", "width": 10, "height": 10})  # no file
    ann["images"][4]["width"] += 3                                        # size mismatch
    ann_file.write_text(json.dumps(ann))
    truncate(root / "train" / f"{tiny[5].name}.jpg")
    return root


def test_coco_problems_reported_per_file(tmp_path, tiny):
    root = bad_coco(tmp_path / "coco", tiny)
    report = check_dataset(root)
    kinds = by_kind(report)
    ann_file = str(root / "annotations" / "instances_train.json")
    image = lambda i: str(root / "train" / f"{tiny[i].name}.jpg")  # noqa: E731

    (outside,) = kinds["box-outside"]
    assert outside.path == image(0) and "16.0 px outside the 64x48 image (right 16.0 px)" in outside.detail
    assert [i.path for i in kinds["box-no-area"]] and "zero or negative" in kinds["box-no-area"][0].detail
    (dup_box,) = kinds["duplicate-box"]
    assert dup_box.severity == "warning"
    assert [(i.path, "category_id 9" in i.detail) for i in kinds["unknown-category"]] == [(ann_file, True)]
    assert [(i.path, "image_id 777" in i.detail) for i in kinds["unknown-image-id"]] == [(ann_file, True)]
    assert [(i.path, "image id 4" in i.detail) for i in kinds["duplicate-image-id"]] == [(ann_file, True)]
    assert [i.path for i in kinds["missing-image"]] == [str(root / "train" / "gone.jpg")]
    (mismatch,) = kinds["size-mismatch"]
    assert mismatch.path == image(4) and f"{tiny[4].width}x{tiny[4].height}" in mismatch.detail
    (unreadable,) = kinds["unreadable-image"]
    assert unreadable.path == image(5) and "truncated" in unreadable.detail
    assert all(i.severity == "error" for k, v in kinds.items() if k != "duplicate-box" for i in v)

    split = report.splits["train"]
    assert split.images == len(tiny) + 1 and split.boxes == sum(len(t.classes) for t in tiny) + 1
    assert sum(split.boxes_per_class) == split.boxes
    assert sum(split.size_histogram.values()) == split.boxes - 1  # the zero-area box has no size
    assert sum(split.coco_area.values()) == split.boxes - 1


def test_coco_cli_exit_codes_text_and_json(tmp_path, tiny, capsys):
    clean = write_coco(tmp_path / "clean", tiny)
    assert main(["check-data", str(clean)]) == 0
    out = capsys.readouterr().out
    assert "== train ==" in out and "== val ==" in out and "0 error(s), 0 warning(s)" in out
    assert "box size, sqrt(area) px: <16:" in out and "COCO area ranges" in out

    bad = bad_coco(tmp_path / "bad", tiny)
    report_path = tmp_path / "report.json"
    assert main(["check-data", str(bad), "--split", "train", "--json", str(report_path)]) == 1
    out = capsys.readouterr().out
    image0 = bad / "train" / f"{tiny[0].name}.jpg"
    assert f"{image0}: box-outside: box #1" in out
    assert "errors (" in out and "warnings (1):" in out and "errors found (exit status 1)" in out
    saved = json.loads(report_path.read_text())
    assert saved["clean"] is False and saved["errors"] > 0 and saved["warnings"] == 1
    issues = saved["splits"]["train"]["issues"]
    assert {"path", "kind", "severity", "detail", "image_id"} <= set(issues[0])
    assert set(saved["splits"]["train"]["boxes_per_class"]) == {"circle", "square", "triangle"}


def test_fix_out_writes_clean_copy_and_leaves_input_alone(tmp_path, tiny, capsys):
    root = bad_coco(tmp_path / "coco", tiny)
    ann_file = root / "annotations" / "instances_train.json"
    ann = json.loads(ann_file.read_text())
    ann["annotations"][3]["bbox"][0] -= ann["annotations"][3]["bbox"][0] + 0.5  # 0.5 px left of the image
    ann_file.write_text(json.dumps(ann))
    before = tree_digest(root)
    out = tmp_path / "fixed"
    assert main(["check-data", str(root), "--fix-out", str(out)]) == 1  # the input still has errors
    text = capsys.readouterr().out
    assert "cleaned copy written to" in text and "clipped 1 box(es)" in text
    assert tree_digest(root) == before

    clean = load_split(out, "train")
    names = sorted(r.path.name for r in clean.records)
    assert names == sorted(f"{t.name}.jpg" for i, t in enumerate(tiny) if i not in (4, 5))  # mismatch, truncated
    assert all(r.path.is_file() and str(r.path).startswith(str(out)) for r in clean.records)
    assert min(float(r.boxes[:, 0].min()) for r in clean.records if len(r.boxes)) == 0.0  # clipped
    assert clean.class_names == ["circle", "square", "triangle"] and clean.category_ids == [1, 2, 5]
    assert main(["check-data", str(out)]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out


def test_fix_out_refuses_input_and_non_empty_folders(tmp_path, tiny):
    root = write_coco(tmp_path / "coco", tiny, splits=("val",))
    for target in (root, root / "inside", root / "val"):
        with pytest.raises(DataError, match="inside the input"):
            main(["--debug", "check-data", str(root), "--fix-out", str(target)])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(DataError, match="not an empty folder"):
        main(["--debug", "check-data", str(root), "--fix-out", str(tmp_path / "full")])
    report = check_dataset(root)
    with pytest.raises(DataError, match="inside the input"):
        write_clean_copy(report, root / "annotations" / "x")
    assert not (root / "annotations" / "x").exists()


def test_yolo_problems(tmp_path, tiny, capsys):
    yaml_path = write_yolo(tmp_path / "yolo", tiny)
    labels = tmp_path / "yolo" / "labels" / "train"
    (labels / f"{tiny[0].name}.txt").write_text("7 0.5 0.5 0.2 0.2\n" + (labels / f"{tiny[0].name}.txt").read_text())
    (labels / f"{tiny[2].name}.txt").unlink()                 # image without label: a warning
    (labels / "lost.txt").write_text("0 0.5 0.5 0.1 0.1\n")   # label without image: an error
    (labels / "classes.txt").write_text("circle\nsquare\ntriangle\n")  # not a label file
    truncate(tmp_path / "yolo" / "images" / "train" / f"{tiny[3].name}.jpg")
    report = check_dataset(yaml_path)
    kinds = by_kind(report)
    (oor,) = kinds["class-out-of-range"]
    assert oor.path == f"{labels / tiny[0].name}.txt:1" and "class id 7 out of range 0..2" in oor.detail
    (lost,) = kinds["label-without-image"]
    assert lost.path == str(labels / "lost.txt") and lost.severity == "error"
    (no_label,) = kinds["no-label-file"]
    assert no_label.severity == "warning" and no_label.path.endswith(f"{tiny[2].name}.jpg")
    assert [i.path.endswith(f"{tiny[3].name}.jpg") for i in kinds["unreadable-image"]] == [True]
    assert not report.splits["val"].issues
    # the rest of the label file is still read
    train = report.loaded["train"]
    assert len(train.records[0].classes) == len(tiny[0].classes)

    # only a missing label file: warnings do not fail the check
    yaml2 = write_yolo(tmp_path / "yolo2", tiny, splits=("train",))
    (tmp_path / "yolo2" / "labels" / "train" / f"{tiny[0].name}.txt").unlink()
    assert main(["check-data", str(yaml2)]) == 0
    assert "warnings (1):" in capsys.readouterr().out


def test_voc_problems(tmp_path, tiny):
    root = write_voc(tmp_path / "voc", tiny)
    (root / "classes.txt").write_text("circle\nsquare\ntriangle\n")
    xml = root / "Annotations" / f"{tiny[0].name}.xml"
    text = xml.read_text()
    first = text.index("<name>") + len("<name>")
    xml.write_text(text[:first] + "zebra" + text[text.index("</name>", first):])
    (root / "Annotations" / f"{tiny[3].name}.xml").unlink()   # listed id without xml
    (root / "JPEGImages" / f"{tiny[4].name}.jpg").unlink()    # xml without image
    report = check_dataset(root, "val")
    kinds = by_kind(report)
    (unknown,) = kinds["unknown-class"]
    assert unknown.path == f"{xml}:10" and "'zebra'" in unknown.detail
    assert [i.path for i in kinds["missing-annotation"]] == [str(root / "Annotations" / f"{tiny[3].name}.xml")]
    assert [i.path for i in kinds["missing-image"]] == [str(root / "Annotations" / f"{tiny[4].name}.xml")]
    assert [i.severity for i in kinds["image-without-annotation"]] == ["warning"]
    assert len(report.loaded["val"]) == len(tiny) - 2
    assert len(report.loaded["val"].records[0].classes) == len(tiny[0].classes) - 1


@pytest.mark.parametrize("layout", ["coco", "voc", "yolo"])
def test_clean_datasets_pass(tmp_path, tiny, layout):
    data = {"coco": write_coco, "voc": write_voc, "yolo": write_yolo}[layout](tmp_path / layout, tiny)
    report = check_dataset(data)
    assert sorted(report.splits) == (["train", "val"])
    assert not report.errors and not report.warnings
    assert report.splits["val"].boxes == sum(len(t.classes) for t in tiny)


def test_exif_orientation_is_the_truth(tmp_path, tiny):
    root = write_coco(tmp_path / "coco", tiny[:2], splits=("val",))
    path = root / "val" / f"{tiny[0].name}.jpg"              # stored 64x48
    exif = Image.Exif()
    exif[0x0112] = 6                                          # displayed turned by 90 degrees: 48x64
    Image.open(path).convert("RGB").save(path, exif=exif, quality=95)
    report = check_dataset(root)
    (mismatch,) = by_kind(report)["size-mismatch"]
    assert "48x64 (as displayed)" in mismatch.detail and "EXIF orientation 6" in mismatch.detail

    ann_file = root / "annotations" / "instances_val.json"
    ann = json.loads(ann_file.read_text())
    ann["images"][0].update(width=48, height=64)
    ann["annotations"] = [a for a in ann["annotations"] if a["image_id"] != 1]
    ann_file.write_text(json.dumps(ann))
    assert not check_dataset(root).errors


def test_quick_check_reads_no_images_and_trainer_helpers(tmp_path, tiny):
    root = bad_coco(tmp_path / "coco", tiny)
    report = check_dataset(root, full=False)
    kinds = by_kind(report)
    assert "size-mismatch" not in kinds and "box-outside" in kinds  # no image is decoded, but the JPEG
    (cut,) = kinds["unreadable-image"]                               # cut short shows in its last bytes
    assert cut.path.endswith(f"{tiny[5].name}.jpg") and "rows missing" in cut.detail

    # the trainer's path: the strict reader, then check_split / drop_bad_samples
    root2 = write_coco(tmp_path / "coco2", tiny, splits=("train",))
    ann_file = root2 / "annotations" / "instances_train.json"
    ann = json.loads(ann_file.read_text())
    ann["annotations"][0]["bbox"] = [5, 5, 0, 10]
    ann["annotations"].append(dict(ann["annotations"][2], id=500))
    ann_file.write_text(json.dumps(ann))
    split = load_split(root2, "train")
    quick = check_split(split)
    assert [i.kind for i in quick.errors] == ["box-no-area"] and [i.kind for i in quick.warnings] == ["duplicate-box"]
    assert "box-no-area" in quick.summary()
    cleaned, images_dropped, boxes_dropped = drop_bad_samples(split)
    assert (images_dropped, boxes_dropped) == (0, 1)
    assert sum(len(r.classes) for r in cleaned.records) == sum(len(r.classes) for r in split.records) - 1
    mask, problems = bad_box_mask(split.records[0], split.num_classes)
    assert mask.tolist()[0] is True and problems[0][:2] == (0, "box-no-area")


def test_quick_check_boxes_vectorised():
    recs = [ImageRecord(Path(f"/nonexistent/{i}.jpg"), i, 100, 50,
                        boxes=[[0, 0, 10, 10], [95, 40, 101, 50.5], [90, 0, 106, 10], [5, 5, 5, 9],
                               [np.nan, 0, 1, 1], [1, 1, 2, 2]],
                        classes=[0, 1, 1, 0, 0, 3]) for i in range(3)]
    recs.append(ImageRecord(Path("/nonexistent/0.jpg"), 0, 100, 50))  # same id and file as record 0
    split = DatasetSplit(recs, ["a", "b"], [0, 1], "x")
    report = check_split(split)
    kinds = [(i.record, i.kind) for i in report.issues if i.kind.startswith(("box", "class"))]
    assert kinds[:4] == [(0, "box-outside"), (0, "box-no-area"), (0, "box-not-finite"), (0, "class-out-of-range")]
    assert len(kinds) == 12  # 1.0 px over is within the tolerance: box #2 is fine
    outside = next(i for i in report.issues if i.kind == "box-outside")
    assert "extends 6.0 px outside the 100x50 image (right 6.0 px)" in outside.detail
    assert {i.kind for i in report.issues if i.record == 3} == {"duplicate-image-id", "duplicate-image-file"}
    assert [i.record for i in report.issues if i.kind == "missing-image"] == [0, 1, 2]  # the same line once
    assert report.boxes == 18 and report.boxes_per_class == [9, 6]


def test_cli_one_line_errors_in_subprocess(tmp_path):
    stuff = tmp_path / "stuff"
    stuff.mkdir()
    (stuff / "labels.csv").write_text("a,b\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for target, message in ((stuff, "unknown dataset layout"), (tmp_path / "nowhere", "dataset not found")):
        proc = subprocess.run([sys.executable, "-m", "openyolox", "check-data", str(target)], capture_output=True,
                              text=True, env=env, timeout=120)
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("openyolox check-data: error:") and message in lines[0]


def _coco_edit(root, edit):
    ann_file = root / "annotations" / "instances_train.json"
    ann = json.loads(ann_file.read_text())
    edit(ann)
    ann_file.write_text(json.dumps(ann))


@pytest.mark.parametrize("edit, kind, text", [
    (lambda a: a["annotations"][0].update(category_id=99), "unknown-category", "category_id 99"),
    (lambda a: a["annotations"][0].update(bbox=[1, 2, 3]), "bad-annotation", "bbox [1, 2, 3]"),
    (lambda a: a["annotations"][0].pop("bbox"), "bad-annotation", "needs 'image_id', 'category_id' and 'bbox'"),
])
def test_coco_annotation_problems_name_their_image(tmp_path, tiny, edit, kind, text):
    """check-data (lenient) and training (strict) both say which image a bad annotation is of."""
    root = write_coco(tmp_path / "coco", tiny, splits=("train",))
    _coco_edit(root, edit)
    first_image = f"{tiny[0].name}.jpg"  # annotations[0] belongs to image id 1 = tiny[0]
    (issue,) = by_kind(check_dataset(root))[kind]
    assert issue.path == str(root / "annotations" / "instances_train.json")
    assert text in issue.detail and f"(image {first_image})" in issue.detail and issue.detail.endswith("; skipped")
    with pytest.raises(DataError, match=rf"instances_train.json: .*\(image {first_image}\)"):
        load_split(root, "train")


def test_voc_object_problems_name_their_image(tmp_path, tiny):
    root = write_voc(tmp_path / "voc", tiny, splits=("train",))
    (root / "classes.txt").write_text("circle\nsquare\ntriangle\n")
    xml0 = root / "Annotations" / f"{tiny[0].name}.xml"
    text = xml0.read_text()
    first = text.index("<name>") + len("<name>")
    xml0.write_text(text[:first] + "zebra" + text[text.index("</name>", first):])
    xml2 = root / "Annotations" / f"{tiny[2].name}.xml"
    xml2.write_text(xml2.read_text().replace("<xmin>", "<xmin>abc", 1))
    kinds = by_kind(check_dataset(root))
    (unknown,) = kinds["unknown-class"]
    assert unknown.path == f"{xml0}:10" and f"in image {tiny[0].name}.jpg" in unknown.detail
    (bad,) = kinds["bad-annotation"]
    assert bad.path == str(xml2) and f"of image {tiny[2].name}.jpg needs numeric" in bad.detail
    with pytest.raises(DataError, match=rf"{tiny[0].name}.xml:10: class 'zebra' .* in image {tiny[0].name}.jpg"):
        load_split(root, "train")


def test_yolo_row_problems_name_their_image(tmp_path, tiny):
    yaml_path = write_yolo(tmp_path / "yolo", tiny, splits=("train",))
    labels = tmp_path / "yolo" / "labels" / "train"
    (labels / f"{tiny[0].name}.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    (labels / f"{tiny[2].name}.txt").write_text("0 0.5 0.5\n")
    kinds = by_kind(check_dataset(yaml_path))
    (oor,) = kinds["class-out-of-range"]
    assert oor.path == f"{labels / tiny[0].name}.txt:1" and f"(image {tiny[0].name}.jpg)" in oor.detail
    (bad,) = kinds["bad-annotation"]
    assert bad.path == f"{labels / tiny[2].name}.txt:1" and f"(image {tiny[2].name}.jpg)" in bad.detail
    with pytest.raises(DataError, match=rf"{tiny[0].name}.txt:1: class id 7 .*\(image {tiny[0].name}.jpg\)"):
        load_split(yaml_path, "train")


# ----------------------------------------------------------------------------- images cut short (issue 15.8)


def cut_images(root: Path, tiny) -> tuple:
    """tiny[0] loses its last 2 bytes (the JPEG end marker: every pixel is still there),
    tiny[3] half of its bytes (rows missing); -> (path of the first, path of the second)."""
    whole, half = root / f"{tiny[0].name}.jpg", root / f"{tiny[3].name}.jpg"
    whole.write_bytes(whole.read_bytes()[:-2])
    half.write_bytes(half.read_bytes()[:len(half.read_bytes()) // 2])
    return whole, half


@pytest.mark.parametrize("full", [True, False])
def test_check_data_tells_a_lost_end_marker_from_missing_rows(tmp_path, tiny, full):
    root = write_coco(tmp_path / "coco", tiny, splits=("train",))
    no_end, half = cut_images(root / "train", tiny)
    kinds = by_kind(check_dataset(root, full=full))
    (warning,) = kinds["image-truncated-trailer"]
    assert warning.path == str(no_end) and warning.severity == "warning" and "end marker" in warning.detail
    (error,) = kinds["unreadable-image"]
    assert error.path == str(half) and error.severity == "error"
    assert "rows missing" in error.detail and f"of {tiny[3].height} rows" in error.detail


def test_fix_out_completes_a_jpeg_without_end_marker(tmp_path, tiny, capsys):
    root = write_coco(tmp_path / "coco", tiny, splits=("train",))
    no_end, half = cut_images(root / "train", tiny)
    out = tmp_path / "fixed"
    assert main(["check-data", str(root), "--fix-out", str(out)]) == 1  # the input has an error
    text = capsys.readouterr().out
    assert "repaired 1 JPEG(s) that had lost their end marker" in text and "dropped 1 image(s)" in text
    fixed = out / "train" / no_end.name
    assert fixed.read_bytes()[-2:] == b"\xff\xd9" and decode_image(fixed)[1] is None  # reads strictly
    assert not (out / "train" / half.name).exists()
    assert main(["check-data", str(out)]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out


def test_training_stops_on_missing_rows_or_drops_them_with_skip_bad(tmp_path, tiny):
    """The check before the first step (trainer.prepare_split) finds a JPEG cut short."""
    root = write_coco(tmp_path / "coco", tiny, splits=("train",))
    no_end, half = cut_images(root / "train", tiny)
    with pytest.raises(DataError, match=rf"1 problem\(s\) in the train split(.|\n)*{half}: unreadable-image: "
                                        rf"cannot decode image: truncated JPEG, \d+ of {tiny[3].height} rows missing"):
        prepare_split(str(root), "train", skip_bad=False, log=print)
    logged = []
    split = prepare_split(str(root), "train", skip_bad=True, log=logged.append)
    assert [r.path.name for r in split.records] == [f"{t.name}.jpg" for i, t in enumerate(tiny) if i != 3]
    assert any("dropped 1 image(s)" in line for line in logged), logged
    cleaned, images, boxes = drop_bad_samples(load_split(root, "train"))
    assert (images, boxes) == (1, 0) and no_end in [r.path for r in cleaned.records]  # only a warning
