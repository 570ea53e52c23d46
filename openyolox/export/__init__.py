"""Export YOLOX to deployment formats, each checked against PyTorch.

    from openyolox.export import export
    path = export("yolox-s", weights="yolox_s.pth", format="onnx")       # yolox_s.onnx
    path, report = export_and_verify("yolox-s", weights="yolox_s.pth")   # and checked
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
(openyolox.export.graph.deploy_model): eval mode, batch norm fused, and the Focus stem rewritten as one
strided convolution (same numbers; see openyolox.export.graph.SpaceToDepthConv).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from torch import nn

from openyolox.errors import ConfigError
from openyolox.inference.deployed import Deployed, TORCHSCRIPT_SUFFIXES
from openyolox.inference.resolve import ResolvedModel, resolve_model

FORMATS = ("onnx", "openvino", "ncnn", "torchscript")


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
           names: Optional[Sequence[str]] = None, *, int8: bool = False, data: Optional[Union[str, Path]] = None,
           calib_images: int = 300) -> Path:
    """Export a model (preset name + ``weights``, a checkpoint, or a YOLOX module) to ``format``.

    imgsz: input (h, w) or one int (default: the model's test size). batch: static batch size;
    dynamic=True frees batch and image size instead (ncnn graphs are always one image of the
    exported size). half: FP16 weights. decode=False leaves box decoding to the runtime
    (openyolox's back-ends do it). nms=True (ONNX only) appends the score filter (``conf``)
    and NMS (``iou``, per class unless ``class_agnostic``, at most ``max_det`` boxes per
    class) so the file alone gives final detections; see docs/deployment.md for its output.
    opset / simplify / exporter: ONNX options, exporter also for OpenVINO (converted from ONNX):
    "dynamo" = torch.export based, the current one; "torchscript" = the legacy tracer, several
    times faster to export, deprecated. int8 (formats onnx and openvino): quantize, calibrating
    on ``calib_images`` images of ``data``'s train split (openyolox.export.int8; the accuracy
    it costs is measured by ``openyolox export --int8``). Returns the written path.
    """
    return export_and_verify(model, weights, format, out, imgsz, batch, dynamic, half, decode, nms, conf, iou,
                             class_agnostic, max_det, opset, simplify, exporter, num_classes, names,
                             verify=False, int8=int8, data=data, calib_images=calib_images)[0]


def export_and_verify(model: Union[str, Path, nn.Module] = "yolox-s", weights: Optional[Union[str, Path]] = None,
                      format: str = "onnx", out: Optional[Union[str, Path]] = None,
                      imgsz: Optional[Union[int, Sequence[int]]] = None, batch: int = 1, dynamic: bool = False,
                      half: bool = False, decode: bool = True, nms: bool = False, conf: float = 0.25,
                      iou: float = 0.45, class_agnostic: bool = False, max_det: int = 10000, opset: int = 18,
                      simplify: bool = True, exporter: str = "dynamo", num_classes: Optional[int] = None,
                      names: Optional[Sequence[str]] = None, verify: bool = True, *, int8: bool = False,
                      data: Optional[Union[str, Path]] = None, calib_images: int = 300
                      ) -> Tuple[Path, Optional[Dict[str, Any]]]:
    """:func:`export`, then (with ``verify``) the check of openyolox.export.verify on the same
    loaded network (for int8: of the FP32 graph that is quantized). Returns (path, report or
    None)."""
    _check_options(format.lower(), batch, dynamic, nms, decode, conf, iou)
    check_int8_options(format.lower(), int8, half, nms, data)
    # the one resolver: names, checkpoints, class counts and sizes exactly as inference does
    resolved = resolve_model(model, weights, imgsz=imgsz, num_classes=num_classes, names=names, fuse=False)
    return export_resolved(resolved, format, out, batch, dynamic, half, decode, nms, conf, iou, class_agnostic,
                           max_det, opset, simplify, exporter, verify, int8=int8, data=data,
                           calib_images=calib_images)


def export_resolved(resolved: ResolvedModel, format: str = "onnx", out: Optional[Union[str, Path]] = None,
                    batch: int = 1, dynamic: bool = False, half: bool = False, decode: bool = True,
                    nms: bool = False, conf: float = 0.25, iou: float = 0.45, class_agnostic: bool = False,
                    max_det: int = 10000, opset: int = 18, simplify: bool = True, exporter: str = "dynamo",
                    verify: bool = True, *, int8: bool = False, data: Optional[Union[str, Path]] = None,
                    calib_images: int = 300) -> Tuple[Path, Optional[Dict[str, Any]]]:
    """:func:`export_and_verify` for a model already resolved by
    openyolox.inference.resolve.resolve_model (with ``fuse=False``): for callers that need the
    resolution themselves (its load report, strict=False), e.g. openyolox.export.auto."""
    fmt = format.lower()
    _check_options(fmt, batch, dynamic, nms, decode, conf, iou)
    check_int8_options(fmt, int8, half, nms, data)
    if resolved.net is None:
        raise ConfigError("only PyTorch models can be exported; this one is already an exported file")
    if int8:
        return _export_int8(resolved, fmt, out, batch, dynamic, decode, opset, simplify, exporter, verify, data,
                            calib_images)
    deployed = _describe(resolved, fmt, batch, dynamic, half, decode, nms, conf, iou, class_agnostic, max_det)
    path = _output_path(out, deployed.model_name, fmt)
    net = resolved.net
    if fmt == "onnx":
        from openyolox.export.onnx import export_onnx

        path = export_onnx(net, path, deployed, opset=opset, simplify=simplify, exporter=exporter)
    elif fmt == "torchscript":
        from openyolox.export.torchscript import export_torchscript

        path = export_torchscript(net, path, deployed)
    elif fmt == "openvino":
        from openyolox.export.openvino import export_openvino

        path = export_openvino(net, path, deployed, opset=opset, exporter=exporter)
    else:
        from openyolox.export.ncnn import export_ncnn

        path = export_ncnn(net, path, deployed)
    if not verify:
        return path, None
    from openyolox.export.verify import verify_export

    return path, verify_export(path, net)


def _export_int8(resolved: ResolvedModel, fmt: str, out, batch: int, dynamic: bool, decode: bool, opset: int,
                 simplify: bool, exporter: str, verify: bool, data, calib_images: int
                 ) -> Tuple[Path, Optional[Dict[str, Any]]]:
    """The FP32 graph (checked against PyTorch with ``verify``), then its INT8 version."""
    import tempfile

    from openyolox.export.int8 import int8_output, quantize
    from openyolox.export.verify import describe

    name = resolved.net.config.name if resolved.net.config is not None else "yolox"
    path = int8_output(out, name, fmt)
    with tempfile.TemporaryDirectory(prefix="openyolox-int8-") as tmp:
        fp32 = Path(tmp) / ("fp32.onnx" if fmt == "onnx" else "fp32_openvino")
        fp32, report = export_resolved(resolved, fmt, fp32, batch, dynamic, decode=decode, opset=opset,
                                       simplify=simplify, exporter=exporter, verify=verify)
        if report is not None and not report["ok"]:
            raise ConfigError(f"the FP32 graph to quantize does not match PyTorch: {describe(report)}")
        return quantize(fp32, path, data, calib_images), report


def check_int8_options(fmt: str, int8: bool, half: bool, nms: bool, data) -> None:
    if not int8:
        return
    from openyolox.export.int8 import INT8_FORMATS

    if fmt not in INT8_FORMATS:
        raise ConfigError(f"--int8 is available for {' and '.join(INT8_FORMATS)}, not {fmt}")
    if half or nms:
        raise ConfigError("--int8 cannot be combined with --half or --nms")
    if data is None:
        raise ConfigError("--int8 needs --data: calibration images (and the val split the accuracy is checked on)")


def _check_options(fmt: str, batch: int, dynamic: bool, nms: bool, decode: bool, conf: float, iou: float) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'; choose one of: {', '.join(FORMATS)}")
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


def _describe(resolved: ResolvedModel, fmt: str, batch: int, dynamic: bool, half: bool, decode: bool, nms: bool,
              conf: float, iou: float, class_agnostic: bool, max_det: int) -> Deployed:
    """The metadata the file will carry."""
    net = resolved.net
    return Deployed(format=fmt, model_name=net.config.name if net.config is not None else "yolox",
                    class_names=list(resolved.names), category_ids=[int(c) for c in resolved.category_ids],
                    imgsz=tuple(resolved.imgsz), batch=batch, dynamic=dynamic, half=half,
                    decoded=decode, nms=nms, nms_conf=float(conf), nms_iou=float(iou),
                    nms_class_agnostic=class_agnostic, max_det=int(max_det), strides=tuple(net.head.strides))


def _output_path(out: Optional[Union[str, Path]], model_name: str, fmt: str) -> Path:
    path = Path(out) if out is not None else default_output(model_name, fmt)
    if fmt == "onnx" and path.suffix.lower() != ".onnx":
        path = path.with_name(path.name + ".onnx")
    if fmt == "torchscript" and path.suffix.lower() not in (*TORCHSCRIPT_SUFFIXES, ".pt"):
        path = path.with_name(path.name + ".torchscript")
    return path


__all__ = ["FORMATS", "default_output", "export", "export_and_verify", "export_resolved"]
