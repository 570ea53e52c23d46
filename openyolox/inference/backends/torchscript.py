"""A TorchScript file (traced, fused) run with torch.jit."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from openyolox.errors import ConfigError
from openyolox.inference.backends.exported import ExportedBackend
from openyolox.inference.deployed import METADATA_FILE, Deployed


class TorchScriptBackend(ExportedBackend):
    name = "torchscript"

    def __init__(self, path: Union[str, Path], device: str = "cpu", threads: Optional[int] = None):
        extra = {METADATA_FILE: ""}
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        if not extra[METADATA_FILE]:
            raise ConfigError(f"{path}: no openyolox metadata inside; export it with `openyolox export`")
        super().__init__(Path(path), Deployed.from_json(json.loads(extra[METADATA_FILE]), path))
        self.device = torch.device(device)
        if self.device.type != "cpu" and self.decoded:
            raise ConfigError(f"{path}: TorchScript graphs with decoding inside are traced on the CPU; "
                              f"export with --no-decode to run them on {device}")
        self.model = module.eval()
        self.dtype = torch.float16 if self.deployed.half else torch.float32
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
