"""Published weights by name (openyolox.hub) against a local HTTP server.

Nothing here reaches the internet: every test runs with OPENYOLOX_WEIGHTS_URL pointing at a
server on 127.0.0.1 (or at a dead local port), and OPENYOLOX_HOME in a temp folder.
"""
import collections
import http.server
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from openyolox import hub
from openyolox.checkpoint import load_weights
from openyolox.errors import ConfigError, OpenYoloxError, WeightsUnavailableError
from openyolox.models.yolox import create_model

REPO = Path(__file__).resolve().parents[1]
NANO = "yolox_nano.pth"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Reference-format checkpoints with random weights: {"nano": bytes, "tiny": bytes}."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    out = {}
    for name in ("nano", "tiny"):
        path = folder / f"{name}.pth"
        torch.save({"model": create_model(f"yolox-{name}").state_dict()}, path)
        out[name] = path.read_bytes()
    return out


@pytest.fixture(autouse=True)
def hub_env(monkeypatch, tmp_path):
    """A private cache, no proxies, and a dead default mirror: a test that forgets to point
    the hub at its server fails fast instead of trying GitHub."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                "XDG_CACHE_HOME", hub.ENV_TIMEOUT):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv(hub.ENV_HOME, str(tmp_path / "home"))
    monkeypatch.setenv(hub.ENV_URL, f"http://127.0.0.1:{_closed_port()}/dead")
    return tmp_path / "home" / "weights"


class _State:
    """What the server serves (path -> behaviour) and what it saw."""

    def __init__(self):
        self.routes = {}
        self.gets = collections.Counter()
        self.release = threading.Event()   # lets a "gated" transfer finish
        self.stop = threading.Event()      # ends a "hang" at teardown


def _handler(state):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            state.gets[self.path] += 1
            kind, data = state.routes.get(self.path, ("404", b""))
            if kind == "404":
                self.send_error(404, "Not Found")
            elif kind == "hang":                      # accept, never answer
                state.stop.wait(30)
            elif kind == "html":
                self._head(200, len(data), "text/html; charset=utf-8")
                self.wfile.write(data)
            elif kind == "file":
                self._head(200, len(data))
                self.wfile.write(data)
            elif kind == "truncate":                  # announces the full length, sends half, closes
                self._head(200, len(data))
                self.wfile.write(data[: len(data) // 2])
            elif kind == "drop":                      # sends part, then resets the connection
                self._head(200, len(data))
                self.wfile.write(data[: len(data) // 3])
                self.wfile.flush()
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            elif kind == "gated":                     # half now, the rest once released
                self._head(200, len(data))
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                state.release.wait(30)
                self.wfile.write(data[len(data) // 2:])

        def _head(self, code, length, ctype="application/octet-stream"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(length))
            self.end_headers()

    return Handler


@pytest.fixture
def server(monkeypatch):
    """A threaded HTTP server on 127.0.0.1; the hub's mirror points at it."""
    state = _State()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.handle_error = lambda request, address: None   # the "drop" route breaks its own socket
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv(hub.ENV_URL, state.url + "/")
    yield state
    state.stop.set()
    state.release.set()
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cache_files(weights_dir: Path) -> set:
    """What the cache holds besides lock files (which stay by design)."""
    if not weights_dir.exists():
        return set()
    return {p.name for p in weights_dir.iterdir() if not p.name.endswith(".lock")}


def _fails(name="yolox-nano", **kwargs) -> str:
    """Run weights_path, expect the one-line user error, return its message."""
    with pytest.raises(WeightsUnavailableError) as info:
        hub.weights_path(name, progress=False, **kwargs)
    exc = info.value
    message = str(exc)
    assert isinstance(exc, OpenYoloxError)
    assert "\n" not in message
    assert exc.__cause__ is None and exc.__suppress_context__   # no chained traceback
    return message


def _assert_manual_fix(message: str, weights_dir: Path, filename=NANO):
    """The message gives the manual command: the release URL and the path to save to."""
    assert f"curl -L -o {weights_dir / filename} {hub.RELEASE_URL}/{filename}" in message
    assert hub.ENV_URL in message


# ----------------------------------------------------------------------------- names and layout


