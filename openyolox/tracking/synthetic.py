"""Synthetic tracking sequences with exact ground truth, and noisy detections made from it.

Textured shapes (the six classes of the built-in detection set, so a yolox model trained on
``--data builtin`` can run on these videos end to end) move over a textured background under a
shaking camera: at constant velocity, turning, speeding up and slowing down; they cross, pass
behind static pillars (fully hidden for a known number of frames), enter and leave the frame.

Everything is decided by the seed: the same scene and seed give the same ground truth, the
same detections and (with the same OpenCV build) the same images.

Three scenes (``make_sequence(name, seed)``):
  crossing   pairs of same-class objects whose boxes overlap while they pass each other
             (head-on, X-shaped, overtaking); every object stays at least ~60% visible;
  occlusion  two objects pass behind pillars, each fully hidden for exactly 10 frames, and
             one that is never hidden;
  busy       ~12 objects at a time, entering and leaving at the borders, a third of them
             turning or changing speed, three pillars, camera jitter.

Ground truth follows MOTChallenge: the box is the object's full extent (hidden parts
included), clipped to the image, written for every frame where some of the object is visible;
``visibility`` is the visible fraction of its area. ``simulate_detections`` turns it into what a
detector would report, with the noise of ``DetectionNoise``: by default the full-extent box, as
a detector trained on full-extent labels predicts (the built-in detection set and MOTChallenge
are labelled that way), or with ``amodal=False`` the box of the visible pixels only.

``write_sequence`` lays a sequence out as::

    out/frames/000001.jpg ...   out/video.mp4 (mp4v)   out/gt.txt   out/seqinfo.ini   [out/det.txt]
"""
from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from openyolox.data.formats.synthetic import CLASS_NAMES
from openyolox.errors import DataError
from openyolox.typing import PathLike
from openyolox.tracking.mot_io import write_mot

SCENES: Dict[str, Callable] = {}


# ----------------------------------------------------------------------------- scene description


@dataclass
class MovingObject:
    """One object: its shape, look and where its centre is in every frame of its life.

    centres: (F, 2) scene pixels (the camera shake is added when rendering); NaN where the
    object does not exist. polygons: local outlines centred at 0, the second one a hole."""

    track_id: int
    cls: int
    polygons: List[np.ndarray]
    centres: np.ndarray
    depth: float
    colour: Tuple[float, float, float]
    stripe: Tuple[float, float, float]  # angle (rad), period (px), amplitude (grey levels)


@dataclass
class SyntheticSequence:
    """A rendered-on-demand sequence and its ground truth.

    annotations: (K, 12) float64 rows, one per object per frame where it is visible:
    frame (1-based), id, class, full box xyxy (4, clipped to the image), visible box xyxy (4),
    visibility in (0, 1]."""

    name: str
    width: int
    height: int
    fps: float
    num_frames: int
    objects: List[MovingObject]
    pillars: np.ndarray          # (P, 4) xyxy scene pixels, drawn in front of every object
    shake: np.ndarray            # (F, 2) camera offset per frame, pixels
    seed: int
    annotations: np.ndarray = field(default_factory=lambda: np.zeros((0, 12)))
    class_names: Tuple[str, ...] = CLASS_NAMES
    _backdrop: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def gt_rows(self) -> np.ndarray:
        """MOTChallenge ground truth (K, 9): frame, id, x, y, w, h, 1, class, visibility."""
        a = self.annotations
        return np.stack((a[:, 0], a[:, 1], a[:, 3], a[:, 4], a[:, 5] - a[:, 3], a[:, 6] - a[:, 4],
                         np.ones(len(a)), a[:, 2], a[:, 11]), axis=1)

    def frame_annotations(self, frame: int) -> np.ndarray:
        """The annotation rows (k, 12) of one 1-based frame."""
        return self.annotations[self.annotations[:, 0] == frame]


# ----------------------------------------------------------------------------- scenes


