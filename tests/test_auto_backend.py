"""The automatic back-end (openyolox.export.auto through the public openyolox.Detector):
which runtime it picks, that its detections are PyTorch's, the export cache (reused, keyed,
atomic, damaged entries), and the fallbacks to PyTorch (no runtime, failed export).

Every test has its own OPENYOLOX_HOME (the cache) in a temporary folder. yolox-nano at 160
keeps each export near a second.
"""
import json
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import openyolox  # noqa: E402
from openyolox.checkpoint import save_checkpoint  # noqa: E402
from openyolox.cli import main  # noqa: E402
from openyolox.errors import ConfigError  # noqa: E402
from openyolox.export import auto  # noqa: E402
from openyolox.export.verify import match_detections  # noqa: E402
from openyolox.models.yolox import create_model  # noqa: E402

SIZE = 160


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("OPENYOLOX_HOME", str(home))
    return home


def entries(home):
    """Finished cache entries (not the hash records, not temporary folders)."""
    root = home / "exports"
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name != "hashes") if root.is_dir() else []


def images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i, (h, w) in enumerate([(120, 200), (160, 160), (200, 130)][:n]):
        img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        img[20:70, 30:90] = rng.integers(0, 255, 3)
        out.append((f"img{i}", img))
    return out


def sparse_conf(detector, named_images, keep=0.01):
    """A threshold leaving ~1% of the random-weight boxes: thousands of overlapping boxes make
    NMS turn float rounding into different survivors (see tests/export_helpers.py)."""
    batch = detector.preprocess(named_images)
    out = detector.backend(batch.images)
    scores = out[..., 4] * out[..., 5:].max(-1).values
    return float(torch.quantile(scores.flatten(), 1 - keep))


def assert_same_detections(ours, ref):
    assert len(ours) == len(ref) and sum(len(r) for r in ref) > 0
    for a, b in zip(ours, ref):
        ok, why = match_detections(torch.from_numpy(np.c_[a.boxes, a.classes]),
                                   torch.from_numpy(np.c_[b.boxes, b.classes]))
        assert ok, why
        np.testing.assert_allclose(np.sort(a.scores), np.sort(b.scores), atol=1e-4)


def no_export(*args, **kwargs):
    raise AssertionError("exported although the cache holds the file")


def test_auto_picks_onnxruntime_same_detections_cache_reused(home, weights, monkeypatch, capsys):
    det = openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE)
    assert det.runtime == "onnxruntime" and det.net is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exporting yolox-nano to ONNX Runtime for faster CPU inference (once; cached in " \
        f"{home / 'exports'}" in err
    (entry,) = entries(home)
    info = json.loads((entry / "entry.json").read_text())
    assert info["runtime"] == "onnxruntime" and info["weights_sha256"] and info["openyolox_version"]

    # the second Detector exports nothing and says nothing
    monkeypatch.setattr(auto, "_export_fast", no_export)
    again = openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE)
    assert again.runtime == "onnxruntime" and capsys.readouterr().err == "" and entries(home) == [entry]

    ref = openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE, backend="torch")
    assert ref.runtime == "pytorch"
    imgs = images()
    conf = sparse_conf(ref, imgs)
    for d in (again, ref):
        d.conf = conf
    assert_same_detections(again.predict_images(imgs), ref.predict_images(imgs))
    assert again.names == ref.names and again.category_ids == ref.category_ids and again.imgsz == ref.imgsz


def test_openvino_when_onnxruntime_is_missing(home, weights, monkeypatch, capsys):
    pytest.importorskip("openvino")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    det = openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE)
    assert det.runtime == "openvino"
    assert "exporting yolox-nano to OpenVINO" in capsys.readouterr().err
    ref = openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE, backend="torch")
    imgs = images(2, seed=1)
    det.conf = ref.conf = sparse_conf(ref, imgs)
    assert_same_detections(det.predict_images(imgs), ref.predict_images(imgs))


def test_no_runtime_falls_back_with_one_warning(home, weights, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "openvino", None)
    det = openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE)
    assert det.runtime == "pytorch" and det.net is not None
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: automatic back-end: falling back to PyTorch: "
                                                   "no CPU runtime is installed")
    assert "pip install 'openyolox[onnx]'" in lines[0] and entries(home) == []
    # forcing a missing runtime is an error, not a fallback
    with pytest.raises(ConfigError, match="backend 'onnxruntime': onnxruntime is not installed"):
        openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE, backend="onnxruntime")


