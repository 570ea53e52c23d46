"""An OpenVINO IR (model.xml + model.bin) on the CPU plug-in."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from openyolox.errors import ConfigError
from openyolox.inference.backends import default_threads
from openyolox.inference.backends.exported import ExportedBackend
from openyolox.inference.deployed import read_sidecar


class OpenVINOBackend(ExportedBackend):
    """FP32 compute for FP32 and FP16 IRs (FP16 weights are decompressed on the CPU); INT8
    IRs run their quantized operations."""

    name = "openvino"

    def __init__(self, path: Union[str, Path], device: str = "cpu", threads: Optional[int] = None):
        import openvino as ov

        if device != "cpu":
            raise ConfigError(f"the OpenVINO back-end runs on the CPU here, not {device}")
        xml = Path(path)
        deployed = read_sidecar(xml.parent)
        core = ov.Core()
        # f32 compute also for FP16 IRs: the CPU plug-in's default is bf16 where the CPU has it,
        # which is several times less precise than the FP16 weights
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads or default_threads(),
                  "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = core.compile_model(core.read_model(str(xml)), "CPU", config)
        self.model = self.compiled
        self.request = self.compiled.create_infer_request()
        super().__init__(xml, deployed)

    def run(self, x: np.ndarray) -> np.ndarray:
        self.request.infer({0: x})
        return self.request.get_output_tensor(0).data.copy()
