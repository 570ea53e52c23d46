"""ONNX export with current PyTorch.

The reference exported with ``torch.onnx._export``, which no longer exists. We use
``torch.onnx.export(..., dynamo=True)`` (the torch.export-based exporter, PyTorch's default
since 2.9; needs ``onnxscript``), and fall back to the legacy TorchScript tracer
(``dynamo=False``, deprecated but still shipped) only when onnxscript is missing or when asked
with ``exporter="torchscript"``.

Graph: input ``images`` float32 (B, 3, H, W), BGR 0..255, no normalisation; output
``output`` (B, A, 5 + C) = cx, cy, w, h (input pixels), obj prob, class probs (or the raw
tx, ty, tw, th with ``decoded=False``), or ``detections`` (N, 7) with NMS in the graph (see
:mod:`openyolox.export.nms_graph`). Metadata: every field of ``openyolox.inference.deployed.Deployed``
as a ``metadata_props`` entry whose value is JSON.
"""
from __future__ import annotations

import importlib.util
import inspect
import io
import warnings
from pathlib import Path

import torch
from torch import nn

from openyolox.export.graph import deploy_model
from openyolox.inference.deployed import INPUT_NAME, Deployed, to_props

MAX_SIDE = 8192  # largest image side a --dynamic graph is declared for


def export_onnx(net: nn.Module, path: Path, settings: Deployed, opset: int = 18, simplify: bool = True,
                exporter: str = "dynamo") -> Path:
    """Write ``net`` as ONNX to ``path`` (fused, Focus as one conv; see deploy_model)."""
    import onnx

    if opset < 17:
        raise ValueError(f"opset {opset} is too old; use 17 or newer")
    model = deploy_model(net, decode=settings.decoded, half=settings.half)
    proto = trace_onnx(model, settings, opset, exporter)
    if simplify:
        proto = slim(proto)
    if settings.nms:
        from openyolox.export.nms_graph import append_nms

        proto = append_nms(proto, conf=settings.nms_conf, iou=settings.nms_iou,
                           class_agnostic=settings.nms_class_agnostic, max_det=settings.max_det)
    set_metadata(proto, settings)
    proto.producer_name = "openyolox"
    onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return path


def trace_onnx(model: nn.Module, settings: Deployed, opset: int = 18, exporter: str = "dynamo"):
    """The network alone as an onnx.ModelProto with input ``images`` and output ``output``."""
    import onnx

    if exporter not in ("dynamo", "torchscript"):
        raise ValueError(f"exporter must be 'dynamo' or 'torchscript', got {exporter!r}")
    params = inspect.signature(torch.onnx.export).parameters
    if exporter == "dynamo" and "dynamo" not in params:
        warnings.warn(f"torch {torch.__version__} has no torch.export-based ONNX exporter: using the "
                      f"TorchScript-based one", stacklevel=3)
        exporter = "torchscript"
    elif exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        warnings.warn("onnxscript is not installed: using the legacy TorchScript-based ONNX exporter "
                      "(pip install 'openyolox[onnx]' for the current one)", stacklevel=3)
        exporter = "torchscript"
    h, w = settings.imgsz
    dtype = torch.float16 if settings.half else torch.float32
    example = torch.full((settings.batch, 3, h, w), 114.0, dtype=dtype)
    out_name = "output"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation / tracer chatter, nothing actionable
        if exporter == "dynamo":
            dynamic_shapes = None
            if settings.dynamic:
                from torch.export import Dim

                # H and W: any multiple of 32 (the largest stride)
                dynamic_shapes = ({0: Dim("batch", min=1, max=1024),
                                   2: 32 * Dim("height_32", min=1, max=MAX_SIDE // 32),
                                   3: 32 * Dim("width_32", min=1, max=MAX_SIDE // 32)},)
            extra = {"optimize": True} if "optimize" in params else {}
            program = _quiet(lambda: torch.onnx.export(
                model, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[out_name],
                opset_version=opset, dynamic_shapes=dynamic_shapes, verbose=False, **extra))
            proto = program.model_proto
        else:
            buffer = io.BytesIO()
            axes = ({INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, out_name: {0: "batch", 1: "anchors"}}
                    if settings.dynamic else None)
            legacy = {"dynamo": False} if "dynamo" in params else {}
            torch.onnx.export(model, (example,), buffer, **legacy, input_names=[INPUT_NAME],
                              output_names=[out_name], opset_version=opset, dynamic_axes=axes,
                              do_constant_folding=True)
            proto = onnx.load_from_string(buffer.getvalue())
    _name_dims(proto, settings)
    return proto


def _quiet(fn):
    """Run ``fn`` with the exporter's progress lines (stdout) and logger warnings hushed."""
    import contextlib
    import logging

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()):
            return fn()
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _name_dims(proto, settings: Deployed) -> None:
    """Readable names for the free dimensions of the graph's input and output."""
    if not settings.dynamic:
        return
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    for i, name in ((0, "batch"), (2, "height"), (3, "width")):
        dims[i].ClearField("dim_value")
        dims[i].dim_param = name
    out = proto.graph.output[0].type.tensor_type.shape.dim
    for i, name in ((0, "batch"), (1, "anchors")):
        if len(out) > i and not out[i].HasField("dim_value"):
            out[i].dim_param = name


def slim(proto):
    """Constant folding and dead-node removal with onnxslim when it is installed; the graph
    is returned unchanged (it is already folded by the exporter) when it is not."""
    if importlib.util.find_spec("onnxslim") is None:
        return proto
    import onnxslim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slimmed = _quiet(lambda: onnxslim.slim(proto))
    return slimmed if slimmed is not None else proto


def set_metadata(proto, deployed: Deployed) -> None:
    """Store the deployed-file metadata as ONNX metadata_props (inference.deployed.to_props)."""
    del proto.metadata_props[:]
    for key, value in to_props(deployed).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
