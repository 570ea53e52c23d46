"""Published YOLOX weights by name: fetched once, verified, cached.

``weights_path("yolox-s")`` returns a local copy of the reference release file
``yolox_s.pth``, downloading it on first use. See docs/weights.md for the user's view.

How the cache stays trustworthy:

- A download goes to ``<name>.part-<pid>`` in the cache folder and is renamed into place only
  after it is complete, looks like a checkpoint, and loads strictly into the named network. A
  failure on any path (network error, bad content, Ctrl-C) deletes the part file.
- Beside each file, ``<name>.json`` records its size, sha256, mtime, source URL and date. Later
  uses compare size and mtime against it (a ``stat``, no hashing); only when the mtime moved is
  the file hashed again. Hashing yolox_x.pth (~760 MB) on every start of every torchrun rank
  would cost seconds for nothing: the file only changes if something writes it, which moves the
  mtime. ``rehash=True`` forces the full check.
- A cached file that fails these checks is deleted and downloaded again, once: the source was
  fine before, so the damage is local. A *fresh* download that fails is deleted and reported,
  never retried in a loop: a server that sends HTML or the wrong model will do it again, and a
  retry of 800 MB is the user's call.
- One download per file across processes (the ranks of a torchrun job): the downloader holds
  an exclusive lock on ``<name>.lock`` (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows);
  the others wait, then find the verified file. Where the filesystem cannot lock, each process
  downloads to its own part file and the atomic rename still leaves one good file.
"""
from __future__ import annotations

import glob
import hashlib
import http.client
import json
import os
import shlex
import socket
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional
from urllib.parse import urlparse

from openyolox.atomic import write_text_atomic
from openyolox.cache import ENV_HOME, cache_dir
from openyolox.config import PRESETS, canonical_name
from openyolox.errors import CheckpointError, ConfigError, WeightsUnavailableError
from openyolox.typing import PathLike

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import msvcrt
except ImportError:  # POSIX
    msvcrt = None

RELEASE_URL = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0"
RELEASE_FILES: Dict[str, str] = {
    "yolox-nano": "yolox_nano.pth",
    "yolox-tiny": "yolox_tiny.pth",
    "yolox-s": "yolox_s.pth",
    "yolox-m": "yolox_m.pth",
    "yolox-l": "yolox_l.pth",
    "yolox-x": "yolox_x.pth",
    "yolox-darknet53": "yolox_darknet.pth",
}
assert set(RELEASE_FILES) == set(PRESETS), "every preset has published weights"

ENV_URL = "OPENYOLOX_WEIGHTS_URL"
ENV_TIMEOUT = "OPENYOLOX_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0

_CHUNK = 1 << 20      # hashing cached files
_NET_CHUNK = 1 << 16  # network reads: a progress bar that moves, an exact count when a transfer breaks
_MISSING = "missing"
_URL_SCHEMES = ("http", "https", "file", "ftp")


# ----------------------------------------------------------------------------- names and places


def weights_dir() -> Path:
    """Where published weights are cached: ``cache_dir() / "weights"``."""
    return cache_dir() / "weights"


def is_published_name(name: object) -> bool:
    """True for a model name or alias with published weights ("yolox-s", "yolox_s", "s",
    "yolov3", ...); False for anything else, paths included."""
    if not isinstance(name, str) or not name:
        return False
    try:
        return canonical_name(name) in RELEASE_FILES
    except ConfigError:
        return False


def release_filename(name: str) -> str:
    """The reference release file of a model: ``yolox_s.pth``, ``yolox_darknet.pth``, ..."""
    return RELEASE_FILES[canonical_name(name)]


def source_url(name: str) -> str:
    """The URL a download of ``name`` tries: the reference release, or the mirror that
    ``$OPENYOLOX_WEIGHTS_URL`` names (a base URL, or a plain folder path)."""
    filename = release_filename(name)
    base = os.environ.get(ENV_URL, "").strip()
    if not base:
        return f"{RELEASE_URL}/{filename}"
    # "C:\mirror" parses with scheme "c": only real URL schemes count as URLs
    if urlparse(base).scheme.lower() in _URL_SCHEMES:
        return f"{base.rstrip('/')}/{filename}"
    return (Path(base).expanduser().resolve() / filename).as_uri()


