"""The fast training step (training/step.py) computes what the plain float32 NCHW step
computes; the foreach optimiser and EMA equal their one-tensor-at-a-time forms; the
reference comparison (when a reference checkout is given) and benchmarks/gpu_train.py run."""
import copy
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_data import make_tiny_dataset, write_coco  # noqa: E402

from openyolox.bench.train_step import build_step, random_targets  # noqa: E402
from openyolox.models.yolox import create_model  # noqa: E402
from openyolox.training.loss import detection_loss  # noqa: E402
from openyolox.training.schedule import ModelEMA, build_optimizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOSS_KEYS = ("total_loss", "iou_loss", "obj_loss", "cls_loss", "l1_loss")


def _batch(gts=5, imgsz=128, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, imgsz, imgsz, generator=gen) * 255
    return images, random_targets(gen, batch, gts, imgsz, 80)


def _rel(a, b):
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


@pytest.mark.parametrize("use_l1", [False, True])
def test_channels_last_step_matches_plain_float32(use_l1):
    """Same losses (1e-4 relative) and gradients (1e-3 relative per tensor) as the plain
    NCHW forward + detection_loss, at 128 px. (At 416 px, batch 8, PyTorch's channels_last
    backward drifts to ~8e-3 on the worst tensor, for the reference's network too:
    docs/benchmarks.md, "Training step against the reference YOLOX".)"""
    torch.manual_seed(0)
    plain = create_model("yolox-nano", 80).train()
    step = build_step(net=copy.deepcopy(plain), channels_last=True)
    images, targets = _batch()
    expected = detection_loss(plain(images), targets, use_l1=use_l1)
    expected["total_loss"].backward()
    got = step.losses(images, targets, use_l1=use_l1)
    got["total_loss"].backward()
    for k in LOSS_KEYS:
        assert float(got[k]) == pytest.approx(float(expected[k]), rel=1e-4, abs=1e-7), k
    theirs = dict(plain.named_parameters())
    worst = max(_rel(p.grad, theirs[name].grad) for name, p in step.model.named_parameters())
    assert worst < 1e-3


def test_foreach_sgd_and_ema_equal_the_per_tensor_forms():
    torch.manual_seed(0)
    model = create_model("yolox-nano", 3)
    twin = copy.deepcopy(model)
    fast = build_optimizer(model, 0.01)
    slow = build_optimizer(twin, 0.01)
    for group in slow.param_groups:
        group["foreach"] = False
    ema = ModelEMA(model)
    ema_ref = copy.deepcopy(ema.ema)
    for i in range(3):
        for net in (model, twin):
            for p in net.parameters():
                p.grad = torch.full_like(p, 0.1 * (i + 1))
        fast.step()
        slow.step()
        for p, q in zip(model.parameters(), twin.parameters()):
            assert torch.equal(p, q)
        ema.update(model)
        d = ema.decay()
        current = model.state_dict()
        for k, v in ema_ref.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(current[k], alpha=1 - d)
        for (k, a), b in zip(ema.ema.state_dict().items(), ema_ref.state_dict().values()):
            assert torch.allclose(a, b, rtol=0, atol=1e-7), k


@pytest.mark.skipif(not os.environ.get("OPENYOLOX_REFERENCE"),
                    reason="set OPENYOLOX_REFERENCE to a Megvii-BaseDetection/YOLOX checkout (commit 6ddff48)")
@pytest.mark.parametrize("gts", [5, 30])
def test_step_agrees_with_the_reference(gts):
    from openyolox.bench.reference import build_reference_model, import_reference
    from openyolox.bench.train_step import loss_and_gradient_agreement

    models = import_reference(os.environ["OPENYOLOX_REFERENCE"])
    torch.manual_seed(0)
    net = create_model("yolox-nano", 80)
    ref = build_reference_model(models, "yolox-nano", 80)
    ref.load_state_dict(net.state_dict(), strict=True)
    step = build_step(net=net, channels_last=True)
    images, targets = _batch(gts, imgsz=160)
    agreement = loss_and_gradient_agreement(step, ref.train(), images, targets)
    assert agreement["loss_max_rel_diff"] < 1e-4 and agreement["grad_max_rel_diff"] < 1e-3, agreement


def test_gpu_train_script_runs_tiny_on_cpu(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_train", ROOT / "benchmarks" / "gpu_train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    data = write_coco(tmp_path / "coco", make_tiny_dataset(8))
    out_json = tmp_path / "gpu.json"
    assert script.main(["--tiny", "--device", "cpu", "--data", str(data), "--workers", "0",
                        "--json", str(out_json)]) == 0
    out = json.loads(out_json.read_text())
    assert out["ran_on_gpu"] is False and out["step"]["ms_per_step"] > 0
    assert [r["workers"] for r in out["loader"]] == [0] and out["loader"][0]["images_per_s"] > 0
    assert "not run on a GPU" in capsys.readouterr().out
