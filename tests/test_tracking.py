"""Tracking building blocks: Kalman filter, matching, ByteTracker behaviour, MOT I/O, drawing.

Everything here is numpy-only and deterministic (fixed inputs or fixed seeds)."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from openyolox.errors import DataError
from openyolox.tracking.bytetrack import ByteTracker, Tracks
from openyolox.tracking.draw import TrackPainter
from openyolox.tracking.kalman import KalmanBoxFilter, xyah_to_xyxy, xyxy_to_xyah
from openyolox.tracking.matching import association_cost, box_iou, linear_assignment
from openyolox.tracking.mot_io import (MotWriter, check_unique_ids, read_mot, write_mot,
                                       write_tracks_json)

# ----------------------------------------------------------------------------- Kalman filter


def test_kalman_one_step_by_hand():
    """Initiate at (100, 50, a=0.5, h=40), predict one frame, update with cx = 104.

    h = 40, so the position std is h/20 = 2 and the velocity std h/160 = 0.25.
    initiate: var(cx) = (2 * 2)^2 = 16, var(vcx) = (10 * 0.25)^2 = 6.25
    predict:  var(cx) = 16 + 6.25 + 2^2 = 26.25, cov(cx, vcx) = 6.25, var(vcx) = 6.25 + 0.25^2 = 6.3125
    update:   S = 26.25 + 2^2 = 30.25 (measurement std h/20 = 2), K = (26.25, 6.25) / 30.25
              cx = 100 + 4 * 26.25 / 30.25 = 103.4711, vcx = 4 * 6.25 / 30.25 = 0.8264
              var(cx) = 26.25 - 26.25^2 / 30.25 = 3.4711
    cy, a and h see a zero innovation and stay put."""
    kf = KalmanBoxFilter()
    mean, cov = kf.initiate(np.array([[100.0, 50.0, 0.5, 40.0]]))
    assert cov[0, 0, 0] == pytest.approx(16.0) and cov[0, 4, 4] == pytest.approx(6.25)
    assert cov[0, 2, 2] == pytest.approx(1e-4) and cov[0, 6, 6] == pytest.approx(1e-10)
    mean, cov = kf.predict(mean, cov)
    assert mean[0, :4].tolist() == [100.0, 50.0, 0.5, 40.0]
    assert cov[0, 0, 0] == pytest.approx(26.25)
    assert cov[0, 0, 4] == pytest.approx(6.25)
    assert cov[0, 4, 4] == pytest.approx(6.3125)
    mean, cov = kf.update(mean, cov, np.array([[104.0, 50.0, 0.5, 40.0]]))
    assert mean[0, 0] == pytest.approx(100 + 4 * 26.25 / 30.25)
    assert mean[0, 4] == pytest.approx(4 * 6.25 / 30.25)
    assert mean[0, 1:4].tolist() == pytest.approx([50.0, 0.5, 40.0])
    assert cov[0, 0, 0] == pytest.approx(26.25 - 26.25 ** 2 / 30.25)
    assert np.allclose(cov[0], cov[0].T)


def test_kalman_batch_equals_one_by_one():
    rng = np.random.default_rng(0)
    z = np.column_stack((rng.uniform(0, 500, 6), rng.uniform(0, 500, 6), rng.uniform(0.3, 2, 6), rng.uniform(10, 200, 6)))
    kf = KalmanBoxFilter()
    mean, cov = kf.initiate(z)
    mean, cov = kf.predict(mean, cov)
    mean[:, 4:] = rng.normal(0, 2, (6, 4))
    mean, cov = kf.predict(mean, cov)
    meas = z + rng.normal(0, 1, z.shape)
    bm, bc = kf.update(mean, cov, meas)
    for i in range(6):
        m1, c1 = kf.update(mean[i:i + 1], cov[i:i + 1], meas[i:i + 1])
        assert np.allclose(m1[0], bm[i]) and np.allclose(c1[0], bc[i])


def test_box_format_round_trip():
    boxes = np.array([[10.0, 20.0, 50.0, 100.0], [0.0, 0.0, 3.0, 1.5]])
    xyah = xyxy_to_xyah(boxes)
    assert xyah[0].tolist() == [30.0, 60.0, 0.5, 80.0]
    assert np.allclose(xyah_to_xyxy(xyah), boxes)


# ----------------------------------------------------------------------------- matching


def test_box_iou_values_and_degenerate_boxes():
    a = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 5.0, 9.0]])    # second has no area
    b = np.array([[5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    iou = box_iou(a, b)
    assert iou[0].tolist() == pytest.approx([50 / 150, 1.0, 0.0])
    assert iou[1].tolist() == [0.0, 0.0, 0.0]
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 3)


def test_association_cost():
    tracks = np.array([[0.0, 0.0, 10.0, 10.0]])
    dets = np.array([[0.0, 0.0, 10.0, 8.0], [0.0, 0.0, 10.0, 4.0]])  # IoU 0.8 and 0.4
    assert association_cost(tracks, dets)[0].tolist() == pytest.approx([0.2, 0.6])
    fused = association_cost(tracks, dets, det_scores=np.array([0.5, 1.0]))
    assert fused[0].tolist() == pytest.approx([1 - 0.4, 1 - 0.4])
    gated = association_cost(tracks, dets, None, np.array([3]), np.array([3, 4]))
    assert gated[0, 0] == pytest.approx(0.2) and gated[0, 1] == np.inf


def _brute_force(cost: np.ndarray, thresh: float) -> float:
    """Minimum over every partial matching of (sum of pair costs + thresh / 2 per unmatched item),
    pairs restricted to cost <= thresh: the objective of lapjv with cost_limit=thresh."""
    n, m = cost.shape
    best = (n + m) * thresh / 2
    for k in range(1, min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                c = cost[list(rows), list(cols)]
                if np.all(c <= thresh):
                    best = min(best, c.sum() + (n + m - 2 * k) * thresh / 2)
    return best


@pytest.mark.parametrize("path", ["one solve", "components"])
@pytest.mark.parametrize("seed", range(40))
def test_linear_assignment_is_optimal(seed, path, monkeypatch):
    """Against brute force, both on the small-problem path and the component split."""
    import openyolox.tracking.matching as matching

    monkeypatch.setattr(matching, "SMALL_PROBLEM", 100 if path == "one solve" else 0)
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    cost = rng.uniform(0, 1, (n, m))
    cost[rng.random((n, m)) < 0.5] = np.inf  # sparse enough to split into components
    thresh = 0.8
    matches, ur, uc = linear_assignment(cost, thresh)
    got = cost[matches[:, 0], matches[:, 1]].sum() + (len(ur) + len(uc)) * thresh / 2
    assert got == pytest.approx(_brute_force(cost, thresh))
    assert np.all(cost[matches[:, 0], matches[:, 1]] <= thresh)
    assert sorted(matches[:, 0].tolist() + ur.tolist()) == list(range(n))
    assert sorted(matches[:, 1].tolist() + uc.tolist()) == list(range(m))


def test_linear_assignment_prefers_unmatched_to_a_poor_pair():
    """Rows A, B; columns x, y. A-x 0.1, A-y 0.7, B-x 0.7, B-y forbidden. Maximum cardinality
    would take A-y + B-x = 1.4; with unmatched slots at 0.4 each, A-x + B + y costs 0.9."""
    cost = np.array([[0.1, 0.7], [0.7, np.inf]])
    matches, ur, uc = linear_assignment(cost, 0.8)
    assert matches.tolist() == [[0, 0]] and ur.tolist() == [1] and uc.tolist() == [1]


def test_linear_assignment_large_sparse_problem_matches_dense_solve():
    """120 tracks: the component split gives the dense extended solve's cost."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(3)
    n = 120
    cost = np.full((n, n), np.inf)
    idx = np.arange(n)
    cost[idx, idx] = rng.uniform(0, 0.6, n)
    cost[idx, (idx + 1) % n] = np.where(rng.random(n) < 0.3, rng.uniform(0, 0.8, n), np.inf)
    thresh = 0.8
    matches, ur, uc = linear_assignment(cost, thresh)
    ext = np.full((2 * n, 2 * n), np.inf)
    ext[:n, :n] = np.where(cost <= thresh, cost, np.inf)
    ext[idx, n + idx] = thresh / 2
    ext[n + idx, idx] = thresh / 2
    ext[n:, n:] = 0
    r, c = linear_sum_assignment(ext)
    dense = ext[r, c].sum()
    assert cost[matches[:, 0], matches[:, 1]].sum() + (len(ur) + len(uc)) * thresh / 2 == pytest.approx(dense)


