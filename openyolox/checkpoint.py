"""Checkpoints: safe loading (ours and the reference's .pth format) and atomic saving.

Loading never runs code from the file: ``torch.load(weights_only=True)`` with only numpy's
scalar/array types allowed on top of torch's own (reference training checkpoints store
``best_ap`` as a numpy scalar). Anything else that needs unpickling code is refused.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple, Union

import numpy as np
import torch
from torch import nn

from openyolox.atomic import atomic_write
from openyolox.errors import CheckpointError
from openyolox.typing import PathLike


def _numpy_safe_globals() -> list:
    """numpy types that plain-data checkpoints may contain, under old and new module names."""
    core = np._core if hasattr(np, "_core") else np.core
    allowed: list = [np.dtype, np.ndarray]
    for fn in ("scalar", "_reconstruct"):
        obj = getattr(core.multiarray, fn)
        allowed += [obj, (obj, f"numpy.core.multiarray.{fn}"), (obj, f"numpy._core.multiarray.{fn}")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read a checkpoint file without executing code; returns the stored dict.

    A bare state dict is wrapped as ``{"model": state_dict}``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    _check_container(path)
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (its pickle data is damaged); "
                                  f"the file may be incomplete or not a checkpoint") from None
        raise CheckpointError(
            f"{path}: refused to load: the file needs to run code while unpickling (it references "
            f"{found.group(1)}). openyolox loads only plain tensors and numbers so that a downloaded checkpoint "
            f"cannot execute anything; if you trust its source, re-save just its state dict "
            f"(torch.save({{'model': model.state_dict()}}, ...))") from None
    except Exception as exc:  # any other failure inside torch.load: a damaged file, one line
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({detail[:200]}); "
                              f"the download may be incomplete") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(obj).__name__}")
    if "model" not in obj:
        if "state_dict" in obj:
            obj = dict(obj, model=obj["state_dict"])
        elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            obj = {"model": dict(obj)}
        else:
            raise CheckpointError(f"{path}: no 'model' state dict inside (keys: {sorted(obj)[:8]})")
    return dict(obj)


def _check_container(path: Path) -> None:
    """A PyTorch checkpoint is a zip archive (torch.save since 1.6) or a pickle stream (older
    files start with the pickle protocol byte 0x80). Anything else, such as a text file or
    an HTML error page saved under a .pth name, is refused with what it looks like."""
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return
    if not head:
        raise CheckpointError(f"{path}: the checkpoint file is empty (0 bytes); download or copy it again")
    text = head.lstrip().lower()
    looks = ("an HTML page (a login or error page saved instead of the file?)"
             if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")) else
             "a text file" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "some other file")
    raise CheckpointError(f"{path}: not a PyTorch checkpoint: it is {looks}; pass a .pth written by "
                          f"torch.save (openyolox or the reference YOLOX)")


@dataclass
class LoadReport:
    """What :func:`load_weights` did: keys it could not load and why."""

    loaded: int = 0
    missing: List[str] = field(default_factory=list)        # in model, not in checkpoint
    unexpected: List[str] = field(default_factory=list)     # in checkpoint, not in model
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)  # key, ckpt, model

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 6) -> str:
        parts = []
        for label, keys in (("missing from checkpoint", self.missing),
                            ("not in model", self.unexpected)):
            if keys:
                more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:limit])}{more}")
        if self.mismatched:
            shown = "; ".join(f"{k} checkpoint {list(a)} vs model {list(b)}" for k, a, b in self.mismatched[:limit])
            parts.append(f"{len(self.mismatched)} with other shapes: {shown}")
        return ". ".join(parts) if parts else "all keys match"


def _checkpoint_classes(state: Mapping[str, torch.Tensor]) -> int:
    bias = state.get("head.cls_preds.0.bias")
    return int(bias.shape[0]) if bias is not None else -1


def load_weights(model: nn.Module, checkpoint: Union[PathLike, Mapping[str, Any]], strict: bool = True
                 ) -> LoadReport:
    """Load a checkpoint (path or loaded dict; ours or the reference's) into ``model``.

    strict=True: every key and shape must match, else CheckpointError saying what differs.
    strict=False: load what fits and return a report of what was skipped (e.g. the class
    prediction layers when fine-tuning to another number of classes).
    """
    source = str(checkpoint) if isinstance(checkpoint, (str, Path)) else "checkpoint"
    ckpt = load_checkpoint(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    state = ckpt["model"] if "model" in ckpt else ckpt
    target = model.state_dict()
    report = LoadReport()
    usable = {}
    for key, value in state.items():
        if key not in target:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(target[key].shape):
            report.mismatched.append((key, tuple(value.shape), tuple(target[key].shape)))
        else:
            usable[key] = value
    report.missing = [k for k in target if k not in state]
    if strict and not report.ok:
        hint = ""
        ck_classes, model_classes = _checkpoint_classes(state), _checkpoint_classes(target)
        if ck_classes > 0 and model_classes > 0 and ck_classes != model_classes:
            hint = (f" The checkpoint predicts {ck_classes} classes, the model {model_classes}: build the "
                    f"model with num_classes={ck_classes}, or load non-strictly to fine-tune.")
        elif report.missing and report.unexpected:
            hint = " Is it a checkpoint of another YOLOX size?"
        raise CheckpointError(f"{source} does not fit the model: {report.describe()}.{hint}")
    model.load_state_dict(usable, strict=False)
    report.loaded = len(usable)
    return report


def save_checkpoint(path: PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` with torch.save atomically (see :mod:`openyolox.atomic`): a crash
    leaves the previous file intact."""
    with atomic_write(path, "wb") as fh:
        torch.save(dict(payload), fh)
    return Path(path)
