"""OpenVINO, ncnn and TorchScript exports: outputs against PyTorch, detections through the
Detector and `openyolox predict`, shapes, loading by path, a clean process per runtime.

Default run: yolox-nano at 320 (416 is covered by test_export_onnx; smaller is faster on two
cores). tiny and s at their test sizes, FP16 and ncnn --no-decode are marked slow.
"""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import openyolox
from openyolox.cli import main
from openyolox.errors import ConfigError
from openyolox.export import export
from openyolox.export.verify import match_detections, output_errors
from openyolox.inference.backends import load_backend
from openyolox.inference.backends.ncnn_net import NcnnBackend
from openyolox.inference.backends.openvino_ir import OpenVINOBackend
from openyolox.inference.backends.torchscript import TorchScriptBackend
from openyolox.inference.deployed import resolve_exported

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_helpers import assert_close, detecting_model, pytorch_outputs, sparse_conf  # noqa: E402

SIZE = 320  # nano input size of the default-run exports


def images(n=2, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i, (h, w) in enumerate([(300, 500), (480, 360), (416, 416)][:n]):
        img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        img[40:120, 60:160] = rng.integers(0, 255, 3)
        out.append((f"img{i}", img))
    return out


def assert_same_detections(ours, ref):
    assert len(ours) == len(ref) and sum(len(b) for b in ref) > 0
    for a, b in zip(ours, ref):
        ok, why = match_detections(torch.from_numpy(np.c_[a.boxes, a.classes]),
                                   torch.from_numpy(np.c_[b.boxes, b.classes]))
        assert ok, why


def batch(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


@pytest.fixture(scope="module")
def torch_detector(weights):
    return openyolox.Detector("yolox-nano", weights=weights, imgsz=SIZE, backend="torch")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, weights):
    """One nano export per format (OpenVINO dynamic, via the fast legacy ONNX tracer; the
    default torch.export path is covered by test_export_onnx and the slow tests)."""
    pytest.importorskip("openvino")
    pytest.importorskip("ncnn")
    pytest.importorskip("pnnx")
    root = tmp_path_factory.mktemp("exports")
    return {
        "torchscript": export("yolox-nano", weights, "torchscript", out=root / "nano.torchscript", imgsz=SIZE),
        "openvino": export("yolox-nano", weights, "openvino", out=root / "nano_openvino", dynamic=True,
                           exporter="torchscript", imgsz=SIZE),
        "ncnn": export("yolox-nano", weights, "ncnn", out=root / "nano_ncnn", imgsz=SIZE),
    }


BACKEND_TYPES = {"torchscript": TorchScriptBackend, "openvino": OpenVINOBackend, "ncnn": NcnnBackend}


@pytest.mark.parametrize("fmt", ["torchscript", "openvino", "ncnn"])
def test_outputs_match_pytorch(fmt, exported, nano):
    backend = load_backend(exported[fmt])
    assert isinstance(backend, BACKEND_TYPES[fmt])
    assert backend.imgsz == (SIZE, SIZE) and backend.num_classes == 80 and backend.decoded
    shapes = [(1, 3, SIZE, SIZE), (2, 3, SIZE, SIZE)]  # ncnn: image by image
    if fmt != "ncnn":
        shapes.append((1, 3, 256, 416))  # dynamic: any multiple of 32
    for i, shape in enumerate(shapes):
        x = batch(shape, i)
        out, ref = backend(x).numpy(), pytorch_outputs(nano, x)
        assert_close(out, ref, shape[2:])
    if fmt == "ncnn":
        with pytest.raises(ConfigError, match=f"exported for {SIZE}x{SIZE}"):
            backend(np.zeros((1, 3, 256, 256), np.float32))


@pytest.mark.parametrize("fmt", ["torchscript", "openvino", "ncnn"])
def test_detector_gives_pytorch_detections(fmt, exported, torch_detector):
    det = openyolox.Detector(exported[fmt])
    assert det.names == torch_detector.names and det.imgsz == (SIZE, SIZE)
    imgs = images()
    assert_same_detections(det.predict_images(imgs), torch_detector.predict_images(imgs))


def test_predict_cli_on_exported_folder(exported, weights, tmp_path):
    src = tmp_path / "images"
    src.mkdir()
    for name, img in images():
        cv2.imwrite(str(src / f"{name}.png"), img)
    rows = {}
    for key, model_args in (("openvino", ["--model", str(exported["openvino"])]),
                            ("pytorch", ["--model", "yolox-nano", "--weights", str(weights), "--imgsz", str(SIZE)])):
        out = tmp_path / key
        assert main(["predict", str(src), *model_args, "--out", str(out), "--no-save-images"]) == 0
        rows[key] = json.loads((out / "predictions.json").read_text())
    assert len(rows["openvino"]) == len(rows["pytorch"]) > 0

    def per_image(rows, image_id):  # (N, 5) x1, y1, x2, y2, category
        return torch.tensor([[x, y, x + w, y + h, r["category_id"]] for r in rows if r["image_id"] == image_id
                             for x, y, w, h in [r["bbox"]]]).reshape(-1, 5)

    for image_id in ("img0", "img1"):
        ok, why = match_detections(per_image(rows["openvino"], image_id), per_image(rows["pytorch"], image_id))
        assert ok, why


def test_paths_resolve_to_runtimes(exported):
    ov_dir, ncnn_dir = exported["openvino"], exported["ncnn"]
    assert resolve_exported(ov_dir) == ("openvino", ov_dir / "model.xml")
    assert resolve_exported(ov_dir / "model.bin") == ("openvino", ov_dir / "model.xml")
    assert resolve_exported(ncnn_dir) == ("ncnn", ncnn_dir / "model.ncnn.param")
    assert resolve_exported(ncnn_dir / "model.ncnn.bin") == ("ncnn", ncnn_dir / "model.ncnn.param")
    assert resolve_exported(exported["torchscript"])[0] == "torchscript"
    assert isinstance(load_backend(ov_dir / "model.xml"), OpenVINOBackend)
    meta = json.loads((ncnn_dir / "metadata.json").read_text())
    assert meta["model_name"] == "yolox-nano" and meta["batch"] == 1 and meta["format"] == "ncnn"


def test_torchscript_pt_suffix_and_checkpoint_not_confused(exported, weights, tmp_path):
    pt = tmp_path / "model.pt"
    pt.write_bytes(exported["torchscript"].read_bytes())
    assert resolve_exported(pt)[0] == "torchscript"
    assert resolve_exported(weights) is None  # a checkpoint stays a checkpoint


def test_missing_metadata_is_explained(exported, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("model.xml", "model.bin"):
        (bare / f).write_bytes((exported["openvino"] / f).read_bytes())
    with pytest.raises(ConfigError, match="metadata.json"):
        openyolox.Detector(bare)


CLEAN_SCRIPTS = {
    "openvino": """
        import openvino as ov
        core = ov.Core()
        model = core.compile_model(core.read_model(PATH + "/model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        out = model(x)[0]
    """,
    "ncnn": """
        import ncnn
        net = ncnn.Net()
        net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
        net.load_param(PATH + "/model.ncnn.param")
        net.load_model(PATH + "/model.ncnn.bin")
        ex = net.create_extractor()
        ex.input(meta["input_blob"], ncnn.Mat(np.ascontiguousarray(x[0])))
        status, mat = ex.extract(meta["output_blob"])
        out = np.array(mat)[None]
    """,
}


@pytest.mark.parametrize("fmt", ["openvino", "ncnn"])
def test_clean_process_runtime_only(fmt, exported, nano, tmp_path):
    """The exported folder alone, in a process with only the runtime and numpy."""
    x = batch((1, 3, SIZE, SIZE), 7)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", pytorch_outputs(nano, x))
    body = textwrap.dedent(CLEAN_SCRIPTS[fmt])
    script = tmp_path / "check.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        import numpy as np
        PATH = {str(exported[fmt])!r}
        meta = json.load(open(PATH + "/metadata.json"))
        x = np.load({str(tmp_path / "x.npy")!r})
    """) + body + textwrap.dedent(f"""
        expected = np.load({str(tmp_path / "expected.npy")!r})
        assert out.shape == expected.shape, (out.shape, expected.shape)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
        assert meta["class_names"][0] == "person" and meta["imgsz"] == [{SIZE}, {SIZE}]
        assert "torch" not in sys.modules and "openyolox" not in sys.modules
        print("clean-process-ok")
    """))
    proc = subprocess.run([sys.executable, "-I", str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "clean-process-ok" in proc.stdout


def test_torchscript_no_decode(nano, weights, torch_detector, tmp_path):
    x = batch((1, 3, SIZE, SIZE), 8)
    raw_path = export("yolox-nano", weights, "torchscript", out=tmp_path / "raw.torchscript", decode=False,
                      imgsz=SIZE)
    raw = load_backend(raw_path)
    assert raw.decoded is False
    assert_close(raw.raw(x), pytorch_outputs(nano, x, decode=False), (SIZE, SIZE), decoded=False)
    imgs = images()
    assert_same_detections(openyolox.Detector(raw_path).predict_images(imgs), torch_detector.predict_images(imgs))


# ---------------------------------------------------------------------------------- slow
@pytest.mark.slow
@pytest.mark.parametrize("name", ["yolox-tiny", "yolox-s"])
@pytest.mark.parametrize("fmt", ["torchscript", "openvino", "ncnn"])
def test_tiny_and_s(name, fmt, tmp_path):
    pytest.importorskip({"torchscript": "torch", "openvino": "openvino", "ncnn": "pnnx"}[fmt])
    model = detecting_model(name, images(3))
    path = export(model, format=fmt, out=tmp_path / f"m_{fmt}", dynamic=fmt == "openvino")
    backend = load_backend(path)
    x = batch((1, 3, *model.config.test_size), 9)
    assert_close(backend(x).numpy(), pytorch_outputs(model, x), model.config.test_size)
    imgs = images(3)
    conf = sparse_conf(model, imgs)
    assert_same_detections(openyolox.Detector(path, conf=conf).predict_images(imgs),
                           openyolox.Detector(model, conf=conf, backend="torch").predict_images(imgs))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["openvino", "ncnn", "torchscript"])
def test_half_within_1e2(fmt, nano, tmp_path):
    """FP16 weights (and FP16 compute for ncnn and TorchScript, which is slow on a CPU)."""
    pytest.importorskip({"openvino": "openvino", "ncnn": "pnnx", "torchscript": "torch"}[fmt])
    backend = load_backend(export(nano, format=fmt, out=tmp_path / f"half_{fmt}", half=True))
    assert backend.deployed.half
    x = batch((1, 3, 416, 416), 10)
    assert output_errors(backend(x).numpy(), pytorch_outputs(nano, x), 416)["scaled"] <= 1e-2


@pytest.mark.slow
def test_ncnn_no_decode(weights, torch_detector, tmp_path):
    pytest.importorskip("pnnx")
    path = export("yolox-nano", weights, "ncnn", out=tmp_path / "raw_ncnn", decode=False, imgsz=SIZE)
    imgs = images()
    assert_same_detections(openyolox.Detector(path).predict_images(imgs), torch_detector.predict_images(imgs))


def test_benchmark_latency_cli_prints_table_and_json(tmp_path, capsys):
    """Small and fast: two back-ends at 64x64, a few calls, each timed in its own process."""
    out = tmp_path / "latency.jsonl"
    assert main(["benchmark", "latency", "--model", "yolox-nano", "--imgsz", "64", "--runs", "3", "--batch", "2",
                 "--backends", "pytorch-fused", "torchscript", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| back-end |" in printed and "| torchscript |" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["backend"], r["batch"]) for r in rows] == [("pytorch-fused", 1), ("pytorch-fused", 2),
                                                           ("torchscript", 1), ("torchscript", 2)]
    for r in rows:
        assert {"backend", "batch", "median_ms", "p90_ms", "images_per_s"} <= set(r)
        assert r["p90_ms"] >= r["median_ms"] > 0 and r["images_per_s"] > 0
    assert [json.loads(line) for line in printed.splitlines() if line.startswith("{")] == rows
