"""Turning what users pass to ``predict`` into named BGR images.

Accepted: an image path, a folder of images, a numpy array (H, W, 3) BGR uint8 (or (H, W)
grayscale), a PIL image, or a list of these.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator, List, Tuple, Union

import numpy as np

from openyolox.data.image_io import IMAGE_SUFFIXES, read_image
from openyolox.errors import DataError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


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


def iter_images(source: Any) -> Iterator[Tuple[str, Union[np.ndarray, Exception]]]:
    """Yield (name, BGR image) per input; unreadable files inside a folder yield
    (name, DataError) so callers can warn and continue. A single bad path raises."""
    items = source if isinstance(source, (list, tuple)) else [source]
    for i, item in enumerate(items):
        if isinstance(item, (str, Path)):
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
            else:
                yield path.stem, read_image(path)
        elif isinstance(item, np.ndarray):
            yield f"array{i}", as_bgr(item)
        elif _is_pil(item):
            yield f"image{i}", _pil_to_bgr(item)
        else:
            raise DataError(f"cannot read an image from {type(item).__name__}; pass a path, folder, "
                            f"numpy BGR array or PIL image")


def warn_skipped(name: str, exc: Exception) -> None:
    warnings.warn(f"skipping {name}: {exc}", stacklevel=3)
