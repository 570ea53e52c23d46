"""The deployed-file contract: what an exported model file is, how that is written into it,
read back, and how a path is recognised as one.

:class:`Deployed` is the schema. The exporters (openyolox.export) write it; the back-ends
(openyolox.inference.backends) read it. Where it lives depends on the format:

- ONNX: one ``metadata_props`` entry per field, each value JSON-encoded;
- OpenVINO and ncnn: ``metadata.json`` in the folder beside the graph;
- TorchScript: ``metadata.json`` as an extra file inside the archive.

Paths: ``.onnx``; an OpenVINO ``.xml`` (or its ``.bin``, or a folder holding one); an ncnn
``.param`` (or its ``.bin``, or a folder); ``.torchscript``/``.ts``/``.jit``, or a ``.pt``/``.pth``
that is a TorchScript archive. Every other ``.pth``/``.pt``/``.ckpt`` is a checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from openyolox.errors import ConfigError
from openyolox.typing import PathLike


METADATA_FILE = "metadata.json"       # beside OpenVINO / ncnn graphs; inside TorchScript archives
INPUT_NAME = "images"                 # the graph input: (B, 3, H, W) float 0..255 BGR
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt")
TORCHSCRIPT_SUFFIXES = (".torchscript", ".ts", ".jit")
RUNTIMES = ("onnxruntime", "openvino", "ncnn", "torchscript")


@dataclass
class Deployed:
    """What an exported file is (the metadata every openyolox export carries)."""

    format: str                            # onnx | openvino | ncnn | torchscript
    model_name: str
    class_names: List[str]
    category_ids: List[int]
    imgsz: Tuple[int, int]                 # (h, w) the graph was exported at
    batch: int = 1                         # static batch size (ignored when dynamic)
    dynamic: bool = False                  # batch, height and width are free
    half: bool = False                     # FP16 weights (and FP16 compute where the runtime does it)
    int8: bool = False                     # quantized weights and activations
    decoded: bool = True                   # boxes decoded inside the graph
    nms: bool = False                      # score filter + NMS inside the graph (ONNX only)
    nms_conf: float = 0.25
    nms_iou: float = 0.45
    nms_class_agnostic: bool = False
    max_det: int = 10000                   # per class (ONNX NonMaxSuppression's max_output_boxes_per_class)
    strides: Tuple[int, ...] = (8, 16, 32)
    input_blob: str = "in0"                # ncnn blob names
    output_blob: str = "out0"
    openyolox_version: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def output_name(self) -> str:
        return "detections" if self.nms else "output"

    def to_json(self) -> Dict[str, Any]:
        """Plain JSON-able values (plus the derived num_classes / input and output names)."""
        from openyolox.version import __version__

        meta = dataclasses.asdict(self)
        meta.update(imgsz=list(self.imgsz), strides=list(self.strides), num_classes=self.num_classes,
                    input_name=INPUT_NAME, output_name=self.output_name,
                    openyolox_version=self.openyolox_version or __version__)
        return meta

    @classmethod
    def from_json(cls, meta: Mapping[str, Any], source: PathLike = "") -> "Deployed":
        """The inverse of :meth:`to_json`; unknown keys are ignored (files from newer versions)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in meta.items() if k in fields}
        if "imgsz" not in values and "input_size" in meta:  # files written before 0.2
            values["imgsz"] = meta["input_size"]
        if "class_names" not in values and "num_classes" in meta:
            values["class_names"] = [f"class{i}" for i in range(int(meta["num_classes"]))]
        missing = [k for k in ("format", "class_names", "imgsz") if k not in values]
        if missing:
            raise ConfigError(f"{source}: its openyolox metadata lacks {', '.join(missing)}; re-export it with "
                              f"`openyolox export`")
        values.setdefault("model_name", "yolox")
        values.setdefault("category_ids", list(range(len(values["class_names"]))))
        values["imgsz"] = tuple(int(s) for s in values["imgsz"])
        values["strides"] = tuple(int(s) for s in values.get("strides", (8, 16, 32)))
        return cls(**values)


# ----------------------------------------------------------------------------- where it is stored

