"""What a new user meets in the first hour: undertrained models whose outputs overflow, short
runs of any length, bad files given to the CLI. Each must end cleanly, in one line on error."""
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_data import make_tiny_dataset, write_coco  # noqa: E402

import openyolox  # noqa: E402
from openyolox.checkpoint import load_checkpoint, load_weights  # noqa: E402
from openyolox.cli import main  # noqa: E402
from openyolox.data.formats.coco import load_coco_root  # noqa: E402
from openyolox.errors import DataError  # noqa: E402
from openyolox.evaluation.results import to_coco_results  # noqa: E402
from openyolox.inference.postprocess import postprocess  # noqa: E402
from openyolox.inference.visualize import draw_detections  # noqa: E402
from openyolox.models.yolox import create_model  # noqa: E402


@pytest.fixture(scope="module")
def coco_data(tmp_path_factory):
    return write_coco(tmp_path_factory.mktemp("data") / "coco", make_tiny_dataset(12))


def overflowing_model(num_classes=3):
    """Box sizes exp(100) (inf in float32) and confident scores: what an early or diverged
    model can output."""
    model = create_model("yolox-nano", num_classes)
    with torch.no_grad():
        for conv in model.head.reg_preds:
            conv.bias.fill_(100.0)
        for conv in [*model.head.obj_preds, *model.head.cls_preds]:
            conv.bias.fill_(8.0)
    return model.eval()


def test_postprocess_never_emits_non_finite_numbers():
    model = overflowing_model()
    with torch.no_grad():
        raw = model(torch.rand(2, 3, 64, 96) * 255)
    assert not torch.isfinite(raw[..., :4]).all()          # the model does overflow
    raw[0, :5, 4] = float("nan")                              # and a NaN score, for good measure
    for dets in postprocess(raw, 0.01, 0.65) + postprocess(raw, 0.25, 0.45, class_agnostic=True):
        assert torch.isfinite(dets).all()


@pytest.mark.parametrize("box", [[np.nan, 0, 5, 5], [0, -np.inf, 5, np.inf], [-1e30, 2, 1e30, 3e38],
                                 [5, 5, 5, 5], [1e9, 1e9, 2e9, 2e9]])
def test_drawing_never_crashes(box):
    image = np.zeros((40, 60, 3), np.uint8)
    out = draw_detections(image, np.array([box], np.float32), np.array([0.9], np.float32), np.array([0]), ["a"])
    assert out.shape == image.shape


def test_overflowing_model_evaluates_and_predicts(coco_data):
    model = overflowing_model()
    metrics = openyolox.evaluate(model, data=str(coco_data), imgsz=64, workers=0, progress=False)
    assert metrics["AP50_95"] is not None and math.isfinite(metrics["AP50_95"])
    det = openyolox.Detector(model, imgsz=64, conf=0.01)
    for r in det.predict(np.full((48, 64, 3), 128, np.uint8)):
        assert np.isfinite(r.boxes).all() and np.isfinite(r.scores).all()


def test_user_predictions_with_non_finite_boxes_are_an_error(coco_data):
    split = load_coco_root(coco_data, "val")
    image_id = split.records[0].image_id
    bad = {image_id: (np.array([[0, 0, np.inf, 5]]), np.array([0.5]), np.array([0]))}
    with pytest.raises(DataError, match=f"predictions for image {image_id}.*non-finite"):
        to_coco_results(split, bad)


FAST = ["--imgsz", "64", "--batch", "8", "--workers", "0", "--no-progress", "--weights", "none"]


@pytest.mark.parametrize("epochs", [1, 3])
def test_short_runs_on_a_coco_folder_end_cleanly(coco_data, tmp_path, epochs):
    out = tmp_path / "run"
    assert main(["train", "--data", str(coco_data), "--epochs", str(epochs), "--out", str(out), *FAST]) == 0
    ckpt = load_checkpoint(out / "last.pth")
    assert ckpt["epoch"] == epochs
    load_weights(create_model("yolox-nano", 3), out / "last.pth", strict=True)
    assert json.loads((out / "metrics.json").read_text())["val_images_predicted"] == 12


@pytest.mark.parametrize("epochs", [1, 3])
def test_short_runs_on_the_builtin_set_end_cleanly(tmp_path, epochs):
    """Only the epochs (and a small image size, to keep the test quick) differ from the main
    job's defaults."""
    out = tmp_path / "run"
    assert main(["train", "--epochs", str(epochs), "--out", str(out), "--imgsz", "64", "--no-progress"]) == 0
    ckpt = load_checkpoint(out / "last.pth")
    assert ckpt["epoch"] == epochs
    load_weights(create_model("yolox-nano", len(ckpt["class_names"])), out / "last.pth", strict=True)


def test_zero_byte_val_image_is_one_line_with_loader_workers(coco_data, tmp_path, capsys):
    data = tmp_path / "coco"
    write_coco(data, make_tiny_dataset(6))
    next((data / "val").glob("*.jpg")).write_bytes(b"")
    weights = tmp_path / "w.pth"
    torch.save({"model": create_model("yolox-nano", 3).state_dict()}, weights)
    code = main(["val", "--model", "yolox-nano", "--weights", str(weights), "--data", str(data), "--imgsz", "64",
                 "--workers", "1", "--out", str(tmp_path / "val"), "--no-plots", "--backend", "torch"])
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "empty (0 bytes)" in lines[0], err
    assert "Traceback" not in err and "worker" not in err


def test_text_file_as_weights_is_one_line(tmp_path, capsys):
    notes = tmp_path / "notes.pth"
    notes.write_text("learning rate 0.01 worked best\n")
    image = tmp_path / "img.jpg"
    import cv2

    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    code = main(["predict", str(image), "--model", "yolox-nano", "--weights", str(notes), "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()] == [
        f"openyolox predict: error: {notes}: not a PyTorch checkpoint: it is a text file; pass a .pth written "
        f"by torch.save (openyolox or the reference YOLOX)"]
