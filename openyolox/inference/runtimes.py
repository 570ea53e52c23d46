"""Back-ends for exported files: ONNX Runtime, OpenVINO, ncnn, TorchScript.

Same interface as :class:`openyolox.inference.backends.TorchBackend`: call with a
(B, 3, H, W) uint8 or float 0..255 batch (numpy or torch), get decoded predictions
(B, A, 5 + C) float32 torch = cx, cy, w, h (input pixels), obj prob, class probs; plus
``num_classes`` and ``synchronize()``. On top:

- ``metadata`` (what the exporter wrote: model name, class names, input size, decoded, nms...)
  and ``input_size``, ``names``;
- graphs exported with ``--no-decode`` are decoded here (openyolox.models.head's functions);
- a static-batch graph is run in chunks of its batch size, so any batch size works;
- graphs with NMS inside (``--nms``) have ``outputs_detections = True``: use
  :meth:`ExportedBackend.detect`, which returns per image the rows of
  openyolox.inference.postprocess; calling them for raw predictions raises ConfigError.

:func:`load_backend` picks the runtime from the path: ``.onnx``; an OpenVINO ``.xml`` (or its
folder); an ncnn ``.param`` (or its folder); ``.torchscript`` (or a TorchScript ``.pt``).
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from openyolox.errors import ConfigError
from openyolox.models.head import STRIDES, decode_boxes, make_anchor_grid
from openyolox.typing import PathLike

METADATA_FILE = "metadata.json"
TORCHSCRIPT_SUFFIXES = (".torchscript", ".ts", ".jit")


def default_threads() -> int:
    """Threads for CPU runtimes: the cores this process may use (these machines have one
    thread per core; on SMT machines ONNX Runtime's own default picks physical cores)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class ExportedBackend:
    """Common part: metadata, input checks, batching, decoding. Subclasses implement
    :meth:`run` (one batch the graph accepts, numpy in, numpy out)."""

    name = "exported"
    outputs_detections = False

    def __init__(self, path: Path, metadata: Dict[str, Any]):
        self.path = Path(path)
        self.metadata = metadata
        self.num_classes = int(metadata["num_classes"])
        self.names = list(metadata.get("class_names") or [])
        self.input_size: Tuple[int, int] = tuple(int(s) for s in metadata["input_size"])
        self.dynamic = bool(metadata.get("dynamic", False))
        self.static_batch = int(metadata.get("batch", 1))
        self.decoded = bool(metadata.get("decoded", True))
        self.strides = tuple(metadata.get("strides", STRIDES))
        self.outputs_detections = bool(metadata.get("nms", False))
        self.input_dtype = np.float16 if metadata.get("half") and metadata.get("format") == "onnx" else np.float32
        self.device = torch.device("cpu")
        self._grids: Dict[Tuple[int, int], Tuple[torch.Tensor, torch.Tensor]] = {}

    # -- the back-end interface ---------------------------------------------------------------
    def __call__(self, batch) -> torch.Tensor:
        """(B, 3, H, W) uint8/float 0..255 -> (B, A, 5 + C) float32 decoded predictions."""
        if self.outputs_detections:
            raise ConfigError(f"{self.path} has NMS inside the graph (exported with --nms): it gives final "
                              f"detections, not raw predictions; evaluate a file exported without --nms")
        x = self._prepare(batch)
        out = torch.from_numpy(np.ascontiguousarray(self._run_chunks(x))).float()
        return out if self.decoded else self.decode(out, x.shape[2:])

    def detect(self, batch) -> List[torch.Tensor]:
        """For graphs with NMS inside: per image (N, 7) rows (x1, y1, x2, y2, score, 1.0, class)
        in input pixels by decreasing score: openyolox.inference.postprocess's rows, except that
        the graph gives only the product score = obj * class prob, so it stands in the obj column
        and the class-prob column is 1 (score = obj * class_conf still holds)."""
        if not self.outputs_detections:
            raise ConfigError(f"{self.path} has no NMS inside; use the Python postprocess")
        x = self._prepare(batch)
        rows = []
        step = len(x) if self.dynamic else self.static_batch
        for start in range(0, len(x), step):
            chunk = self._pad(x[start:start + step])
            det = np.asarray(self.run(chunk), dtype=np.float32).reshape(-1, 7)
            det = det[det[:, 0] < len(x) - start]
            det[:, 0] += start
            rows.append(det)
        det = torch.from_numpy(np.concatenate(rows))
        out = []
        for i in range(len(x)):
            d = det[det[:, 0] == i]
            d = d[torch.argsort(d[:, 5], descending=True, stable=True)]
            out.append(torch.cat([d[:, 1:5], d[:, 5:6], torch.ones_like(d[:, 5:6]), d[:, 6:7]], dim=1))
        return out

    def synchronize(self) -> None:
        """Runs here are synchronous."""

    def raw(self, batch) -> np.ndarray:
        """The graph's own output for ``batch`` (no decoding): for checks against PyTorch."""
        return self._run_chunks(self._prepare(batch))

    def run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------------
    def _prepare(self, batch) -> np.ndarray:
        x = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(x.shape)}")
        if not self.dynamic and tuple(x.shape[2:]) != self.input_size:
            h, w = self.input_size
            raise ConfigError(f"{self.path} was exported for {h}x{w} inputs, got {x.shape[2]}x{x.shape[3]}; "
                              f"use imgsz={h} or export with --dynamic")
        return np.ascontiguousarray(x, dtype=self.input_dtype)

    def _pad(self, x: np.ndarray) -> np.ndarray:
        if self.dynamic or len(x) == self.static_batch:
            return x
        pad = np.zeros((self.static_batch - len(x), *x.shape[1:]), dtype=x.dtype)
        return np.concatenate([x, pad])

    def _run_chunks(self, x: np.ndarray) -> np.ndarray:
        if self.dynamic or len(x) == self.static_batch:
            return np.asarray(self.run(x))
        outs = [np.asarray(self.run(self._pad(x[i:i + self.static_batch])))
                for i in range(0, len(x), self.static_batch)]
        return np.concatenate(outs)[:len(x)]

    def decode(self, raw: torch.Tensor, hw) -> torch.Tensor:
        """Raw (tx, ty, tw, th, probs) -> cx, cy, w, h in pixels for an input of size hw."""
        key = (int(hw[0]), int(hw[1]))
        if key not in self._grids:
            shapes = [(key[0] // s, key[1] // s) for s in self.strides]
            self._grids[key] = make_anchor_grid(shapes, self.strides, raw.device, torch.float32)
        grid, stride = self._grids[key]
        # only the 4 box columns, in place: small tensors stay single-threaded, so torch's
        # thread pool does not wake up to compete with the runtime's
        raw[..., :4] = decode_boxes(raw[..., :4], grid, stride)
        return raw


class OnnxRuntimeBackend(ExportedBackend):
    """An ONNX file in ONNX Runtime (CPU, or CUDA when onnxruntime-gpu is installed)."""

    name = "onnxruntime"

    def __init__(self, path: PathLike, device: str = "cpu", threads: Optional[int] = None):
        import onnxruntime as ort

        from openyolox.export.onnx import read_metadata

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        # spin while a run needs the threads, not after it: on a 2-core machine threads left
        # spinning starve the torch postprocess that follows (measured: its p90 3 ms -> 35 ms)
        opts.add_session_config_entry("session.force_spinning_stop", "1")
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError("--device cuda: this onnxruntime has no CUDA provider "
                                  "(pip install onnxruntime-gpu)")
            providers = [("CUDAExecutionProvider", {"device_id": int(device.partition(":")[2] or 0)}),
                         "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.model = self.session
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_name = inp.name
        meta = read_metadata(self.session.get_modelmeta().custom_metadata_map)
        if "num_classes" not in meta:
            meta = _guess_metadata(path, inp.shape, out.shape)
        super().__init__(Path(path), meta)
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


class OpenVINOBackend(ExportedBackend):
    """An OpenVINO IR (model.xml + model.bin) on the CPU plug-in, FP32 compute (FP16 IRs are
    decompressed to FP32 on the CPU)."""

    name = "openvino"

    def __init__(self, path: PathLike, device: str = "cpu", threads: Optional[int] = None):
        import openvino as ov

        if device != "cpu":
            raise ConfigError(f"the OpenVINO back-end runs on the CPU here, not {device}")
        xml = Path(path)
        meta = _read_sidecar(xml.parent)
        core = ov.Core()
        # f32 compute also for FP16 IRs: the CPU plug-in's default is bf16 where the CPU has it,
        # which is several times less precise than the FP16 weights
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads or default_threads(),
                  "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = core.compile_model(core.read_model(str(xml)), "CPU", config)
        self.model = self.compiled
        self.request = self.compiled.create_infer_request()
        super().__init__(xml, meta)

    def run(self, x: np.ndarray) -> np.ndarray:
        self.request.infer({0: x})
        return self.request.get_output_tensor(0).data.copy()


class NcnnBackend(ExportedBackend):
    """An ncnn graph (model.ncnn.param + .bin): one image of the exported size per run;
    batches are run image by image. FP32 storage and arithmetic unless exported with --half."""

    name = "ncnn"

    def __init__(self, path: PathLike, device: str = "cpu", threads: Optional[int] = None):
        import ncnn

        if device != "cpu":
            raise ConfigError(f"the ncnn back-end runs on the CPU here, not {device}")
        param = Path(path)
        weights = param.with_suffix(".bin")
        if not weights.is_file():
            raise ConfigError(f"{param}: the weights file {weights.name} is missing beside it")
        meta = _read_sidecar(param.parent)
        net = ncnn.Net()
        net.opt.use_vulkan_compute = False
        net.opt.num_threads = threads or default_threads()
        half = bool(meta.get("half"))
        net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = half
        net.opt.use_bf16_storage = False
        if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
            raise ConfigError(f"{param}: ncnn could not load the graph")
        self.net = self.model = net
        self.input_blob = meta.get("input_blob", "in0")
        self.output_blob = meta.get("output_blob", "out0")
        super().__init__(param, meta)
        self.static_batch, self.dynamic = 1, False

    def run(self, x: np.ndarray) -> np.ndarray:
        import ncnn

        outs = []
        for image in x:
            with self.net.create_extractor() as ex:
                ex.input(self.input_blob, ncnn.Mat(np.ascontiguousarray(image)))
                status, out = ex.extract(self.output_blob)
                if status != 0:
                    raise RuntimeError(f"ncnn failed on {self.path} (status {status})")
                outs.append(np.array(out))
        return np.stack(outs)


class TorchScriptBackend(ExportedBackend):
    """A TorchScript file (traced, fused) run with torch.jit."""

    name = "torchscript"

    def __init__(self, path: PathLike, device: str = "cpu", threads: Optional[int] = None):
        extra = {METADATA_FILE: ""}
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        meta = json.loads(extra[METADATA_FILE]) if extra[METADATA_FILE] else {}
        if "num_classes" not in meta:
            raise ConfigError(f"{path}: no openyolox metadata inside; export it with `openyolox export`")
        super().__init__(Path(path), meta)
        self.device = torch.device(device)
        if self.device.type != "cpu" and self.decoded:
            raise ConfigError(f"{path}: TorchScript graphs with decoding inside are traced on the CPU; "
                              f"export with --no-decode to run them on {device}")
        self.model = module.eval()
        self.dtype = torch.float16 if meta.get("half") else torch.float32
        if threads and threads != torch.get_num_threads():
            torch.set_num_threads(threads)

    def _prepare(self, batch) -> torch.Tensor:  # stays a tensor: no numpy round trip
        x = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(batch))
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(x.shape)}")
        return x.to(self.device, self.dtype)

    def __call__(self, batch) -> torch.Tensor:
        x = self._prepare(batch)
        with torch.inference_mode():
            out = self.model(x).float()
            return out if self.decoded else self.decode(out, x.shape[2:])

    def raw(self, batch) -> np.ndarray:
        with torch.inference_mode():
            return self.model(self._prepare(batch)).float().cpu().numpy()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _read_sidecar(folder: Path) -> Dict[str, Any]:
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        raise ConfigError(f"{folder}: no {METADATA_FILE} beside the graph; export it with `openyolox export` "
                          f"(it records class names, input size and whether boxes are decoded)")
    return json.loads(path.read_text())


def _guess_metadata(path: PathLike, in_shape, out_shape) -> Dict[str, Any]:
    """Metadata for an ONNX file openyolox did not write (e.g. the reference's export):
    80 classes unless the output says otherwise, the input's static size, raw boxes
    (the reference exports without decoding by default)."""
    warnings.warn(f"{path}: no openyolox metadata; assuming raw (undecoded) outputs, COCO names "
                  f"and the graph's input size", stacklevel=3)
    dims = [d if isinstance(d, int) else None for d in in_shape]
    if dims[2] is None or dims[3] is None:
        raise ConfigError(f"{path}: no openyolox metadata and no static input size; re-export it")
    num_classes = int(out_shape[-1]) - 5 if isinstance(out_shape[-1], int) else 80
    return {"num_classes": num_classes, "input_size": [dims[2], dims[3]], "decoded": False, "nms": False,
            "dynamic": dims[0] is None, "batch": dims[0] or 1, "format": "onnx"}


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
    if suffix in TORCHSCRIPT_SUFFIXES or (suffix in (".pt", ".pth") and path.is_file()
                                          and _is_torchscript_archive(path)):
        return "torchscript", path
    return None


def is_exported_model(path: Any) -> bool:
    return isinstance(path, (str, Path)) and resolve_exported(path) is not None


BACKENDS = {"onnxruntime": OnnxRuntimeBackend, "openvino": OpenVINOBackend, "ncnn": NcnnBackend,
            "torchscript": TorchScriptBackend}
# runtime -> (module it needs, the openyolox extra that installs it)
REQUIRES = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "openvino"), "ncnn": ("ncnn", "ncnn")}


def load_backend(path: PathLike, device: str = "cpu", threads: Optional[int] = None) -> ExportedBackend:
    """The back-end for an exported file or folder, chosen by its suffix (see module doc)."""
    found = resolve_exported(path)
    if found is None:
        raise ConfigError(f"{path}: not an exported model (.onnx, OpenVINO .xml or folder, ncnn .param or "
                          f"folder, .torchscript)")
    kind, graph = found
    if not graph.exists():
        raise ConfigError(f"{graph}: file not found")
    if kind in REQUIRES:
        module, extra = REQUIRES[kind]
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(f"{path} needs {module}: pip install 'openyolox[{extra}]'") from None
    return BACKENDS[kind](graph, device=device, threads=threads)
