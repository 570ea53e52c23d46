"""Reading images as BGR uint8 (H, W, 3), whatever their file format.

The training loader calls :func:`read_image` for every sample, so the common case (an
ordinary 8-bit JPEG/PNG) costs one OpenCV decode plus a few byte comparisons. The
unusual cases are normalised here once, so nothing downstream has to care:

- grayscale, palette and RGBA/LA images become 3-channel BGR (alpha is dropped);
- 16-bit images (PNG, TIFF) are scaled to 8 bits over their full range (v * 255 / 65535,
  rounded), float images from 0..1 (or 0..255 when larger values occur);
- EXIF orientation is applied, so boxes refer to the image as viewers display it;
- CMYK JPEGs are converted to BGR;
- truncated JPEGs raise :class:`DataError`. Some OpenCV builds decode a truncated JPEG
  "successfully" with a grey bottom part, which silently poisons training. A complete JPEG
  ends with the EOI marker (FF D9), possibly followed by padding; when it does not, the file
  is decoded strictly with Pillow, which accepts harmless trailing data (e.g. the video
  appended to phone "motion photos") and rejects real truncation.

:func:`read_image_size` reads only the header (via Pillow) to get the displayed size.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np
from PIL import Image, ImageOps

from openyolox.errors import DataError
from openyolox.typing import PathLike

# file suffixes taken for images wherever a folder is listed (datasets, predict)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".mpo", ".pfm", ".dng")

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # these swap width and height
_JPEG_PADDING = b"\x00\xff \t\r\n"  # bytes some writers append after the EOI marker


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as BGR uint8 (H, W, 3), EXIF orientation applied.

    Raises DataError naming the file when it is missing, empty, truncated or cannot be
    decoded.
    """
    path = Path(path)
    data = _read_bytes(path)
    if _is_jpeg(data) and not _jpeg_is_complete(data):
        # Possibly truncated: let a strict decoder decide (rare path, one decode).
        return _decode_with_pil(path, data)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        # Formats or variants OpenCV cannot read (some TIFFs, GIF on older builds, ...).
        return _decode_with_pil(path, data)
    return _to_bgr_uint8(image, path)