def write_sidecar(folder: PathLike, deployed: Deployed) -> Path:
    """``metadata.json`` beside an OpenVINO / ncnn graph."""
    from openyolox.atomic import write_text_atomic

    path = Path(folder) / METADATA_FILE
    write_text_atomic(path, json.dumps(deployed.to_json(), indent=1))
    return path


def read_sidecar(folder: PathLike) -> Deployed:
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        raise ConfigError(f"{folder}: no {METADATA_FILE} beside the graph; export it with `openyolox export` "
                          f"(it records class names, input size and whether boxes are decoded)")
    try:
        return Deployed.from_json(json.loads(path.read_text()), path)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); re-export the model") from None


def to_props(deployed: Deployed) -> Dict[str, str]:
    """ONNX ``metadata_props``: one entry per field, JSON-encoded."""
    return {k: json.dumps(v) for k, v in deployed.to_json().items()}


def from_props(props: Mapping[str, str]) -> Dict[str, Any]:
    """Decoded ``metadata_props`` ({key: JSON string}, e.g. ONNX Runtime's
    ``custom_metadata_map``); values that are not JSON stay strings."""
    meta: Dict[str, Any] = {}
    for key, value in props.items():
        try:
            meta[key] = json.loads(value)
        except (TypeError, ValueError):
            meta[key] = value
    return meta


def guess_onnx(path: PathLike, in_shape, out_shape) -> Deployed:
    """For an ONNX file openyolox did not write (e.g. the reference's export): 80 classes
    unless the output says otherwise, the input's static size, raw (undecoded) boxes, as the
    reference exports by default."""
    warnings.warn(f"{path}: no openyolox metadata; assuming raw (undecoded) outputs, COCO names "
                  f"and the graph's input size", stacklevel=3)
    from openyolox.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES

    dims = [d if isinstance(d, int) else None for d in in_shape]
    if dims[2] is None or dims[3] is None:
        raise ConfigError(f"{path}: no openyolox metadata and no static input size; re-export it")
    num_classes = int(out_shape[-1]) - 5 if isinstance(out_shape[-1], int) else 80
    names = list(COCO_CLASSES) if num_classes == 80 else [f"class{i}" for i in range(num_classes)]
    ids = list(COCO_CATEGORY_IDS) if num_classes == 80 else list(range(num_classes))
    return Deployed(format="onnx", model_name="yolox", class_names=names, category_ids=ids,
                    imgsz=(dims[2], dims[3]), batch=dims[0] or 1, dynamic=dims[0] is None, decoded=False)


# ----------------------------------------------------------------------------- recognising paths

def _is_torchscript_archive(path: Path) -> bool:
    """TorchScript zips hold compiled code (``code/``, ``constants.pkl``); checkpoints do not."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def resolve_exported(path: PathLike) -> Optional[Tuple[str, Path]]:
    """(runtime, graph file) when ``path`` is an exported model, else None."""
    path = Path(path)
    if path.is_dir():
        xmls, params = sorted(path.glob("*.xml")), sorted(path.glob("*.param"))
        if xmls:
            return "openvino", xmls[0]
        if params:
            return "ncnn", params[0]
        return None
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnxruntime", path
    if suffix == ".xml":
        return "openvino", path
    if suffix == ".param":
        return "ncnn", path
    if suffix == ".bin":
        for kind, other in (("openvino", path.with_suffix(".xml")), ("ncnn", path.with_suffix(".param"))):
            if other.is_file():
                return kind, other
        return None
    if suffix in TORCHSCRIPT_SUFFIXES or (suffix in CHECKPOINT_SUFFIXES and path.is_file()
                                          and _is_torchscript_archive(path)):
        return "torchscript", path
    return None


def is_exported_model(source: Any) -> bool:
    return isinstance(source, (str, Path)) and resolve_exported(source) is not None


def is_checkpoint_path(source: Any) -> bool:
    """A path with a checkpoint suffix that is not a TorchScript archive."""
    return (isinstance(source, (str, Path)) and Path(source).suffix.lower() in CHECKPOINT_SUFFIXES
            and not is_exported_model(source))
