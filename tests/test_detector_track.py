"""openyolox.Detector.track (the public Detector: detector -> ByteTrack per frame) and
`openyolox track --backend`.

Detector.track runs on a small mp4 written here, two coloured squares moving across it, with
the blob back-end of tests/blob_backend.py (a perfect detector of red and green blobs), so the
tracks are known: two ids, kept for the whole video.
"""
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("scipy")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import openyolox  # noqa: E402
from blob_backend import BACKGROUND, BlobFinder  # noqa: E402
from openyolox.cli import main  # noqa: E402
from openyolox.tracking import video as tracking_video  # noqa: E402

FRAMES = 12


@pytest.fixture(scope="module")
def two_squares(tmp_path_factory):
    """An mp4 of FRAMES frames (160x128): a red square moving right, a green one moving down."""
    path = tmp_path_factory.mktemp("video") / "two_squares.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 128))
    assert writer.isOpened()
    for f in range(FRAMES):
        frame = np.full((128, 160, 3), BACKGROUND, np.uint8)
        frame[20:44, 10 + 4 * f:34 + 4 * f] = (0, 0, 255)   # BGR red
        frame[10 + 3 * f:34 + 3 * f, 110:134] = (0, 255, 0)  # green
        writer.write(frame)
    writer.release()
    return path


def blob_tracker_detector(**kwargs):
    det = openyolox.Detector("yolox-nano", weights="none", num_classes=2, names=["red", "green"], imgsz=160,
                             backend="torch", **kwargs)
    det.backend = BlobFinder()
    return det


def test_track_gives_boxes_and_steady_ids(two_squares):
    det = blob_tracker_detector()
    # the blob scores are ~0.5: start tracks from 0.45 (ByteTracker's option, passed through)
    frames = list(det.track(two_squares, new_track_thresh=0.45))
    assert len(frames) == FRAMES and [f.frame for f in frames] == list(range(1, FRAMES + 1))
    assert all(f.image.shape == (128, 160, 3) for f in frames)
    ids = {}  # class -> the track ids it got
    for f in frames[1:]:  # a track is confirmed from its second frame
        assert len(f) == 2 and f.boxes.shape == (2, 4) and f.track_ids.shape == (2,)
        for cls, tid in zip(f.classes, f.track_ids):
            ids.setdefault(int(cls), set()).add(int(tid))
    assert sorted(ids) == [0, 1] and all(len(v) == 1 for v in ids.values()) and ids[0] != ids[1]
    red = [f.boxes[f.classes == 0][0] for f in frames[1:]]
    assert red[-1][0] - red[0][0] == pytest.approx(4 * (FRAMES - 2), abs=2)  # it follows the square right
    assert len(list(det.track(two_squares, new_track_thresh=0.45, limit=3, classes=["green"]))) == 3
    assert all((f.classes == 1).all() for f in det.track(two_squares, new_track_thresh=0.45, classes=["green"]))


def test_track_uses_the_tracking_thresholds_unless_given(two_squares, monkeypatch):
    seen = []
    real = tracking_video.track_frames

    def spy(detector, source, **kwargs):
        seen.append((detector.conf, detector.iou, kwargs.get("batch_size")))
        return real(detector, source, **kwargs)

    monkeypatch.setattr(tracking_video, "track_frames", spy)
    det = blob_tracker_detector(conf=0.4, iou=0.5)
    list(det.track(two_squares))
    list(det.track(two_squares, conf=0.3, iou=0.6, batch_size=4))
    assert seen == [(tracking_video.TRACK_CONF, tracking_video.TRACK_IOU, 1), (0.3, 0.6, 4)]
    assert (det.conf, det.iou) == (0.4, 0.5)  # the Detector keeps its own


def test_track_cli_backend_option(two_squares, tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("OPENYOLOX_HOME", str(tmp_path / "home"))
    for backend, label in (("torch", "PyTorch"), ("auto", "ONNX Runtime")):
        out = tmp_path / backend
        assert main(["track", str(two_squares), "--model", "yolox-nano", "--weights", "none", "--imgsz", "160",
                     "--backend", backend, "--max-frames", "2", "--no-save", "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert "2 frame(s) tracked" in err and f"frames/s, {label})" in err
        assert (out / "tracks.txt").is_file() and (out / "tracks.json").is_file()
