"""Turning what users pass to ``predict`` into a stream of named BGR images.

Accepted, alone or in a list:

- an image path, a folder of images, a video file, a webcam index (0, 1, ... as an int or a
  digit string);
- a glob pattern (``"shots/**/*.jpg"``; sorted; images and videos it matches);
- a ``.txt`` file listing one source per line (paths, URLs; relative paths are relative to
  the list file; empty lines and ``#`` comments skipped);
- an http(s) URL of an image, read with a timeout (``$OPENYOLOX_URL_TIMEOUT`` seconds,
  default 10);
- a video stream URL (rtsp://, rtmp://, ..., or http(s) serving MJPEG or a video), read with
  OpenCV; when it breaks, it is reopened up to ``STREAM_RECONNECTS`` times before a DataError
  says it ended;
- ``"-"``: standard input. If it starts with an image's bytes it is image data: one image of
  any format, or concatenated JPEGs (what ``ffmpeg -f mjpeg -`` or ``cat *.jpg`` writes),
  named ``stdin_000000``, ...; otherwise it is a list of sources, one per line, like a
  ``.txt`` list (what ``find`` or ``ls`` writes);
- a numpy array (H, W, 3) BGR uint8 (or (H, W) grayscale), a PIL image.

Frames of a video or stream are named ``<stem>_<frame:06d>`` (0-based). Inside a folder, a
pattern or a list, an unreadable image is passed on as (name, DataError), so callers can warn
and continue; a single bad source raises. :func:`prefetch` decodes ahead in a thread.
"""
from __future__ import annotations

import functools
import glob
import os
import queue
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, List, Optional, Tuple, TypeVar, Union
from urllib.parse import unquote, urlparse

import numpy as np