def _scene(name: str):
    def register(fn):
        SCENES[name] = fn
        return fn
    return register


def _rect(w: float, h: float) -> List[np.ndarray]:
    return [np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])]


def _shape(rng: np.random.Generator, cls: int, size: float) -> List[np.ndarray]:
    """Outline of a class-``cls`` shape about ``size`` px across, randomly turned."""
    r = size / 2
    name = CLASS_NAMES[cls]
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    if name in ("circle", "ring"):
        outer = np.stack((r * np.cos(t), r * rng.uniform(0.8, 1.0) * np.sin(t)), 1)
        return [outer, outer * 0.55] if name == "ring" else [outer]
    if name == "rectangle":
        polys = _rect(size, size * rng.uniform(0.5, 1.0))
    elif name == "triangle":
        a = np.deg2rad([90.0, 210.0, 330.0])
        polys = [np.stack((r * np.cos(a), r * np.sin(a)), 1)]
    elif name == "star":
        a = np.linspace(0, 2 * np.pi, 10, endpoint=False) - np.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        polys = [np.stack((rad * np.cos(a), rad * np.sin(a)), 1)]
    else:  # cross
        s, L = r * 0.22, r
        polys = [np.array([[-s, -L], [s, -L], [s, -s], [L, -s], [L, s], [s, s], [s, L], [-s, L],
                           [-s, s], [-L, s], [-L, -s], [-s, -s]])]
    th = rng.uniform(-0.4, 0.4)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    return [p @ rot.T for p in polys]


def _look(rng: np.random.Generator) -> Tuple[Tuple[float, float, float], Tuple[float, float, float]]:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(140, 256), rng.integers(120, 256)]]])
    colour = tuple(float(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])
    stripe = (float(rng.uniform(0, np.pi)), float(rng.uniform(6, 16)), float(rng.uniform(15, 35)))
    return colour, stripe


def _straight(start, velocity, frames: int, first: int = 0) -> np.ndarray:
    """(frames, 2) centres moving at constant velocity from ``start`` at frame index ``first``."""
    t = np.arange(frames, dtype=np.float64)[:, None] - first
    c = np.asarray(start, np.float64)[None] + t * np.asarray(velocity, np.float64)[None]
    c[: max(first, 0)] = np.nan
    return c


def _make_object(rng, track_id, cls, polygons, centres, depth) -> MovingObject:
    colour, stripe = _look(rng)
    return MovingObject(track_id, cls, polygons, centres, depth, colour, stripe)


@_scene("crossing")
def crossing_scene(seed: int = 0, num_frames: int = 90) -> SyntheticSequence:
    """Three same-class pairs pass each other with overlapping boxes, never hidden, in three
    bands of a still 640x480 view: head-on (boxes overlap by 40% of their height), X-shaped
    (discs 30 px apart when their paths cross) and an overtaking (40% overlap again). The
    object behind stays at least ~60% visible, so a detector keeps seeing both."""
    rng = np.random.default_rng([seed, 1])
    w, h = 640, 480
    disc = [np.stack((25 * np.cos(t), 25 * np.sin(t)), 1)
            for t in (np.linspace(0, 2 * np.pi, 40, endpoint=False),)]
    objs = [
        _make_object(rng, 1, 1, _rect(50, 50), _straight((40, 70), (6.5, 0), num_frames), 1.0),
        _make_object(rng, 2, 1, _rect(50, 50), _straight((600, 100), (-6.5, 0), num_frames), 0.0),
        _make_object(rng, 3, 0, disc, _straight((60, 160), (5, 2.5), num_frames), 1.0),
        _make_object(rng, 4, 0, disc, _straight((90, 320), (5, -2.5), num_frames), 0.0),
        _make_object(rng, 5, 1, _rect(46, 46), _straight((150, 400), (2.0, 0), num_frames), 0.0),
        _make_object(rng, 6, 1, _rect(46, 46), _straight((20, 428), (6.0, 0), num_frames), 1.0),
    ]
    return _finish_scene("crossing", w, h, 30.0, num_frames, objs, np.zeros((0, 4)), 0.0, seed)


