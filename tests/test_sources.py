"""Inputs to predict (openyolox.inference.sources): URLs from a local HTTP server (good, 404,
HTML, hung), an MJPEG stream over HTTP (frames, reconnect, end), a stream that cannot be
opened, glob patterns, .txt lists, standard input, and decoding ahead in a thread."""
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import warnings

import cv2
import numpy as np
import pytest

from openyolox.errors import DataError
from openyolox.inference import sources
from openyolox.inference.sources import (check_source, iter_images, iter_video, prefetch, read_url, split_jpegs)


def _jpeg(value, h=48, w=64):
    return cv2.imencode(".jpg", np.full((h, w, 3), value, np.uint8))[1].tobytes()


class _Handler(http.server.BaseHTTPRequestHandler):
    """/img.jpg and /photo: a JPEG; /page: HTML; /cam: MJPEG, 3 frames per connection, for the
    first server.stream_connections connections, then 503."""

    def do_GET(self):
        server = self.server
        if self.path in ("/img.jpg", "/photo"):
            self._send(200, "image/jpeg", _jpeg(200))
        elif self.path == "/page":
            self._send(200, "text/html", b"<html>login</html>")
        elif self.path == "/cam":
            server.connections += 1
            if server.connections > server.stream_connections:
                return self._send(503, "text/plain", b"gone")
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for k in range(3):
                frame = _jpeg(40 * k, 120, 160)
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(frame)
                                 + frame + b"\r\n")
        else:
            self._send(404, "text/plain", b"no")

    def _send(self, code, kind, body):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that stops reading a stream early is expected here


