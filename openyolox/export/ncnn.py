"""ncnn export with pnnx (TorchScript trace -> pnnx -> ncnn ``.param`` / ``.bin``).

Output: a folder with ``model.ncnn.param``, ``model.ncnn.bin`` and ``metadata.json``.
The graph takes one image (ncnn has no batch axis: the back-end runs a batch image by image)
of the exported size: pnnx folds the anchor grid and the flattening shapes into constants,
so decoding stays inside the graph (``--no-decode`` leaves it to the back-end). The Focus
stem is exported as one strided conv (ncnn has no strided slice; see SpaceToDepthConv).
``--half`` stores FP16 weights and lets ncnn use FP16 storage and arithmetic.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from openyolox.export.graph import deploy_model
from openyolox.inference.deployed import Deployed, write_sidecar

PARAM_NAME = "model.ncnn.param"
BIN_NAME = "model.ncnn.bin"


def export_ncnn(net: nn.Module, folder: Path, settings: Deployed) -> Path:
    try:
        import pnnx
    except ImportError:
        from openyolox.errors import ConfigError

        raise ConfigError("ncnn export needs pnnx: pip install 'openyolox[ncnn]'") from None
    folder = Path(folder)
    if folder.suffix == ".param":
        folder = folder.parent
    folder.mkdir(parents=True, exist_ok=True)
    model = deploy_model(net, decode=settings.decoded)  # FP32 trace; pnnx writes FP16 weights for --half
    h, w = settings.imgsz
    example = torch.full((1, 3, h, w), 114.0)
    with tempfile.TemporaryDirectory() as tmp:
        pt = Path(tmp) / "model.pt"
        with warnings.catch_warnings(), _silenced():
            warnings.simplefilter("ignore")
            pnnx.export(model, str(pt), (example,), fp16=settings.half, check_trace=False)
        for src, dst in (("model.ncnn.param", PARAM_NAME), ("model.ncnn.bin", BIN_NAME)):
            if not (Path(tmp) / src).is_file():
                raise RuntimeError(f"pnnx did not write {src}; run pnnx by hand on a trace to see why")
            shutil.move(str(Path(tmp) / src), str(folder / dst))
    settings.batch, settings.dynamic = 1, False
    settings.input_blob, settings.output_blob = "in0", "out0"  # pnnx's names
    write_sidecar(folder, settings)
    return folder


@contextlib.contextmanager
def _silenced():
    """pnnx prints its passes to stdout/stderr from C++; keep the console for our own lines."""
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