@_scene("occlusion")
def occlusion_scene(seed: int = 0, num_frames: int = 100) -> SyntheticSequence:
    """Two objects each fully hidden by a pillar for exactly 10 frames, one never hidden.

    A w-wide object moving v px/frame is fully behind a pillar about w + 9 v wide for 10
    frames. OpenCV fills a polygon's boundary pixels too (a 40 px square at x 300..340 covers
    pixels 300..340), so the pillars below are worked out pixel by pixel. No camera shake here,
    so the count is exact (the busy scene has shake)."""
    rng = np.random.default_rng([seed, 2])
    w, h = 640, 360
    size, va, vb = 40.0, 4.0, 3.0
    # A: centre x = 40 + 4 t covers pixels cx-20 .. cx+20; pillar pixels 278..357 hide it for
    #    cx in [298, 337]: t = 65..74.
    # B: centre x = 600 - 3 t; pillar pixels 329..398 hide it for cx in [349, 378]: t = 74..83.
    pillars = np.array([[278.0, 60.0, 358.0, 180.0], [329.0, 200.0, 399.0, 340.0]])
    obj = [_make_object(rng, 1, 1, _rect(size, size), _straight((40.0, 110.0), (va, 0), num_frames), 0.0),
           _make_object(rng, 2, 1, _rect(size, size), _straight((600.0, 270.0), (-vb, 0), num_frames), 0.0),
           _make_object(rng, 3, 0, _shape(rng, 0, 40), _straight((100.0, 28.0), (2.5, 0), num_frames), 0.0)]
    return _finish_scene("occlusion", w, h, 30.0, num_frames, obj, pillars, 0.0, seed)


@_scene("busy")
def busy_scene(seed: int = 0, num_frames: int = 300, target_objects: int = 12) -> SyntheticSequence:
    """Objects enter at the borders, cross the view and leave; some turn or change speed.

    The view starts with ``target_objects`` objects; afterwards, while fewer are in view, a
    new one enters with probability 0.25 per frame. Three pillars hide objects passing behind
    them; the camera shakes by 2 px (standard deviation)."""
    rng = np.random.default_rng([seed, 3])
    w, h = 640, 480
    pillars = np.array([[150.0, 0.0, 190.0, 200.0], [420.0, 260.0, 470.0, 480.0], [300.0, 120.0, 330.0, 330.0]])
    objs: List[MovingObject] = []
    lives: List[Tuple[int, int]] = []  # first and last frame index of each object
    for f in range(num_frames):
        in_view = sum(1 for a, b in lives if a <= f <= b)
        if f == 0:
            count = target_objects
        else:
            count = int(in_view < target_objects and rng.random() < 0.25)
        for _ in range(count):
            cls = int(rng.integers(len(CLASS_NAMES)))
            size = float(rng.uniform(30, 80))
            centres = _wander(rng, w, h, size, num_frames, f, inside=f == 0)
            exists = np.flatnonzero(~np.isnan(centres[:, 0]))
            objs.append(_make_object(rng, len(objs) + 1, cls, _shape(rng, cls, size), centres,
                                     float(rng.uniform())))
            lives.append((int(exists[0]), int(exists[-1])))
    return _finish_scene("busy", w, h, 30.0, num_frames, objs, pillars, 2.0, seed)


