"""INT8 post-training quantization of exported files.

    openyolox export --format onnx --int8 --data DATA       # ONNX Runtime static quantization (QDQ)
    openyolox export --format openvino --int8 --data DATA   # NNCF on the OpenVINO IR

:func:`quantize` takes an FP32 file written by ``openyolox export`` (ONNX file or OpenVINO
folder) and writes its INT8 version. Calibration runs the FP32 graph on ``count`` images of
DATA's train split (spread evenly over it, the same every time), each letterboxed exactly as
the Detector letterboxes (openyolox.data.transforms), so the measured activation ranges are
those of real inputs, padding included.

What stays in float (``keep_float``, measured in docs/deployment.md, "INT8"):

- ``"decode"``: the graph's tail after the last convolutions: the reshapes and concatenation
  of the three levels, the objectness/class sigmoid and the box decoding (grid add, exp,
  stride multiply). Its output joins pixel coordinates (0..640) and probabilities (0..1) in
  one tensor: with one 8-bit scale for both, a probability step is ~2.5/255 and every score
  below ~0.01 becomes 0. Costs nothing measurable: these are a few element-wise ops.
- ``"decode+head"`` (the default): also the head's final 1x1 convolutions (``cls_preds``,
  ``reg_preds``, ``obj_preds``), whose outputs are logits and raw box offsets that the sigmoid
  and exp amplify; they are tiny (one 1x1 conv per level and branch).
- ``"none"``: everything the quantizer can quantize (for the comparison only).

The parts are found from the graph's structure, not from node names (which differ between
exporters): the tail is every node after which no convolution follows, the head's final
convolutions are the convolutions after which none follows.
"""
from __future__ import annotations

import contextlib
import logging
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from openyolox.errors import ConfigError

PathLike = Union[str, Path]

KEEP_FLOAT = ("none", "decode", "decode+head")
DEFAULT_KEEP_FLOAT = "decode+head"
CALIBRATION_IMAGES = 300
INT8_FORMATS = ("onnx", "openvino")
# operator types that are convolutions, in ONNX and in OpenVINO
_CONV_TYPES = {"Conv", "Convolution", "GroupConvolution"}


# ----------------------------------------------------------------------------- calibration data

def calibration_batches(data: PathLike, imgsz: Sequence[int], count: int = CALIBRATION_IMAGES,
                        split: str = "train") -> List[np.ndarray]:
    """``count`` images of ``split``, evenly spread over it, letterboxed to ``imgsz`` (h, w):
    a list of (1, 3, h, w) float32 arrays, BGR 0..255 (the graph's input)."""
    from openyolox.data.image_io import read_image
    from openyolox.data.transforms import letterbox
    from openyolox.data.layouts import load_split

    records = load_split(data, split).records
    if not records:
        raise ConfigError(f"{data}: the {split} split has no images to calibrate INT8 with")
    if count < 1:
        raise ConfigError(f"the number of calibration images must be >= 1, got {count}")
    picks = np.unique(np.linspace(0, len(records) - 1, min(count, len(records))).round().astype(int))
    batches = []
    for i in picks:
        boxed, _ = letterbox(read_image(records[i].path), tuple(imgsz))
        batches.append(np.ascontiguousarray(boxed.transpose(2, 0, 1)[None], dtype=np.float32))
    return batches


# ----------------------------------------------------------------------------- what stays float

def float_parts(nodes: Sequence[Tuple[str, str, Sequence[str]]], keep_float: str) -> List[str]:
    """Names of the operations to keep in float.

    nodes: (name, type, names of the operations consuming its outputs), in topological order.
    See the module doc for ``keep_float``."""
    if keep_float not in KEEP_FLOAT:
        raise ConfigError(f"keep_float must be one of {', '.join(KEEP_FLOAT)}, got {keep_float!r}")
    if keep_float == "none":
        return []
    kind = {name: op for name, op, _ in nodes}
    conv_after: Dict[str, bool] = {}
    for name, _, consumers in reversed(nodes):  # consumers come later in topological order
        conv_after[name] = any(kind.get(c) in _CONV_TYPES or conv_after.get(c, False) for c in consumers)
    tail = [name for name, op, _ in nodes if not conv_after[name] and op not in _CONV_TYPES]
    heads = [name for name, op, _ in nodes if not conv_after[name] and op in _CONV_TYPES]
    return tail + heads if keep_float == "decode+head" else tail


def onnx_nodes(proto) -> List[Tuple[str, str, List[str]]]:
    """(name, op type, consumer names) for every node of an ONNX graph (unnamed nodes get names)."""
    for i, node in enumerate(proto.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    consumers: Dict[str, List[str]] = {}
    for node in proto.graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node.name)
    return [(n.name, n.op_type, [c for out in n.output for c in consumers.get(out, [])]) for n in proto.graph.node]


def openvino_nodes(model) -> List[Tuple[str, str, List[str]]]:
    """The same for an openvino.Model."""
    nodes = []
    for op in model.get_ordered_ops():
        users = [inp.get_node().get_friendly_name() for out in op.outputs() for inp in out.get_target_inputs()]
        nodes.append((op.get_friendly_name(), op.get_type_name(), users))
    return nodes


# ----------------------------------------------------------------------------- quantizers