# ----------------------------------------------------------------------------- public entry points


def weights_path(name: str, progress: bool = True, timeout: Optional[float] = None,
                 rehash: bool = False) -> Path:
    """The local file of ``name``'s published weights, downloaded and verified on first use.

    name: a model name or alias (ConfigError for an unknown one).
    progress: show the download (a bar on a terminal, two lines otherwise) and waits for
      another process's download; warnings about a damaged cache are shown regardless.
    timeout: seconds without data before giving up (default ``$OPENYOLOX_DOWNLOAD_TIMEOUT``
      or 30).
    rehash: hash the cached file even if its size and mtime match the record.
    Raises WeightsUnavailableError (a one-line message) when no verified file can be had.
    """
    model = canonical_name(name)
    seconds = _timeout(timeout)  # a bad env value fails now, not after a wait for the lock
    target = weights_dir() / RELEASE_FILES[model]
    if _cache_problem(model, target, rehash) is None:
        return target  # the common case: no lock, no hashing
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsUnavailableError(
            f"cannot create the weights cache {target.parent} ({exc.strerror or exc}); "
            f"set {ENV_HOME} to a writable folder") from None
    say = _notice if progress else (lambda message: None)
    lock = target.with_name(target.name + ".lock")
    with _exclusive_lock(lock, on_wait=lambda: say(f"waiting for another process to download {target.name}")
                         ) as exclusive:
        problem = _cache_problem(model, target, rehash)  # the process we waited for may have fetched it
        if problem is None:
            return target
        damaged = None
        if problem != _MISSING:
            damaged = problem
            _remove(target)
            _remove(_record_path(target))
            _notice(f"warning: the cached {target} is unusable ({problem}); deleted it, downloading it again")
        if exclusive:
            # Only a lock holder writes part files, so any left are from a killed process.
            for stale in target.parent.glob(glob.escape(target.name) + ".part-*"):
                _remove(stale)
        _download(model, target, progress, seconds, damaged)
    return target


def resolve_weights(model: Optional[str], weights: Optional[PathLike], *, fetch_if_none: bool = True,
                    progress: bool = True, timeout: Optional[float] = None) -> Optional[Path]:
    """Which checkpoint to load, by the rules every entry point (Detector, predict, val,
    export, train) shares. Returns a file, or None for random initialisation.

    - ``weights`` None: the published weights of ``model`` when ``model`` is a model name and
      ``fetch_if_none`` (train passes False: no --weights means training from scratch);
      otherwise None (``model`` may be a checkpoint or exported file; the caller handles that).
    - ``weights`` "none" (any case): None, random weights on purpose.
    - ``weights`` an existing file: that file (a local file wins over a name it happens to equal).
    - ``weights`` a published name ("yolox-s", "s", "yolov3", ...): its published file, fetched
      on first use. With ``model`` given too, both must name the same network (ConfigError).
    - anything else: ConfigError "weights file not found", with a hint when it looks like a
      release file name or a misspelt model name.
    """
    if weights is None:
        if fetch_if_none and is_published_name(model):
            return weights_path(model, progress=progress, timeout=timeout)
        return None
    text = os.fspath(weights)
    if text.strip().lower() == "none":
        return None
    if Path(text).expanduser().is_file():
        return Path(text).expanduser()
    if is_published_name(text):
        wanted = canonical_name(text)
        if is_published_name(model) and canonical_name(model) != wanted:
            # Other sizes never load (not even non-strictly): say so now, not after a download.
            raise ConfigError(f"--weights {text} are the published weights of {wanted}, but the model is "
                              f"{canonical_name(model)}; use --weights {canonical_name(model)}")
        return weights_path(wanted, progress=progress, timeout=timeout)
    hint = ""
    by_file = {v: k for k, v in RELEASE_FILES.items()}
    if Path(text).name in by_file:
        hint = f"; to download the published file, pass its model name: --weights {by_file[Path(text).name]}"
    elif not any(sep in text for sep in ("/", "\\", ".")):
        hint = f"; published weights are named {', '.join(RELEASE_FILES)} (or 'none' for random weights)"
    raise ConfigError(f"weights file not found: {text}{hint}")