def _wander(rng, w, h, size, num_frames, first, inside) -> np.ndarray:
    """Centres of an object born at frame index ``first`` (inside the view, or just outside a
    border heading in) that moves until it has left the view. A third keep their velocity, a
    third turn steadily, a third speed up and slow down (a sine on the speed)."""
    if inside:
        pos = np.array([rng.uniform(size, w - size), rng.uniform(size, h - size)])
        heading = rng.uniform(0, 2 * np.pi)
    else:
        side = int(rng.integers(4))
        pos = [np.array([-size / 2, rng.uniform(0, h)]), np.array([w + size / 2, rng.uniform(0, h)]),
               np.array([rng.uniform(0, w), -size / 2]), np.array([rng.uniform(0, w), h + size / 2])][side]
        heading = [0.0, np.pi, np.pi / 2, -np.pi / 2][side] + rng.uniform(-0.6, 0.6)
    speed = rng.uniform(1.5, 6.0)
    kind = int(rng.integers(3))
    turn = rng.choice([-1, 1]) * rng.uniform(0.01, 0.035) if kind == 1 else 0.0
    period, depth = rng.uniform(40, 120), rng.uniform(0.3, 0.6) if kind == 2 else 0.0
    centres = np.full((num_frames, 2), np.nan)
    margin = size  # gone once the whole object is well outside
    for f in range(first, num_frames):
        centres[f] = pos
        t = f - first
        v = speed * (1 + (depth * np.sin(2 * np.pi * t / period) if kind == 2 else 0.0))
        heading += turn
        pos = pos + v * np.array([np.cos(heading), np.sin(heading)])
        if t > 5 and not (-margin < pos[0] < w + margin and -margin < pos[1] < h + margin):
            break
    return centres


def make_sequence(scene: str, seed: int = 0, **kwargs) -> SyntheticSequence:
    """Build scene ``scene`` (crossing, occlusion, busy) with its ground truth."""
    if scene not in SCENES:
        raise ValueError(f"unknown synthetic scene {scene!r}; choose from {', '.join(SCENES)}")
    return SCENES[scene](seed=seed, **kwargs)


# ----------------------------------------------------------------------------- simulation


def _finish_scene(name, w, h, fps, num_frames, objects, pillars, shake_px, seed) -> SyntheticSequence:
    rng = np.random.default_rng([seed, 99])
    # An AR(1) shake: consecutive offsets are correlated (0.7) as with a hand-held camera;
    # the stationary standard deviation is shake_px.
    shake = np.zeros((num_frames, 2))
    noise = rng.normal(0, shake_px * np.sqrt(1 - 0.7 ** 2), (num_frames, 2))
    for f in range(1, num_frames):
        shake[f] = 0.7 * shake[f - 1] + noise[f]
    seq = SyntheticSequence(name, w, h, fps, num_frames, objects, np.asarray(pillars, np.float64).reshape(-1, 4),
                            shake, seed)
    rows = []
    for f in range(num_frames):
        rows.extend([f + 1] + r for r in _annotate(seq, f))
    seq.annotations = np.array(rows, np.float64).reshape(-1, 12)
    return seq


def _annotate(seq: SyntheticSequence, f: int) -> List[List[float]]:
    """Annotation rows (without the frame column) of frame index f.

    An owner map (h, w) holds the index into seq.objects of the object each pixel shows (-1
    background, -2 pillar); objects are painted far to near, pillars last, so counting an
    object's pixels in it gives what is visible."""
    owner = np.full((seq.height, seq.width), -1, np.int32)
    present = [k for k, o in enumerate(seq.objects) if not np.isnan(o.centres[f, 0])]
    present.sort(key=lambda k: seq.objects[k].depth)
    full_boxes, areas, masks = {}, {}, {}
    for k in present:
        placed = _rasterise(seq, k, f)
        if placed is None:
            continue
        (x0, y0, mask), box, area = placed
        owner[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]][mask] = k
        full_boxes[k], areas[k], masks[k] = box, area, (x0, y0, mask)
    for x1, y1, x2, y2 in _pillar_pixels(seq, f):
        owner[y1:y2, x1:x2] = -2
    info = []
    for k in present:
        if k not in masks:
            continue
        x0, y0, mask = masks[k]
        seen = (owner[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]] == k) & mask
        n = int(seen.sum())
        if n == 0:
            continue
        ys, xs = np.nonzero(seen)
        visible_box = [x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1.0, y0 + ys.max() + 1.0]
        o = seq.objects[k]
        info.append([float(o.track_id), float(o.cls)] + list(full_boxes[k]) + visible_box
                    + [min(1.0, n / areas[k])])
    return info


