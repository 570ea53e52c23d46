"""Checkpoint loading never runs code, accepts the reference formats, and saves atomically."""
import os
import re
import zipfile

import numpy as np
import pytest
import torch

import openyolox
from openyolox.checkpoint import load_checkpoint, load_weights, save_checkpoint
from openyolox.errors import CheckpointError
from openyolox.models.yolox import create_model


class _RunsACommand:
    """Unpickling this would create a file (a stand-in for arbitrary code)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"model": {}, "payload": _RunsACommand(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused to load") as info:
        load_checkpoint(evil)
    assert "system" in str(info.value)          # says what it would have called
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        openyolox.Detector("yolox-nano", weights=evil)
    assert not marker.exists()


def test_reference_training_checkpoint_with_numpy_scalars(tmp_path):
    model = create_model("yolox-nano", 3)
    path = tmp_path / "ref_train.pth"
    torch.save({"start_epoch": 10, "model": model.state_dict(), "optimizer": {"state": {}, "param_groups": []},
                "best_ap": np.float64(41.5), "curr_ap": np.float32(40.1), "arr": np.arange(3)}, path)
    ckpt = load_checkpoint(path)
    assert float(ckpt["best_ap"]) == 41.5
    load_weights(create_model("yolox-nano", 3), path)


def test_old_numpy_module_name_is_accepted(tmp_path):
    """Checkpoints pickled under numpy 1.x name numpy.core.multiarray.scalar."""
    path = tmp_path / "old.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "best_ap": np.float64(1.0)}, path)
    with zipfile.ZipFile(path) as zin:
        items = {n: zin.read(n) for n in zin.namelist()}
    data_name = next(n for n in items if n.endswith("data.pkl"))
    assert b"numpy._core.multiarray" in items[data_name]
    items[data_name] = items[data_name].replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    with zipfile.ZipFile(path, "w") as zout:
        for n, b in items.items():
            zout.writestr(n, b)
    assert float(load_checkpoint(path)["best_ap"]) == 1.0


def test_container_variants(tmp_path):
    sd = create_model("yolox-nano", 2).state_dict()
    torch.save(sd, tmp_path / "bare.pth")
    torch.save({"state_dict": sd}, tmp_path / "sd.pth")
    for name in ("bare.pth", "sd.pth"):
        assert set(load_checkpoint(tmp_path / name)["model"]) == set(sd)
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(tmp_path / "list.pth")
    (tmp_path / "trunc.pth").write_bytes((tmp_path / "bare.pth").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "trunc.pth")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pth")


@pytest.mark.parametrize("content, says", [
    (b"my notes about the training run\n", "it is a text file"),
    (b"}q\x00(X\x05\x00\x00\x00notes", "not a PyTorch checkpoint"),          # stray bytes
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", "an HTML page"),
    (b"", "empty (0 bytes)"),
])
def test_files_that_are_not_checkpoints_fail_in_one_line(tmp_path, content, says):
    path = tmp_path / "notes.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=re.escape(says)) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_damaged_pickle_is_not_reported_as_code(tmp_path):
    path = tmp_path / "damaged.pth"
    path.write_bytes(b"\x80\x02}q\x00(garbage that is no pickle")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint") as info:
        load_checkpoint(path)
    assert "run code" not in str(info.value)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    sd = create_model("yolox-nano", 80).state_dict()
    sd.pop("head.obj_preds.0.bias")
    sd["extra.weight"] = torch.zeros(1)
    model = create_model("yolox-nano", 80)
    with pytest.raises(CheckpointError) as info:
        load_weights(model, {"model": sd})
    assert "head.obj_preds.0.bias" in str(info.value) and "extra.weight" in str(info.value)
    report = load_weights(model, {"model": sd}, strict=False)
    assert report.missing == ["head.obj_preds.0.bias"] and report.unexpected == ["extra.weight"]
    assert report.loaded == len(sd) - 1


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ck.pth"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}})
    before = path.read_bytes()

    def exploding_save(obj, fh, *a, **k):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"model": {"w": torch.zeros(2)}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pth"]  # no temp file left behind


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    from openyolox.atomic import write_text_atomic

    import openyolox.atomic as atomic

    path = write_text_atomic(tmp_path / "metrics.json", "{}")
    assert path.stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK   # as open() would create it
    assert (tmp_path / "plain").open("w") and (tmp_path / "plain").stat().st_mode & 0o777 == path.stat().st_mode & 0o777