def read_image_size(path: PathLike) -> Tuple[int, int]:
    """Return the displayed (width, height) of an image from its header only.

    EXIF orientations 5-8 (rotations by 90 degrees) swap width and height, matching what
    :func:`read_image` returns. Falls back to a full decode for formats Pillow cannot open.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found; check the path or the dataset's image folder")
    if path.suffix.lower() in (".jpg", ".jpeg"):
        found = _jpeg_header_size(path)  # ~10x faster than Pillow; matters for 100k-image sets
        if found is not None:
            return found
    try:
        with Image.open(path) as im:
            width, height = im.size
            try:
                orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
            except Exception:  # malformed EXIF: viewers ignore it, so do we
                orientation = 1
    except Exception:
        h, w = read_image(path).shape[:2]
        return w, h
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return int(width), int(height)


# ----------------------------------------------------------------------------- helpers


def _read_bytes(path: Path) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found; check the path or the dataset's image folder") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an image file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read image file ({exc.strerror or exc}); check its permissions") from None
    if data.size == 0:
        raise DataError(f"{path}: image file is empty (0 bytes); re-copy or re-download it, or remove it "
                        f"from the dataset")
    return data


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header_size(path: Path) -> Optional[Tuple[int, int]]:
    """Displayed (width, height) from a JPEG's markers (SOF + Exif orientation), or None
    when the file is anything unusual (then Pillow decides)."""
    orientation = 1
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\xff\xd8":
                return None
            while True:
                byte = f.read(1)
                while byte == b"\xff":  # fill bytes before a marker
                    marker = f.read(1)
                    if marker != b"\xff":
                        break
                    byte = marker
                else:
                    return None  # not at a marker: malformed
                m = marker[0] if marker else 0xD9
                if m in (0xD9, 0xDA):  # end of image / start of scan before any frame header
                    return None
                if m == 0x01 or 0xD0 <= m <= 0xD8:  # markers without a length
                    continue
                length = int.from_bytes(f.read(2), "big")
                if length < 2:
                    return None
                if m in _JPEG_SOF:
                    frame = f.read(5)
                    if len(frame) < 5:
                        return None
                    height, width = int.from_bytes(frame[1:3], "big"), int.from_bytes(frame[3:5], "big")
                    if width == 0 or height == 0:
                        return None
                    if orientation in _TRANSPOSED_ORIENTATIONS:
                        width, height = height, width
                    return width, height
                if m == 0xE1 and orientation == 1:
                    segment = f.read(length - 2)
                    if segment.startswith(b"Exif\x00\x00"):
                        orientation = _tiff_orientation(segment[6:])
                else:
                    f.seek(length - 2, 1)
    except (OSError, ValueError, IndexError):
        return None


def _tiff_orientation(tiff: bytes) -> int:
    """Tag 0x0112 of IFD0 in an Exif TIFF block (1 when absent or unreadable)."""
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return 1
    count = int.from_bytes(tiff[ifd:ifd + 2], order)
    for k in range(count):
        entry = tiff[ifd + 2 + 12 * k: ifd + 14 + 12 * k]
        if len(entry) < 12:
            break
        if int.from_bytes(entry[0:2], order) == _EXIF_ORIENTATION:
            value = int.from_bytes(entry[8:10], order)
            return value if 1 <= value <= 8 else 1
    return 1


def _is_jpeg(data: np.ndarray) -> bool:
    return data.size >= 3 and data[0] == 0xFF and data[1] == 0xD8 and data[2] == 0xFF


def _jpeg_is_complete(data: np.ndarray) -> bool:
    """True when the file ends with the EOI marker FF D9, ignoring trailing padding bytes."""
    # D9 is not a padding byte, so stripping stops right after the marker of a complete file.
    # Padding longer than the window only sends the file down the (correct) slow path.
    tail = data[-64:].tobytes().rstrip(_JPEG_PADDING)
    return tail.endswith(b"\xff\xd9")


def _decode_with_pil(path: Path, data: np.ndarray) -> np.ndarray:
    """Strict Pillow decode: truncated or corrupt files raise DataError."""
    try:
        with Image.open(io.BytesIO(data.tobytes())) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            array = _pil_to_array(im)
    except DataError:
        raise
    except Exception as exc:
        detail = str(exc) or type(exc).__name__
        hint = ("the file is truncated (an interrupted download or copy?); re-copy it or remove it "
                "from the dataset") if "truncated" in detail else \
               "corrupt or unsupported format; re-export the file or remove it from the dataset"
        raise DataError(f"{path}: cannot decode image ({detail}): {hint}") from None
    return _to_bgr_uint8(array, path)


def _pil_to_array(im: Image.Image) -> np.ndarray:
    """A Pillow image as a numpy array: BGR/gray for 8-bit data, raw values otherwise."""
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return np.asarray(im)  # (H, W) uint16 / int32 / float32, scaled by _to_bgr_uint8
    if mode != "RGB":
        im = im.convert("RGB")  # L, LA, P, PA, RGBA, CMYK, YCbCr, 1, ...
    return np.asarray(im)[:, :, ::-1]


def _to_bgr_uint8(image: np.ndarray, path: Path) -> np.ndarray:
    """Convert any decoded array (gray/BGR/BGRA, 8/16-bit/int/float) to BGR uint8 (H, W, 3)."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype != np.uint8:
        image = _scale_to_uint8(image)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = np.ascontiguousarray(image[:, :, :3])
    elif image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{path}: unsupported image layout {image.shape}; convert it to an RGB image")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise DataError(f"{path}: image has zero width or height")
    return np.ascontiguousarray(image)


def _scale_to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale high bit-depth pixels to 0..255 over the type's full range (not truncation)."""
    if image.dtype == np.uint16:
        return cv2.convertScaleAbs(image, alpha=255.0 / 65535.0)  # rounds and saturates
    if np.issubdtype(image.dtype, np.floating):
        image = np.nan_to_num(image.astype(np.float32))
        scale = 255.0 if image.size and float(image.max()) <= 1.0 else 1.0
        return np.clip(image * scale + 0.5, 0, 255).astype(np.uint8)
    # integer types other than uint8/uint16 (Pillow mode "I" holds 16-bit data as int32)
    image = image.astype(np.int64)
    maxval = int(image.max()) if image.size else 0
    if maxval <= 255:
        return np.clip(image, 0, 255).astype(np.uint8)
    full = 65535 if maxval <= 65535 else int(np.iinfo(np.int32).max)
    return np.clip((image * 255 + full // 2) // full, 0, 255).astype(np.uint8)
