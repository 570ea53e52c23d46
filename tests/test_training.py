"""Training runs end to end on tiny data: outputs, checkpoints, resume, failures."""
import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_data import make_tiny_dataset, write_coco  # noqa: E402

import openyolox  # noqa: E402
from openyolox.checkpoint import load_checkpoint, load_weights  # noqa: E402
from openyolox.errors import ConfigError, DataError  # noqa: E402
from openyolox.models.yolox import create_model  # noqa: E402
from openyolox.training import step as step_mod  # noqa: E402
from openyolox.training.recipe import TrainConfig, resolve_defaults  # noqa: E402
from openyolox.training.trainer import NonFiniteLossError, Trainer  # noqa: E402

# 12 images, 64 px, 2 epochs of 3 iterations: seconds per run
FAST = dict(model="yolox-nano", weights="none", epochs=2, batch=4, imgsz=64, workers=0, warmup_epochs=1, no_aug_epochs=1,
            eval_interval=1, multiscale=False, progress=False, eval_batch=4)


@pytest.fixture(scope="module")
def coco_data(tmp_path_factory):
    return write_coco(tmp_path_factory.mktemp("data") / "coco", make_tiny_dataset(12))


def _weights(path):
    return load_checkpoint(path)["model"]


def test_run_outputs_and_checkpoint_formats(coco_data, tmp_path):
    run = openyolox.train(data=str(coco_data), out=str(tmp_path / "run"), **{k: v for k, v in FAST.items() if k != "model"})
    for name in ("best.pth", "last.pth", "metrics.json", "metrics.csv", "predictions.json", "training_curves.png",
                 "pr_curve.png", "confusion_matrix.png"):
        assert (run / name).is_file(), name
    assert list((run / "val_predictions").glob("*.jpg"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["AP50_95"] <= metrics["AP50"] <= 1.0
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and "AP50" in rows[0]
    ckpt = load_checkpoint(run / "last.pth")
    assert ckpt["epoch"] == 2 and ckpt["model_name"] == "yolox-nano"
    assert ckpt["class_names"] == ["circle", "square", "triangle"]
    # the reference layout: {"model": state_dict} loads strictly into a plain network
    load_weights(create_model("yolox-nano", 3), run / "best.pth", strict=True)
    det = openyolox.Detector(run / "best.pth")
    assert det.names == ["circle", "square", "triangle"] and det.imgsz == (64, 64)


def test_resume_mid_epoch_matches_uninterrupted(coco_data, tmp_path, monkeypatch):
    full = openyolox.train(data=str(coco_data), out=str(tmp_path / "full"), save_every=1,
                           **{k: v for k, v in FAST.items() if k != "model"})

    real_step = Trainer.train_step
    calls = {"n": 0}

    def crashing_step(self, batch):
        if calls["n"] == 4:  # in epoch 2, after 4 saved iterations
            raise KeyboardInterrupt
        calls["n"] += 1
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "train_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        openyolox.train(data=str(coco_data), out=str(tmp_path / "cut"), save_every=1,
                        **{k: v for k, v in FAST.items() if k != "model"})
    assert load_checkpoint(tmp_path / "cut" / "last.pth")["iteration"] == 4
    monkeypatch.setattr(Trainer, "train_step", real_step)
    resumed = openyolox.train(resume=str(tmp_path / "cut"), progress=False)
    assert resumed == tmp_path / "cut"
    a, b = _weights(full / "last.pth"), _weights(resumed / "last.pth")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_non_finite_loss_stops_with_context(coco_data, tmp_path, monkeypatch):
    real_step = Trainer.train_step
    calls = {"n": 0}

    def poisoned_step(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:  # this step's loss comes out NaN
            real_loss = step_mod.detection_loss  # the loss the training step calls (training/step.py)

            def nan_loss(out, targets, use_l1):
                return {**real_loss(out, targets, use_l1=use_l1), "total_loss": torch.tensor(math.nan)}

            monkeypatch.setattr(step_mod, "detection_loss", nan_loss)
            try:
                return real_step(self, batch)
            finally:
                monkeypatch.setattr(step_mod, "detection_loss", real_loss)
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "train_step", poisoned_step)
    with pytest.raises(NonFiniteLossError) as info:
        openyolox.train(data=str(coco_data), out=str(tmp_path / "nan"), **{k: v for k, v in FAST.items() if k != "model"})
    msg = str(info.value)
    assert "epoch 1, iteration 3" in msg and "images [" in msg
    ckpt = load_checkpoint(tmp_path / "nan" / "last.pth")
    assert ckpt["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.dtype.is_floating_point)


def test_finetune_other_class_count_reinitialises_cls_layers(coco_data, tmp_path, capsys):
    src = tmp_path / "coco80.pth"
    torch.save({"model": create_model("yolox-nano", 80).state_dict()}, src)
    run = openyolox.train(data=str(coco_data), out=str(tmp_path / "ft"), weights=str(src),
                          **{**{k: v for k, v in FAST.items() if k not in ("model", "weights")}, "epochs": 1,
                             "no_aug_epochs": 0})
    assert "re-initialised the class prediction layers" in capsys.readouterr().err
    assert load_checkpoint(run / "last.pth")["model"]["head.cls_preds.0.bias"].shape == (3,)


def test_bad_labels_stop_before_training_unless_skipped(tmp_path):
    images = make_tiny_dataset(8)
    root = write_coco(tmp_path / "bad", images)
    ann_file = next((root / "annotations").glob("*train*.json"))
    ann = json.loads(ann_file.read_text())
    ann["annotations"][0]["bbox"] = [5, 5, 0, 10]          # zero width
    ann["annotations"][1]["bbox"] = [-50, 2, 20, 20]        # far outside the image
    ann_file.write_text(json.dumps(ann))
    fast = {k: v for k, v in FAST.items() if k != "model"}
    with pytest.raises(DataError) as info:
        openyolox.train(data=str(root), out=str(tmp_path / "r1"), **fast)
    assert "box-no-area" in str(info.value) and "box-outside" in str(info.value) and "--skip-bad" in str(info.value)
    assert not (tmp_path / "r1").exists()  # a run that failed before its first step leaves no folder
    run = openyolox.train(data=str(root), out=str(tmp_path / "r2"), skip_bad=True, **{**fast, "epochs": 1, "no_aug_epochs": 0})
    assert (run / "last.pth").exists()


def test_no_aug_phase_switches_l1_on(coco_data, tmp_path, monkeypatch):
    seen = []
    real_step = Trainer.train_step

    def spy(self, batch):
        seen.append((self.epoch, self.use_l1, self.dataset.enable_aug))
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "train_step", spy)
    openyolox.train(data=str(coco_data), out=str(tmp_path / "l1"), **{k: v for k, v in FAST.items() if k != "model"})
    assert {s for s in seen if s[0] == 0} == {(0, False, True)}
    assert {s for s in seen if s[0] == 1} == {(1, True, False)}


def test_scaled_defaults():
    cfg = resolve_defaults(TrainConfig(model="yolox-s", data="/x", weights="none"))   # from scratch: the report's
    assert (cfg.epochs, cfg.batch, cfg.imgsz, cfg.warmup_epochs, cfg.no_aug_epochs) == (300, 64, 640, 5, 15)
    assert cfg.lr_per_image == pytest.approx(0.01 / 64) and cfg.multiscale
    short = resolve_defaults(TrainConfig(model="yolox-s", data="/x", weights="none", epochs=20))
    assert (short.warmup_epochs, short.no_aug_epochs) == (1, 1)


def test_fine_tuning_is_the_default_recipe_for_your_data():
    cfg = resolve_defaults(TrainConfig(model="yolox-s", data="/x"))   # starts from the published weights
    assert (cfg.epochs, cfg.batch, cfg.warmup_epochs, cfg.no_aug_epochs, cfg.eval_interval) == (50, 16, 1, 5, 5)
    for weights in ("yolox-s", "my.pth"):
        assert resolve_defaults(TrainConfig(data="/x", weights=weights)).epochs == 50
    assert resolve_defaults(TrainConfig(data="/x", epochs=20)).no_aug_epochs == 2


@pytest.mark.parametrize("data", ["builtin", "/some/coco"])
@pytest.mark.parametrize("epochs", [1, 2, 3, 4, 7, 18, 40, 300])
def test_derived_defaults_fit_any_epoch_count(data, epochs):
    """Whatever --epochs the user gives, the derived counts never contradict it."""
    cfg = resolve_defaults(TrainConfig(data=data, epochs=epochs))
    assert cfg.epochs == epochs
    assert 0 <= cfg.no_aug_epochs < epochs or (epochs == 1 and cfg.no_aug_epochs == 0)
    assert (cfg.no_aug_epochs >= 1) == (epochs > 1)             # an L1/no-aug phase whenever there is room
    assert 1 <= cfg.warmup_epochs <= max(epochs - cfg.no_aug_epochs, 1)
    assert 1 <= cfg.eval_interval <= epochs or cfg.eval_interval == 1


def test_builtin_three_epochs_scales_no_aug():
    cfg = resolve_defaults(TrainConfig(data="builtin", epochs=3))
    assert (cfg.warmup_epochs, cfg.no_aug_epochs, cfg.eval_interval) == (1, 1, 1)


def test_user_values_are_kept_and_only_user_contradictions_fail():
    cfg = resolve_defaults(TrainConfig(data="builtin", epochs=3, no_aug_epochs=3))  # all epochs without mosaic
    assert cfg.no_aug_epochs == 3
    with pytest.raises(ConfigError, match=r"--no-aug-epochs 5 is longer than the run: --epochs 3"):
        resolve_defaults(TrainConfig(data="builtin", epochs=3, no_aug_epochs=5))
    with pytest.raises(ConfigError, match=r"--warmup-epochs 999 .*the default \d+ epochs \(set --epochs\)"):
        resolve_defaults(TrainConfig(data="builtin", warmup_epochs=999))
    with pytest.raises(ConfigError, match="--epochs must be >= 1"):
        resolve_defaults(TrainConfig(epochs=0))


@pytest.mark.parametrize("spec, frozen_prefixes", [
    ("backbone", ["backbone.backbone."]),
    ("neck", ["backbone."]),
    ("2", ["backbone.backbone.stem.", "backbone.backbone.dark2."]),
])
def test_freeze_keeps_weights_and_bn_statistics_exactly(coco_data, tmp_path, capsys, spec, frozen_prefixes):
    start = tmp_path / "start.pth"
    torch.manual_seed(1)
    torch.save({"model": create_model("yolox-nano", 3).state_dict()}, start)
    before = load_checkpoint(start)["model"]
    run = openyolox.train(data=str(coco_data), out=str(tmp_path / "run"), freeze=spec,
                          **{**{k: v for k, v in FAST.items() if k != "model"}, "weights": str(start)})
    assert "parameters trainable" in capsys.readouterr().err
    ckpt = load_checkpoint(run / "last.pth")
    for key, value in before.items():
        frozen = any(key.startswith(p) for p in frozen_prefixes)
        for stored in (ckpt["train_model"][key], ckpt["model"][key]):   # trained and EMA weights
            if frozen:
                assert torch.equal(stored, value), key                  # weights and running stats
    moved = [k for k in before if not any(k.startswith(p) for p in frozen_prefixes)
             and k.endswith("weight") and not torch.equal(ckpt["train_model"][k], before[k])]
    assert moved  # the rest trained


def test_freeze_rejects_what_the_model_does_not_have(coco_data, tmp_path):
    with pytest.raises(ConfigError, match="--freeze 99: the model has 13 freezable blocks"):
        openyolox.train(data=str(coco_data), out=str(tmp_path / "run"), freeze="99",
                        **{k: v for k, v in FAST.items() if k != "model"})
    with pytest.raises(ConfigError, match="expected backbone, neck or a number"):
        openyolox.train(data=str(coco_data), out=str(tmp_path / "run2"), freeze="head",
                        **{k: v for k, v in FAST.items() if k != "model"})