@pytest.mark.parametrize("failure", ["exporter", "mismatch"])
def test_failed_export_falls_back_and_leaves_nothing(home, weights, monkeypatch, capsys, failure):
    if failure == "exporter":
        def broken(*args, **kwargs):
            raise RuntimeError("the exporter exploded")
        monkeypatch.setattr(auto, "_export_fast", broken)
        why = "RuntimeError: the exporter exploded"
    else:  # the file is written but does not match PyTorch
        import openyolox.export.verify as verify

        real = verify.verify_export
        monkeypatch.setattr(verify, "verify_export", lambda path, net: {**real(path, net), "ok": False,
                                                                        "detail": "made up"})
        why = "does not match PyTorch"
    det = openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE)
    assert det.runtime == "pytorch"
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("warning: automatic back-end: falling back to PyTorch: exporting for ONNX Runtime "
                                "failed") and why in lines[-1]
    assert len([ln for ln in lines if ln.startswith("warning")]) == 1
    assert entries(home) == [] and not [p for p in (home / "exports").iterdir() if p.name.startswith(".")]
    with pytest.raises(ConfigError, match="exporting for ONNX Runtime failed"):
        openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE, backend="onnxruntime")


def test_forced_backends_and_bad_requests(home, weights, tmp_path):
    assert openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE, backend="torch").runtime == "pytorch"
    assert openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE, backend="PyTorch").runtime == "pytorch"
    with pytest.raises(ConfigError, match="unknown back-end 'tensorrt'"):
        openyolox.Detector("yolox-nano", weights=weights, backend="tensorrt")
    with pytest.raises(ConfigError, match="half applies to the PyTorch back-end"):
        openyolox.Detector("yolox-nano", weights=weights, backend="onnxruntime", half=True)
    with pytest.raises(ConfigError, match="needs a CUDA device"):  # auto on a CPU: PyTorch's own message
        openyolox.Detector("yolox-nano", weights=weights, half=True)
    onnx_file = openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE, backend="onnxruntime").backend.path
    assert openyolox.Detector(onnx_file).runtime == "onnxruntime"  # an exported file runs as it is
    with pytest.raises(ConfigError, match="is an exported ONNX Runtime file; backend .openvino."):
        openyolox.Detector(onnx_file, backend="openvino")
    with pytest.raises(ConfigError, match="weights file not found"):
        openyolox.Detector("yolox-nano", weights=tmp_path / "missing.pth")


def test_cache_key_and_remembered_weights_hash(home, weights, tmp_path, monkeypatch):
    local = tmp_path / "w.pth"
    shutil.copy(weights, local)
    digest = auto.weights_digest(local)
    (record,) = (home / "exports" / "hashes").glob("*.json")
    # remembered by path, size and mtime: a planted value is returned without hashing again
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "sha256": "f" * 64}))
    assert auto.weights_digest(local) == "f" * 64
    st = local.stat()
    os.utime(local, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: hashed again
    assert auto.weights_digest(local) == digest

    key = auto.cache_key(digest, "yolox-nano", SIZE, "onnxruntime")
    assert key == auto.cache_key(digest, "yolox_nano", (SIZE, SIZE), "onnxruntime")
    others = [auto.cache_key("0" * 64, "yolox-nano", SIZE, "onnxruntime"),
              auto.cache_key(digest, "yolox-tiny", SIZE, "onnxruntime"),
              auto.cache_key(digest, "yolox-nano", 192, "onnxruntime"),
              auto.cache_key(digest, "yolox-nano", None, "onnxruntime"),
              auto.cache_key(digest, "yolox-nano", SIZE, "openvino"),
              auto.cache_key(digest, "yolox-nano", SIZE, "onnxruntime", names=["a"] * 80)]
    import openyolox.version

    monkeypatch.setattr(openyolox.version, "__version__", "99.0")
    others.append(auto.cache_key(digest, "yolox-nano", SIZE, "onnxruntime"))
    assert len({key, *others}) == len(others) + 1


def test_random_weights_and_modules(home, monkeypatch, capsys):
    det = openyolox.Detector("yolox-nano", weights="none", imgsz=SIZE)  # random: new in every process
    assert det.runtime == "onnxruntime" and not det.backend.path.exists()  # temporary, removed once loaded
    assert "(not cached: no weights file)" in capsys.readouterr().err and entries(home) == []

    torch.manual_seed(0)
    module = create_model("yolox-nano", 3)
    assert openyolox.Detector(module, imgsz=SIZE).runtime == "onnxruntime"
    assert len(entries(home)) == 1
    with monkeypatch.context() as m:  # the same state: the same entry
        m.setattr(auto, "_export_fast", no_export)
        assert openyolox.Detector(module, imgsz=SIZE).names == ["class0", "class1", "class2"]
    with torch.no_grad():
        module.head.cls_preds[0].bias.add_(1.0)
    openyolox.Detector(module, imgsz=SIZE)  # other weights: another entry
    assert len(entries(home)) == 2


def test_model_name_alone_exports_its_published_weights_once(home, weights, monkeypatch, capsys):
    import openyolox.hub as hub

    fetched = []
    monkeypatch.setattr(hub, "weights_path", lambda name, **kw: fetched.append(name) or Path(weights))
    det = openyolox.Detector("yolox-nano", imgsz=SIZE)
    assert det.runtime == "onnxruntime" and fetched == ["yolox-nano"] and len(entries(home)) == 1
    assert "exporting yolox-nano to ONNX Runtime" in capsys.readouterr().err
    with monkeypatch.context() as m:  # the published file is keyed by its content: the same entry
        m.setattr(auto, "_export_fast", no_export)
        assert openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE).runtime == "onnxruntime"


