"""``openyolox export``: ONNX, OpenVINO, ncnn or TorchScript, checked against PyTorch."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from openyolox.cli.common import check_weights


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX, OpenVINO, ncnn or TorchScript",
                       description="Export a model for deployment and check the file against PyTorch. "
                                   "Run the result with `openyolox predict FILE` or openyolox.Detector(FILE). "
                                   "See docs/deployment.md.")
    p.add_argument("--model", default="yolox-s", help="model name (yolox-nano..yolox-x, yolox-darknet53) "
                   "or a checkpoint (.pth) that names its model")
    p.add_argument("--weights", help="checkpoint (.pth), a published model name, or 'none' for random weights "
                   "(default: the published COCO weights of --model)")
    p.add_argument("--format", default="onnx", choices=["onnx", "openvino", "ncnn", "torchscript"])
    p.add_argument("--imgsz", type=int, nargs="+", metavar="N",
                   help="input size: N or H W, multiples of 32 (default: the model's test size)")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--batch", type=int, default=1, help="static batch size (default 1)")
    shape.add_argument("--dynamic", action="store_true",
                       help="free batch size and image size (multiples of 32); not for ncnn")
    p.add_argument("--half", action="store_true", help="FP16 weights (GPU / OpenVINO FP16 IR; ncnn fp16)")
    p.add_argument("--decode", action=argparse.BooleanOptionalAction, default=True,
                   help="decode boxes inside the graph (default); --no-decode leaves it to the runtime")
    p.add_argument("--nms", action="store_true",
                   help="ONNX only: score filter and NMS inside the graph; output detections (N, 7) = "
                        "batch_index, x1, y1, x2, y2, score, class")
    p.add_argument("--conf", type=float, default=0.25, help="score threshold of --nms (default 0.25)")
    p.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold of --nms (default 0.45)")
    p.add_argument("--class-agnostic", action="store_true", help="--nms across classes")
    p.add_argument("--max-det", type=int, default=10000,
                   help="--nms: most boxes kept per class (default 10000: never binds up to 640x640 inputs)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18, at least 17)")
    p.add_argument("--no-simplify", action="store_true", help="ONNX: skip onnxslim")
    p.add_argument("--legacy-exporter", action="store_true",
                   help="ONNX: the deprecated TorchScript-based exporter instead of torch.export")
    p.add_argument("--no-verify", action="store_true", help="skip running the file against PyTorch")
    p.add_argument("--int8", action="store_true",
                   help="onnx / openvino: INT8 post-training quantization (ONNX Runtime QDQ / NNCF), calibrated "
                        "on --data's train split; prints the AP drop against FP32 on its val split")
    p.add_argument("--data", help="--int8: dataset for calibration (train split) and the accuracy check (val split): "
                                  "COCO root, VOC root, YOLO data.yaml or builtin")
    p.add_argument("--calib-images", type=int, default=300, help="--int8: calibration images (default 300)")
    p.add_argument("--int8-max-drop", type=float, metavar="AP",
                   help="--int8: fail (and write nothing) when AP50-95 drops by more than this many points")
    p.add_argument("--out", help="output file (onnx, torchscript) or folder (openvino, ncnn); default: "
                                 "<model>.onnx, <model>.torchscript, <model>_openvino/, <model>_ncnn/")


def run(args: argparse.Namespace) -> int:
    from openyolox.config import canonical_name, check_image_size
    from openyolox.errors import ConfigError
    from openyolox.export import export_and_verify

    check_weights(args.weights)
    if args.model and not Path(args.model).exists():
        canonical_name(args.model)
    imgsz = None
    if args.imgsz:
        if len(args.imgsz) > 2:
            raise ConfigError("--imgsz takes one size or H W")
        imgsz = check_image_size(tuple(args.imgsz) if len(args.imgsz) == 2 else args.imgsz[0])
    if args.int8 or args.data is not None or args.int8_max_drop is not None:
        return _run_int8(args, imgsz)
    path, report = export_and_verify(
        args.model, weights=args.weights, format=args.format, out=args.out, imgsz=imgsz, batch=args.batch,
        dynamic=args.dynamic, half=args.half, decode=args.decode, nms=args.nms, conf=args.conf, iou=args.iou,
        class_agnostic=args.class_agnostic, max_det=args.max_det, opset=args.opset, simplify=not args.no_simplify,
        exporter="torchscript" if args.legacy_exporter else "dynamo", verify=not args.no_verify)
    if not _checked(report, "checked", f"the exported file does not match PyTorch ({path})"):
        return 1
    print(f"exported to {path}")
    return 0



def _checked(report: Optional[dict], what: str, error: str) -> bool:
    """Print the export check's verdict (``report`` of export.verify; None: not checked) and,
    on a mismatch, ``error``; -> False on a mismatch."""
    from openyolox.export.verify import describe

    if report is None:
        return True
    print(f"{what} with {report['backend']} against PyTorch: {describe(report)}: "
          f"{'OK' if report['ok'] else 'MISMATCH'}", file=sys.stderr)
    if not report["ok"]:
        print(f"error: {error}", file=sys.stderr)
    return bool(report["ok"])

def _run_int8(args: argparse.Namespace, imgsz) -> int:
    """FP32 file (checked against PyTorch), its INT8 version, and the AP each scores on the
    val split of --data; the INT8 file is moved into place only when the drop is allowed."""
    import tempfile

    from openyolox.errors import ConfigError
    from openyolox.evaluation.validate import compare_accuracy
    from openyolox.export import check_int8_options, export_and_verify
    from openyolox.export.int8 import copy_result, int8_output, quantize
    from openyolox.inference.backends import load_backend

    if not args.int8:
        raise ConfigError("--data and --int8-max-drop go with --int8")
    check_int8_options(args.format, True, args.half, args.nms, args.data)
    if args.calib_images < 1:
        raise ConfigError(f"--calib-images must be >= 1, got {args.calib_images}")
    with tempfile.TemporaryDirectory(prefix="openyolox-int8-") as tmp:
        fp32 = Path(tmp) / ("fp32.onnx" if args.format == "onnx" else "fp32_openvino")
        fp32, report = export_and_verify(
            args.model, weights=args.weights, format=args.format, out=fp32, imgsz=imgsz, batch=args.batch,
            dynamic=args.dynamic, decode=args.decode, opset=args.opset, simplify=not args.no_simplify,
            exporter="torchscript" if args.legacy_exporter else "dynamo", verify=not args.no_verify)
        if not _checked(report, "FP32 graph checked", "the FP32 graph does not match PyTorch; nothing quantized"):
            return 1
        print(f"quantizing to INT8 with {args.calib_images} calibration images from {args.data} ...",
              file=sys.stderr, flush=True)
        int8 = quantize(fp32, Path(tmp) / ("int8.onnx" if args.format == "onnx" else "int8_openvino"), args.data,
                        args.calib_images)
        acc = compare_accuracy(fp32, int8, args.data, "val")
        ref, got = acc["reference"], acc["candidate"]
        print(f"INT8 accuracy on {args.data} val ({acc['images']} images): AP50-95 {100 * got['AP50_95']:.1f} "
              f"(FP32 {100 * ref['AP50_95']:.1f}, drop {acc['drop_AP50_95']:.2f}), AP50 {100 * got['AP50']:.1f} "
              f"(FP32 {100 * ref['AP50']:.1f}, drop {acc['drop_AP50']:.2f})", file=sys.stderr)
        if args.int8_max_drop is not None and acc["drop_AP50_95"] > args.int8_max_drop:
            print(f"error: INT8 loses {acc['drop_AP50_95']:.2f} AP50-95 points, more than --int8-max-drop "
                  f"{args.int8_max_drop:g}; nothing written", file=sys.stderr)
            return 1
        name = load_backend(fp32).deployed.model_name
        path = copy_result(int8, int8_output(args.out, name, args.format))
    print(f"exported to {path}")
    return 0
