"""ONNX export: outputs against PyTorch, detections through the Detector, NMS in the graph,
dynamic shapes, metadata, a clean process with only onnxruntime + numpy, TensorRT readiness.

Default run: yolox-nano (reference checkpoint, random weights, many detections). tiny and s,
and FP16, are marked slow.
"""
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import openyolox  # noqa: E402
from openyolox.cli import main  # noqa: E402
from openyolox.errors import ConfigError  # noqa: E402
from openyolox.export import export  # noqa: E402
from openyolox.export.verify import match_detections, output_errors  # noqa: E402
from openyolox.export.nms_graph import append_nms  # noqa: E402
from openyolox.export.onnx import set_metadata  # noqa: E402
from openyolox.inference.deployed import Deployed, from_props  # noqa: E402
from openyolox.inference.postprocess import postprocess  # noqa: E402
from openyolox.inference.backends import load_backend  # noqa: E402
from openyolox.inference.backends.onnxrt import OnnxRuntimeBackend  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_helpers import assert_close, detecting_model, pytorch_outputs, sparse_conf  # noqa: E402

# the operators TensorRT's ONNX parser (10.x) supports that our graphs use; see docs/deployment.md
TENSORRT_OPS = {"Conv", "Sigmoid", "Mul", "Add", "Sub", "Div", "Concat", "MaxPool", "Resize", "Reshape",
                "Transpose", "Slice", "Exp", "Constant", "Shape", "Gather", "GatherND", "Unsqueeze", "Cast",
                "ReduceMax", "ArgMax", "Equal", "NonMaxSuppression", "Split", "Expand", "Range", "Flatten",
                "Identity"}


def images(n=3, seed=0):
    """Noise images of several sizes with a few flat rectangles (the random-weight nano finds
    hundreds of boxes in them)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (h, w) in enumerate([(300, 500), (416, 416), (480, 360), (200, 640)][:n]):
        img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        for _ in range(4):
            x, y = rng.integers(0, w - 60), rng.integers(0, h - 60)
            img[y:y + 50, x:x + 50] = rng.integers(0, 255, 3)
        out.append((f"img{i}", img))
    return out


def assert_same_detections(ours, ref):
    assert len(ours) == len(ref) and sum(len(b) for b in ref) > 0
    for a, b in zip(ours, ref):
        ok, why = match_detections(torch.from_numpy(np.c_[a.boxes, a.classes]),
                                   torch.from_numpy(np.c_[b.boxes, b.classes]))
        assert ok, why
        np.testing.assert_allclose(np.sort(a.scores), np.sort(b.scores), atol=1e-4)


@pytest.fixture(scope="module")
def dynamic_onnx(tmp_path_factory, weights):
    return export("yolox-nano", weights, "onnx", out=tmp_path_factory.mktemp("onnx") / "nano.onnx", dynamic=True)


@pytest.fixture(scope="module")
def nms_onnx(tmp_path_factory, weights):
    """Exported by the CLI: 320x320, static batch 1, NMS inside at the Detector's defaults
    (0.25 / 0.45).
    Exit code 0 = the CLI's own check against the Python postprocess passed."""
    out = tmp_path_factory.mktemp("onnx_nms") / "nano_nms.onnx"
    code = main(["export", "--model", "yolox-nano", "--weights", str(weights), "--nms", "--out", str(out), "--imgsz", "320",
                 "--legacy-exporter"])  # the dynamo exporter is tested on dynamic_onnx; this one is 10x faster
    assert code == 0 and out.is_file()
    return out


@pytest.fixture(scope="module")
def torch_detector(weights):
    return openyolox.Detector("yolox-nano", weights=weights, conf=0.25, iou=0.45, backend="torch")


def test_dynamic_onnx_matches_pytorch_batch_and_size(dynamic_onnx, nano):
    backend = load_backend(dynamic_onnx)
    assert isinstance(backend, OnnxRuntimeBackend) and backend.dynamic
    rng = np.random.default_rng(1)
    for shape in [(1, 3, 416, 416), (4, 3, 256, 256), (1, 3, 320, 640)]:
        x = rng.uniform(0, 255, shape).astype(np.float32)
        ref = pytorch_outputs(nano, x)
        out = backend(x).numpy()
        assert out.shape == ref.shape
        assert_close(out, ref, shape[2:])
    # uint8 numpy and torch inputs too
    x = rng.integers(0, 256, (1, 3, 416, 416), dtype=np.uint8)
    assert_close(backend(torch.from_numpy(x)).numpy(), pytorch_outputs(nano, x.astype(np.float32)), (416, 416))