# ----------------------------------------------------------------------------- tracker


def _moving(frames: int, start=(10.0, 10.0), v=(5.0, 0.0), size=(40.0, 80.0)):
    for f in range(frames):
        x, y = start[0] + v[0] * f, start[1] + v[1] * f
        yield np.array([[x, y, x + size[0], y + size[1]]])


def test_constant_velocity_track_keeps_its_id_and_is_smoothed():
    tracker = ByteTracker()
    for f, box in enumerate(_moving(20)):
        out = tracker.update(box, [0.9])
        assert out.track_ids.tolist() == [1] and out.frame == f + 1
    assert np.allclose(out.boxes, box, atol=0.5)  # the filter has learned the velocity


def test_frame_one_tracks_are_confirmed_at_once_later_ones_need_two_frames():
    tracker = ByteTracker()
    assert tracker.update([[0, 0, 10, 10]], [0.9]).track_ids.tolist() == [1]
    out = tracker.update([[0, 0, 10, 10], [100, 100, 120, 130]], [0.9, 0.9])
    assert out.track_ids.tolist() == [1]              # the new one is not confirmed yet
    out = tracker.update([[0, 0, 10, 10], [100, 100, 120, 130]], [0.9, 0.9])
    assert out.track_ids.tolist() == [1, 2]
    assert out.detection_indices.tolist() == [0, 1]