def test_published_names_and_urls(monkeypatch):
    for name in ("yolox-s", "yolox_s", "S", "s", "yolov3", "yolox-darknet53", "darknet53", "yolox-nano"):
        assert hub.is_published_name(name), name
    for name in ("yolox-q", "yolox_s.pth", "weights/best.pth", "", None, 3):
        assert not hub.is_published_name(name), name
    assert hub.release_filename("yolov3") == "yolox_darknet.pth"
    assert hub.release_filename("yolox_tiny") == "yolox_tiny.pth"
    with pytest.raises(ConfigError):
        hub.weights_path("yolox-q")

    monkeypatch.delenv(hub.ENV_URL)
    assert hub.source_url("s") == ("https://github.com/Megvii-BaseDetection/YOLOX/releases/download/"
                                   "0.1.1rc0/yolox_s.pth")
    monkeypatch.setenv(hub.ENV_URL, "https://mirror.example/yolox/")
    assert hub.source_url("yolox-m") == "https://mirror.example/yolox/yolox_m.pth"
    monkeypatch.setenv(hub.ENV_URL, "/srv/weights")
    assert hub.source_url("yolox-x") == "file:///srv/weights/yolox_x.pth"


def test_cache_dir_precedence(monkeypatch, tmp_path):
    assert hub.cache_dir() == tmp_path / "home"                      # OPENYOLOX_HOME wins
    assert hub.weights_dir() == tmp_path / "home" / "weights"
    monkeypatch.delenv(hub.ENV_HOME)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_dir() == tmp_path / "xdg" / "openyolox"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    if os.name != "nt":
        assert hub.cache_dir() == tmp_path / "user" / ".cache" / "openyolox"


# ----------------------------------------------------------------------------- downloads


def test_good_download_layout_and_cheap_reuse(server, checkpoints, hub_env, monkeypatch):
    server.routes["/" + NANO] = ("file", checkpoints["nano"])
    path = hub.weights_path("yolox-nano", progress=False)
    assert path == hub_env / NANO
    assert path.read_bytes() == checkpoints["nano"]
    assert _cache_files(hub_env) == {NANO, NANO + ".json"}
    record = json.loads((hub_env / (NANO + ".json")).read_text())
    assert record["size"] == len(checkpoints["nano"])
    assert record["sha256"] == hub._sha256_file(path)
    assert record["url"] == f"{server.url}/{NANO}"
    assert record["model"] == "yolox-nano" and record["loads_strict"] is True
    load_weights(create_model("yolox-nano"), path, strict=True)

    # Later uses, by any alias: no second GET, no hashing, no load check.
    def forbidden(*args):
        raise AssertionError("a verified cached file was checked again")

    monkeypatch.setattr(hub, "_sha256_file", forbidden)
    monkeypatch.setattr(hub, "_load_problem", forbidden)
    assert hub.weights_path("nano") == hub.weights_path("yolox_nano") == path
    assert server.gets["/" + NANO] == 1


def test_truncated_transfer(server, checkpoints, hub_env):
    server.routes["/" + NANO] = ("truncate", checkpoints["nano"])
    message = _fails()
    size = len(checkpoints["nano"])
    assert f"tried {server.url}/{NANO}" in message
    assert f"truncated: {size // 2} of {size} bytes" in message
    _assert_manual_fix(message, hub_env)
    assert _cache_files(hub_env) == set()


def test_http_404(server, hub_env):
    message = _fails()
    assert message.startswith(f"cannot download {NANO} (tried {server.url}/{NANO}: HTTP 404")
    _assert_manual_fix(message, hub_env)
    assert _cache_files(hub_env) == set()


def test_html_page_instead_of_checkpoint(server, hub_env):
    page = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>" + b" " * 4096
    server.routes["/" + NANO] = ("html", page)
    message = _fails()
    assert "HTML page" in message and "text/html" in message
    assert f"{server.url}/{NANO} is not a usable yolox-nano checkpoint" in message
    assert "deleted the download" in message
    _assert_manual_fix(message, hub_env)
    assert _cache_files(hub_env) == set()


def test_checkpoint_of_another_model(server, checkpoints, hub_env):
    server.routes["/" + NANO] = ("file", checkpoints["tiny"])   # tiny served as nano
    message = _fails()
    assert "is not a usable yolox-nano checkpoint" in message
    assert "its tensors do not fit yolox-nano: " in message and "another model" in message
    assert _cache_files(hub_env) == set()


