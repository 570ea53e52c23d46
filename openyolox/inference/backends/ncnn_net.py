"""An ncnn graph (model.ncnn.param + .bin): one image of the exported size per run; batches
are run image by image. FP32 storage and arithmetic unless exported with --half."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from openyolox.errors import ConfigError
from openyolox.inference.backends import default_threads
from openyolox.inference.backends.exported import ExportedBackend
from openyolox.inference.deployed import read_sidecar


class NcnnBackend(ExportedBackend):
    name = "ncnn"

    def __init__(self, path: Union[str, Path], device: str = "cpu", threads: Optional[int] = None):
        import ncnn

        if device != "cpu":
            raise ConfigError(f"the ncnn back-end runs on the CPU here, not {device}")
        param = Path(path)
        weights = param.with_suffix(".bin")
        if not weights.is_file():
            raise ConfigError(f"{param}: the weights file {weights.name} is missing beside it")
        deployed = read_sidecar(param.parent)
        net = ncnn.Net()
        net.opt.use_vulkan_compute = False
        net.opt.num_threads = threads or default_threads()
        net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = deployed.half
        net.opt.use_bf16_storage = False
        if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
            raise ConfigError(f"{param}: ncnn could not load the graph")
        self.net = self.model = net
        self.input_blob, self.output_blob = deployed.input_blob, deployed.output_blob
        super().__init__(param, deployed)
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
