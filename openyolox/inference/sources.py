"""Turning what users pass to ``predict`` into a stream of named BGR images.

Accepted: an image path, a folder of images, a video file, a webcam index (0, 1, ... as an
int or a digit string), a numpy array (H, W, 3) BGR uint8 (or (H, W) grayscale), a PIL image,
or a list of these. Frames of a video are named ``<stem>_<frame:06d>`` (0-based).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple, Union

import numpy as np

from openyolox.data.image_io import IMAGE_SUFFIXES, read_image
from openyolox.errors import DataError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}

Named = Tuple[str, Union[np.ndarray, Exception]]


def list_images(folder: Path) -> List[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def as_bgr(array: np.ndarray) -> np.ndarray:
    """Normalise an in-memory array to BGR uint8 (H, W, 3)."""
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise DataError(f"image array has shape {array.shape}; expected (H, W, 3) BGR")
    if array.dtype != np.uint8:
        raise DataError(f"image array has dtype {array.dtype}; expected uint8 0..255")
    return np.ascontiguousarray(array[:, :, :3])


def _pil_to_bgr(image: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.")


def webcam_index(source: Any) -> Optional[int]:
    """The camera index when ``source`` names a webcam (an int or a digit string)."""
    if isinstance(source, int) and not isinstance(source, bool):
        return source
    if isinstance(source, str) and source.isdigit():
        return int(source)
    return None


def is_video(source: Any) -> bool:
    """A video file or a webcam (frames arrive with a frame rate)."""
    if webcam_index(source) is not None:
        return True
    return isinstance(source, (str, Path)) and Path(source).suffix.lower() in VIDEO_SUFFIXES


def video_fps(source: Any, default: float = 25.0) -> float:
    import cv2

    cap = cv2.VideoCapture(webcam_index(source) if webcam_index(source) is not None else str(source))
    try:
        return float(cap.get(cv2.CAP_PROP_FPS) or default)
    finally:
        cap.release()


def iter_video(source: Union[str, Path, int], limit: int = 0) -> Iterator[Tuple[str, np.ndarray]]:
    """Frames of a video file or webcam as (name, BGR image); at most ``limit`` (0: all)."""
    import cv2

    cam = webcam_index(source)
    cap = cv2.VideoCapture(cam if cam is not None else str(source))
    if not cap.isOpened():
        raise DataError(f"{source}: cannot open video/webcam")
    stem = f"webcam{cam}" if cam is not None else Path(source).stem
    n = 0
    try:
        while not limit or n < limit:
            ok, frame = cap.read()
            if not ok:
                break
            yield f"{stem}_{n:06d}", frame
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise DataError(f"{source}: no frames could be read")


def iter_images(source: Any, limit: int = 0) -> Iterator[Named]:
    """Yield (name, BGR image) per input; unreadable files inside a folder yield
    (name, DataError) so callers can warn and continue. A single bad path raises."""
    items = source if isinstance(source, (list, tuple)) else [source]
    for i, item in enumerate(items):
        if is_video(item):
            yield from iter_video(item, limit)
        elif isinstance(item, (str, Path)):
            path = Path(item)
            if path.is_dir():
                files = list_images(path)
                if not files:
                    raise DataError(f"{path}: folder contains no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
                for f in files:
                    try:
                        yield f.stem, read_image(f)
                    except DataError as exc:
                        yield f.stem, exc
            elif not path.exists():
                raise DataError(f"{path}: no such file or folder")
            elif path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{path}: not an image or video file (by its extension: images "
                                f"{', '.join(sorted(IMAGE_SUFFIXES))}; videos {', '.join(sorted(VIDEO_SUFFIXES))})")
            else:
                yield path.stem, read_image(path)
        elif isinstance(item, np.ndarray):
            yield f"array{i}", as_bgr(item)
        elif _is_pil(item):
            yield f"image{i}", _pil_to_bgr(item)
        else:
            raise DataError(f"cannot read an image from {type(item).__name__}; pass a path, folder, video, "
                            f"webcam index, numpy BGR array or PIL image")


def warn_skipped(name: str, exc: Exception) -> None:
    warnings.warn(f"skipping {name}: {exc}", stacklevel=3)
