"""Reading images as BGR uint8 (H, W, 3), whatever their file format."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import cv2
import numpy as np

from openyolox.errors import DataError


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as BGR uint8 (H, W, 3), EXIF orientation applied.

    Raises DataError naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found; check the path or the dataset's image folder")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: cannot decode image (corrupt or unsupported format); "
                        f"re-export the file or remove it from the dataset")
    return image