def quantize(fp32: PathLike, out: PathLike, data: PathLike, count: int = CALIBRATION_IMAGES,
             keep_float: str = DEFAULT_KEEP_FLOAT, split: str = "train") -> Path:
    """Write the INT8 version of an FP32 ONNX file (-> ONNX QDQ file for ONNX Runtime) or
    OpenVINO folder (-> INT8 IR via NNCF) to ``out``. Returns the written path."""
    from openyolox.inference.backends import load_backend
    from openyolox.inference.deployed import resolve_exported

    found = resolve_exported(fp32)
    if found is None or found[0] not in ("onnxruntime", "openvino"):
        raise ConfigError(f"{fp32}: INT8 quantization takes an FP32 ONNX file or OpenVINO folder")
    deployed = load_backend(fp32).deployed
    if deployed.half or deployed.int8 or deployed.nms:
        raise ConfigError(f"{fp32}: quantize an FP32 export without --half, --int8 or --nms")
    images = calibration_batches(data, deployed.imgsz, count, split)
    per = 1 if deployed.dynamic else deployed.batch  # a static-batch graph takes its batch size only
    if len(images) < per:
        images = (images * per)[:per]
    batches = [np.concatenate(images[i:i + per]) for i in range(0, len(images) - per + 1, per)]
    if found[0] == "onnxruntime":
        return quantize_onnx(found[1], Path(out), batches, keep_float)
    return quantize_openvino(found[1], Path(out), batches, keep_float)


def quantize_onnx(fp32: Path, out: Path, batches: Sequence[np.ndarray], keep_float: str = DEFAULT_KEEP_FLOAT) -> Path:
    """ONNX Runtime static quantization, QDQ format: uint8 activations, int8 per-channel
    weights (nano's depthwise convolutions have very different ranges per channel), ranges
    from min/max over the calibration images. On x86 CPUs without VNNI, weights use 7 bits
    (``reduce_range``): their 8-bit kernels can saturate otherwise (ONNX Runtime's guidance)."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from openyolox.export.onnx import set_metadata
    from openyolox.inference.deployed import Deployed, from_props

    class Reader(CalibrationDataReader):
        def __init__(self, items: Iterable[np.ndarray]):
            self.items = iter(items)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {"images": x}

    meta = from_props({p.key: p.value for p in onnx.load(str(fp32), load_external_data=False).metadata_props})
    deployed = Deployed.from_json(meta, fp32)
    out = out if out.suffix.lower() == ".onnx" else out.with_name(out.name + ".onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # shape inference + ONNX Runtime's basic graph optimisations, as its guide recommends
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        proto = onnx.load(str(prepared))
        exclude = float_parts(onnx_nodes(proto), keep_float)
        onnx.save(proto, str(prepared))
        quantized = Path(tmp) / "int8.onnx"
        quantize_static(str(prepared), str(quantized), Reader(batches), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=_reduce_range(), activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                        calibrate_method=CalibrationMethod.MinMax)
        proto = onnx.load(str(quantized))
        deployed.int8 = True
        set_metadata(proto, deployed)
        proto.producer_name = "openyolox"
        tmp_out = out.with_name(out.name + ".tmp")
        onnx.save(proto, str(tmp_out))
        tmp_out.replace(out)
    return out


def quantize_openvino(xml: Path, out: Path, batches: Sequence[np.ndarray], keep_float: str = DEFAULT_KEEP_FLOAT
                      ) -> Path:
    """NNCF post-training quantization of an OpenVINO IR: the default (symmetric, per-channel
    weights) preset for the CPU, fast bias correction, the given parts kept in float."""
    try:
        import nncf
    except ImportError:
        raise ConfigError("OpenVINO INT8 quantization needs NNCF: pip install 'openyolox[int8]'") from None
    import openvino as ov

    from openyolox.inference.deployed import read_sidecar, write_sidecar

    deployed = read_sidecar(xml.parent)
    model = ov.Core().read_model(str(xml))
    exclude = float_parts(openvino_nodes(model), keep_float)
    nncf.set_log_level(logging.WARNING)  # one INFO line per operation otherwise
    # its progress bars go to stdout, which belongs to the command's result lines
    with contextlib.redirect_stdout(sys.stderr):
        quantized = nncf.quantize(model, nncf.Dataset(list(batches)), subset_size=len(batches),
                                  target_device=nncf.TargetDevice.CPU,
                                  ignored_scope=nncf.IgnoredScope(names=exclude, validate=False))
    folder = out.parent if out.suffix == ".xml" else out
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(folder / "model.xml"), compress_to_fp16=False)
    deployed.int8 = True
    write_sidecar(folder, deployed)
    return folder


def _reduce_range() -> bool:
    """True on x86 CPUs without VNNI (see quantize_onnx)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False  # not Linux: assume a current CPU
    return "vnni" not in flags


def int8_output(out: Optional[PathLike], model_name: str, fmt: str) -> Path:
    """Default INT8 output name: <model>_int8.onnx / <model>_int8_openvino."""
    from openyolox.export import default_output

    if out is not None:
        return Path(out)
    default = default_output(model_name, fmt)
    stem = model_name.replace("-", "_") + "_int8"
    return default.with_name(f"{stem}.onnx" if fmt == "onnx" else f"{stem}_openvino")


def copy_result(src: Path, dst: Path) -> Path:
    """Move a finished file or folder into place (replacing an older one)."""
    dst = Path(dst)
    if dst.is_dir():
        shutil.rmtree(dst)
    elif dst.exists():
        dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))
    return dst


__all__ = ["CALIBRATION_IMAGES", "DEFAULT_KEEP_FLOAT", "KEEP_FLOAT", "calibration_batches", "float_parts",
           "quantize", "quantize_onnx", "quantize_openvino"]
