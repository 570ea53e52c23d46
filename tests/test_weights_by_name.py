"""Model names mean the published weights: Detector, predict and train fetch them (here from a
folder mirror written by the test), and without them nothing silently runs on random weights."""
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_data import make_tiny_dataset, write_coco  # noqa: E402

import openyolox  # noqa: E402
from openyolox.checkpoint import load_checkpoint  # noqa: E402
from openyolox.cli import main  # noqa: E402
from openyolox.errors import WeightsUnavailableError  # noqa: E402
from openyolox.models.yolox import create_model  # noqa: E402


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A folder mirror holding a 'published' yolox_nano.pth (random weights, reference format)."""
    mirror = tmp_path_factory.mktemp("mirror")
    torch.manual_seed(0)
    torch.save({"model": create_model("yolox-nano", 80).state_dict()}, mirror / "yolox_nano.pth")
    return mirror


@pytest.fixture
def mirror_env(published, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENYOLOX_WEIGHTS_URL", str(published))
    monkeypatch.setenv("OPENYOLOX_HOME", str(tmp_path / "home"))
    return published


def test_detector_by_name_loads_the_published_weights(mirror_env, tmp_path):
    det = openyolox.Detector("yolox-nano", imgsz=128, backend="torch")  # the module, to compare weights
    ref = load_checkpoint(mirror_env / "yolox_nano.pth")["model"]
    fresh = create_model("yolox-nano", 80).state_dict()
    key = "head.cls_preds.0.weight"   # the detector's copy is fused, but prediction layers are not
    assert torch.equal(det.model.state_dict()[key], ref[key]) and not torch.equal(ref[key], fresh[key])
    assert (tmp_path / "home" / "weights" / "yolox_nano.pth").is_file()  # cached


def test_weights_none_is_random_on_purpose(mirror_env):
    a = openyolox.Detector("yolox-nano", weights="none", imgsz=128, backend="torch")
    assert not torch.equal(a.model.state_dict()["head.cls_preds.0.weight"],
                           load_checkpoint(mirror_env / "yolox_nano.pth")["model"]["head.cls_preds.0.weight"])


def test_no_network_is_one_line_and_never_random(tmp_path, capsys):
    image = tmp_path / "img.jpg"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(WeightsUnavailableError):
        openyolox.Detector("yolox-nano")
    capsys.readouterr()
    assert main(["predict", str(image), "--model", "yolox-nano", "--out", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("downloading ")]
    assert len(lines) == 1 and "cannot download yolox_nano.pth" in lines[0] and "curl" in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "p" / "predictions.json").exists()


def test_training_on_custom_data_fine_tunes_from_the_published_weights(mirror_env, tmp_path, capsys):
    data = write_coco(tmp_path / "coco", make_tiny_dataset(6))
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--epochs", "1", "--batch", "6", "--imgsz", "64", "--workers", "0",
                 "--no-progress", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "re-initialised the class prediction layers" in err and "yolox_nano.pth" in err


def test_training_without_the_published_weights_stops(tmp_path, capsys):
    data = write_coco(tmp_path / "coco", make_tiny_dataset(6))
    assert main(["train", "--data", str(data), "--epochs", "1", "--imgsz", "64", "--workers", "0",
                 "--no-progress", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "cannot download yolox_nano.pth" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
