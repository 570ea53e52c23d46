"""INT8 export (openyolox.export.int8): ONNX Runtime QDQ and OpenVINO NNCF end to end through
`openyolox export --int8`, what stays float, calibration images, --int8-max-drop, errors.

The model and data set are made here: yolox-nano at 160 with random weights, on images labelled
with its own PyTorch detections (tests/selflabelled.py), so FP32 scores AP 1.0 and the printed
drop is INT8's own. Random weights are not what INT8 is measured on (their scores differ by
hundredths, which 8 bits reorder): the drop on a trained model is in docs/deployment.md.
"""
import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from openyolox.cli import main  # noqa: E402
from openyolox.errors import ConfigError  # noqa: E402
from openyolox.export import export  # noqa: E402
from openyolox.export.int8 import KEEP_FLOAT, calibration_batches, float_parts, onnx_nodes, openvino_nodes  # noqa: E402
from openyolox.inference.backends import load_backend  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from selflabelled import make_selflabelled  # noqa: E402

SIZE = 160
DROP_LINE = re.compile(r"INT8 accuracy on .* val \(8 images\): AP50-95 [\d.]+ \(FP32 100\.0, drop [-\d.]+\), "
                       r"AP50 [\d.]+ \(FP32 100\.0, drop [-\d.]+\)")


@pytest.fixture(scope="module")
def selflabelled(tmp_path_factory):
    return make_selflabelled(tmp_path_factory.mktemp("selflabelled"), SIZE)