def test_damaged_entry_is_dropped_and_pytorch_runs(home, weights, capsys):
    openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE)
    (entry,) = entries(home)
    (entry / "model.onnx").write_bytes(b"not an onnx file")
    capsys.readouterr()
    det = openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE)
    assert det.runtime == "pytorch" and entries(home) == []
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: automatic back-end: falling back to PyTorch: onnxruntime could not load")
    assert openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE).runtime == "onnxruntime"  # exported again


def test_two_processes_exporting_at_once_share_one_entry(home, weights, monkeypatch):
    """The rename that publishes an entry loses against another process's finished entry:
    that entry is used and the loser's temporary folder removed."""
    real = os.rename

    def other_process_first(src, dst):
        shutil.copytree(src, dst)  # the other process's identical entry appears first
        real(src, dst)             # -> OSError: destination not empty
    monkeypatch.setattr(auto.os, "rename", other_process_first)
    det = openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE)
    assert det.runtime == "onnxruntime" and len(entries(home)) == 1
    assert not [p for p in (home / "exports").iterdir() if p.name.startswith(".")]


def test_strict_false_load_report_survives_the_cache(home, weights, monkeypatch):
    first = openyolox.Detector("yolox-nano", weights=weights, num_classes=3, strict=False, imgsz=SIZE)
    monkeypatch.setattr(auto, "_export_fast", no_export)
    second = openyolox.Detector("yolox-nano", weights=weights, num_classes=3, strict=False, imgsz=SIZE)
    for det in (first, second):
        assert det.runtime == "onnxruntime" and len(det.load_report.mismatched) == 6


def test_prune_keeps_recent_entries(tmp_path):
    root = tmp_path / "exports"
    for i in range(5):
        (root / f"entry{i}").mkdir(parents=True)
        os.utime(root / f"entry{i}", (1000 + i, 1000 + i))  # old, entry4 the most recent
    (root / ".half-written").mkdir()
    os.utime(root / ".half-written", (1000, 1000))
    (root / "fresh").mkdir()  # just used: never removed, even beyond the count
    auto.prune_cache(root, max_entries=3)
    assert sorted(p.name for p in root.iterdir()) == ["entry3", "entry4", "fresh"]


def test_cli_predict_and_val_backend_option(home, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, img in images(2):
        cv2.imwrite(str(folder / f"{name}.jpg"), img)
    ckpt = save_checkpoint(tmp_path / "best.pth", {"model": create_model("yolox-nano", 3).state_dict(),
                                                   "model_name": "yolox-nano", "imgsz": [SIZE, SIZE],
                                                   "class_names": ["circle", "square", "triangle"]})
    rows = {}
    for backend, label in (("auto", "ONNX Runtime"), ("torch", "PyTorch")):
        out = tmp_path / backend
        assert main(["predict", str(folder), "--model", str(ckpt), "--backend", backend, "--conf", "0.01",
                     "--no-save-images", "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert f"({label})" in err and ("exporting best.pth to ONNX Runtime" in err) == (backend == "auto")
        rows[backend] = json.loads((out / "predictions.json").read_text())
    assert len(rows["auto"]) == len(rows["torch"])
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fixtures_data import write_coco

    data = write_coco(tmp_path / "coco")
    assert main(["val", "--model", str(ckpt), "--data", str(data), "--workers", "0", "--no-plots",
                 "--out", str(tmp_path / "val")]) == 0
    err = capsys.readouterr().err
    assert "(ONNX Runtime)" in err and "exporting" not in err  # the predict run's export serves val too
