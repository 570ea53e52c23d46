"""The export check (openyolox.export.verify) passes valid float32 exports of every model
size, whatever their weights, and still catches real errors planted in a file.

Models: random weights with batch-norm statistics calibrated on random images (the case
where a fixed 1e-4 tolerance against PyTorch float32 refused valid files). Exported with the
legacy ONNX exporter at 256 px to keep the test fast; the check does not depend on either.
"""
import copy

import pytest
import torch

pytest.importorskip("onnxruntime")

from openyolox.export import export  # noqa: E402
from openyolox.export.verify import FACTOR, verify_export  # noqa: E402
from openyolox.models import head as head_module  # noqa: E402
from openyolox.models.yolox import create_model  # noqa: E402

SIZE = 256


def calibrated_model(name: str, seed: int):
    """Random weights (seeded), batch norm measured on 4 random 0..255 images."""
    torch.manual_seed(seed)
    model = create_model(name)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model.train()(torch.rand(4, 3, SIZE, SIZE) * 255)
    return model.eval()


def export_onnx(model, path):
    return export(model, format="onnx", out=path, imgsz=SIZE, exporter="torchscript")


@pytest.mark.parametrize("name", ["yolox-nano", "yolox-tiny", "yolox-s"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_valid_exports_pass(name, seed, tmp_path):
    model = calibrated_model(name, seed)
    report = verify_export(export_onnx(model, tmp_path / "m.onnx"), model)
    assert report["ok"], report
    assert report["error_runtime"] <= FACTOR * max(report["error_pytorch_fp32"], 1e-6)


def test_swapped_channels_are_caught(tmp_path):
    model = calibrated_model("yolox-nano", 0)
    path = export_onnx(model, tmp_path / "m.onnx")
    swapped = copy.deepcopy(model)  # the file's network, but reading RGB where it was BGR
    with torch.no_grad():
        stem = swapped.backbone.backbone.stem.conv.conv.weight  # Focus: 4 blocks of 3 channels
        for block in range(4):
            b, r = 3 * block, 3 * block + 2
            stem[:, [b, r]] = stem[:, [r, b]]
    report = verify_export(path, swapped)
    assert not report["ok"] and "from the exact result" in report["detail"]


def test_wrong_decode_is_caught(tmp_path, monkeypatch):
    model = calibrated_model("yolox-nano", 0)

    def decode_without_grid(raw, grid, stride):  # forgets the cell offset: cx = tx * s
        xy = raw[..., :2] * stride
        wh = torch.exp(raw[..., 2:4]) * stride
        return torch.cat([xy, wh, raw[..., 4:]], dim=-1)

    monkeypatch.setattr(head_module, "decode_boxes", decode_without_grid)
    path = export_onnx(model, tmp_path / "bad.onnx")
    monkeypatch.undo()
    report = verify_export(path, model)
    assert not report["ok"], report