def test_metadata_and_graph_interface(dynamic_onnx):
    model = onnx.load(str(dynamic_onnx))
    meta = from_props({p.key: p.value for p in model.metadata_props})
    assert meta["model_name"] == "yolox-nano" and meta["imgsz"] == [416, 416]
    assert len(meta["class_names"]) == 80 and meta["class_names"][0] == "person"
    assert meta["decoded"] is True and meta["nms"] is False and meta["dynamic"] is True
    assert min(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = model.graph.input
    assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", 3, "height", "width"]
    assert [o.name for o in model.graph.output] == ["output"]
    assert not model.graph.initializer or all(i.data_location == 0 for i in model.graph.initializer)


def test_detector_on_onnx_gives_pytorch_detections(dynamic_onnx, torch_detector, weights):
    det = openyolox.Detector(dynamic_onnx, conf=0.25, iou=0.45)
    assert det.imgsz == (416, 416) and det.names == torch_detector.names
    assert det.category_ids == torch_detector.category_ids
    imgs = images(2)
    assert_same_detections(det.predict_images(imgs), torch_detector.predict_images(imgs))
    # a dynamic graph runs other sizes: same as PyTorch at that size
    small = openyolox.Detector(dynamic_onnx, conf=0.25, imgsz=320)
    ref = openyolox.Detector("yolox-nano", weights=weights, conf=0.25, imgsz=320, backend="torch")
    assert_same_detections(small.predict_images(imgs[:1]), ref.predict_images(imgs[:1]))


def test_nms_graph_same_detections_as_python_postprocess(nms_onnx, weights):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # thresholds equal to the graph's: no warning
        det = openyolox.Detector(nms_onnx, conf=0.25, iou=0.45)
    assert det.backend.outputs_detections
    assert det.imgsz == (320, 320)
    imgs = images(3)
    # batch of 3 through a static batch-1 graph: run in chunks, batch indices offset
    ours = det.predict([img for _, img in imgs], batch_size=3)
    ref = openyolox.Detector("yolox-nano", weights=weights, conf=0.25, iou=0.45, imgsz=320, backend="torch")
    assert_same_detections(ours, ref.predict([img for _, img in imgs], batch_size=3))
    with pytest.raises(ConfigError, match="NMS inside"):
        det.backend(np.zeros((1, 3, 320, 320), np.float32))
    # a higher conf filters the graph's output exactly
    higher = openyolox.Detector(nms_onnx, conf=0.4, iou=0.45)
    ref_hi = openyolox.Detector("yolox-nano", weights=weights, conf=0.4, iou=0.45, imgsz=320, backend="torch")
    assert_same_detections(higher.predict_images(imgs[:2]), ref_hi.predict_images(imgs[:2]))


@pytest.mark.parametrize("class_agnostic,conf,iou", [(True, 0.25, 0.45), (False, 0.01, 0.65), (True, 0.4, 0.3)])
def test_nms_graph_variants(dynamic_onnx, nano, tmp_path, class_agnostic, conf, iou):
    """append_nms on the dynamic graph: batch 2, evaluation thresholds, class-agnostic."""
    proto = append_nms(onnx.load(str(dynamic_onnx)), conf=conf, iou=iou, class_agnostic=class_agnostic)
    meta = from_props({p.key: p.value for p in proto.metadata_props})
    set_metadata(proto, Deployed.from_json({**meta, "nms": True, "nms_conf": conf, "nms_iou": iou,
                                            "nms_class_agnostic": class_agnostic}))
    path = tmp_path / "nms.onnx"
    onnx.save(proto, str(path))
    backend = load_backend(path)
    x = np.random.default_rng(2).uniform(0, 255, (2, 3, 320, 352)).astype(np.float32)
    expected = postprocess(torch.from_numpy(pytorch_outputs(nano, x)), conf, iou, class_agnostic)
    got = backend.detect(x)
    assert sum(len(e) for e in expected) > 0
    for g, e in zip(got, expected):
        ok, why = match_detections(g[:, [0, 1, 2, 3, 6]], e[:, [0, 1, 2, 3, 6]])
        assert ok, why
        torch.testing.assert_close(g[:, 4], e[:, 4] * e[:, 5], atol=1e-4, rtol=1e-4)  # same order: by score


def test_nms_graph_output_format_and_tensorrt_ops(nms_onnx):
    model = onnx.load(str(nms_onnx))
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == ["detections"]
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "num_detections" and dims[1].dim_value == 7
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}, "custom-domain (plugin) ops"
    assert {n.op_type for n in model.graph.node} <= TENSORRT_OPS
    constants = {i.name for i in model.graph.initializer} | {o for n in model.graph.node if n.op_type == "Constant"
                                                             for o in n.output}
    (nms,) = [n for n in model.graph.node if n.op_type == "NonMaxSuppression"]
    assert all(name in constants for name in nms.input[2:5])  # max boxes, IoU and score thresholds
    assert all(n.input[3] in constants for n in model.graph.node if n.op_type == "Slice" and len(n.input) > 3)
    session = ort.InferenceSession(str(nms_onnx), providers=["CPUExecutionProvider"])
    out = session.run(None, {"images": np.full((1, 3, 320, 320), 114, np.float32)})[0]
    assert out.dtype == np.float32 and out.ndim == 2 and out.shape[1] == 7
    assert (out[:, 0] == 0).all() and (out[:, 5] >= 0.25).all() and (out[:, 3] >= out[:, 1]).all()


