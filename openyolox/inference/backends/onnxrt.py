"""An ONNX file in ONNX Runtime (CPU, or CUDA when onnxruntime-gpu is installed)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from openyolox.errors import ConfigError
from openyolox.inference.backends import default_threads
from openyolox.inference.backends.exported import ExportedBackend
from openyolox.inference.deployed import Deployed, from_props, guess_onnx


class OnnxRuntimeBackend(ExportedBackend):
    name = "onnxruntime"

    def __init__(self, path: Union[str, Path], device: str = "cpu", threads: Optional[int] = None):
        import onnxruntime as ort

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
        meta = from_props(self.session.get_modelmeta().custom_metadata_map)
        deployed = Deployed.from_json(meta, path) if "format" in meta else guess_onnx(path, inp.shape, out.shape)
        super().__init__(Path(path), deployed)
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]
