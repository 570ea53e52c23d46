"""MOTChallenge text files and tracks.json: reading, checking and streaming writers.

A MOTChallenge file has one box per line, comma separated:

    frame, id, x, y, w, h, score, class, visibility|-1, -1
      ground truth:  score is the "consider" flag (0 = ignore the row), class and visibility
                     as annotated (MOT17 gt has these 9 columns);
      results:       score is the tracker's confidence; MOTChallenge leaves the last three
                     at -1, we write the class in column 8 (evaluators ignore it).

Frames are 1-based; (x, y) is the top-left corner, in pixels. We write boxes as they are,
with no +1 offset: ground truth and results made here use the same convention, and IoU does
not depend on a shift that both share.
"""
from __future__ import annotations

import json
import math
from contextlib import ExitStack
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence

import numpy as np

from openyolox.atomic import atomic_write
from openyolox.errors import DataError
from openyolox.typing import PathLike


MOT_COLUMNS = ("frame", "id", "x", "y", "w", "h", "score", "class", "visibility", "z")
# Columns 7-10 are optional in files found in the wild; these fill the missing ones.
_DEFAULTS = (1.0, -1.0, -1.0, -1.0)


def read_mot(path: PathLike) -> np.ndarray:
    """Read a MOTChallenge txt file -> (K, 10) float64 rows in MOT_COLUMNS order.

    Lines may have 6 to 10 fields separated by commas (or whitespace); missing trailing
    fields get score 1, class/visibility/z -1. Blank lines are skipped. Raises DataError naming
    the file and line for a wrong field count, a non-numeric or non-finite field, a frame < 1,
    or a box with negative width or height."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such MOTChallenge file")
    rows = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            fields = line.replace(",", " ").split()
            if not fields:
                continue
            if not 6 <= len(fields) <= 10:
                raise DataError(f"{path}:{lineno}: expected 6 to 10 comma-separated fields "
                                f"(frame,id,x,y,w,h[,score,class,visibility,z]), found {len(fields)}")
            try:
                values = [float(v) for v in fields]
            except ValueError:
                raise DataError(f"{path}:{lineno}: non-numeric field in {line.strip()!r}") from None
            if not all(math.isfinite(v) for v in values):
                raise DataError(f"{path}:{lineno}: non-finite number in {line.strip()!r}")
            if values[0] < 1 or values[0] != int(values[0]):
                raise DataError(f"{path}:{lineno}: frame must be an integer >= 1 (MOTChallenge frames "
                                f"are 1-based), found {fields[0]}")
            if values[1] != int(values[1]):
                raise DataError(f"{path}:{lineno}: id must be an integer, found {fields[1]}")
            if values[4] < 0 or values[5] < 0:
                raise DataError(f"{path}:{lineno}: box width and height must be >= 0, found {fields[4]}, {fields[5]}")
            rows.append(values + list(_DEFAULTS[len(values) - 6:]))
    return np.array(rows, dtype=np.float64).reshape(-1, 10)


def check_unique_ids(rows: np.ndarray, source: str) -> None:
    """Raise DataError if an id appears twice in one frame. rows: (K, >=2) MOT rows."""
    if rows.shape[0] == 0:
        return
    key = rows[:, :2].astype(np.int64)
    uniq, counts = np.unique(key, axis=0, return_counts=True)
    if (counts > 1).any():
        frame, tid = uniq[np.argmax(counts > 1)]
        raise DataError(f"{source}: id {tid} appears more than once in frame {frame}; "
                        "each id may have one box per frame")


def write_mot(path: PathLike, rows: np.ndarray) -> Path:
    """Write MOT rows (K, 6..10) in MOT_COLUMNS order to a MOTChallenge txt file, atomically.

    frame, id and class are written as integers, the box to 0.01 px, the rest as short floats."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or not 6 <= rows.shape[1] <= 10:
        raise ValueError(f"MOT rows must be (K, 6..10), got shape {rows.shape}")
    with atomic_write(path, "w") as fh:
        for r in rows:
            fields = [str(int(r[0])), str(int(r[1]))] + [f"{v:.2f}" for v in r[2:6]]
            for col in range(6, rows.shape[1]):
                fields.append(str(int(r[col])) if col == 7 else f"{round(float(r[col]), 4):g}")
            fh.write(",".join(fields) + "\n")
    return Path(path)


