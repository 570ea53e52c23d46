"""LR schedule and letterbox (golden), optimizer groups and EMA."""
import json
import math

import numpy as np
import pytest
import torch

from openyolox.models.yolox import create_model
import golden
from openyolox.training.recipe import BASIC_LR_PER_IMAGE
from openyolox.training.schedule import ModelEMA, WarmCosineSchedule, build_optimizer


def test_schedule_matches_reference():
    data = golden.load("schedule_letterbox")
    s = json.loads(str(data["settings"]))
    ipe = s["iters_per_epoch"]
    sched = WarmCosineSchedule(BASIC_LR_PER_IMAGE * s["batch"], s["max_epoch"] * ipe, s["warmup_epochs"] * ipe,
                               s["no_aug_epochs"] * ipe, s["min_lr_ratio"])
    ours = np.array([sched(int(i)) for i in data["iters"]])
    np.testing.assert_allclose(ours, data["lrs"], rtol=1e-9, atol=1e-15)


def test_letterbox_matches_reference():
    from openyolox.data.transforms import letterbox

    data = golden.load("schedule_letterbox")
    canvas, ratio = letterbox(data["image"], (416, 416))
    assert ratio == float(data["ratio"])
    np.testing.assert_array_equal(canvas.transpose(2, 0, 1).astype(np.float32), data["letterboxed"])


def test_schedule_shape():
    sched = WarmCosineSchedule(0.01, 1000, 100, 150, 0.05)
    lrs = [sched(i) for i in range(1000)]
    assert lrs[0] == 0 and lrs[100] == pytest.approx(0.01)
    assert all(a <= b for a, b in zip(lrs[:100], lrs[1:101]))           # warm-up rises
    assert all(a >= b - 1e-12 for a, b in zip(lrs[100:850], lrs[101:851]))  # cosine falls
    assert set(lrs[850:]) == {0.01 * 0.05}                              # flat in no-aug


def test_optimizer_groups():
    model = create_model("yolox-nano", 3)
    opt = build_optimizer(model, 0.01)
    bn, weights, biases = (g["params"] for g in opt.param_groups)
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    assert [g["weight_decay"] for g in opt.param_groups] == [0, 5e-4, 0]
    all_params = {id(p) for p in model.parameters()}
    grouped = [id(p) for p in bn + weights + biases]
    assert len(grouped) == len(set(grouped)) == len(all_params)
    assert all(p.dim() == 4 for p in weights) and all(p.dim() == 1 for p in bn + biases)


def test_ema_decay_and_update():
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.zero_()
    ema = ModelEMA(model)
    assert ema.decay() == 0
    for step, value in ((1, 1.0), (2, 3.0)):
        before = ema.ema.weight.clone()
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
        d = 0.9998 * (1 - math.exp(-step / 2000))
        assert ema.updates == step
        assert torch.allclose(ema.ema.weight, before * d + value * (1 - d))
    assert ema.ema.weight.requires_grad is False