def test_clean_process_onnxruntime_only(dynamic_onnx, nano, tmp_path):
    """The file alone, in a process with onnxruntime and numpy only (no torch, no openyolox)."""
    x = np.random.default_rng(3).uniform(0, 255, (2, 3, 320, 416)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", pytorch_outputs(nano, x))
    script = tmp_path / "check.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import onnxruntime as ort
        session = ort.InferenceSession({str(dynamic_onnx)!r}, providers=["CPUExecutionProvider"])
        meta = {{k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}}
        x = np.load({str(tmp_path / "x.npy")!r})
        out = session.run(None, {{"images": x}})[0]
        expected = np.load({str(tmp_path / "expected.npy")!r})
        assert out.shape == expected.shape, (out.shape, expected.shape)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
        assert meta["class_names"][0] == "person" and meta["decoded"]
        assert "torch" not in sys.modules and "openyolox" not in sys.modules
        print("clean-process-ok", out.shape)
    """))
    proc = subprocess.run([sys.executable, "-I", str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "clean-process-ok" in proc.stdout


def test_legacy_exporter_and_static_shape_checks(nano, tmp_path):
    path = export(nano, format="onnx", out=tmp_path / "legacy.onnx", imgsz=256, batch=2, exporter="torchscript")
    backend = load_backend(path)
    assert not backend.dynamic and backend.imgsz == (256, 256) and backend.static_batch == 2
    x = np.random.default_rng(4).uniform(0, 255, (3, 3, 256, 256)).astype(np.float32)
    assert_close(backend(x).numpy(), pytorch_outputs(nano, x), (256, 256))  # chunks of 2, the last padded
    with pytest.raises(ConfigError, match="exported for 256x256"):
        backend(np.zeros((1, 3, 320, 320), np.float32))
    with pytest.raises(ConfigError, match="exported for 256x256"):
        openyolox.Detector(path, imgsz=320)


def test_foreign_onnx_without_metadata(nano, tmp_path):
    """A file openyolox did not write (like the reference's export: raw outputs, no metadata)."""
    path = export(nano, format="onnx", out=tmp_path / "raw.onnx", imgsz=256, decode=False, exporter="torchscript")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    with pytest.warns(UserWarning, match="no openyolox metadata"):
        backend = load_backend(path)
    x = np.random.default_rng(5).uniform(0, 255, (1, 3, 256, 256)).astype(np.float32)
    assert_close(backend(x).numpy(), pytorch_outputs(nano, x), (256, 256))


def test_export_errors(tmp_path, weights):
    with pytest.raises(ConfigError, match="ONNX only"):
        export("yolox-nano", weights, "torchscript", out=tmp_path / "x", nms=True)
    with pytest.raises(ConfigError, match="decoded"):
        export("yolox-nano", weights, "onnx", out=tmp_path / "x.onnx", nms=True, decode=False)
    with pytest.raises(ConfigError, match="unknown export format"):
        export("yolox-nano", weights, "tflite")
    assert main(["export", "--model", "yolox-nano", "--imgsz", "300", "--out", str(tmp_path / "y.onnx")]) == 1
    with pytest.raises(SystemExit):
        main(["export", "--batch", "2", "--dynamic"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["yolox-tiny", "yolox-s"])
def test_onnx_tiny_and_s(name, tmp_path):
    model = detecting_model(name, images(3))
    path = export(model, format="onnx", out=tmp_path / f"{name}.onnx", dynamic=True)
    backend = load_backend(path)
    size = model.config.test_size
    x = np.random.default_rng(6).uniform(0, 255, (2, 3, *size)).astype(np.float32)
    assert_close(backend(x).numpy(), pytorch_outputs(model, x), size)
    imgs = images()
    conf = sparse_conf(model, imgs)
    det = openyolox.Detector(path, conf=conf)
    ref = openyolox.Detector(model, conf=conf, backend="torch")
    assert_same_detections(det.predict_images(imgs), ref.predict_images(imgs))


@pytest.mark.slow
def test_onnx_half_within_1e2(nano, tmp_path):
    path = export(nano, format="onnx", out=tmp_path / "half.onnx", half=True)
    backend = load_backend(path)
    assert backend.input_dtype == np.float16
    x = np.random.default_rng(7).uniform(0, 255, (1, 3, 416, 416)).astype(np.float32)
    assert output_errors(backend(x).numpy(), pytorch_outputs(nano, x), 416)["scaled"] <= 1e-2


@pytest.mark.slow
def test_onnx_no_decode_through_detector(tmp_path, weights, torch_detector):
    path = export("yolox-nano", weights, "onnx", out=tmp_path / "raw.onnx", decode=False)
    assert load_backend(path).decoded is False
    imgs = images()
    assert_same_detections(openyolox.Detector(path).predict_images(imgs), torch_detector.predict_images(imgs))
