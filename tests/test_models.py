"""The seven YOLOX networks against the reference: layout, sizes, forward outputs, fusion."""
import json
import re

import numpy as np
import pytest
import torch

from openyolox.config import ModelConfig, PRESETS, canonical_name, check_image_size
from openyolox.errors import ConfigError
from openyolox.models.profile import count_gflops, count_parameters
from openyolox.models.yolox import create_model
import golden

LAYOUT_NAMES = ["yolox-nano", "yolox-tiny", "yolox-s", "yolox-m", "yolox-l", "yolox-x", "yolov3"]


@pytest.fixture(scope="module")
def layout():
    return golden.load_json("state_dict_layout")


@pytest.fixture(scope="module")
def table():
    return golden.load_json("model_table")


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_state_dict_layout_and_params(name, layout, table):
    with torch.device("meta"):
        model = create_model(name, 80)
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == layout[name]
    assert count_parameters(model) == table[name]["params"]


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_gflops_match_reference_summary(name, table):
    model = create_model(name, 80)
    h, w = table[name]["test_size"]
    # conv/BN costs scale exactly with the input area (all sizes divide by 32), so profile
    # small and scale, as the reference does
    gflops = count_gflops(model, (64, 64)) * h * w / 64 ** 2
    ref = float(re.search(r"Gflops: ([\d.]+)", table[name]["summary"]).group(1))
    assert abs(gflops - ref) / ref < 0.005


def test_gflops_scale_with_area():
    model = create_model("yolox-nano")
    assert count_gflops(model, (416, 416)) == pytest.approx(count_gflops(model, (64, 64)) * (416 / 64) ** 2, rel=1e-9)


def _reference_model(reference_dir, tag):
    data = golden.load(f"{tag}_forward")
    cfg = json.loads(str(data["config"]))
    model = create_model(ModelConfig(tag, cfg["depth"], cfg["width"], depthwise=cfg["depthwise"]), cfg["num_classes"])
    ckpt = torch.load(golden.path(f"{tag}_reference.pth"), weights_only=True)
    model.load_state_dict(ckpt["model"], strict=True)
    return model.eval(), data


def _max_rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / (np.abs(b) + 1e-6 * np.abs(b).max() + 1e-12)))


@pytest.mark.parametrize("tag", ["nano", "small"])
def test_forward_matches_reference(reference_dir, tag):
    model, data = _reference_model(reference_dir, tag)
    image = torch.from_numpy(data["image"])
    with torch.no_grad():
        decoded = model(image).numpy()
        model.head.decode_in_inference = False
        raw = model(image).numpy()
    assert decoded.shape == data["decoded"].shape
    assert _max_rel(decoded, data["decoded"]) <= 1e-4
    assert _max_rel(raw, data["raw"]) <= 1e-4


@pytest.mark.parametrize("tag", ["nano", "small"])
def test_fusion_changes_outputs_little(reference_dir, tag):
    model, data = _reference_model(reference_dir, tag)
    image = torch.from_numpy(data["image"])
    with torch.no_grad():
        model.head.decode_in_inference = False  # compare logits-space outputs, not exp()-amplified sizes
        plain = model(image).numpy()
        model.fuse()
        fused = model(image).numpy()
        model.head.decode_in_inference = True
        decoded = model(image).numpy()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    # relative to the output scale (near-zero entries make elementwise ratios meaningless)
    assert np.abs(fused - plain).max() / np.abs(plain).max() < 1e-4
    assert np.abs(decoded - data["decoded"]).max() / np.abs(data["decoded"]).max() < 1e-4


def test_uint8_input_accepted_and_anchor_count():
    model = create_model("yolox-nano", 3).eval()
    x = torch.randint(0, 255, (2, 3, 416, 416), dtype=torch.uint8)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 3549, 8)
    assert torch.allclose(out, model(x.float()))
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 640, 640)).shape == (1, 8400, 8)


def test_train_mode_outputs_for_loss():
    model = create_model("yolox-nano", 4).train()
    out = model(torch.rand(2, 3, 64, 96) * 255)
    a = 8 * 12 + 4 * 6 + 2 * 3
    assert out["outputs"].shape == (2, a, 9) and out["raw_reg"].shape == (2, a, 4)
    assert out["grid"].shape == (a, 2) and out["strides"].shape == (a,)
    # decoded = (raw + grid) * stride on the centre coordinates
    expected = (out["raw_reg"][..., :2] + out["grid"]) * out["strides"][:, None]
    assert torch.allclose(out["outputs"][..., :2], expected)


def test_prior_bias_initialisation():
    model = create_model("yolox-s", 80)
    for conv in list(model.head.cls_preds) + list(model.head.obj_preds):
        assert torch.allclose(conv.bias, torch.full_like(conv.bias, -np.log(99.0)))


def test_bn_settings():
    model = create_model("yolox-tiny")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 and m.momentum == 0.03 for m in bns)


def test_names_and_sizes():
    assert canonical_name("YOLOv3") == "yolox-darknet53"
    assert canonical_name("yolox_s") == "yolox-s"
    assert PRESETS["yolox-nano"].test_size == (416, 416)
    with pytest.raises(ConfigError, match="unknown model"):
        canonical_name("yolox-xxl")
    assert check_image_size(640) == (640, 640)
    with pytest.raises(ConfigError, match="multiple of 32"):
        check_image_size(500)