@pytest.fixture
def server():
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.connections, srv.stream_connections = 0, 2
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def hung_url():
    """A server that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/img.jpg"
    sock.close()


# ----------------------------------------------------------------------------- URLs


def test_image_urls_are_downloaded_and_named(server):
    base, _ = server
    assert read_url(f"{base}/img.jpg").shape == (48, 64, 3)
    names = [name for name, _ in iter_images([f"{base}/img.jpg", f"{base}/photo"])]
    assert names == ["img", "photo"]  # /photo has no suffix: the server's content type decides


def test_url_errors_are_one_line_naming_the_url(server, hung_url):
    base, _ = server
    with pytest.raises(DataError, match=r"/missing.jpg: HTTP 404") as err:
        read_url(f"{base}/missing.jpg")
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match=r"/page: not an image \(the server sent text/html"):
        list(iter_images(f"{base}/page.jpg".replace("/page.jpg", "/page")))
    t0 = time.monotonic()
    with pytest.raises(DataError, match=r"img.jpg: no answer within 0.5 s"):
        read_url(hung_url, timeout=0.5)
    assert time.monotonic() - t0 < 5


def test_hung_url_in_the_cli_is_one_line(hung_url, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "openyolox", "predict", hung_url, "--model", "yolox-nano",
                           "--weights", "none", "--imgsz", "64", "--backend", "torch", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OPENYOLOX_URL_TIMEOUT": "1", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and "no answer within 1 s" in lines[0] and hung_url in lines[0], proc.stderr


# ----------------------------------------------------------------------------- streams


def test_mjpeg_stream_reconnects_then_says_it_ended(server):
    base, srv = server
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = []
        with pytest.raises(DataError, match=r"/cam: the stream ended after 6 frames; reopening it failed 2 time"):
            for name, frame in iter_video(f"{base}/cam", reconnects=2, delay=0):
                frames.append((name, frame))
    assert [n for n, _ in frames] == [f"cam_{k:06d}" for k in range(6)]  # 3 + 3 after reconnecting
    assert [int(f.mean() + 0.5) for _, f in frames] == [0, 40, 80, 0, 40, 80]
    assert srv.connections == 4  # two streams, then two refused reopens
    # (1/2) after the first stream; after the second: (1/2) again (a frame came in between), (2/2)
    assert [str(w.message)[-5:] for w in caught if "reconnecting" in str(w.message)] == ["(1/2)", "(1/2)", "(2/2)"]


def test_stream_limit_and_detection_by_content_type(server):
    base, srv = server
    assert sources.is_stream(f"{base}/cam") and not sources.is_stream(f"{base}/photo")
    assert sources.is_stream("rtsp://camera.local/live") and sources.is_video(f"{base}/cam")
    assert len(list(iter_images(f"{base}/cam", limit=2))) == 2
    assert srv.connections == 2  # the server was asked what /cam is once, then streamed once


def test_stream_that_cannot_be_opened(monkeypatch):
    monkeypatch.setenv("OPENYOLOX_URL_TIMEOUT", "2")
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=rf"rtsp://127.0.0.1:{port}/live: cannot open stream"):
        list(iter_images(f"rtsp://127.0.0.1:{port}/live"))


def test_stream_from_a_video_file(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for k in range(5):
        writer.write(np.full((48, 64, 3), 50 * k, np.uint8))
    writer.release()
    names = [n for n, _ in iter_images(str(path))]
    assert names == [f"clip_{k:06d}" for k in range(5)]  # a file ends without an error


# ----------------------------------------------------------------------------- patterns, lists, stdin


@pytest.fixture
def image_dir(tmp_path):
    for sub, name in (("a", "x.jpg"), ("a", "y.png"), ("b", "z.jpg")):
        (tmp_path / sub).mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / sub / name), np.full((20, 30, 3), 90, np.uint8))
    (tmp_path / "a" / "notes.md").write_text("not an image")
    (tmp_path / "b" / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    return tmp_path


def test_glob_patterns(image_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = [(n, isinstance(im, DataError)) for n, im in iter_images(str(image_dir / "**" / "*.*"))]
    assert got == [("x", False), ("y", False), ("bad", True), ("z", False)]  # sorted; bad passed on
    with pytest.raises(DataError, match="matches no image"):
        list(iter_images(str(image_dir / "*.gif")))
    with pytest.raises(DataError, match="matches no image"):
        check_source(str(image_dir / "*.gif"))
    check_source(str(image_dir / "a" / "*.jpg"))


def test_txt_list_relative_to_the_list_file(image_dir, server, monkeypatch):
    base, _ = server
    (image_dir / "lists").mkdir()
    listing = image_dir / "lists" / "todo.txt"
    listing.write_text(f"# what to run\n../a/x.jpg\n\n{image_dir / 'b' / 'z.jpg'}\n../a/gone.jpg\n{base}/img.jpg\n"
                       f"{base}/missing.jpg\n")
    monkeypatch.chdir(image_dir / "b")  # not where the list is
    got = [(n, type(im).__name__) for n, im in iter_images(str(listing))]
    assert got == [("x", "ndarray"), ("z", "ndarray"), ("gone", "DataError"), ("img", "ndarray"),
                   ("missing", "DataError")]


def test_stdin_concatenated_jpegs_one_png_or_a_list(image_dir):
    # a JPEG whose EXIF block holds a thumbnail (an FF D8 ... FF D9 inside the first image)
    thumb = _jpeg(10, 8, 8)
    exif = b"Exif\x00\x00" + thumb
    first = _jpeg(50)
    first = first[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + first[2:]
    stream = first + _jpeg(100) + b"\r\n" + _jpeg(150)
    got = list(sources._iter_stdin(io.BytesIO(stream)))
    assert [n for n, _ in got] == ["stdin_000000", "stdin_000001", "stdin_000002"]
    assert [int(im.mean() + 0.5) for _, im in got] == [50, 100, 150]
    png = cv2.imencode(".png", np.full((10, 12, 3), 7, np.uint8))[1].tobytes()
    ((name, im),) = list(sources._iter_stdin(io.BytesIO(png)))
    assert name == "stdin_000000" and im.shape == (10, 12, 3)
    paths = f"{image_dir / 'a' / 'x.jpg'}\n{image_dir / 'b' / 'z.jpg'}\n".encode()
    assert [n for n, _ in sources._iter_stdin(io.BytesIO(paths))] == ["x", "z"]
    with pytest.raises(DataError, match="ended inside a JPEG"):
        list(sources._iter_stdin(io.BytesIO(_jpeg(1) + _jpeg(2)[:200])))
    with pytest.raises(DataError, match="empty"):
        list(sources._iter_stdin(io.BytesIO(b"")))


def test_split_jpegs_reads_a_pipe_a_little_at_a_time():
    images = [_jpeg(k * 30, 200, 300) for k in range(4)]
    data = b"".join(images)
    offset = [0]

    def read(n):  # a pipe gives a few bytes per read, whatever was asked
        chunk = data[offset[0]:offset[0] + min(n, 777)]
        offset[0] += len(chunk)
        return chunk

    assert list(split_jpegs(read(100), read)) == images


def test_stdin_in_the_cli(image_dir, tmp_path):
    stream = open(image_dir / "a" / "x.jpg", "rb").read() * 2
    proc = subprocess.run([sys.executable, "-m", "openyolox", "predict", "-", "--model", "yolox-nano", "--weights",
                           "none", "--imgsz", "64", "--out", str(tmp_path / "out")], input=stream,
                          capture_output=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr.decode()
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == ["stdin_000000.jpg", "stdin_000001.jpg"]
    assert json.loads((tmp_path / "out" / "predictions.json").read_text()) == []


# ----------------------------------------------------------------------------- decoding ahead


def test_prefetch_keeps_order_runs_ahead_and_raises_in_place():
    produced = []

    def items():
        for k in range(10):
            produced.append(k)
            yield k
        raise DataError("source broke")

    got = []
    it = prefetch(items(), depth=2)
    got.append(next(it))
    time.sleep(0.3)
    assert len(produced) == 4  # the one taken, two waiting in the queue, one ready to be put
    with pytest.raises(DataError, match="source broke"):
        for k in it:
            got.append(k)
    assert got == list(range(10))


def test_prefetch_stops_its_thread_when_closed():
    closed = threading.Event()

    def items():
        try:
            k = 0
            while True:
                yield k
                k += 1
        finally:
            closed.set()

    it = prefetch(items(), depth=3)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()
    assert closed.wait(2)  # the source was closed in the producer thread (an open video released)