# ----------------------------------------------------------------------------- cache checks


def _record_path(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def _read_record(target: Path) -> Optional[dict]:
    """The integrity record of ``target``, or None when absent or unreadable (then the file
    is verified from scratch, which is always safe)."""
    try:
        record = json.loads(_record_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = (isinstance(record, dict) and isinstance(record.get("size"), int)
          and isinstance(record.get("mtime_ns"), int) and isinstance(record.get("sha256"), str)
          and record.get("loads_strict") is True)
    return record if ok else None


def _write_record(target: Path, record: dict, like: Path) -> None:
    """Write the record of ``target``, readable by whoever can read ``like`` (the weights
    file itself): the atomic writer's temp files are private, which would hide the record
    from the other users of a shared cache and make them re-verify on every use."""
    path = _record_path(target)
    try:
        write_text_atomic(path, json.dumps(record, indent=1) + "\n")
        os.chmod(path, like.stat().st_mode & 0o666)
    except OSError:
        pass  # a read-only cache: the file is simply verified again next time


def _cache_problem(model: str, target: Path, rehash: bool) -> Optional[str]:
    """None when ``target`` is a verified copy of ``model``'s weights; ``_MISSING`` when there
    is none; otherwise why the cached file cannot be used."""
    try:
        stat = target.stat()
    except FileNotFoundError:
        return _MISSING
    record = _read_record(target)
    if record is not None:
        if stat.st_size != record["size"]:
            return (f"{stat.st_size} bytes where {record['size']} were recorded at download: "
                    f"truncated or overwritten")
        if stat.st_mtime_ns == record["mtime_ns"] and not rehash:
            return None
        digest = _sha256_file(target)
        if digest != record["sha256"]:
            return f"sha256 {digest[:16]}... where {record['sha256'][:16]}... was recorded at download"
        # Same bytes under a new timestamp (copied, touched): store it so the next use is cheap.
        _write_record(target, dict(record, mtime_ns=stat.st_mtime_ns), like=target)
        return None
    # No record: saved by hand (the command our error message gives) or from an older version.
    # Verify it as fully as a download, once.
    problem = _load_problem(model, target)
    if problem is not None:
        return problem
    _write_record(target, _make_record(model, target, target.name, url=None, digest=_sha256_file(target)),
                  like=target)
    return None


def _load_problem(model: str, path: Path) -> Optional[str]:
    """Why ``path`` does not load strictly into ``model`` (80 classes), or None if it does.

    Loads non-strictly to count what differs: the same test as strict=True (it fails exactly
    when the report is not ok), but the message can then be a short summary instead of the
    key lists meant for fine-tuning users.
    """
    # Imported here so that `import openyolox.hub` (the CLI, a waiting rank) does not pay for torch.
    from openyolox.checkpoint import load_checkpoint, load_weights
    from openyolox.models.yolox import create_model

    try:
        report = load_weights(create_model(model), load_checkpoint(path), strict=False)
    except CheckpointError as exc:
        message = str(exc)
        prefix = f"{path}: "
        return _one_line(message[len(prefix):] if message.startswith(prefix) else message, limit=300)
    if report.ok:
        return None
    counts = [f"{len(keys)} {label}" for keys, label in ((report.missing, "missing"),
              (report.unexpected, "unexpected"), (report.mismatched, "of another shape")) if keys]
    return (f"its tensors do not fit {model}: {', '.join(counts)}; "
            f"is it a checkpoint of another model or class count?")


def _make_record(model: str, path: Path, filename: str, url: Optional[str], digest: str) -> dict:
    from openyolox.version import __version__

    stat = path.stat()  # of the part file before the rename: a rename keeps size and mtime
    return {"file": filename, "model": model, "url": url, "size": stat.st_size, "sha256": digest,
            "mtime_ns": stat.st_mtime_ns, "loads_strict": True,
            "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "openyolox": __version__}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- download


class _TransferFailed(Exception):
    """The bytes did not arrive (network, HTTP status, truncation); the source may be fine."""


class _NotACheckpoint(Exception):
    """Bytes arrived but are not ``model``'s checkpoint (HTML page, other model, garbage)."""


class _CacheWriteFailed(Exception):
    """The cache folder could not take the file (disk full, permissions)."""


def _download(model: str, target: Path, progress: bool, timeout: float, damaged: Optional[str]) -> None:
    """Fetch ``model``'s file to ``target`` through a part file; verify; rename. Caller holds the lock."""
    url = source_url(model)
    part = target.with_name(f"{target.name}.part-{os.getpid()}")
    before = (f"the cached {target.name} was unusable ({damaged}) and was deleted; " if damaged else "")
    try:
        if progress:
            _notice(f"downloading {url} to {target}")
        digest = _fetch(url, part, target.name, progress, timeout)
        problem = _load_problem(model, part)
        if problem is not None:
            raise _NotACheckpoint(problem)
        record = _make_record(model, part, target.name, url, digest)
        # Record first, then rename: a crash in between leaves a record without a file, which
        # reads as "missing"; never a file that a stale record would vouch for.
        _write_record(target, record, like=part)
        os.replace(part, target)
        if progress and not _stderr_is_tty():
            _notice(f"saved {target} ({record['size'] / 2**20:.1f} MiB, sha256 {digest[:16]}...)")
    except _TransferFailed as exc:
        raise WeightsUnavailableError(
            f"{before}cannot download {target.name} (tried {url}: {exc}); {_manual_fix(target)}") from None
    except _NotACheckpoint as exc:
        raise WeightsUnavailableError(
            f"{before}{url} is not a usable {model} checkpoint ({exc}); deleted the download; "
            f"{_manual_fix(target)}") from None
    except _CacheWriteFailed as exc:
        raise WeightsUnavailableError(
            f"{before}cannot save {target.name} in {target.parent} ({exc}); free some space or set "
            f"{ENV_HOME} to another folder") from None
    finally:
        _remove(part)  # gone already after a successful rename; deleted on every failure


def _fetch(url: str, part: Path, label: str, progress: bool, timeout: float) -> str:
    """Stream ``url`` into ``part`` (fsynced); return its sha256. Raises the three errors above."""
    request = urllib.request.Request(url, headers={"User-Agent": "openyolox"})
    received, total = 0, None
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            total = _content_length(response)
            content_type = response.headers.get("Content-Type", "") or ""
            head = b""
            with _open_part(part) as fh, _progress_bar(total, label, progress) as bar:
                while True:
                    chunk = response.read(_NET_CHUNK)
                    if not chunk:
                        break
                    if len(head) < 16:
                        # Look at the first bytes before taking 800 MB of a login page.
                        head += chunk[:16]
                        if len(head) >= 16:
                            _check_magic(head, content_type)
                    _write(fh, part, chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                _write(fh, part, b"", sync=True)
            if received == 0:
                raise _NotACheckpoint("the server sent an empty file")
            if len(head) < 16:
                _check_magic(head, content_type)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise _TransferFailed(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, socket.timeout):
            raise _TransferFailed(f"no answer within {timeout:g} s") from None
        raise _TransferFailed(_one_line(str(reason))) from None
    except socket.timeout:
        waited = f"after {_bytes(received, total)}" if received else "before the first byte"
        raise _TransferFailed(f"no data for {timeout:g} s {waited}") from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise _TransferFailed(f"the connection dropped after {_bytes(received, total)} "
                              f"({type(exc).__name__})") from None
    except OSError as exc:  # other socket-level failures (unreachable network, ...)
        raise _TransferFailed(_one_line(str(exc) or type(exc).__name__)) from None
    if total is not None and received < total:
        # http.client returns a short body without complaint when the peer closes early.
        raise _TransferFailed(f"the transfer was truncated: {_bytes(received, total)}")
    return digest.hexdigest()


def _check_magic(head: bytes, content_type: str) -> None:
    """torch.save writes a zip archive ("PK\\x03\\x04") or, in the legacy format, a pickle
    (protocol 2+: first byte 0x80). Anything else is not a checkpoint."""
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return
    shown = content_type or "none"
    if "html" in content_type.lower() or head.lstrip().startswith(b"<"):
        raise _NotACheckpoint(f"the server sent an HTML page (Content-Type {shown}), not a checkpoint: "
                              f"a login, proxy or error page?")
    raise _NotACheckpoint(f"it does not start like a PyTorch checkpoint (first bytes {head[:8]!r}, "
                          f"Content-Type {shown})")


@contextmanager
def _open_part(part: Path):
    try:
        fh = open(part, "wb")
    except OSError as exc:
        raise _CacheWriteFailed(exc.strerror or str(exc)) from None
    with fh:
        yield fh


def _write(fh, part: Path, data: bytes, sync: bool = False) -> None:
    try:
        fh.write(data)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise _CacheWriteFailed(exc.strerror or str(exc)) from None


def _content_length(response) -> Optional[int]:
    try:
        value = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


class _NoBar:
    def update(self, n: int) -> None:
        pass


@contextmanager
def _progress_bar(total: Optional[int], label: str, enabled: bool) -> Iterator:
    """A tqdm bar on an interactive stderr only: in a log file a bar is hundreds of lines of
    carriage returns, so there the start and end lines stand in for it."""
    if not (enabled and _stderr_is_tty()):
        yield _NoBar()
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
              mininterval=0.5, dynamic_ncols=True) as bar:
        yield bar


# ----------------------------------------------------------------------------- locking


@contextmanager
def _exclusive_lock(path: Path, on_wait: Callable[[], None]) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` across processes. Yields True when held, False when
    the filesystem cannot lock (some network mounts): callers then still work, without the
    one-download guarantee. The lock file stays: deleting it would race with a process that
    just opened it and would then lock an orphaned inode."""
    try:
        fh = open(path, "a+b")
    except OSError:
        yield False
        return
    held = False
    try:
        try:
            held = _lock(fh, blocking=False)
            if not held:
                on_wait()
                held = _lock(fh, blocking=True)
        except OSError:  # ENOLCK, EOPNOTSUPP: no locking here
            held = False
        yield held
    finally:
        if held:
            _unlock(fh)
        fh.close()


def _lock(fh, blocking: bool) -> bool:
    """Take the lock; False if another process holds it and ``blocking`` is off."""
    if fcntl is not None:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True
    if msvcrt is not None:
        # msvcrt has no blocking lock without a 10 s give-up, so poll.
        while True:
            fh.seek(0)
            try:
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not blocking:
                    return False
                time.sleep(0.2)
    raise OSError("no file locking on this platform")


def _unlock(fh) -> None:
    try:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        elif msvcrt is not None:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
    except OSError:
        pass  # closing the file releases it anyway


# ----------------------------------------------------------------------------- small helpers


def _timeout(timeout: Optional[float]) -> float:
    if timeout is not None:
        return float(timeout)
    value = os.environ.get(ENV_TIMEOUT, "").strip()
    if not value:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise ConfigError(f"{ENV_TIMEOUT}={value!r} is not a positive number of seconds")
    return seconds


def _manual_fix(target: Path) -> str:
    # The release URL, not the mirror: the manual route is for a machine that can reach it.
    url = f"{RELEASE_URL}/{target.name}"
    return (f"download it by hand: curl -L -o {shlex.quote(str(target))} {url} "
            f"(or set {ENV_URL} to a mirror URL or a folder that holds {target.name})")


def _bytes(received: int, total: Optional[int]) -> str:
    return f"{received} of {total} bytes" if total is not None else f"{received} bytes"


def _one_line(text: str, limit: int = 0) -> str:
    text = " ".join(text.split())
    return text if not limit or len(text) <= limit else text[:limit - 3] + "..."


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
