"""TorchScript export: ``torch.jit.trace`` of the deployment model, frozen, metadata embedded.

The traced graph follows the input's batch and image size (the anchor grid is built from
the feature-map shapes inside the trace), so one file serves any batch and any multiple of
32. The decoding grids are created on the CPU, so graphs with decoding inside run on the
CPU; export with ``--no-decode`` to run the file on a GPU (the back-end then decodes).
Metadata: ``metadata.json`` inside the archive (``torch.jit.load(..., _extra_files=...)``).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from openyolox.export.graph import deploy_model
from openyolox.inference.deployed import METADATA_FILE, Deployed


def export_torchscript(net: nn.Module, path: Path, settings: Deployed) -> Path:
    model = deploy_model(net, decode=settings.decoded, half=settings.half)
    h, w = settings.imgsz
    example = torch.full((settings.batch, 3, h, w), 114.0,
                         dtype=torch.float16 if settings.half else torch.float32)
    settings.dynamic = True  # a trace of this network is shape-generic (see module doc)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer / deprecation chatter
        traced = torch.jit.trace(model, (example,), check_trace=False)
        traced = torch.jit.freeze(traced.eval())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.jit.save(traced, str(tmp), _extra_files={METADATA_FILE: json.dumps(settings.to_json())})
    tmp.replace(path)
    return path
