"""The automatic back-end: run a PyTorch model through the fastest installed CPU runtime.

``openyolox.Detector(..., backend="auto")`` (the default, and ``--backend auto`` on the
command line) calls :func:`select_backend`, which turns a model name + weights, a checkpoint
or a YOLOX module into an exported file for the runtime to use, exported once and cached:

- on a CPU, the first installed runtime of :data:`AUTO_ORDER` (ONNX Runtime, then OpenVINO:
  the order measured in docs/benchmarks.md, 4-5x faster than PyTorch eager for yolox-nano);
- on CUDA, PyTorch (fused; FP16 with ``half``): the exported graphs gain nothing there;
- ``backend="torch"`` (or ``"pytorch"``), ``"onnxruntime"``, ``"openvino"``, ``"ncnn"``,
  ``"torchscript"`` force one. A forced runtime that cannot be used is an error; ``auto``
  never is: when no runtime is installed or the export fails, it prints one warning line
  and runs PyTorch.

Every export is checked against PyTorch (openyolox.export.verify, the tolerance of
``openyolox export``) before it is cached; a file that fails the check is not used.

The cache lives in ``openyolox.hub.cache_dir() / "exports" / <key>/``, the key a sha256 over
the weights' content, the model name, the input size, the batch mode, the runtime, the class
names and the openyolox version, so any change of these exports again. Weights files are
hashed once and remembered by path, size and modification time (``exports/hashes/``): a
yolox-x checkpoint is ~800 MB. A model name without weights means its published weights
(fetched once by openyolox.hub, then keyed like any file). A YOLOX module passed in is keyed
by its state-dict bytes; random weights (``weights="none"``, different in every process) are
exported to a temporary folder that is removed once the runtime has loaded it. Entries are written into a
temporary folder and renamed into place, so a concurrent process sees a whole entry or
none, and a failed export leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from openyolox.errors import ConfigError

PathLike = Union[str, Path]

# the runtimes auto tries on a CPU, fastest first (docs/benchmarks.md, "Automatic back-end")
AUTO_ORDER = ("onnxruntime", "openvino")
# what --backend accepts
BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "ncnn", "torchscript")
RUNTIME_LABELS = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "ncnn": "ncnn",
                  "torchscript": "TorchScript", "pytorch": "PyTorch"}
# runtime -> (export format, the file or folder name inside a cache entry)
_FORMATS = {"onnxruntime": ("onnx", "model.onnx"), "openvino": ("openvino", "model_openvino"),
            "ncnn": ("ncnn", "model_ncnn"), "torchscript": ("torchscript", "model.torchscript")}
# runtime -> (the module it runs with, the modules exporting to it needs, the extra installing them)
_NEEDS = {"onnxruntime": ("onnxruntime", ("onnx",), "onnx"), "openvino": ("openvino", ("onnx",), "openvino"),
          "ncnn": ("ncnn", ("pnnx",), "ncnn"), "torchscript": (None, (), None)}
# the cache keeps the most recently used entries; older ones are removed after a new export
MAX_ENTRIES = 16
# an entry (or a temporary folder) younger than this is never removed: a process may be loading it
_GRACE_S = 3600.0
_ENTRY_INFO = "entry.json"


@dataclass
class BackendChoice:
    """What :func:`select_backend` decided: the model source to give the core Detector.

    model / weights: the arguments for openyolox.inference.predictor.Detector (an exported
    file and None, or the caller's own when PyTorch runs). runtime: the back-end that will
    run ("pytorch", "onnxruntime", ...). cached: the file came from the cache (no export this
    time). load_report: the checkpoint's load report (also for a cached file, so strict=False
    reports what it skipped). temporary: a folder to delete once the runtime has loaded the
    file (random weights are not cached)."""

    model: Any
    weights: Optional[PathLike]
    runtime: str
    cached: bool = False
    load_report: Any = None
    temporary: Optional[Path] = None

    def cleanup(self) -> None:
        """Remove the temporary export (call after the runtime has loaded it)."""
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)
            self.temporary = None


def exports_dir() -> Path:
    """Where automatic exports are cached: ``openyolox.hub.cache_dir() / "exports"``."""
    from openyolox.hub import cache_dir

    return cache_dir() / "exports"


def canonical_backend(backend: str) -> str:
    """'auto', 'torch', or a runtime name; 'pytorch' is accepted for 'torch'."""
    name = str(backend).lower()
    name = "torch" if name == "pytorch" else name
    if name not in BACKENDS:
        raise ConfigError(f"unknown back-end '{backend}'; choose one of: {', '.join(BACKENDS)}")
    return name


def missing_modules(runtime: str, export: bool = True) -> Optional[str]:
    """None when ``runtime`` can run here (and, with ``export``, be exported to), else why
    not (one line). A cached file needs the runtime only: importing onnx costs ~1 s.

    Imports the modules rather than looking them up: a package that is present but broken
    (or blocked, as the tests do with ``sys.modules[name] = None``) counts as missing."""
    runs_with, exports_with, extra = _NEEDS[runtime]
    for module in ([runs_with] if runs_with else []) + (list(exports_with) if export else []):
        try:
            importlib.import_module(module)
        except Exception as exc:  # ImportError, or a binary that fails to load
            return f"{module} is not installed ({type(exc).__name__}); pip install 'openyolox[{extra}]'"
    return None


def select_backend(model: Any, weights: Optional[PathLike] = None, backend: str = "auto", device: str = "cpu",
                   imgsz: Optional[Union[int, Sequence[int]]] = None, half: bool = False,
                   num_classes: Optional[int] = None, names: Optional[Sequence[str]] = None, strict: bool = True,
                   log: Callable[[str], None] = None) -> BackendChoice:
    """Decide which back-end runs ``model`` (see the module doc) and export it when needed.

    Prints (through ``log``, default: stderr) one line when it exports and one warning line
    when auto falls back to PyTorch. Raises ConfigError for a forced back-end that cannot be
    used."""
    from openyolox.inference.deployed import is_exported_model, resolve_exported

    log = log or _stderr
    choice = canonical_backend(backend)
    if is_exported_model(model) and weights is None:
        runtime = resolve_exported(model)[0]
        if choice not in ("auto", runtime):
            raise ConfigError(f"{model} is an exported {RUNTIME_LABELS[runtime]} file; backend '{backend}' needs a "
                              f"model name with weights or a checkpoint (or use backend='auto')")
        return BackendChoice(model, None, runtime)
    if choice == "torch":
        return BackendChoice(model, weights, "pytorch")
    on_cpu = str(device) == "cpu"
    if choice == "auto":
        if not on_cpu or half:  # CUDA: PyTorch fused (and FP16) is the fast path there
            return BackendChoice(model, weights, "pytorch")
        runtime, reasons = None, []
        for candidate in AUTO_ORDER:  # the first that imports: importing the others costs time
            why = missing_modules(candidate, export=False)
            if why is None:
                runtime = candidate
                break
            reasons.append(f"{RUNTIME_LABELS[candidate]}: {why}")
        if runtime is None:
            return _fallback(model, weights, log, f"no CPU runtime is installed ({'; '.join(reasons)})")
    else:
        runtime = choice
        why = missing_modules(runtime, export=False)
        if why is not None:
            raise ConfigError(f"backend '{runtime}': {why}")
        if half:
            raise ConfigError(f"half applies to the PyTorch back-end on CUDA; for FP16 {RUNTIME_LABELS[runtime]} "
                              f"files use `openyolox export --half`")
        if not on_cpu and runtime != "onnxruntime":
            raise ConfigError(f"the {RUNTIME_LABELS[runtime]} back-end runs on the CPU here, not {device}")
    label = RUNTIME_LABELS[runtime]
    try:
        return _export_cached(model, weights, runtime, imgsz, num_classes, names, strict, log)
    except (ExportFailed, OSError) as exc:  # user errors (a bad checkpoint, bad names) propagate as they are
        reason = f"exporting for {label} failed: {exc}" if isinstance(exc, ExportFailed) else \
            f"the export cache {exports_dir()} is not usable: {_one_line(exc)}"
        if choice != "auto":
            raise ConfigError(reason) from exc
        return _fallback(model, weights, log, reason)


class ExportFailed(Exception):
    """The exporter or the check against PyTorch failed (not the user's input)."""


def fallback_line(reason: str, log: Optional[Callable[[str], None]] = None) -> str:
    """Print (and return) the one warning line of a fallback to PyTorch."""
    line = f"warning: automatic back-end: falling back to PyTorch: {reason}"
    (log or _stderr)(line)
    return line


def _fallback(model: Any, weights: Optional[PathLike], log: Callable[[str], None], reason: str) -> BackendChoice:
    fallback_line(reason, log)
    return BackendChoice(model, weights, "pytorch")


def discard_entry(choice: BackendChoice) -> None:
    """Remove the cache entry ``choice`` came from (its file could not be loaded), so the
    next use exports again."""
    entry = Path(str(choice.model)).parent
    if choice.runtime != "pytorch" and entry.parent == exports_dir():
        shutil.rmtree(entry, ignore_errors=True)


# ----------------------------------------------------------------------------- export and cache

def _export_cached(model: Any, weights: Optional[PathLike], runtime: str, imgsz, num_classes, names, strict,
                   log: Callable[[str], None]) -> BackendChoice:
    from openyolox.inference.resolve import model_and_weights
    from openyolox.models.yolox import YOLOX

    model, weights = model_and_weights(model, weights)
    label = _model_label(model, weights)
    fmt, filename = _FORMATS[runtime]
    if weights is None and not isinstance(model, YOLOX):
        # random initialisation: new weights in every process, so a cache entry would never be
        # used again; export to a temporary folder removed once the runtime has loaded it
        why = missing_modules(runtime)
        if why is not None:
            raise ExportFailed(why)
        folder = Path(tempfile.mkdtemp(prefix="openyolox-auto-"))
        try:
            note = (f"exporting {label} (random weights) to {RUNTIME_LABELS[runtime]} for faster CPU inference "
                    f"(not cached: no weights file)")
            report = _export_into(folder, model, weights, fmt, filename, imgsz, num_classes, names, strict,
                                  lambda: log(note))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return BackendChoice(str(folder / filename), None, runtime, load_report=report, temporary=folder)

    if isinstance(model, YOLOX):  # its state now, plus the checkpoint about to be loaded into it
        digest = module_digest(model) + (weights_digest(weights) if weights is not None else "")
    else:
        digest = weights_digest(weights)
    key = cache_key(digest, model if not isinstance(model, YOLOX) else None, imgsz, runtime, num_classes, names,
                    strict)
    root = exports_dir()
    entry = root / key
    if (entry / _ENTRY_INFO).is_file():
        _touch(entry)
        return BackendChoice(str(entry / filename), None, runtime, cached=True,
                             load_report=_read_report(entry))
    why = missing_modules(runtime)
    if why is not None:
        raise ExportFailed(why)
    note = f"exporting {label} to {RUNTIME_LABELS[runtime]} for faster CPU inference (once; cached in {entry})"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        report = _export_into(tmp, model, weights, fmt, filename, imgsz, num_classes, names, strict,
                              lambda: log(note))
        info = {"model": label, "weights": str(Path(weights).resolve()) if weights is not None else None,
                "weights_sha256": digest, "imgsz": imgsz, "batch": "static 1", "runtime": runtime,
                "openyolox_version": _version(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "load_report": asdict(report) if report is not None else None}
        (tmp / _ENTRY_INFO).write_text(json.dumps(info, indent=1))
        try:
            os.rename(tmp, entry)  # atomic: the entry appears whole
        except OSError:
            if not (entry / _ENTRY_INFO).is_file():  # not another process's finished entry
                raise
            # another process exported the same key meanwhile: use its (identical) entry
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        prune_cache(root, keep=entry)
    except OSError:  # another process pruning at the same time; the next export tries again
        pass
    return BackendChoice(str(entry / filename), None, runtime, load_report=report)


def _export_into(folder: Path, model, weights, fmt: str, filename: str, imgsz, num_classes, names, strict,
                 announce: Callable[[], None]):
    """Load the model, ``announce()`` the export, export into ``folder / filename`` and check
    it against PyTorch (ExportFailed when the check fails). A checkpoint or option the user
    must fix raises its own error before anything is announced. Returns the checkpoint's
    load report (None without a checkpoint)."""
    from openyolox.export.verify import describe
    from openyolox.inference.resolve import resolve_model
    from openyolox.models.yolox import YOLOX

    if weights is None and not isinstance(model, YOLOX):
        weights = "none"  # resolved already: random weights, not the published ones
    resolved = resolve_model(model, weights, imgsz=imgsz, num_classes=num_classes, names=names, strict=strict,
                             fuse=False)
    announce()
    try:
        path, report = _export_fast(resolved, fmt, folder / filename)
    except Exception as exc:  # the exporters raise anything from RuntimeError to onnx's checker errors
        raise ExportFailed(f"{type(exc).__name__}: {_one_line(exc)}") from exc
    if not report["ok"]:
        raise ExportFailed(f"the exported file does not match PyTorch ({describe(report)})")
    return resolved.load_report


def _export_fast(resolved, fmt: str, out: Path):
    """ONNX-based formats with the TorchScript-based exporter: 5-10x faster to export than the
    torch.export one (yolox-nano: ~1 s against ~8 s) for a graph the runtimes run as fast
    (docs/benchmarks.md); the torch.export one when the legacy exporter is gone or fails."""
    from openyolox.export import export_resolved

    if fmt not in ("onnx", "openvino"):
        return export_resolved(resolved, fmt, out, verify=True)
    try:
        return export_resolved(resolved, fmt, out, exporter="torchscript", verify=True)
    except Exception:
        shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
        return export_resolved(resolved, fmt, out, exporter="dynamo", verify=True)


def cache_key(weights_sha256: str, model: Optional[str], imgsz, runtime: str, num_classes: Optional[int] = None,
              names: Optional[Sequence[str]] = None, strict: bool = True) -> str:
    """The cache entry name: sha256 over everything the exported file depends on."""
    size = None if imgsz is None else ([int(imgsz)] * 2 if isinstance(imgsz, int) else [int(s) for s in imgsz])
    parts = {"weights": weights_sha256, "model": _canonical_model(model), "imgsz": size, "batch": "static1",
             "runtime": runtime, "num_classes": num_classes, "names": list(names) if names else None,
             "strict": bool(strict), "openyolox": _version()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def weights_digest(path: PathLike) -> str:
    """sha256 of a weights file, computed once per (path, size, mtime) and remembered in
    ``exports/hashes/`` (hashing an 800 MB checkpoint takes seconds; a stat takes microseconds)."""
    path = Path(path).resolve()
    stat = path.stat()
    record = exports_dir() / "hashes" / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".json")
    try:
        known = json.loads(record.read_text())
        if known["path"] == str(path) and known["size"] == stat.st_size and known["mtime_ns"] == stat.st_mtime_ns:
            return known["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    try:
        from openyolox.atomic import write_text_atomic

        write_text_atomic(record, json.dumps({"path": str(path), "size": stat.st_size,
                                              "mtime_ns": stat.st_mtime_ns, "sha256": value}))
    except OSError:  # a read-only cache only costs hashing again next time
        pass
    return value


def module_digest(net) -> str:
    """sha256 over a module's configuration and state dict (names, dtypes, shapes, bytes)."""
    import torch

    digest = hashlib.sha256()
    config = getattr(net, "config", None)
    digest.update(repr((getattr(config, "name", None), net.num_classes)).encode())
    for name, tensor in sorted(net.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def prune_cache(root: Optional[Path] = None, keep: Optional[Path] = None, max_entries: int = MAX_ENTRIES) -> None:
    """Remove the least recently used entries beyond ``max_entries``, and temporary folders
    left by killed processes; nothing younger than an hour (a process may be loading it)."""
    root = root or exports_dir()
    now = time.time()
    entries = []
    for path in root.iterdir() if root.is_dir() else []:
        if not path.is_dir() or path.name == "hashes" or (keep is not None and path == keep):
            continue
        try:
            age = now - path.stat().st_mtime
        except OSError:
            continue
        if path.name.startswith("."):
            if age > _GRACE_S:
                shutil.rmtree(path, ignore_errors=True)
        else:
            entries.append((age, path))
    entries.sort()  # most recently used first
    for age, path in entries[max(max_entries - (keep is not None), 0):]:
        if age > _GRACE_S:
            shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- small helpers

def _touch(entry: Path) -> None:
    """Mark an entry as used (its mtime orders the pruning)."""
    try:
        os.utime(entry)
    except OSError:
        pass


def _read_report(entry: Path):
    from openyolox.checkpoint import LoadReport

    try:
        data = json.loads((entry / _ENTRY_INFO).read_text()).get("load_report")
    except (OSError, ValueError):
        return None
    if not data:
        return None
    data["mismatched"] = [tuple(tuple(x) if isinstance(x, list) else x for x in row) for row in data["mismatched"]]
    return LoadReport(**data)


def _canonical_model(model: Optional[Any]) -> Optional[str]:
    from openyolox.config import canonical_name

    if model is None:
        return None
    try:
        return canonical_name(str(model))
    except ConfigError:
        return str(model)


def _model_label(model: Any, weights: Optional[PathLike]) -> str:
    from openyolox.models.yolox import YOLOX

    if isinstance(model, YOLOX):
        return getattr(model.config, "name", "the model")
    if model is not None:
        return _canonical_model(model)
    return Path(weights).name


def _version() -> str:
    from openyolox.version import __version__

    return __version__


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


__all__ = ["AUTO_ORDER", "BACKENDS", "BackendChoice", "ExportFailed", "cache_key", "canonical_backend",
           "discard_entry", "exports_dir", "fallback_line", "missing_modules", "module_digest", "prune_cache",
           "select_backend", "weights_digest"]