def test_connection_dropped_mid_transfer(server, checkpoints, hub_env):
    server.routes["/" + NANO] = ("drop", checkpoints["nano"])
    message = _fails()
    # A reset reads as an error or, when the data was already buffered, as a short body.
    assert "connection dropped" in message or "truncated" in message
    assert f"tried {server.url}/{NANO}" in message
    assert _cache_files(hub_env) == set()


def test_server_that_never_answers(server, hub_env):
    server.routes["/" + NANO] = ("hang", b"")
    start = time.monotonic()
    message = _fails(timeout=1)
    assert time.monotonic() - start < 10
    assert "no data for 1 s before the first byte" in message
    assert _cache_files(hub_env) == set()


def test_no_network_is_one_line(hub_env):
    # The autouse fixture points at a closed local port: what "offline" looks like.
    message = _fails("yolox-s")
    assert "cannot download yolox_s.pth (tried http://127.0.0.1:" in message
    assert "refused" in message.lower()
    _assert_manual_fix(message, hub_env, "yolox_s.pth")


def test_interrupt_leaves_no_part_file(server, checkpoints, hub_env, monkeypatch):
    server.routes["/" + NANO] = ("file", checkpoints["nano"])

    class Interrupting:
        def update(self, n):
            raise KeyboardInterrupt

    @contextmanager
    def bar(*args):
        yield Interrupting()

    monkeypatch.setattr(hub, "_progress_bar", bar)
    with pytest.raises(KeyboardInterrupt):
        hub.weights_path("yolox-nano", progress=False)
    assert _cache_files(hub_env) == set()


def test_stale_part_of_a_killed_process_is_removed(server, checkpoints, hub_env):
    hub_env.mkdir(parents=True)
    (hub_env / (NANO + ".part-999999")).write_bytes(b"half a file")
    server.routes["/" + NANO] = ("file", checkpoints["nano"])
    hub.weights_path("yolox-nano", progress=False)
    assert _cache_files(hub_env) == {NANO, NANO + ".json"}


# ----------------------------------------------------------------------------- mirrors


def test_folder_and_file_url_mirrors(checkpoints, hub_env, monkeypatch, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / NANO).write_bytes(checkpoints["nano"])
    monkeypatch.setenv(hub.ENV_URL, str(mirror))
    assert hub.weights_path("yolox-nano", progress=False).read_bytes() == checkpoints["nano"]

    (hub_env / NANO).unlink()
    monkeypatch.setenv(hub.ENV_URL, mirror.as_uri())
    assert hub.weights_path("yolox-nano", progress=False).read_bytes() == checkpoints["nano"]

    message = _fails("yolox-tiny")                       # not in the mirror
    assert f"tried {mirror.as_uri()}/yolox_tiny.pth" in message
    assert "No such file" in message
    assert _cache_files(hub_env) == {NANO, NANO + ".json"}


# ----------------------------------------------------------------------------- a damaged cache


def _download_nano(server, checkpoints) -> Path:
    server.routes["/" + NANO] = ("file", checkpoints["nano"])
    return hub.weights_path("yolox-nano", progress=False)


def test_cached_file_overwritten_is_redownloaded(server, checkpoints, hub_env, capsys):
    path = _download_nano(server, checkpoints)
    with open(path, "r+b") as fh:                        # same size, other bytes, new mtime
        fh.seek(1000)
        fh.write(b"\0" * 64)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert hub.weights_path("yolox-nano", progress=False).read_bytes() == checkpoints["nano"]
    assert server.gets["/" + NANO] == 2
    err = capsys.readouterr().err
    assert "unusable (sha256" in err and "downloading it again" in err


def test_hash_policy_trusts_unchanged_stat_until_rehash(server, checkpoints, hub_env):
    """Size and mtime unchanged: trusted without hashing; rehash=True catches the damage."""
    path = _download_nano(server, checkpoints)
    stat = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\0" * 64)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    hub.weights_path("yolox-nano", progress=False)
    assert server.gets["/" + NANO] == 1
    hub.weights_path("yolox-nano", progress=False, rehash=True)
    assert server.gets["/" + NANO] == 2
    assert path.read_bytes() == checkpoints["nano"]