def test_onnx_int8_end_to_end(own_process, selflabelled, tmp_path, capsys):
    if own_process:  # quantization libraries stay loaded: see conftest.own_process
        return
    import onnx

    ckpt, data = selflabelled
    out = tmp_path / "nano_int8.onnx"
    assert main(["export", "--model", str(ckpt), "--int8", "--data", str(data), "--calib-images", "8",
                 "--legacy-exporter", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert DROP_LINE.search(captured.err), captured.err
    assert "FP32 graph checked with onnxruntime against PyTorch" in captured.err
    assert captured.out.strip().splitlines()[-1] == f"exported to {out}"
    backend = load_backend(out)
    assert backend.deployed.int8 and backend.deployed.imgsz == (SIZE, SIZE) and len(backend.names) == 80
    proto = onnx.load(str(out))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") > 50 and ops.count("DequantizeLinear") > 50
    # the decode is float: no Q/DQ after the last convolutions
    kinds = {n.name: n.op_type for n in proto.graph.node}
    tail = [kinds[name] for name in float_parts(onnx_nodes(proto), "decode")]
    assert {"Exp", "Sigmoid", "Concat"} <= set(tail) and not {"QuantizeLinear", "DequantizeLinear"} & set(tail)
    # and so are the head's final convolutions: float weights, not a DequantizeLinear's output
    weights = {i.name for i in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    float_convs = [n for n in convs if n.input[1] in weights]  # a DequantizeLinear feeds the quantized ones
    assert len(float_convs) == 9 and len(convs) > 60  # cls/reg/obj preds x 3 levels
    # an INT8 file runs through the Detector and stays near the FP32 graph
    fp32 = export(ckpt, format="onnx", out=tmp_path / "fp32.onnx", exporter="torchscript")
    x = calibration_batches(data, (SIZE, SIZE), count=2)[1]
    a, b = backend(x).numpy(), load_backend(fp32)(x).numpy()
    # on a calibration image: median errors ~0.006 (probabilities) and ~0.2 px (boxes) measured
    assert np.median(np.abs(a[..., 4:] - b[..., 4:])) < 0.02 and np.abs(a[..., 4:] - b[..., 4:]).max() < 0.2
    assert np.median(np.abs(a[..., :4] - b[..., :4])) < 1.0


def test_openvino_int8_end_to_end(own_process, selflabelled, tmp_path, capsys):
    if own_process:  # quantization libraries stay loaded: see conftest.own_process
        return
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    import openvino as ov

    ckpt, data = selflabelled
    out = tmp_path / "nano_int8_openvino"
    assert main(["export", "--model", str(ckpt), "--format", "openvino", "--int8", "--data", str(data),
                 "--calib-images", "8", "--legacy-exporter", "--out", str(out), "--no-verify"]) == 0
    captured = capsys.readouterr()
    assert DROP_LINE.search(captured.err) and captured.out.strip().splitlines()[-1] == f"exported to {out}"
    assert "━" not in captured.out  # NNCF's progress bars stay off stdout
    backend = load_backend(out)
    assert backend.deployed.int8 and backend(calibration_batches(data, (SIZE, SIZE), 1)[0]).shape == (1, 525, 85)
    model = ov.Core().read_model(str(out / "model.xml"))
    kinds = {op.get_friendly_name(): op.get_type_name() for op in model.get_ordered_ops()}
    assert list(kinds.values()).count("FakeQuantize") > 50
    tail = [kinds[name] for name in float_parts(openvino_nodes(model), "decode+head")]
    assert {"Exp", "Sigmoid", "Convolution"} <= set(tail) and "FakeQuantize" not in tail


def test_max_drop_fails_and_writes_nothing(own_process, selflabelled, tmp_path, capsys, monkeypatch):
    if own_process:  # quantization libraries stay loaded: see conftest.own_process
        return
    import openyolox.evaluation.validate as validate

    ckpt, data = selflabelled
    monkeypatch.setattr(validate, "compare_accuracy", lambda *a, **k: {
        "reference": {"AP50_95": 0.5, "AP50": 0.7}, "candidate": {"AP50_95": 0.47, "AP50": 0.69},
        "drop_AP50_95": 3.0, "drop_AP50": 1.0, "images": 8})
    out = tmp_path / "int8.onnx"
    code = main(["export", "--model", str(ckpt), "--int8", "--data", str(data), "--calib-images", "2",
                 "--legacy-exporter", "--no-verify", "--int8-max-drop", "1.0", "--out", str(out)])
    assert code == 1 and not out.exists() and not list(tmp_path.iterdir())
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: INT8 loses 3.00 AP50-95 points, more than --int8-max-drop 1; nothing written"


def test_python_export_int8_and_option_errors(own_process, selflabelled, tmp_path):
    if own_process:  # quantization libraries stay loaded: see conftest.own_process
        return
    ckpt, data = selflabelled
    path = export(ckpt, format="onnx", out=tmp_path / "q.onnx", int8=True, data=data, calib_images=2,
                  exporter="torchscript")
    assert load_backend(path).deployed.int8
    for kwargs, message in [({"format": "torchscript", "int8": True, "data": data}, "available for onnx and openvino"),
                            ({"int8": True}, "--int8 needs --data"),
                            ({"int8": True, "data": data, "half": True}, "cannot be combined with --half"),
                            ({"int8": True, "data": data, "nms": True}, "cannot be combined")]:
        with pytest.raises(ConfigError, match=message):
            export(ckpt, out=tmp_path / "x.onnx", **kwargs)
    assert main(["export", "--model", str(ckpt), "--data", str(data)]) == 1  # --data without --int8


def test_calibration_images_are_letterboxed_train_images(selflabelled):
    _, data = selflabelled
    batches = calibration_batches(data, (SIZE, SIZE), count=3)
    assert len(batches) == 3 and all(b.shape == (1, 3, SIZE, SIZE) and b.dtype == np.float32 for b in batches)
    assert all((b[0, :, -1, :] == 114).all() for b in batches[:1])  # 200x120 image: padded at the bottom
    assert len(calibration_batches(data, (SIZE, SIZE), count=1000)) == 8  # at most the split
    np.testing.assert_array_equal(calibration_batches(data, (SIZE, SIZE), 3)[1], batches[1])  # deterministic
    with pytest.raises(ConfigError, match=">= 1"):
        calibration_batches(data, (SIZE, SIZE), count=0)


def test_float_parts_follow_the_graph_structure():
    # conv -> silu -> head conv -> concat -> sigmoid -> output; a second branch conv -> head conv
    nodes = [("stem", "Conv", ["act"]), ("act", "Sigmoid", ["mul", "head_a", "trunk"]), ("mul", "Mul", []),
             ("trunk", "Conv", ["head_b"]), ("head_a", "Conv", ["cat"]), ("head_b", "Conv", ["cat"]),
             ("cat", "Concat", ["sig"]), ("sig", "Sigmoid", ["out"]), ("out", "Exp", [])]
    assert float_parts(nodes, "none") == []
    assert float_parts(nodes, "decode") == ["mul", "cat", "sig", "out"]
    assert float_parts(nodes, "decode+head") == ["mul", "cat", "sig", "out", "head_a", "head_b"]
    assert set(KEEP_FLOAT) == {"none", "decode", "decode+head"}
    with pytest.raises(ConfigError, match="keep_float"):
        float_parts(nodes, "all")
