"""`openyolox predict` end to end: folders, videos, outputs, error lines."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from openyolox.cli import main


def _write_images(folder, n=3):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"img{i}.jpg"), (rng.random((120, 160, 3)) * 255).astype(np.uint8))
    return folder


def test_predict_folder_writes_outputs(tmp_path, reference_dir, capsys):
    src = _write_images(tmp_path / "images")
    (src / "bad.jpg").write_bytes(b"\xff\xd8broken")
    out = tmp_path / "out"
    code = main(["predict", str(src), "--model", "yolox-nano", "--weights", str(reference_dir / "nano_reference.pth"),
                 "--imgsz", "160", "--conf", "0.3", "--out", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1].endswith(str(out))
    assert "skipping" in captured.err and "bad.jpg" in captured.err
    rows = json.loads((out / "predictions.json").read_text())
    assert rows and {r["image_id"] for r in rows} <= {"img0", "img1", "img2"}
    assert set(rows[0]) == {"image_id", "category_id", "bbox", "score"}
    assert sorted(p.name for p in out.glob("*.jpg")) == ["img0.jpg", "img1.jpg", "img2.jpg"]


def test_predict_video(tmp_path, reference_dir):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    if not writer.isOpened():
        pytest.fail("OpenCV cannot write mp4v video here")
    rng = np.random.default_rng(1)
    for _ in range(4):
        writer.write((rng.random((120, 160, 3)) * 255).astype(np.uint8))
    writer.release()
    out = tmp_path / "vout"
    code = main(["predict", str(video), "--model", "yolox-nano", "--weights", str(reference_dir / "nano_reference.pth"),
                 "--imgsz", "160", "--conf", "0.3", "--out", str(out)])
    assert code == 0
    assert (out / "clip.mp4").stat().st_size > 0
    rows = json.loads((out / "predictions.json").read_text())
    assert {r["image_id"] for r in rows} <= {f"clip_{i:06d}" for i in range(4)}
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4


@pytest.mark.parametrize("args, message", [
    (["predict", "nowhere.jpg", "--model", "yolox-nano"], "nowhere.jpg"),
    (["predict", ".", "--model", "yolox-huge"], "unknown model"),
    (["predict", ".", "--model", "yolox-nano", "--weights", "missing.pth"], "missing.pth"),
    (["predict", ".", "--model", "yolox-nano", "--imgsz", "100"], "multiple of 32"),
])
def test_errors_are_one_line(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "-m", "openyolox", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
