"""`openyolox track` and track_frames: detector -> ByteTrack -> video, tracks.txt, tracks.json."""
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("scipy")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from openyolox.cli import main  # noqa: E402
from openyolox.errors import ConfigError  # noqa: E402
from openyolox.inference.results import Detections  # noqa: E402
from openyolox.tracking.mot_io import read_mot  # noqa: E402
from openyolox.tracking.synthetic import make_sequence, write_sequence  # noqa: E402
from openyolox.tracking.video import class_filter, track_frames  # noqa: E402


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    seq = make_sequence("crossing", seed=0, num_frames=8)
    return seq, write_sequence(seq, tmp_path_factory.mktemp("seq"))


class GroundTruthDetector:
    """Stands in for a Detector: each frame's ground-truth boxes as detections (score 0.9)."""

    names = ["circle", "square", "triangle", "star", "cross", "ring"]

    def __init__(self, gt: np.ndarray):
        self.gt = gt  # MOT rows: frame, id, x, y, w, h, ...

    def stream(self, source, batch_size=1, limit=0):
        for f in range(1, int(self.gt[:, 0].max()) + 1):
            rows = self.gt[self.gt[:, 0] == f]
            boxes = np.c_[rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]]
            yield Detections(boxes, np.full(len(rows), 0.9), np.zeros(len(rows), np.int64), self.names,
                             image_id=f"f{f}", image=np.zeros((4, 4, 3), np.uint8))


def test_track_frames_keeps_one_id_per_object(sequence):
    _, folder = sequence
    gt = read_mot(folder / "gt.txt")
    frames = list(track_frames(GroundTruthDetector(gt), "unused", frame_rate=30))
    assert [f.frame for f in frames] == list(range(1, 9))
    ids_per_object = {}
    for f in frames[1:]:
        for box, tid in zip(f.boxes, f.track_ids):
            rows = gt[gt[:, 0] == f.frame]
            k = int(np.argmin(np.abs(rows[:, 2:4] - box[:2]).sum(1)))
            ids_per_object.setdefault(int(rows[k, 1]), set()).add(int(tid))
    assert ids_per_object and all(len(ids) == 1 for ids in ids_per_object.values())


def test_class_filter_takes_ids_and_names():
    names = ["person", "car", "dog"]
    assert class_filter(["car", "2"], names).tolist() == [1, 2]
    assert class_filter(None, names) is None
    with pytest.raises(ConfigError, match="unknown class 'bus'"):
        class_filter(["bus"], names)
    with pytest.raises(ConfigError, match="outside 0..2"):
        class_filter([7], names)


def test_track_cli_writes_video_and_mot_files(sequence, reference_dir, tmp_path, capsys):
    seq, folder = sequence
    out = tmp_path / "out"
    code = main(["track", str(folder / "video.mp4"), "--model", "yolox-nano", "--weights",
                 str(reference_dir / "nano_reference.pth"), "--imgsz", "160", "--out", str(out),
                 # random weights score low: thresholds that let its boxes become tracks
                 "--conf", "0.02", "--low-thresh", "0.02", "--track-thresh", "0.05", "--new-track-thresh", "0.05"])
    assert code == 0
    err = capsys.readouterr()
    assert err.out.strip().splitlines()[-1].endswith(str(out)) and "8 frame(s) tracked" in err.err
    cap = cv2.VideoCapture(str(out / "video.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    rows = read_mot(out / "tracks.txt")           # frame,id,x,y,w,h,score,class,-1,-1 (1-based frames)
    assert rows.shape[1] == 10 and len(rows) > 0
    assert rows[:, 0].min() >= 1 and rows[:, 0].max() <= 8 and (rows[:, 8:] == -1).all()
    doc = json.loads((out / "tracks.json").read_text())
    assert [f["frame"] for f in doc["frames"]] == list(range(1, 9))
    assert sum(len(f["tracks"]) for f in doc["frames"]) == len(rows)
    assert doc["names"][0] == "person"
