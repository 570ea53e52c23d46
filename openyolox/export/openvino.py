"""OpenVINO IR export: our ONNX graph converted with ``openvino.convert_model``.

Output: a folder with ``model.xml`` (graph), ``model.bin`` (weights) and ``metadata.json``.
``--half`` stores FP16 weights (``compress_to_fp16``: half the file size; GPU/NPU plug-ins
compute in FP16); openyolox's back-end asks the CPU plug-in for f32 compute either way (its
default on CPUs with AVX512-BF16/AMX is bf16, which is less precise than the FP16 weights). ``--dynamic`` keeps batch, height and width free.
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from torch import nn

from openyolox.inference.deployed import Deployed, write_sidecar

XML_NAME = "model.xml"


def export_openvino(net: nn.Module, folder: Path, settings: Deployed, opset: int = 18,
                    exporter: str = "dynamo") -> Path:
    import openvino as ov

    from openyolox.export.onnx import export_onnx

    folder = Path(folder)
    if folder.suffix == ".xml":  # a file name given: its folder holds the IR
        folder = folder.parent
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # FP32 ONNX in; FP16 is applied when saving the IR
        onnx_path = export_onnx(net, Path(tmp) / "model.onnx", replace(settings, half=False, format="onnx"),
                                opset=opset, exporter=exporter)
        ov_model = ov.convert_model(str(onnx_path))
        ov.save_model(ov_model, str(folder / XML_NAME), compress_to_fp16=settings.half)
    write_sidecar(folder, settings)
    return folder