def format_mot_rows(frame: int, track_ids, boxes, scores, classes=None) -> str:
    """MOTChallenge lines for one frame. boxes: (M, 4) xyxy pixels; ids, scores, classes: (M,).

    Rows read ``frame,id,x,y,w,h,score,class,-1,-1``; class is -1 when not given."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = boxes.shape[0]
    classes = np.full(n, -1) if classes is None else np.asarray(classes).reshape(-1)
    lines = []
    for tid, (x1, y1, x2, y2), s, c in zip(np.asarray(track_ids).reshape(-1), boxes,
                                         np.asarray(scores).reshape(-1), classes):
        lines.append(f"{int(frame)},{int(tid)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
                     f"{float(s):.4f},{int(c)},-1,-1\n")
    return "".join(lines)


class MotWriter:
    """Stream a tracks.txt frame by frame; the file appears complete, or not at all.

        with MotWriter("tracks.txt") as out:
            for tracks in ...:
                out.write(tracks)        # an openyolox.tracking.Tracks (or anything with
                                         # frame, track_ids, boxes, scores, classes)
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self._stack: Optional[ExitStack] = None
        self._fh = None

    def __enter__(self) -> "MotWriter":
        self._stack = ExitStack()
        self._fh = self._stack.enter_context(atomic_write(self.path, "w"))
        return self

    def write(self, tracks) -> None:
        self._fh.write(format_mot_rows(tracks.frame, tracks.track_ids, tracks.boxes, tracks.scores,
                                       tracks.classes))

    def __exit__(self, *exc) -> bool:
        return self._stack.__exit__(*exc)


class TrackJsonWriter:
    """Stream tracks.json frame by frame (nothing is held in memory but a per-id summary).

    The file reads::

        {"format": "openyolox-tracks", "version": 1, "names": [...], "meta": {...},
         "frames": [{"frame": 1, "tracks": [{"id": 3, "class": 0, "name": "person",
                                              "score": 0.91, "box": [x1, y1, x2, y2]}, ...]}, ...],
         "tracks": {"3": {"class": 0, "name": "person", "first_frame": 1, "last_frame": 40,
                          "frames": 38}, ...}}

    Boxes are xyxy pixels; every frame written appears, with an empty list if it had no tracks."""

    def __init__(self, path: PathLike, names: Optional[Sequence[str]] = None, meta: Optional[dict] = None):
        self.path = Path(path)
        self.names = list(names) if names is not None else None
        self.meta = dict(meta or {})
        self._summary: Dict[int, dict] = {}
        self._stack: Optional[ExitStack] = None
        self._fh = None
        self._first = True

    def __enter__(self) -> "TrackJsonWriter":
        self._stack = ExitStack()
        self._fh = self._stack.enter_context(atomic_write(self.path, "w"))
        head = {"format": "openyolox-tracks", "version": 1, "names": self.names, "meta": self.meta}
        self._fh.write(json.dumps(head)[:-1] + ', "frames": [\n')
        return self

    def _name(self, cls: int) -> Optional[str]:
        if self.names is not None and 0 <= cls < len(self.names):
            return self.names[cls]
        return None

    def write(self, tracks) -> None:
        items = []
        for tid, box, s, c in zip(tracks.track_ids, np.asarray(tracks.boxes, dtype=np.float64).reshape(-1, 4),
                                  tracks.scores, tracks.classes):
            tid, c = int(tid), int(c)
            items.append({"id": tid, "class": c, "name": self._name(c), "score": round(float(s), 4),
                          "box": [_json_number(v) for v in box]})
            info = self._summary.setdefault(tid, {"class": c, "name": self._name(c), "first_frame": int(tracks.frame),
                                                  "last_frame": 0, "frames": 0})
            info["last_frame"] = int(tracks.frame)
            info["frames"] += 1
        sep = "" if self._first else ",\n"
        self._first = False
        self._fh.write(sep + json.dumps({"frame": int(tracks.frame), "tracks": items}))

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            summary = {str(k): v for k, v in sorted(self._summary.items())}
            self._fh.write('\n], "tracks": ' + json.dumps(summary) + "}\n")
        return self._stack.__exit__(exc_type, exc, tb)


def write_tracks_json(path: PathLike, frames: Iterable, names: Optional[Sequence[str]] = None,
                      meta: Optional[dict] = None) -> Path:
    """Write tracks.json from an iterable of Tracks (one per frame)."""
    with TrackJsonWriter(path, names, meta) as out:
        for tracks in frames:
            out.write(tracks)
    return Path(path)


def _json_number(v: float):
    """Round to 0.01 px; NaN/inf (never from the tracker, but possible from elsewhere) -> null,
    which json can carry, where a bare NaN would make the file unreadable to strict parsers."""
    return round(float(v), 2) if math.isfinite(v) else None