def test_unconfirmed_track_missed_once_is_dropped():
    tracker = ByteTracker()
    tracker.update(np.zeros((0, 4)), [])
    tracker.update([[50, 50, 90, 130]], [0.9])       # born, unconfirmed
    tracker.update(np.zeros((0, 4)), [])             # missed: dropped, not lost
    assert tracker.num_tracks == 0


def test_new_track_needs_score_above_new_track_thresh():
    tracker = ByteTracker()  # track_thresh 0.5 -> new tracks need >= 0.6
    tracker.update(np.zeros((0, 4)), [])
    for _ in range(3):
        out = tracker.update([[0, 0, 10, 20]], [0.55])
    assert len(out) == 0 and tracker.num_tracks == 0


def test_low_score_detection_continues_a_tracked_track():
    """Second association: a score-0.3 box (below track_thresh 0.5, above low_thresh 0.1)
    keeps the track alive; the same box at 0.05 is ignored and the track is lost."""
    tracker = ByteTracker()
    boxes = list(_moving(8))
    for b in boxes[:5]:
        tracker.update(b, [0.9])
    out = tracker.update(boxes[5], [0.3])
    assert out.track_ids.tolist() == [1] and out.scores[0] == pytest.approx(0.3)
    out = tracker.update(boxes[6], [0.05])
    assert len(out) == 0
    out = tracker.update(boxes[7], [0.9])  # high score re-finds the lost track
    assert out.track_ids.tolist() == [1]


def test_lost_track_is_kept_for_the_buffer_then_dropped():
    """track_buffer 30 at 30 fps: a track may miss 30 frames and be found again (predicted
    along its velocity) in the next; after 31 empty frames it is gone and a new id starts.
    As in the official code, a frame first matches and then drops stale tracks.
    frame_rate 15 halves the buffer."""
    def gap_survives(gap, **kw):
        tracker = ByteTracker(**kw)
        boxes = list(_moving(10 + gap + 1, v=(1.0, 0.0)))
        for b in boxes[:10]:
            tracker.update(b, [0.9])
        for _ in range(gap):
            tracker.update(np.zeros((0, 4)), [])
        return tracker.update(boxes[10 + gap], [0.9]).track_ids.tolist() == [1]

    assert gap_survives(30)
    assert not gap_survives(31)
    assert gap_survives(15, frame_rate=15)
    assert not gap_survives(16, frame_rate=15)


def test_per_class_gating():
    """Same box, class changes: per_class=True starts a new track, per_class=False follows it
    and takes the new class."""
    for per_class, expected in ((True, []), (False, [1])):
        tracker = ByteTracker(per_class=per_class)
        tracker.update([[0, 0, 40, 80]], [0.9], [2])
        out = tracker.update([[1, 0, 41, 80]], [0.9], [5])
        assert out.track_ids.tolist() == expected
    assert out.classes.tolist() == [5]


