"""`openyolox benchmark dataloader` and `benchmark train-step` print the JSON they promise."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_data import make_tiny_dataset, write_coco  # noqa: E402

from openyolox.cli import main  # noqa: E402


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_step_json(capsys):
    assert main(["benchmark", "train-step", "--model", "yolox-nano", "--imgsz", "64", "--batch", "2",
                 "--gts", "3", "--iters", "1"]) == 0
    out = _last_json(capsys)
    assert out["ms_per_step"] > 0 and out["images_per_s"] > 0 and out["gts"] == 3


def test_dataloader_json(tmp_path, capsys):
    data = write_coco(tmp_path / "coco", make_tiny_dataset(8))
    assert main(["benchmark", "dataloader", "--data", str(data), "--imgsz", "64", "--batch", "2", "--iters", "2"]) == 0
    out = _last_json(capsys)
    assert out["images_per_s"] > 0 and out["img_size"] == [64, 64] and out["batch"] == 2