def _pillar_pixels(seq: SyntheticSequence, f: int) -> List[Tuple[int, int, int, int]]:
    """Pillars of frame index f as pixel ranges (x1, y1, x2, y2) inside the image, ends exclusive."""
    boxes = np.round(seq.pillars + np.tile(seq.shake[f], 2)).astype(int)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, seq.width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, seq.height)
    return [tuple(b) for b in boxes if b[2] > b[0] and b[3] > b[1]]


def _rasterise(seq: SyntheticSequence, k: int, f: int):
    """Object k in frame f -> ((x0, y0, mask inside the image), full box clipped, full area) or
    None when nothing of it falls in the image."""
    o = seq.objects[k]
    centre = o.centres[f] + seq.shake[f]
    polys = [p + centre for p in o.polygons]
    lo, hi = polys[0].min(0), polys[0].max(0)
    x0, y0 = max(int(np.floor(lo[0])), 0), max(int(np.floor(lo[1])), 0)
    x1, y1 = min(int(np.ceil(hi[0])) + 1, seq.width), min(int(np.ceil(hi[1])) + 1, seq.height)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for j, p in enumerate(polys):  # 4 fractional bits: sub-pixel edges
        cv2.fillPoly(mask, [np.round((p - [x0, y0]) * 16).astype(np.int32)], 0 if j else 1, cv2.LINE_8, shift=4)
    area = abs(cv2.contourArea(polys[0].astype(np.float32)))
    if len(polys) > 1:
        area -= abs(cv2.contourArea(polys[1].astype(np.float32)))
    box = [float(np.clip(lo[0], 0, seq.width)), float(np.clip(lo[1], 0, seq.height)),
           float(np.clip(hi[0], 0, seq.width)), float(np.clip(hi[1], 0, seq.height))]
    if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
        return None
    return (x0, y0, mask.astype(bool)), box, max(area, 1.0)


# ----------------------------------------------------------------------------- detections


@dataclass(frozen=True)
class DetectionNoise:
    """How far simulated detections stray from the truth.

    box_sigma: std of each box edge's offset, as a fraction of the box width (x1, x2) or
        height (y1, y2): 0.03 is a good detector, 0.08 a poor one;
    drop_rate: chance that a detectable object is missed in a frame;
    false_positives: mean number of false boxes per frame (Poisson), scores in fp_scores;
    min_visibility: objects less visible than this are never detected;
    occluded_visibility: below it the detector is unsure: the score falls in low_scores
        (these are what ByteTrack's second association is for);
    blur_rate: chance that a well-visible object still gets a low score (motion blur);
    high_scores, low_scores, fp_scores: uniform score ranges;
    amodal: box the object's full extent (True) or only its visible pixels (False)."""

    box_sigma: float = 0.04
    drop_rate: float = 0.05
    false_positives: float = 0.5
    min_visibility: float = 0.15
    occluded_visibility: float = 0.5
    blur_rate: float = 0.05
    high_scores: Tuple[float, float] = (0.6, 0.95)
    low_scores: Tuple[float, float] = (0.15, 0.45)
    fp_scores: Tuple[float, float] = (0.1, 0.65)
    amodal: bool = True


@dataclass(frozen=True)
class FrameDetections:
    """One frame's simulated detections: boxes (N, 4) xyxy px, scores (N,), classes (N,), and
    gt_ids (N,) the object each came from (-1 for a false positive; for diagnostics only)."""

    frame: int
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    gt_ids: np.ndarray