def test_truncated_cache_offline_says_what_happened(server, checkpoints, hub_env, monkeypatch):
    path = _download_nano(server, checkpoints)
    with open(path, "r+b") as fh:
        fh.truncate(1000)
    monkeypatch.setenv(hub.ENV_URL, f"http://127.0.0.1:{_closed_port()}/")
    message = _fails()
    assert message.startswith(f"the cached {NANO} was unusable (1000 bytes where "
                              f"{len(checkpoints['nano'])} were recorded")
    assert "was deleted; cannot download" in message
    assert _cache_files(hub_env) == set()


def test_file_saved_by_hand_is_verified_once(checkpoints, hub_env, server):
    hub_env.mkdir(parents=True)
    (hub_env / NANO).write_bytes(checkpoints["nano"])    # as the manual curl command would
    assert hub.weights_path("yolox-nano", progress=False) == hub_env / NANO
    assert server.gets["/" + NANO] == 0
    assert json.loads((hub_env / (NANO + ".json")).read_text())["url"] is None

    (hub_env / "yolox_tiny.pth").write_bytes(b"<html>proxy login</html>")   # a bad manual save
    server.routes["/yolox_tiny.pth"] = ("file", checkpoints["tiny"])
    assert hub.weights_path("yolox-tiny", progress=False).read_bytes() == checkpoints["tiny"]
    assert server.gets["/yolox_tiny.pth"] == 1


# ----------------------------------------------------------------------------- concurrency


def test_two_processes_download_once(server, checkpoints, hub_env):
    """Two processes ask at once: one downloads (held mid-transfer until the other reports
    that it is waiting), both get the verified file, the server sees one GET."""
    server.routes["/" + NANO] = ("gated", checkpoints["nano"])
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    code = "from openyolox import hub; print(hub.weights_path('yolox-nano', progress=True))"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [[] for _ in procs]

    def watch(proc, lines):
        for line in proc.stderr:
            lines.append(line)
            if "waiting for another process" in line:
                server.release.set()

    watchers = [threading.Thread(target=watch, args=(p, e), daemon=True) for p, e in zip(procs, errs)]
    for w in watchers:
        w.start()
    try:
        # Not communicate(): it would read stderr too, racing the watchers for the "waiting" line.
        for p in procs:
            p.wait(timeout=60)
        for w in watchers:
            w.join(5)
        outs = [p.stdout.read() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
    assert [p.returncode for p in procs] == [0, 0], errs
    assert [o.strip() for o in outs] == [str(hub_env / NANO)] * 2
    assert server.gets["/" + NANO] == 1
    assert sum("waiting for another process" in "".join(e) for e in errs) == 1
    assert (hub_env / NANO).read_bytes() == checkpoints["nano"]
    assert _cache_files(hub_env) == {NANO, NANO + ".json"}


# ----------------------------------------------------------------------------- resolve_weights


def test_resolve_weights_rules(server, checkpoints, hub_env, tmp_path):
    server.routes["/" + NANO] = ("file", checkpoints["nano"])
    cached = hub_env / NANO
    assert hub.resolve_weights("yolox-nano", None, progress=False) == cached     # default: published
    assert hub.resolve_weights("yolox-nano", None, fetch_if_none=False) is None   # train from scratch
    assert hub.resolve_weights("run/best.pth", None) is None                      # caller's business
    assert hub.resolve_weights("yolox-nano", "none") is None
    assert hub.resolve_weights("yolox-nano", "None") is None
    assert hub.resolve_weights("yolox-nano", "nano", progress=False) == cached   # by name
    assert hub.resolve_weights(None, "yolox_nano", progress=False) == cached
    local = tmp_path / "mine.pth"
    local.write_bytes(checkpoints["nano"])
    assert hub.resolve_weights("yolox-nano", str(local)) == local                  # a path
    assert hub.resolve_weights("yolox-nano", local) == local
    assert server.gets["/" + NANO] == 1

    with pytest.raises(ConfigError, match="published weights of yolox-s, but the model is yolox-m"):
        hub.resolve_weights("yolox-m", "yolox-s")
    with pytest.raises(ConfigError, match=r"not found: yolox_s\.pth; .*--weights yolox-s"):
        hub.resolve_weights("yolox-s", "yolox_s.pth")
    with pytest.raises(ConfigError, match="not found: yolox-q; published weights are named"):
        hub.resolve_weights("yolox-s", "yolox-q")
    with pytest.raises(ConfigError, match="not found: runs/x/best.pth$"):
        hub.resolve_weights("yolox-s", "runs/x/best.pth")