from openyolox.data.image_io import IMAGE_SUFFIXES, decode_bytes, jpeg_end, read_image
from openyolox.errors import ConfigError, DataError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
STREAM_SUFFIXES = {".mjpg", ".mjpeg", ".m3u8"}          # http(s) URLs that are streams by name
STREAM_SCHEMES = {"rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "tcp"}
URL_TIMEOUT_ENV = "OPENYOLOX_URL_TIMEOUT"
URL_TIMEOUT_S = 10.0
STREAM_RECONNECTS = 3        # reopen a broken stream this many times before giving up
STREAM_RETRY_DELAY_S = 1.0   # wait before each reopen (doubles each time)
_MAX_URL_BYTES = 1 << 30     # an "image" larger than this is not one

Named = Tuple[str, Union[np.ndarray, Exception]]
T = TypeVar("T")


# ----------------------------------------------------------------------------- what a source is


def list_images(folder: Path) -> List[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def webcam_index(source: Any) -> Optional[int]:
    """The camera index when ``source`` names a webcam (an int or a digit string)."""
    if isinstance(source, int) and not isinstance(source, bool):
        return source
    if isinstance(source, str) and source.isdigit():
        return int(source)
    return None


def url_scheme(source: Any) -> Optional[str]:
    """"http", "rtsp", ... when ``source`` is a URL openyolox reads, else None."""
    if not isinstance(source, str) or "://" not in source:
        return None
    scheme = urlparse(source).scheme.lower()
    return scheme if scheme in {"http", "https"} | STREAM_SCHEMES else None


def is_stream(source: Any, timeout: Optional[float] = None) -> bool:
    """A video stream URL: a streaming scheme, an http(s) path ending like a video or stream,
    or (asked of the server, for other http(s) URLs without an image suffix) a response
    that is not one image: multipart (MJPEG) or video content."""
    scheme = url_scheme(source)
    if scheme is None:
        return False
    if scheme in STREAM_SCHEMES:
        return True
    suffix = Path(urlparse(source).path).suffix.lower()
    if suffix in VIDEO_SUFFIXES | STREAM_SUFFIXES:
        return True
    if suffix in IMAGE_SUFFIXES:
        return False
    return _served_as_stream(source, _timeout(timeout))


@functools.lru_cache(maxsize=64)
def _served_as_stream(url: str, timeout: float) -> bool:
    """Asked once per URL (a camera may allow few connections): whether the server answers
    with a stream (multipart MJPEG or video content) rather than one image."""
    with _open_url(url, timeout) as response:
        kind = (response.headers.get("Content-Type") or "").lower()
    return kind.startswith(("multipart/", "video/", "application/vnd.apple.mpegurl", "application/x-mpegurl"))


def is_video(source: Any) -> bool:
    """A video file, a webcam or a stream URL (frames arrive with a frame rate)."""
    if webcam_index(source) is not None or is_stream(source):
        return True
    return isinstance(source, (str, Path)) and url_scheme(source) is None and \
        Path(source).suffix.lower() in VIDEO_SUFFIXES and Path(source).is_file()


def check_source(source: Any) -> None:
    """Fail fast, before a model loads, on a source that names nothing: a path that does not
    exist and is not a pattern, a URL or a webcam. (What exists is read later.)"""
    items = source if isinstance(source, (list, tuple)) else [source]
    for item in items:
        if not isinstance(item, (str, Path)) or webcam_index(item) is not None or url_scheme(item) \
                or str(item) == "-" or Path(item).exists():
            continue
        if _is_pattern(str(item)):
            if not _glob(str(item)):
                raise DataError(f"{item}: the pattern matches no image or video files")
            continue
        raise DataError(f"{item}: no such file or folder")


def _is_pattern(text: str) -> bool:
    return any(c in text for c in "*?[")


def _glob(pattern: str) -> List[str]:
    return sorted(p for p in glob.glob(pattern, recursive=True)
                  if Path(p).is_file() and Path(p).suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES))


# ----------------------------------------------------------------------------- reading them


def iter_images(source: Any, limit: int = 0) -> Iterator[Named]:
    """Yield (name, BGR image) per input (see the module doc); at most ``limit`` frames of
    each video or stream (0: all)."""
    items = source if isinstance(source, (list, tuple)) else [source]
    for i, item in enumerate(items):
        yield from _iter_source(item, i, limit)


def _iter_source(item: Any, index: int, limit: int, listed: bool = False) -> Iterator[Named]:
    """One source; ``listed``: named by a list or a pattern."""
    if webcam_index(item) is not None:
        yield from iter_video(item, limit)
    elif url_scheme(item):
        if is_stream(item):
            yield from iter_video(item, limit)
        else:
            yield _url_stem(item), read_url(item)
    elif isinstance(item, (str, Path)):
        path = Path(item)
        suffix = path.suffix.lower()
        if str(item) == "-":
            yield from _iter_stdin(sys.stdin.buffer, limit)
        elif path.is_dir():
            files = list_images(path)
            if not files:
                raise DataError(f"{path}: folder contains no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            for f in files:
                try:
                    yield f.stem, read_image(f)
                except DataError as exc:
                    yield f.stem, exc
        elif suffix == ".txt" and path.is_file():
            if listed:
                raise DataError(f"{path}: a list inside a list or pattern is not read")
            text = path.read_text(encoding="utf-8", errors="replace")
            for line in _list_lines(text):
                yield from _tolerant(_relative_to(line, path.parent), limit)
        elif not path.exists():
            if not _is_pattern(str(item)):
                raise DataError(f"{path}: no such file or folder")
            files = _glob(str(item))
            if not files:
                raise DataError(f"{item}: the pattern matches no image or video files")
            for f in files:
                yield from _tolerant(f, limit)
        elif suffix in VIDEO_SUFFIXES:
            yield from iter_video(path, limit)
        elif suffix not in IMAGE_SUFFIXES:
            raise DataError(f"{path}: not an image, video or .txt list (by its extension: images "
                            f"{', '.join(sorted(IMAGE_SUFFIXES))}; videos {', '.join(sorted(VIDEO_SUFFIXES))})")
        else:
            yield path.stem, read_image(path)
    elif isinstance(item, np.ndarray):
        yield f"array{index}", as_bgr(item)
    elif _is_pil(item):
        yield f"image{index}", _pil_to_bgr(item)
    else:
        raise DataError(f"cannot read an image from {type(item).__name__}; pass a path, folder, pattern, .txt "
                        f"list, URL, video, stream, webcam index, '-', numpy BGR array or PIL image")


def _tolerant(item: str, limit: int) -> Iterator[Named]:
    """A source named by a list or a pattern: its error is passed on as (name, DataError), so
    one bad line does not end the list."""
    try:
        yield from _iter_source(item, 0, limit, listed=True)
    except DataError as exc:
        yield (_url_stem(item) if url_scheme(item) else Path(item).stem), exc


def _list_lines(text: str) -> Iterator[str]:
    """The sources of a list: stripped lines, without empty ones and # comments."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


def _relative_to(line: str, base: Path) -> str:
    """A list line as a source: URLs and webcams as they are, paths relative to ``base``."""
    if url_scheme(line) or webcam_index(line) is not None:
        return line
    return str(base / Path(line).expanduser())


# ----------------------------------------------------------------------------- URLs


def _timeout(timeout: Optional[float]) -> float:
    if timeout is not None:
        return float(timeout)
    value = os.environ.get(URL_TIMEOUT_ENV, "").strip()
    try:
        seconds = float(value) if value else URL_TIMEOUT_S
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"{URL_TIMEOUT_ENV}={value!r} is not a positive number of seconds")
    return seconds


def _url_stem(url: str) -> str:
    parsed = urlparse(url)
    return Path(unquote(parsed.path)).stem or parsed.hostname or "url"


def _open_url(url: str, timeout: float):
    """An open http(s) response; DataError naming the URL on HTTP errors, refusals and
    timeouts (one line each)."""
    request = urllib.request.Request(url, headers={"User-Agent": "openyolox"})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, socket.timeout):
            raise DataError(f"{url}: no answer within {timeout:g} s") from None
        raise DataError(f"{url}: cannot connect ({exc.reason})") from None
    except socket.timeout:
        raise DataError(f"{url}: no answer within {timeout:g} s") from None
    except (OSError, ValueError) as exc:  # dropped connections, malformed URLs
        raise DataError(f"{url}: cannot read ({str(exc) or type(exc).__name__})") from None


def read_url(url: str, timeout: Optional[float] = None) -> np.ndarray:
    """Download an image (http or https) and decode it to BGR uint8. ``timeout``: seconds
    for the answer and for the whole body (default ``$OPENYOLOX_URL_TIMEOUT`` or 10).
    Raises DataError naming the URL: HTTP errors, no answer, a body that is not an image."""
    seconds = _timeout(timeout)
    deadline = time.monotonic() + seconds
    response = _open_url(url, seconds)
    chunks, size = [], 0
    try:
        with response:
            kind = response.headers.get("Content-Type") or "no content type"
            while True:  # a server that trickles bytes must not hold us past the deadline
                if time.monotonic() > deadline:
                    raise DataError(f"{url}: the image did not arrive within {seconds:g} s "
                                    f"({size} bytes received)")
                chunk = response.read(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > _MAX_URL_BYTES:
                    raise DataError(f"{url}: more than {_MAX_URL_BYTES >> 20} MB; not an image")
    except socket.timeout:
        raise DataError(f"{url}: no data for {seconds:g} s ({size} bytes received)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{url}: the download failed after {size} bytes "
                        f"({str(exc) or type(exc).__name__})") from None
    try:
        return decode_bytes(b"".join(chunks), url)
    except DataError as exc:
        if kind.lower().startswith("image/"):
            raise
        raise DataError(f"{url}: not an image (the server sent {kind}, {size} bytes)") from exc


# ----------------------------------------------------------------------------- video and streams


def _open_capture(source: Union[str, Path, int], timeout: float):
    """cv2.VideoCapture of a file, webcam or stream URL; streams with open/read timeouts so a
    silent server cannot hang us."""
    import cv2

    cam = webcam_index(source)
    if cam is not None:
        return cv2.VideoCapture(cam)
    if url_scheme(source):
        ms = int(timeout * 1000)
        return cv2.VideoCapture(str(source), cv2.CAP_FFMPEG,
                                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    return cv2.VideoCapture(str(source))


def video_fps(source: Any, default: float = 25.0) -> float:
    """Frames per second a video, webcam or stream reports (``default`` when it says none)."""
    import cv2

    cap = _open_capture(source, _timeout(None))
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0)
        return fps if 0 < fps < 1000 else default  # streams often report 0 or 90000
    finally:
        cap.release()


def iter_video(source: Union[str, Path, int], limit: int = 0, reconnects: Optional[int] = None,
               delay: Optional[float] = None) -> Iterator[Tuple[str, np.ndarray]]:
    """Frames of a video file, webcam or stream URL as (name, BGR image); at most ``limit``
    (0: all).

    A file ends when its frames do. A stream URL that stops delivering is reopened up to
    ``reconnects`` times (default STREAM_RECONNECTS), waiting ``delay`` s (doubling) before
    each try; then DataError says it ended and after how many frames. A source that cannot be
    opened at all raises DataError at once."""
    stream = url_scheme(source) is not None
    reconnects = STREAM_RECONNECTS if reconnects is None else reconnects
    delay = STREAM_RETRY_DELAY_S if delay is None else delay
    timeout = _timeout(None)
    cam = webcam_index(source)
    stem = f"webcam{cam}" if cam is not None else _url_stem(str(source)) if stream else Path(source).stem
    cap = _open_capture(source, timeout)
    if not cap.isOpened():
        cap.release()
        what = f"cannot open stream (no video within {timeout:g} s, or not a video)" if stream else \
            "cannot open video/webcam"
        raise DataError(f"{source}: {what}")
    n, failures = 0, 0
    try:
        while not limit or n < limit:
            ok, frame = cap.read()
            if ok:
                failures = 0
                yield f"{stem}_{n:06d}", frame
                n += 1
                continue
            if not stream:
                break
            cap.release()
            if failures == reconnects:
                raise DataError(f"{source}: the stream ended after {n} frames; reopening it failed "
                                f"{reconnects} time(s)")
            time.sleep(delay * 2 ** failures)
            failures += 1
            warnings.warn(f"{source}: the stream broke after {n} frames; reconnecting "
                          f"({failures}/{reconnects})", stacklevel=2)
            cap = _open_capture(source, timeout)
    finally:
        cap.release()
    if n == 0:
        raise DataError(f"{source}: no frames could be read")


# ----------------------------------------------------------------------------- standard input

# first bytes of the image formats taken as image data on standard input
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"GIF8", b"II*\x00", b"MM\x00*", b"RIFF")


def _iter_stdin(stream: BinaryIO, limit: int = 0) -> Iterator[Named]:
    """Standard input: image data (one image, or concatenated JPEGs) or a list of sources."""
    read = getattr(stream, "read1", stream.read)
    head = read(1 << 16)
    if not head:
        raise DataError("standard input ('-') is empty; pipe image data or a list of paths into it")
    if head.startswith(_IMAGE_MAGIC):
        if head.startswith(b"\xff\xd8\xff"):
            for k, data in enumerate(split_jpegs(head, read)):
                if limit and k >= limit:
                    return
                yield f"stdin_{k:06d}", decode_bytes(data, f"<stdin image {k}>")
        else:
            yield "stdin_000000", decode_bytes(head + stream.read(), "<stdin>")
        return
    text = (head + stream.read()).decode("utf-8", errors="replace")
    for line in _list_lines(text):
        yield from _tolerant(_relative_to(line, Path.cwd()), limit)


def split_jpegs(head: bytes, read: Callable[[int], bytes]) -> Iterator[bytes]:
    """Concatenated JPEG files -> each one's bytes, as soon as it is complete (a live MJPEG
    pipe yields frame by frame). ``head``: the bytes already read; ``read(n)``: up to n more
    (b"" at the end). Bytes between images other than padding, or an image cut by the end
    of the input, raise DataError."""
    buf = bytearray(head)
    want = 1 << 16
    while True:
        start = len(buf) - len(buf.lstrip(b"\x00\r\n\t "))  # padding some writers put between images
        if start:
            del buf[:start]
        end = jpeg_end(buf) if buf[:3] == b"\xff\xd8\xff" else None
        if end is not None:
            yield bytes(buf[:end])
            del buf[:end]
            continue
        if len(buf) >= 3 and buf[:3] != b"\xff\xd8\xff":
            raise DataError("standard input: data between JPEG images is not a JPEG image")
        # Each scan starts over from the image's first byte: read in chunks that grow with the
        # image, so a large image costs a few scans, not one per 64 KB.
        more = read(max(want, len(buf)))
        if not more:
            if buf:
                raise DataError(f"standard input ended inside a JPEG image ({len(buf)} bytes)")
            return
        buf += more


# ----------------------------------------------------------------------------- in-memory images


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


# ----------------------------------------------------------------------------- decoding ahead


def prefetch(items: Iterator[T], depth: int) -> Iterator[T]:
    """``items``, produced by a background thread up to ``depth`` ahead of the consumer, in
    the same order; an exception raised by ``items`` is raised here, after the items before
    it. Decoding (OpenCV and file reads release the GIL) then overlaps with inference.
    Closing the returned generator stops the thread at its next item."""
    handoff: "queue.Queue[Tuple[int, Any]]" = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(entry: Tuple[int, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((0, item)):
                    return
            put((1, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((2, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # releases what the source holds (an open video) in its own thread

    worker = threading.Thread(target=produce, name="openyolox-decode", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == 1:
                return
            if kind == 2:
                raise value
            yield value
    finally:
        stop.set()


def warn_skipped(name: str, exc: Exception) -> None:
    warnings.warn(f"skipping {name}: {exc}", stacklevel=3)
