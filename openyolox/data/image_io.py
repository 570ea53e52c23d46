"""Reading images as BGR uint8 (H, W, 3), whatever their file format.

The training loader calls :func:`read_image` for every sample, so the common case (an
ordinary 8-bit JPEG/PNG) costs one OpenCV decode plus a few byte comparisons. The
unusual cases are normalised here once, so nothing downstream has to care:

- grayscale, palette and RGBA/LA images become 3-channel BGR (alpha is dropped);
- 16-bit images (PNG, TIFF) are scaled to 8 bits over their full range (v * 255 / 65535,
  rounded), float images from 0..1 (or 0..255 when larger values occur);
- EXIF orientation is applied, so boxes refer to the image as viewers display it;
- CMYK JPEGs are converted to BGR;
- truncated JPEGs: a complete JPEG ends with the EOI marker (FF D9), possibly followed by
  padding. One that does not is looked at more closely (rare path, see
  :func:`_inspect_unterminated_jpeg`): a complete JPEG followed by other data (the video of
  phone "motion photos") is read as usual; one that lost only bytes after its last pixel
  (the end marker) is used, with an :class:`ImageRepairedWarning`; one whose pixel data is
  cut raises :class:`DataError` saying how many rows are missing. (Decoders fill missing rows
  with grey or noise and call it success, which would silently poison training.)

:func:`read_image_size` reads only the header to get the displayed size; :func:`probe_image`
tells cheaply, from a file's last bytes, whether :func:`read_image` will take it (the check
before every training run); :func:`complete_jpeg` repairs a JPEG without end marker.
"""
from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import cv2
import numpy as np
from PIL import Image, ImageOps

from openyolox.errors import DataError, ImageRepairedWarning
from openyolox.typing import PathLike

