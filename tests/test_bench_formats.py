"""`openyolox benchmark formats`: one row per format and precision with size, AP, latency and
throughput; the FP32 formats score PyTorch's AP (same detections within the export check's
tolerance); INT8 files are smaller; JSON and PNG written; the CLI.

On a model and data set made here (tests/selflabelled.py: labels = PyTorch's own detections,
so PyTorch scores AP 1.0), yolox-nano at 160. Every installed format is in the slow run.
"""
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from openyolox.bench.formats import ROWS, benchmark_formats, format_table, save_report  # noqa: E402
from openyolox.cli import main  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from selflabelled import make_selflabelled  # noqa: E402

FIELDS = {"name", "backend", "precision", "size_mb", "AP50_95", "AP50", "median_ms", "p90_ms", "images_per_s"}


@pytest.fixture(scope="module")
def selflabelled(tmp_path_factory):
    return make_selflabelled(tmp_path_factory.mktemp("selflabelled"), 160)


def check_report(report, rows):
    assert [r["backend"] + "-" + r["precision"] for r in report["rows"]] == rows
    assert report["model"] == "yolox-nano" and report["imgsz"] == [160, 160] and report["val_images"] == 8
    assert report["data"] and report["threads"] >= 1 and report["batch"] >= 1
    by_row = {r["backend"] + "-" + r["precision"]: r for r in report["rows"]}
    for r in report["rows"]:
        assert set(r) == FIELDS and r["size_mb"] > 0 and 0 < r["median_ms"] <= r["p90_ms"] and r["images_per_s"] > 0
        if r["precision"] == "fp32":  # the same detections as PyTorch: PyTorch's AP, 1.0 on these labels
            assert r["AP50_95"] == pytest.approx(1.0, abs=1e-3) and r["AP50"] == pytest.approx(1.0, abs=1e-3)
        else:
            assert 0.0 <= r["AP50_95"] <= 1.0
            assert r["size_mb"] < 0.7 * by_row[r["backend"] + "-fp32"]["size_mb"]


def test_formats_report_json_and_chart(selflabelled, tmp_path):
    ckpt, data = selflabelled
    rows = ["onnxruntime-fp32", "onnxruntime-int8"]
    report = benchmark_formats(str(ckpt), None, str(data), runs=3, batch=1, calib_images=4, rows=rows,
                               exporter="torchscript")
    check_report(report, rows)
    json_path, png_path = save_report(report, tmp_path)
    assert json.loads(json_path.read_text()) == report
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png_path.stat().st_size > 10_000
    table = format_table(report).splitlines()
    assert len(table) == 2 + len(rows) and table[0].startswith("| format | precision | size MB | AP50-95")
    assert table[2].startswith("| ONNX Runtime | FP32 |") and "| 100.0 | 100.0 |" in table[2]


def test_cli_formats(selflabelled, tmp_path, capsys):
    ckpt, data = selflabelled
    out = tmp_path / "bench"
    assert main(["benchmark", "formats", "--model", str(ckpt), "--data", str(data), "--rows", "onnxruntime-fp32",
                 "--runs", "2", "--batch", "1", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out.splitlines()
    assert stdout[2].startswith("| ONNX Runtime | FP32 |") and stdout[-1] == f"results saved to {out}"
    assert (out / "formats.png").is_file() and json.loads((out / "formats.json").read_text())["rows"]
    assert main(["benchmark", "formats", "--model", str(ckpt), "--data", str(tmp_path / "nowhere")]) == 1


@pytest.mark.slow
def test_every_installed_format(selflabelled):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    pytest.importorskip("ncnn")
    ckpt, data = selflabelled
    rows = [f"{kind}-{precision}" for _, kind, precision in ROWS]
    report = benchmark_formats(str(ckpt), None, str(data), runs=3, batch=2, calib_images=4, exporter="torchscript")
    check_report(report, rows)
