"""MOT metrics through TrackEval: a case worked by hand, the val-track command, and a cross-check
against an independent implementation (the `trackers` package's evaluator)."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

pytest.importorskip("trackeval")

from openyolox.cli import val_track  # noqa: E402
from openyolox.errors import ConfigError, DataError  # noqa: E402
from openyolox.evaluation.mot import evaluate_mot, format_mot_summary  # noqa: E402
from openyolox.tracking.mot_io import write_mot  # noqa: E402

# Two objects, three frames. Boxes are x, y, w, h.
#   A (gt 1): (0, 0, 10, 10) in every frame.      B (gt 2): (50, 0, 10, 10) in every frame.
GT = np.array([
    [1, 1, 0, 0, 10, 10], [1, 2, 50, 0, 10, 10],
    [2, 1, 0, 0, 10, 10], [2, 2, 50, 0, 10, 10],
    [3, 1, 0, 0, 10, 10], [3, 2, 50, 0, 10, 10],
], dtype=float)
# Predictions:
#   frame 1: track 10 on A, track 20 on B (both IoU 1)
#   frame 2: track 10 on A shifted by 2 px (IoU 80 / 120 = 2/3, still a match at 0.5);
#            B missed; track 30 far from everything (a false positive)
#   frame 3: track 10 on A; track 30 on B (B was last matched to 20: an ID switch)
PRED = np.array([
    [1, 10, 0, 0, 10, 10], [1, 20, 50, 0, 10, 10],
    [2, 10, 2, 0, 10, 10], [2, 30, 200, 200, 10, 10],
    [3, 10, 0, 0, 10, 10], [3, 30, 50, 0, 10, 10],
], dtype=float)
# By hand:
#   CLEAR: GT boxes 6; TP = 2 + 1 + 2 = 5; FN = 1 (B, frame 2); FP = 1 (track 30, frame 2);
#          IDSW = 1 (B: 20 -> 30).  MOTA = 1 - (FN + FP + IDSW) / GT = 1 - 3/6 = 0.5
#          MOTP = mean IoU of the 5 TPs = (4 + 2/3) / 5 = 0.9333
#   Identity: potential matches A-10: 3 frames, B-20: 1, B-30: 1 (frame 3 only).
#          Best one-to-one: A-10 (3) + B-20 or B-30 (1): IDTP = 4, and 6 boxes on each side,
#          so IDFN = IDFP = 2 and IDF1 = 2 * 4 / (6 + 6) = 2/3; IDP = IDR = 4/6.
#   precision = 5/6, recall = 5/6.


def test_hand_worked_case():
    m = evaluate_mot(GT, PRED)
    assert (m["FN"], m["FP"], m["IDSW"]) == (1, 1, 1)
    assert m["MOTA"] == pytest.approx(0.5)
    assert m["MOTP"] == pytest.approx((4 + 2 / 3) / 5)
    assert m["IDF1"] == pytest.approx(2 / 3)
    assert m["IDP"] == pytest.approx(4 / 6) and m["IDR"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(5 / 6) and m["recall"] == pytest.approx(5 / 6)
    assert (m["gt_tracks"], m["pred_tracks"], m["frames"], m["gt_boxes"], m["pred_boxes"]) == (2, 3, 3, 6, 6)
    assert 0 < m["HOTA"] < 1


def test_perfect_and_empty_predictions():
    m = evaluate_mot(GT, GT)
    assert (m["MOTA"], m["IDF1"], m["HOTA"], m["IDSW"], m["FP"], m["FN"]) == (1.0, 1.0, pytest.approx(1.0), 0, 0, 0)
    m = evaluate_mot(GT, np.zeros((0, 6)))
    assert (m["MOTA"], m["IDF1"], m["FN"], m["FP"]) == (0.0, 0.0, 6, 0)


def test_ignored_ground_truth_rows_and_iou_threshold():
    gt = np.c_[GT, np.ones(6)]
    gt[1, 6] = 0  # B in frame 1 is flagged "do not consider"
    m = evaluate_mot(gt, GT)
    assert m["gt_boxes"] == 5 and m["FP"] == 1  # the prediction on it now counts as false
    # at IoU 0.7 the shifted box of frame 2 (IoU 2/3) no longer matches
    assert evaluate_mot(GT, PRED, iou_threshold=0.7)["FN"] == 2


def test_several_sequences_are_combined():
    m = evaluate_mot([GT, GT], [PRED, GT])
    assert (m["FN"], m["FP"], m["IDSW"], m["gt_boxes"], m["frames"]) == (1, 1, 1, 12, 6)
    assert m["MOTA"] == pytest.approx(1 - 3 / 12)


def test_bad_inputs_are_named():
    with pytest.raises(DataError, match="appears more than once"):
        evaluate_mot(GT, np.r_[PRED, PRED[:1]])
    with pytest.raises(DataError, match="1-based"):
        evaluate_mot(GT, np.array([[0, 1, 0, 0, 1, 1]]))
    with pytest.raises(ValueError, match="as many"):
        evaluate_mot([GT], [PRED, PRED])


def _val_track(argv):
    parser = argparse.ArgumentParser()
    val_track.add_parser(parser.add_subparsers(dest="command"))
    return val_track.run(parser.parse_args(["val-track"] + argv))


def test_val_track_command(tmp_path, capsys):
    write_mot(tmp_path / "gt.txt", np.c_[GT, np.ones(6), np.ones(6), np.ones(6)])
    write_mot(tmp_path / "tracks.txt", np.c_[PRED, np.full((6, 4), -1.0)])
    assert _val_track(["--gt", str(tmp_path / "gt.txt"), "--pred", str(tmp_path / "tracks.txt"),
                       "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "MOTA 50.0   IDF1 66.7   HOTA {:.1f}   IDSW 1   FP 1   FN 1".format(
        100 * json.loads((tmp_path / "m.json").read_text())["HOTA"])
    assert json.loads((tmp_path / "m.json").read_text())["IDSW"] == 1
    # two pairs: one line each, then the combined figures
    assert _val_track(["--gt", str(tmp_path / "gt.txt"), str(tmp_path / "gt.txt"),
                       "--pred", str(tmp_path / "tracks.txt"), str(tmp_path / "gt.txt")]) == 0
    assert "all sequences:" in capsys.readouterr().out


def test_val_track_errors(tmp_path):
    (tmp_path / "gt.txt").write_text("1,1,0,0,10,10\n")
    (tmp_path / "bad.txt").write_text("1,1,0,0,10\n")
    with pytest.raises(DataError, match=r"bad\.txt:1: expected 6 to 10"):
        _val_track(["--gt", str(tmp_path / "gt.txt"), "--pred", str(tmp_path / "bad.txt")])
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        _val_track(["--gt", str(tmp_path / "gt.txt"), "--pred", str(tmp_path / "missing.txt")])
    with pytest.raises(ConfigError, match="pairs"):
        _val_track(["--gt", str(tmp_path / "gt.txt"), "--pred", str(tmp_path / "gt.txt"), str(tmp_path / "gt.txt")])


def test_val_track_through_the_cli_entry_point(tmp_path, capsys, monkeypatch):
    """As users run it: registered as a sub-command, errors printed as one line, exit 1."""
    import openyolox.cli as cli

    monkeypatch.setitem(cli.COMMANDS, "val-track", "val_track")
    (tmp_path / "gt.txt").write_text("1,1,0,0,10,10\n")
    (tmp_path / "bad.txt").write_text("1,1,zero,0,10,10\n")
    assert cli.main(["val-track", "--gt", str(tmp_path / "gt.txt"), "--pred", str(tmp_path / "gt.txt")]) == 0
    assert cli.main(["val-track", "--gt", str(tmp_path / "gt.txt"), "--pred", str(tmp_path / "bad.txt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-numeric" in err[0]


def test_summary_format():
    text = format_mot_summary(evaluate_mot(GT, PRED))
    assert text.splitlines()[1].startswith("MOTP 93.3")


def test_agrees_with_an_independent_evaluator(tmp_path):
    """The `trackers` package reimplements the TrackEval metrics; on a tracked synthetic
    sequence (hundreds of boxes, switches, misses) both must give the same figures."""
    te = pytest.importorskip("trackers.eval")
    from openyolox.tracking.bytetrack import ByteTracker
    from openyolox.tracking.synthetic import make_sequence, simulate_detections

    seq = make_sequence("busy", seed=0, num_frames=120)
    # the official code's settings: they leave switches and misses here to count
    tracker, rows = ByteTracker(revive_with_low=False, second_match_thresh=0.5, report_boxes="kalman"), []
    for d in simulate_detections(seq, seed=0):
        t = tracker.update(d.boxes, d.scores, d.classes)
        rows += [[t.frame, i, b[0], b[1], b[2] - b[0], b[3] - b[1], s, -1, -1, -1]
                 for i, b, s in zip(t.track_ids, t.boxes, t.scores)]
    # 7 columns, no class: that evaluator scores MOT17's pedestrian class (1) only and reads a
    # missing class column as 1; ours is class-agnostic
    write_mot(tmp_path / "gt.txt", seq.gt_rows()[:, :7])
    write_mot(tmp_path / "pred.txt", np.array(rows))
    ours = evaluate_mot(tmp_path / "gt.txt", tmp_path / "pred.txt")
    theirs = te.evaluate_mot_sequence(tmp_path / "gt.txt", tmp_path / "pred.txt", metrics=["CLEAR", "HOTA", "Identity"])
    assert ours["IDSW"] > 0 and ours["FN"] > 0  # a case with something to count
    assert ours["MOTA"] == pytest.approx(theirs.CLEAR.MOTA, abs=1e-9)
    assert (ours["IDSW"], ours["FP"], ours["FN"]) == (theirs.CLEAR.IDSW, theirs.CLEAR.CLR_FP, theirs.CLEAR.CLR_FN)
    assert ours["IDF1"] == pytest.approx(theirs.Identity.IDF1, abs=1e-9)
    assert ours["HOTA"] == pytest.approx(theirs.HOTA.HOTA, abs=1e-6)