# file suffixes taken for images wherever a folder is listed (datasets, predict)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".mpo", ".pfm", ".dng")

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # these swap width and height
_JPEG_PADDING = b"\x00\xff \t\r\n"  # bytes some writers append after the EOI marker
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the last chunk of every PNG, with its CRC
_TAIL_BYTES = 64  # how much of a file's end probe_image reads


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as BGR uint8 (H, W, 3), EXIF orientation applied.

    Raises DataError naming the file when it is missing, empty, truncated (pixel rows
    missing) or cannot be decoded. A JPEG that only lacks its end marker is returned with an
    :class:`ImageRepairedWarning` naming the file.
    """
    image, note = decode_image(path)
    if note is not None:
        warnings.warn(f"{path}: {note}", ImageRepairedWarning, stacklevel=2)
    return image


def decode_image(path: PathLike) -> Tuple[np.ndarray, Optional[str]]:
    """:func:`read_image` without the warning: (image, note), where note says what was wrong
    with a file that was used anyway (None for an intact file)."""
    path = Path(path)
    return _decode_data(_read_bytes(path), path)


def decode_bytes(data: bytes, name: str) -> np.ndarray:
    """:func:`read_image` for an encoded image already in memory (a download, standard input):
    the same decoding, checks and warning; ``name`` (a URL, "<stdin>") stands for the file in
    messages."""
    if not data:
        raise DataError(f"{name}: empty (0 bytes), not an image")
    image, note = _decode_data(np.frombuffer(data, dtype=np.uint8), name)
    if note is not None:
        warnings.warn(f"{name}: {note}", ImageRepairedWarning, stacklevel=2)
    return image


def jpeg_end(buf: Union[bytes, bytearray, memoryview]) -> Optional[int]:
    """The offset just past the end marker of the JPEG at the start of ``buf``, or None when
    ``buf`` ends before it: splits a stream of concatenated JPEGs (an MJPEG pipe) into images."""
    for marker, _, end in _jpeg_segments(buf):
        if marker == 0xD9:
            return end
    return None


def _decode_data(data: np.ndarray, path: Union[Path, str]) -> Tuple[np.ndarray, Optional[str]]:
    """:func:`decode_image` of the bytes ``data`` (uint8 (N,)); ``path`` only names them."""
    if _is_jpeg(data) and not _jpeg_is_complete(data):
        end, note = _inspect_unterminated_jpeg(path, data.tobytes())
        if end is None:  # every pixel is there; Pillow, unlike OpenCV, decodes it without printing warnings
            return _decode_with_pil(path, data.tobytes().rstrip(b"\xff") + _JPEG_EOI), note
        data = data[:end]
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        # Formats or variants OpenCV cannot read (some TIFFs, GIF on older builds, ...).
        return _decode_with_pil(path, data.tobytes()), None
    return _to_bgr_uint8(image, path), None


def probe_image(path: PathLike) -> Optional[str]:
    """Whether :func:`read_image` will take ``path``, found cheaply: raises the DataError it
    would raise, returns the note it would warn with, or None.

    Reads the file's last bytes only, except for what those show to be unusual: a JPEG
    without end marker (looked at as :func:`read_image` does: its bytes, and two decodes when
    no complete image is found in them) or a PNG without its IEND chunk (decoded). A file
    that ends well but is corrupt inside passes; only decoding it (``check-data``) tells.
    """
    try:  # the common case costs one open and two small reads (~10 us): no Path() here
        with open(path, "rb", buffering=0) as f:
            head = f.read(8)
            size = f.seek(0, 2)
            f.seek(max(size - _TAIL_BYTES, 0))
            tail = f.read(_TAIL_BYTES)
    except OSError:
        _read_bytes(Path(path))  # raises the DataError read_image would
        raise
    if size == 0:
        raise _empty_file_error(Path(path))
    if head.startswith(b"\xff\xd8\xff") and not _tail_ends_jpeg(tail):
        return _inspect_unterminated_jpeg(Path(path), Path(path).read_bytes())[1]
    if head.startswith(_PNG_SIGNATURE) and not tail.endswith(_PNG_END):
        return decode_image(path)[1]
    return None


def complete_jpeg(data: bytes) -> bytes:
    """A JPEG that lost its end marker, made whole: for a file :func:`read_image` uses with an
    ImageRepairedWarning, the same pixels in a file that reads without one.

    The end marker is appended, after dropping a dangling marker byte and, when the pixels
    stay the same without them, padding bytes left before it (decoders complain about them)."""
    body = data.rstrip(b"\xff")
    trimmed = data.rstrip(_JPEG_PADDING)
    if trimmed != body:
        where = Path("<jpeg data>")
        if np.array_equal(_decode_stored(where, trimmed + _JPEG_EOI), _decode_stored(where, body + _JPEG_EOI)):
            body = trimmed
    return body + _JPEG_EOI


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
        raise _empty_file_error(path)
    return data


def _empty_file_error(path: Path) -> DataError:
    return DataError(f"{path}: image file is empty (0 bytes); re-copy or re-download it, or remove it from the "
                     f"dataset")


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


# after a scan's entropy-coded data: the next marker (FF 00 is a stuffed FF byte, FF D0-D7 a
# restart marker; neither ends the data)
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def _jpeg_segments(buf: Union[bytes, memoryview]) -> Iterator[Tuple[Optional[int], int, int]]:
    """Walk the marker segments of a JPEG in ``buf``: yields (marker, start, end) with the
    segment's payload in buf[start:end]; the entropy-coded data after each SOS (0xDA) is
    skipped; EOI (0xD9) is yielded with start = end = the offset just past it, and ends the
    walk. When ``buf`` ends before EOI (a truncated file, or a read of only its beginning),
    the last item is (None, offset reached, len(buf)). Anything else unexpected ends the
    walk silently."""
    n, pos = len(buf), 2
    while pos + 1 < n:
        if buf[pos] != 0xFF:
            return  # not at a marker: malformed
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:
            yield marker, pos + 2, pos + 2
            return
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if pos + 4 > n:
            break
        length = int.from_bytes(buf[pos + 2:pos + 4], "big")
        if length < 2:
            return
        end = pos + 2 + length
        if end > n:
            break
        yield marker, pos + 4, end
        pos = end
        if marker == 0xDA:
            found = _NEXT_MARKER.search(buf, end)
            if found is None:
                pos = n
                break
            pos = found.start()
    yield None, pos, n


def _jpeg_header_size(path: Path) -> Optional[Tuple[int, int]]:
    """Displayed (width, height) from a JPEG's markers (SOF + Exif orientation), or None
    when the file is anything unusual (then Pillow decides). Reads the first 8 KB (twice as
    much while the headers go on: a big Exif block)."""
    try:
        with open(path, "rb") as f:
            buf = f.read(8192)
            while buf.startswith(b"\xff\xd8"):
                orientation = 1
                for marker, start, end in _jpeg_segments(buf):
                    if marker is None:  # headers go on past what was read
                        more = f.read(len(buf))
                        if not more:
                            return None
                        buf += more
                        break
                    if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
                        return None
                    if marker in _JPEG_SOF:
                        if end - start < 5:
                            return None
                        height = int.from_bytes(buf[start + 1:start + 3], "big")
                        width = int.from_bytes(buf[start + 3:start + 5], "big")
                        if width == 0 or height == 0:
                            return None
                        if orientation in _TRANSPOSED_ORIENTATIONS:
                            width, height = height, width
                        return width, height
                    if marker == 0xE1 and orientation == 1 and buf.startswith(b"Exif\x00\x00", start):
                        orientation = _tiff_orientation(buf[start + 6:end])
                else:
                    return None
    except (OSError, ValueError, IndexError):
        return None
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
    return _tail_ends_jpeg(data[-_TAIL_BYTES:].tobytes())


def _tail_ends_jpeg(tail: bytes) -> bool:
    """True when a file's last bytes end with the EOI marker FF D9, ignoring trailing padding."""
    # D9 is not a padding byte, so stripping stops right after the marker of a complete file.
    # Padding longer than the window only sends the file down the (correct) slow path.
    return tail.rstrip(_JPEG_PADDING).endswith(_JPEG_EOI)