def simulate_detections(seq: SyntheticSequence, noise: DetectionNoise = DetectionNoise(),
                        seed: int = 0) -> List[FrameDetections]:
    """What a detector with ``noise`` would report on each frame of ``seq`` (list, frame order)."""
    rng = np.random.default_rng([seed, 7])
    out = []
    for f in range(1, seq.num_frames + 1):
        ann = seq.frame_annotations(f)
        vis = ann[:, 11]
        keep = (vis >= noise.min_visibility) & (rng.random(len(ann)) >= noise.drop_rate)
        ann, vis = ann[keep], vis[keep]
        box = (ann[:, 3:7] if noise.amodal else ann[:, 7:11]).copy()
        wh = np.stack((box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]), 1)
        box += rng.normal(0, noise.box_sigma, box.shape) * np.tile(wh, 2)
        unsure = (vis < noise.occluded_visibility) | (rng.random(len(ann)) < noise.blur_rate)
        scores = np.where(unsure, rng.uniform(*noise.low_scores, len(ann)), rng.uniform(*noise.high_scores, len(ann)))
        classes = ann[:, 2].astype(np.int64)
        ids = ann[:, 1].astype(np.int64)

        n_fp = int(rng.poisson(noise.false_positives))
        size = rng.uniform(25, 80, (n_fp, 2))
        corner = rng.uniform(0, 1, (n_fp, 2)) * ([seq.width, seq.height] - size)
        fp_boxes = np.concatenate((corner, corner + size), 1)
        box = np.concatenate((box, fp_boxes))
        scores = np.concatenate((scores, rng.uniform(*noise.fp_scores, n_fp)))
        classes = np.concatenate((classes, rng.integers(len(seq.class_names), size=n_fp)))
        ids = np.concatenate((ids, np.full(n_fp, -1)))
        # a box flipped inside out by the noise is not something a detector outputs
        box[:, 2:] = np.maximum(box[:, 2:], box[:, :2] + 1.0)
        out.append(FrameDetections(f, box, scores.astype(np.float32), classes, ids))
    return out


def detection_rows(detections: Sequence[FrameDetections]) -> np.ndarray:
    """MOTChallenge det.txt rows (K, 10): frame, -1, x, y, w, h, score, class, -1, -1."""
    rows = [np.column_stack((np.full(len(d.scores), d.frame), np.full(len(d.scores), -1),
                             d.boxes[:, :2], d.boxes[:, 2:] - d.boxes[:, :2], d.scores, d.classes,
                             np.full((len(d.scores), 2), -1))) for d in detections]
    return np.concatenate(rows) if rows else np.zeros((0, 10))


# ----------------------------------------------------------------------------- rendering


