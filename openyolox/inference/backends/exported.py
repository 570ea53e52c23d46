"""What every exported-file back-end shares: metadata, input checks, batching, decoding.

Subclasses implement :meth:`ExportedBackend.run` (one batch the graph accepts, numpy in,
numpy out). Graphs exported with ``--no-decode`` are decoded here; a static-batch graph is
run in chunks of its batch size, so any batch size works; graphs with NMS inside (``--nms``)
answer :meth:`ExportedBackend.detect` and refuse raw calls.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

from openyolox.errors import ConfigError
from openyolox.inference.deployed import Deployed
from openyolox.models.head import decode_boxes, make_anchor_grid


class ExportedBackend:
    name = "exported"

    def __init__(self, path: Path, deployed: Deployed):
        self.path = Path(path)
        self.deployed = deployed
        self.num_classes = deployed.num_classes
        self.names = list(deployed.class_names)
        self.imgsz: Tuple[int, int] = tuple(deployed.imgsz)
        self.dynamic = deployed.dynamic
        self.static_batch = deployed.batch
        self.decoded = deployed.decoded
        self.strides = tuple(deployed.strides)
        self.outputs_detections = deployed.nms
        self.input_dtype = np.float16 if deployed.half and deployed.format == "onnx" else np.float32
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
        if not self.dynamic and tuple(x.shape[2:]) != self.imgsz:
            h, w = self.imgsz
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
