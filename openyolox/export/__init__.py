"""Export YOLOX to deployment formats, each checked against PyTorch.

    from openyolox.export import export
    path = export("yolox-s", weights="yolox_s.pth", format="onnx")       # yolox_s.onnx
    openyolox.Detector(path).predict("image.jpg")                          # ONNX Runtime

Formats (see docs/deployment.md):

- ``onnx``: one ``.onnx`` file, metadata in the model's ``metadata_props``; optional NMS
  inside the graph (``nms=True``, :mod:`openyolox.export.nms_graph`).
- ``openvino``: a folder with ``model.xml`` / ``model.bin`` (converted from our ONNX graph)
  and ``metadata.json``.
- ``ncnn``: a folder with ``model.ncnn.param`` / ``model.ncnn.bin`` (pnnx from a TorchScript
  trace) and ``metadata.json``.
- ``torchscript``: one ``.torchscript`` file, metadata embedded as the extra file
  ``metadata.json``.

Every format is exported from the same *deployment copy* of the network
(:func:`deploy_model`): eval mode, batch norm fused, and the Focus stem rewritten as one
strided convolution (same numbers; see :class:`SpaceToDepthConv`).
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from openyolox.errors import ConfigError

FORMATS = ("onnx", "openvino", "ncnn", "torchscript")
METADATA_FILE = "metadata.json"  # beside the graph for openvino / ncnn, embedded for torchscript
INPUT_NAME = "images"


@dataclass
class ExportSettings:
    """What an exported file is; written into it as metadata (see :meth:`metadata`)."""

    format: str
    model_name: str
    class_names: List[str]
    category_ids: List[int]
    input_size: Tuple[int, int]            # (h, w) the graph was exported at
    batch: int = 1                         # static batch size (ignored when dynamic)
    dynamic: bool = False                  # batch, height and width are free (ONNX, OpenVINO, TorchScript)
    half: bool = False                     # FP16 weights (and FP16 compute where the runtime does it)
    decoded: bool = True                   # boxes decoded inside the graph
    nms: bool = False                      # score filter + NMS inside the graph (ONNX only)
    nms_conf: float = 0.25
    nms_iou: float = 0.45
    nms_class_agnostic: bool = False
    max_det: int = 10000                   # per class (ONNX NonMaxSuppression's max_output_boxes_per_class)
    strides: Tuple[int, ...] = (8, 16, 32)
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def output_name(self) -> str:
        return "detections" if self.nms else "output"

    def metadata(self) -> Dict[str, Any]:
        """Plain JSON-able values; the runtimes (openyolox.inference.runtimes) read these."""
        from openyolox import __version__

        meta = asdict(self)
        meta.pop("extra")
        meta.update(self.extra)
        meta.update(input_size=list(self.input_size), strides=list(self.strides), num_classes=len(self.class_names),
                    input_name=INPUT_NAME, output_name=self.output_name, openyolox_version=__version__)
        return meta


class SpaceToDepthConv(nn.Module):
    """The Focus stem (space-to-depth, then a k x k stride-1 conv) as one 2k x 2k stride-2 conv.

    Focus stacks the four pixels of each 2x2 patch as channels (top-left, bottom-left,
    top-right, bottom-right) and convolves; the pixel a Focus weight (block b, row u, col v)
    sees is x[2(i+u-p) + dy_b, 2(j+v-p) + dx_b], which is what a stride-2 conv with padding 2p
    sees at kernel position (2u + dy_b, 2v + dx_b). Same sums, so the same output up to float
    rounding; runtimes without strided slicing (ncnn) can run it, and it is one op instead of
    four strided copies, a concat and a conv.
    """

    def __init__(self, focus: nn.Module):
        super().__init__()
        base = focus.conv
        if getattr(base, "bn", None) is not None:
            base.fuse()
        conv = base.conv
        k = conv.kernel_size[0]
        if conv.stride != (1, 1) or conv.kernel_size != (k, k) or k % 2 == 0 or conv.groups != 1:
            raise ValueError("SpaceToDepthConv needs a Focus with an odd square stride-1 conv")
        c = conv.in_channels // 4
        weight = conv.weight.detach()
        big = torch.zeros(conv.out_channels, c, 2 * k, 2 * k, dtype=weight.dtype, device=weight.device)
        for b, (dy, dx) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):  # Focus channel blocks
            big[:, :, dy::2, dx::2] = weight[:, b * c:(b + 1) * c]
        self.conv = nn.Conv2d(c, conv.out_channels, 2 * k, stride=2, padding=k - 1, bias=True)
        with torch.no_grad():
            self.conv.weight.copy_(big)
            self.conv.bias.copy_(conv.bias if conv.bias is not None else torch.zeros(conv.out_channels))
        self.conv.to(device=weight.device, dtype=weight.dtype)
        self.act = base.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def deploy_model(net: nn.Module, decode: bool = True, half: bool = False, fuse: bool = True,
                 rewrite_focus: bool = True) -> nn.Module:
    """A CPU copy of ``net`` ready to trace: eval, BN fused, Focus as one conv, no grads.

    decode: boxes decoded in the graph (else raw tx, ty, tw, th + probabilities).
    fuse=False, rewrite_focus=False give the graph the reference's export traced.
    """
    from openyolox.models.blocks import Focus

    model = copy.deepcopy(net).cpu().float().eval()
    if fuse:
        model.fuse()
    model.head.decode_in_inference = decode
    if rewrite_focus:
        for name, module in list(model.named_modules()):
            if isinstance(module, Focus):
                parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
                setattr(parent, name.rpartition(".")[2], SpaceToDepthConv(module))
    for p in model.parameters():
        p.requires_grad_(False)
    return model.half() if half else model


def default_output(model_name: str, fmt: str, folder: Optional[Path] = None) -> Path:
    stem = model_name.replace("-", "_")
    name = {"onnx": f"{stem}.onnx", "torchscript": f"{stem}.torchscript",
            "openvino": f"{stem}_openvino", "ncnn": f"{stem}_ncnn"}[fmt]
    return (folder or Path(".")) / name


def export(model: Union[str, Path, nn.Module] = "yolox-s", weights: Optional[Union[str, Path]] = None,
           format: str = "onnx", out: Optional[Union[str, Path]] = None,
           imgsz: Optional[Union[int, Sequence[int]]] = None, batch: int = 1, dynamic: bool = False,
           half: bool = False, decode: bool = True, nms: bool = False, conf: float = 0.25, iou: float = 0.45,
           class_agnostic: bool = False, max_det: int = 10000, opset: int = 18, simplify: bool = True,
           exporter: str = "dynamo", num_classes: Optional[int] = None,
           names: Optional[Sequence[str]] = None) -> Path:
    """Export a model (preset name + ``weights``, a checkpoint, or a YOLOX module) to ``format``.

    imgsz: input (h, w) or one int (default: the model's test size). batch: static batch size;
    dynamic=True frees batch and image size instead (ncnn graphs are always one image of the
    exported size). half: FP16 weights. decode=False leaves box decoding to the runtime
    (openyolox's back-ends do it). nms=True (ONNX only) appends the score filter (``conf``)
    and NMS (``iou``, per class unless ``class_agnostic``, at most ``max_det`` boxes per
    class) so the file alone gives final detections; see docs/deployment.md for its output.
    opset / simplify / exporter: ONNX options, exporter also for OpenVINO (converted from ONNX):
    "dynamo" = torch.export based, the current one; "torchscript" = the legacy tracer, several
    times faster to export, deprecated. Returns the written path.
    """
    from openyolox.inference.predictor import Detector

    fmt = format.lower()
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{format}'; choose one of: {', '.join(FORMATS)}")
    if nms and fmt != "onnx":
        raise ConfigError("--nms is available for ONNX only (the ONNX NonMaxSuppression operator)")
    if nms and not decode:
        raise ConfigError("--nms needs boxes decoded in the graph; drop --no-decode")
    if batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {batch}")
    if fmt == "ncnn" and dynamic:
        raise ConfigError("ncnn graphs take one image of a fixed size; export without --dynamic")
    if not 0 <= conf <= 1 or not 0 <= iou <= 1:
        raise ConfigError("conf and iou thresholds must lie in [0, 1]")
    # the Detector resolves names, checkpoints, class counts and sizes exactly as inference does
    if isinstance(model, (str, Path)) and Path(model).suffix in (".pth", ".pt", ".ckpt") and weights is None:
        model, weights = None, model
    detector = Detector(model, weights=weights, imgsz=imgsz, num_classes=num_classes, names=names, fuse=False)
    net = detector.backend.model
    cfg = getattr(net, "config", None)
    settings = ExportSettings(
        format=fmt, model_name=cfg.name if cfg is not None else "yolox", class_names=list(detector.names),
        category_ids=[int(c) for c in detector.category_ids], input_size=tuple(detector.input_size),
        batch=batch, dynamic=dynamic, half=half, decoded=decode, nms=nms, nms_conf=float(conf),
        nms_iou=float(iou), nms_class_agnostic=class_agnostic, max_det=int(max_det),
        strides=tuple(net.head.strides))
    path = Path(out) if out is not None else default_output(settings.model_name, fmt)
    if fmt == "onnx" and path.suffix.lower() != ".onnx":
        path = path.with_name(path.name + ".onnx")
    if fmt == "torchscript" and path.suffix.lower() not in (".torchscript", ".ts", ".jit", ".pt"):
        path = path.with_name(path.name + ".torchscript")
    if fmt == "onnx":
        from openyolox.export.onnx import export_onnx

        return export_onnx(net, path, settings, opset=opset, simplify=simplify, exporter=exporter)
    if fmt == "torchscript":
        from openyolox.export.torchscript import export_torchscript

        return export_torchscript(net, path, settings)
    if fmt == "openvino":
        from openyolox.export.openvino import export_openvino

        return export_openvino(net, path, settings, opset=opset, exporter=exporter)
    from openyolox.export.ncnn import export_ncnn

    return export_ncnn(net, path, settings)


def write_metadata(folder: Path, settings: ExportSettings) -> Path:
    path = Path(folder) / METADATA_FILE
    path.write_text(json.dumps(settings.metadata(), indent=1))
    return path


__all__ = ["FORMATS", "ExportSettings", "SpaceToDepthConv", "deploy_model", "export"]