def _inspect_unterminated_jpeg(path: Path, raw: bytes) -> Tuple[Optional[int], Optional[str]]:
    """A JPEG that does not end with its end marker: what is it?

    -> (end, None): a complete JPEG ends at raw[end] and other data follows (the video of a
       "motion photo", a second picture...); decode raw[:end].
    -> (None, note): only the end marker (and maybe padding) is missing: every pixel is in
       the file; :func:`complete_jpeg` makes it whole, ``note`` says what was missing.
    Raises DataError when pixel data is missing, saying how many rows.

    How missing pixels are told apart from a missing end marker: the data is decoded twice,
    followed by a few KB of two different filler bytes and an end marker. If every pixel was
    in the file, the decoder skips the filler as junk before the marker and both decodes are
    identical; if data was missing, the filler is decoded as pixels, differently each time,
    and the first row that differs is where the real data stopped. A progressive JPEG can
    also stop between two scans (each decodes fully), so its scans are read too: they must
    carry every bit of every coefficient.
    """
    frame = None      # (height, rows per MCU row, SOF marker) from the frame header
    coverage = {}     # component id -> bit k set when coefficient k has been sent to its last bit
    scans = 0
    for marker, start, end in _jpeg_segments(raw):
        if marker == 0xD9:
            return end, None
        if marker in _JPEG_SOF and end - start >= 6:
            components = raw[start + 6:end:3][:raw[start + 5]]
            sampling = raw[start + 7:end:3][:raw[start + 5]]
            frame = (int.from_bytes(raw[start + 1:start + 3], "big"), 8 * max((v & 15 for v in sampling), default=1),
                     marker)
            coverage = {c: 0 for c in components}
        elif marker == 0xDA and end - start >= 4 + 2 * raw[start]:
            scans += 1
            count = raw[start]
            spectral_start, spectral_end, approx = raw[start + 1 + 2 * count:start + 4 + 2 * count]
            if approx & 15 == 0 and spectral_start <= spectral_end < 64:  # the last bit of these coefficients
                bits = (1 << (spectral_end + 1)) - (1 << spectral_start)
                for c in raw[start + 1:start + 1 + 2 * count:2]:
                    coverage[c] = coverage.get(c, 0) | bits
    body = raw.rstrip(b"\xff")  # a dangling marker byte would turn the filler into a marker
    first = _decode_stored(path, body + b"\x55" * 4096 + _JPEG_EOI)
    second = _decode_stored(path, body + b"\xaa" * 4096 + _JPEG_EOI)
    height = first.shape[0]
    differ = np.flatnonzero((first != second).reshape(height, -1).any(1)) if first.shape == second.shape else [0]
    lossless = frame is not None and frame[2] in (0xC3, 0xC7, 0xCB, 0xCF)
    if not (lossless or coverage and all(bits == (1 << 64) - 1 for bits in coverage.values())):
        # later scans are missing; in a progressive JPEG they refine every row
        kind = "progressive JPEG" if frame is not None and frame[2] in (0xC2, 0xC6, 0xCA, 0xCE) else "JPEG"
        raise DataError(f"{path}: cannot decode image: truncated {kind}, all {height} rows incomplete: the data "
                        f"stops {'inside' if len(differ) else 'after'} scan {scans} (an interrupted download or "
                        f"copy?); re-copy it or remove it from the dataset")
    if len(differ):
        mcu_rows = frame[1] if frame else 8
        # a row just above the cut can differ through chroma upsampling: count whole MCU rows
        good = min(height, (int(differ[0]) + 1) // mcu_rows * mcu_rows)
        raise DataError(f"{path}: cannot decode image: truncated JPEG, {height - good} of {height} rows missing "
                        f"(an interrupted download or copy?); re-copy it or remove it from the dataset")
    return None, ("the JPEG end marker (FF D9) is missing: the file's last bytes were cut off after the image "
                  "data; every pixel row is in the file, so the image is used ('openyolox check-data --fix-out' "
                  "writes a complete copy)")


def _decode_stored(path: Path, data: bytes) -> np.ndarray:
    """Decode with Pillow (which stays silent about junk in the data, unlike OpenCV's libjpeg),
    as stored (no EXIF rotation): an array (H, ...); DataError when nothing decodes."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.asarray(im)
    except Exception as exc:
        raise DataError(f"{path}: cannot decode image ({str(exc) or type(exc).__name__}): the file is truncated "
                        f"(an interrupted download or copy?); re-copy it or remove it from the dataset") from None


def _decode_with_pil(path: Path, data: bytes) -> np.ndarray:
    """Strict Pillow decode: truncated or corrupt files raise DataError."""
    try:
        with Image.open(io.BytesIO(data)) as im:
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