def test_crossing_pair_keeps_ids():
    """Two boxes pass each other head-on with overlapping boxes; the velocities keep them apart."""
    tracker = ByteTracker()
    for f in range(40):
        a = [10 + 8 * f, 100, 60 + 8 * f, 150]
        b = [330 - 8 * f, 120, 380 - 8 * f, 170]
        out = tracker.update([a, b], [0.9, 0.9])
        assert dict(zip(out.detection_indices.tolist(), out.track_ids.tolist())) == {0: 1, 1: 2}


def test_invalid_rows_are_ignored_and_bad_shapes_rejected():
    tracker = ByteTracker()
    boxes = np.array([[0, 0, 10, 10], [np.nan, 0, 5, 5], [5, 5, 5, 9], [20, 20, 30, np.inf], [40, 40, 50, 50]])
    out = tracker.update(boxes, [0.9, 0.9, 0.9, 0.9, np.nan])
    assert out.detection_indices.tolist() == [0]
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        tracker.update(np.zeros((3, 5)), np.zeros(3))
    with pytest.raises(ValueError, match="scores"):
        tracker.update(np.zeros((3, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="classes"):
        tracker.update(np.zeros((3, 4)), np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="low_thresh"):
        ByteTracker(track_thresh=0.3, low_thresh=0.4)


def test_empty_frames_and_reset():
    tracker = ByteTracker()
    out = tracker.update([], [])
    assert isinstance(out, Tracks) and len(out) == 0 and out.boxes.shape == (0, 4)
    tracker.update([[0, 0, 10, 10]], [0.9])
    tracker.reset()
    assert tracker.frame == 0 and tracker.num_tracks == 0
    assert tracker.update([[50, 50, 60, 60]], [0.9]).track_ids.tolist() == [1]


def test_duplicate_lost_track_is_removed():
    """A lost track whose prediction sits on a tracked track (IoU > 0.85) is the same object
    twice: the younger one is dropped."""
    tracker = ByteTracker(per_class=False)
    tracker.update([[0, 0, 40, 80]], [0.9], [0])
    tracker.update([[0, 0, 40, 80]], [0.9], [0])
    # The object is now reported under a new box that does not match the old track (IoU < 0.2),
    # then the old track is lost and a new one is born at the new place...
    tracker.update([[200, 0, 240, 80]], [0.9], [0])
    tracker.update([[200, 0, 240, 80]], [0.9], [0])
    assert tracker.num_tracks == 2
    # ...and when the lost track's box and the new track's box coincide, one goes.
    tracker._mean[tracker._id == 1, :4] = tracker._mean[tracker._id == 2, :4]
    tracker.update([[200, 0, 240, 80]], [0.9], [0])
    assert tracker.num_tracks == 1


def test_tracker_is_deterministic():
    rng = np.random.default_rng(5)
    frames = [(rng.uniform(0, 500, (30, 2)), rng.uniform(0.05, 1, 30)) for _ in range(20)]

    def run():
        t, out = ByteTracker(), []
        for xy, s in frames:
            boxes = np.concatenate((xy, xy + 30), 1)
            r = t.update(boxes, s)
            out.append((r.track_ids.tolist(), r.boxes.round(6).tolist()))
        return out

    assert run() == run()


# ----------------------------------------------------------------------------- MOT I/O


def test_mot_round_trip_and_defaults(tmp_path):
    rows = np.array([[1, 3, 10.5, 20.25, 30, 40, 0.9, 2, -1, -1], [2, 3, 11, 21, 30, 40, 0.8, 2, -1, -1]])
    write_mot(tmp_path / "t.txt", rows)
    assert np.allclose(read_mot(tmp_path / "t.txt"), rows)
    (tmp_path / "short.txt").write_text("1,1,0,0,10,10\n\n2 1 1 1 10 10\n")
    got = read_mot(tmp_path / "short.txt")
    assert got.shape == (2, 10) and got[0, 6:].tolist() == [1, -1, -1, -1]
    (tmp_path / "empty.txt").write_text("")
    assert read_mot(tmp_path / "empty.txt").shape == (0, 10)


@pytest.mark.parametrize("text, message", [
    ("1,1,0,0,10\n", "expected 6 to 10"),
    ("1,1,0,0,10,10,1,1,1,1,1\n", "expected 6 to 10"),
    ("1,1,0,zero,10,10\n", "non-numeric"),
    ("1,1,0,nan,10,10\n", "non-finite"),
    ("0,1,0,0,10,10\n", "1-based"),
    ("1.5,1,0,0,10,10\n", "1-based"),
    ("1,1,0,0,-10,10\n", "width and height"),
])
def test_bad_mot_files_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text("1,1,0,0,10,10\n" + text)
    with pytest.raises(DataError, match=message) as err:
        read_mot(path)
    assert f"{path}:2" in str(err.value)


def test_duplicate_ids_in_a_frame_are_rejected():
    with pytest.raises(DataError, match="id 4 appears more than once in frame 2"):
        check_unique_ids(np.array([[1, 4, 0, 0, 1, 1], [2, 4, 0, 0, 1, 1], [2, 4, 5, 5, 1, 1]]), "tracks.txt")


def _tracks(frame, ids, boxes, classes=None):
    n = len(ids)
    return Tracks(boxes=np.asarray(boxes, float).reshape(-1, 4), track_ids=np.asarray(ids, np.int64),
                  scores=np.full(n, 0.75, np.float32), classes=np.asarray(classes or [0] * n, np.int64),
                  detection_indices=np.arange(n), frame=frame)


def test_mot_writer_and_json_writer(tmp_path):
    frames = [_tracks(1, [1, 2], [[0, 0, 10, 20], [5, 5, 15, 15]], [0, 1]), _tracks(2, [], []),
              _tracks(3, [2], [[6, 6, 16, 16]], [1])]
    with MotWriter(tmp_path / "tracks.txt") as out:
        for t in frames:
            out.write(t)
    lines = (tmp_path / "tracks.txt").read_text().splitlines()
    assert lines == ["1,1,0.00,0.00,10.00,20.00,0.7500,0,-1,-1", "1,2,5.00,5.00,10.00,10.00,0.7500,1,-1,-1",
                     "3,2,6.00,6.00,10.00,10.00,0.7500,1,-1,-1"]
    write_tracks_json(tmp_path / "tracks.json", frames, names=["cat", "dog"], meta={"fps": 30})
    doc = json.loads((tmp_path / "tracks.json").read_text())
    assert doc["names"] == ["cat", "dog"] and doc["meta"] == {"fps": 30}
    assert [f["frame"] for f in doc["frames"]] == [1, 2, 3] and doc["frames"][1]["tracks"] == []
    assert doc["frames"][0]["tracks"][1] == {"id": 2, "class": 1, "name": "dog", "score": 0.75, "box": [5, 5, 15, 15]}
    assert doc["tracks"]["2"] == {"class": 1, "name": "dog", "first_frame": 1, "last_frame": 3, "frames": 2}


def test_writers_leave_no_file_when_interrupted(tmp_path):
    with pytest.raises(RuntimeError):
        with MotWriter(tmp_path / "tracks.txt") as out:
            out.write(_tracks(1, [1], [[0, 0, 1, 1]]))
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- drawing


def test_painter_draws_trails_and_survives_any_box():
    image = np.full((120, 160, 3), 30, np.uint8)
    painter = TrackPainter(names=["cat"], trail=5)
    for f in range(8):
        out = painter.draw(image, _tracks(f + 1, [7], [[10 + 5 * f, 10, 40 + 5 * f, 50]]))
    assert out.shape == image.shape and (out != 30).any() and (image == 30).all()
    nasty = [[np.nan, 0, 10, 10], [-1e12, -1e12, 1e12, 1e12], [np.inf, 1, 2, 3], [1e308, 1e308, 1e308, 1e308],
             [50, 50, 40, 40], [-30, -30, -5, -5]]
    out = painter.draw(image, _tracks(9, [1, 2, 3, 4, 5, 6], nasty, [0, 99, 0, -3, 0, 0]))
    assert out.shape == image.shape


def test_painter_forgets_old_ids():
    painter = TrackPainter(trail=3)
    image = np.zeros((50, 50, 3), np.uint8)
    painter.draw(image, _tracks(1, [1], [[0, 0, 10, 10]]))
    for f in range(4):
        painter.draw(image, _tracks(f + 2, [2], [[0, 0, 10, 10]]))
    assert set(painter._history) == {2}