def render_frame(seq: SyntheticSequence, frame: int) -> np.ndarray:
    """BGR uint8 (height, width, 3) image of a 1-based frame."""
    f = frame - 1
    image = _background(seq, f)
    rng = np.random.default_rng([seq.seed, 11, f])
    present = sorted((k for k, o in enumerate(seq.objects) if not np.isnan(o.centres[f, 0])),
                     key=lambda k: seq.objects[k].depth)
    for k in present:
        placed = _rasterise(seq, k, f)
        if placed is None:
            continue
        (x0, y0, mask), _, _ = placed
        o = seq.objects[k]
        hh, ww = mask.shape
        angle, period, amp = o.stripe
        # stripes move with the object: phase taken from object-local coordinates
        cx, cy = o.centres[f] + seq.shake[f]
        xs = np.arange(x0, x0 + ww) - cx
        ys = np.arange(y0, y0 + hh) - cy
        wave = np.sin((np.cos(angle) * xs[None, :] + np.sin(angle) * ys[:, None]) * 2 * np.pi / period)
        fill = np.asarray(o.colour, np.float32)[None, None] + (amp * wave)[..., None]
        roi = image[y0:y0 + hh, x0:x0 + ww]
        roi[mask] = fill[mask]
    for x1, y1, x2, y2 in _pillar_pixels(seq, f):
        image[y1:y2, x1:x2] = 95.0 + 25.0 * ((np.arange(y1, y2) // 6) % 2)[:, None, None]
    # sensor noise: a triangular distribution, std ~2.9 grey levels, cheaper than a Gaussian
    noise = rng.integers(-5, 6, image.shape, dtype=np.int16) + rng.integers(-5, 6, image.shape, dtype=np.int16)
    return np.clip(image + (noise >> 1), 0, 255).astype(np.uint8)


def _background(seq: SyntheticSequence, f: int) -> np.ndarray:
    """Smooth colour blotches plus a fine pattern, larger than the view so the shake can pan it
    (made once per sequence)."""
    pad = 32
    if seq._backdrop is None:
        rng = np.random.default_rng([seq.seed, 5])
        base = rng.uniform(70, 180, 3)  # muted: one colour with gentle blotches, like the
        grid = (base + rng.uniform(-35, 35, (5, 7, 3))).astype(np.float32)  # built-in set
        big = cv2.resize(grid, (seq.width + 2 * pad, seq.height + 2 * pad), interpolation=cv2.INTER_CUBIC)
        yy, xx = np.mgrid[0:seq.height + 2 * pad, 0:seq.width + 2 * pad].astype(np.float32)
        big += 8 * np.sin(xx * 0.21 + np.sin(yy * 0.05) * 3)[..., None]
        seq._backdrop = big
    big = seq._backdrop
    dx, dy = np.clip(np.round(seq.shake[f]).astype(int), -pad, pad)
    return big[pad - dy:pad - dy + seq.height, pad - dx:pad - dx + seq.width].copy()


def write_sequence(seq: SyntheticSequence, out_dir: PathLike, detections: Optional[Sequence[FrameDetections]] = None,
                   video: bool = True, frames: bool = True, jpeg_quality: int = 92) -> Path:
    """Write frames/000001.jpg..., video.mp4, gt.txt, seqinfo.ini and (given detections) det.txt."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = None
    if video:
        writer = cv2.VideoWriter(str(out / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), seq.fps,
                                 (seq.width, seq.height))
        if not writer.isOpened():
            raise DataError(f"{out / 'video.mp4'}: OpenCV cannot write mp4v video on this machine")
    if frames:
        (out / "frames").mkdir(exist_ok=True)
    try:
        if video or frames:
            for f in range(1, seq.num_frames + 1):
                image = render_frame(seq, f)
                if frames:
                    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                    if not ok:
                        raise DataError(f"{out / 'frames'}: JPEG encoding failed")
                    (out / "frames" / f"{f:06d}.jpg").write_bytes(buf.tobytes())
                if writer is not None:
                    writer.write(image)
    finally:
        if writer is not None:
            writer.release()
    write_mot(out / "gt.txt", seq.gt_rows())
    if detections is not None:
        write_mot(out / "det.txt", detection_rows(detections))
    info = configparser.ConfigParser()
    info.optionxform = str  # MOTChallenge keys are camelCase
    info["Sequence"] = {"name": seq.name, "imDir": "frames", "frameRate": f"{seq.fps:g}",
                        "seqLength": str(seq.num_frames), "imWidth": str(seq.width),
                        "imHeight": str(seq.height), "imExt": ".jpg",
                        "classes": ",".join(seq.class_names)}
    with open(out / "seqinfo.ini", "w", encoding="utf-8") as fh:
        info.write(fh, space_around_delimiters=False)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m openyolox.tracking.synthetic OUT [--scene busy] [--seed 0]``: write a sequence
    with its ground truth and simulated detections (det.txt, default noise)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m openyolox.tracking.synthetic", description=main.__doc__.split("\n")[0])
    p.add_argument("out", help="output folder")
    p.add_argument("--scene", choices=sorted(SCENES), default="busy")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    seq = make_sequence(args.scene, args.seed)
    out = write_sequence(seq, args.out, detections=simulate_detections(seq, seed=args.seed))
    print(f"{seq.num_frames} frames, {len(seq.objects)} objects, {len(seq.annotations)} boxes -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
