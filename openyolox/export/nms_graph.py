"""Score filter and NMS appended to an exported ONNX graph, with standard operators only.

The decoded output (B, A, 5 + C) becomes

    detections: (N, 7) float32 rows (batch_index, x1, y1, x2, y2, score, class_id)

xyxy in input (letterboxed) pixels, score = obj * max class prob, class_id = argmax class,
rows grouped by image (ONNX Runtime returns them per image, per class, by decreasing
score; the ONNX standard fixes no order). N is data-dependent, 0 when nothing is found.

This is the Python postprocess (openyolox.inference.postprocess) in graph form: each box keeps
only its best class (the reference's rule), so it enters NonMaxSuppression with its score in
that class's column and 0 elsewhere; class-agnostic NMS uses one score column. Boxes pass
the filter when score >= conf (the threshold handed to the operator is the float32 just below
``conf``, since ONNX Runtime keeps score > threshold). Suppression: IoU > iou, greedy by
score, as in openyolox.ops.nms. ``max_det`` caps the boxes kept per class; the default 10000
is more than the anchors of a 640x640 input (8400), so it binds only on larger inputs.

Only the plain ``NonMaxSuppression`` operator is used (no TensorRT plugin such as
EfficientNMS_TRT), so the file runs in ONNX Runtime, OpenVINO and TensorRT >= 8.6 (its
built-in INMSLayer) alike.
"""
from __future__ import annotations

import numpy as np


def append_nms(proto, conf: float = 0.25, iou: float = 0.45, class_agnostic: bool = False,
               max_det: int = 10000, output: str = "output", result: str = "detections"):
    """Return ``proto`` with its output ``output`` (B, A, 5+C) replaced by ``result`` (N, 7)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:
        raise ValueError("NMS in the graph needs opset >= 13")
    (out_info,) = [o for o in graph.output if o.name == output]
    num_classes = out_info.type.tensor_type.shape.dim[2].dim_value - 5
    if num_classes < 1:
        raise ValueError("the graph output must have a static last dimension 5 + num_classes")
    nodes, inits = [], []

    def const(name, value, dtype=None):
        arr = np.asarray(value, dtype=dtype)
        inits.append(numpy_helper.from_array(arr, f"nms/{name}"))
        return f"nms/{name}"

    def node(op, inputs, name, **attrs):
        out = f"nms/{name}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def cut(x, start, end, name):  # x[..., start:end] along the last axis
        return node("Slice", [x, const(f"{name}_s", [start], np.int64), const(f"{name}_e", [end], np.int64),
                              const(f"{name}_a", [2], np.int64)], name)

    pred = output
    if out_info.type.tensor_type.elem_type != TensorProto.FLOAT:
        pred = node("Cast", [output], "as_float", to=TensorProto.FLOAT)  # FP16 graphs: NMS in float32
    xy, wh = cut(pred, 0, 2, "xy"), cut(pred, 2, 4, "wh")
    obj, cls = cut(pred, 4, 5, "obj"), cut(pred, 5, 5 + num_classes, "cls")
    half = node("Div", [wh, const("two", 2.0, np.float32)], "half_wh")  # x1 = cx - w / 2 as in ops.boxes
    boxes = node("Concat", [node("Sub", [xy, half], "x1y1"), node("Add", [xy, half], "x2y2")], "boxes", axis=2)
    if opset >= 18:
        cls_conf = node("ReduceMax", [cls, const("axis2", [2], np.int64)], "cls_conf", keepdims=1)
    else:
        cls_conf = node("ReduceMax", [cls], "cls_conf", axes=[2], keepdims=1)
    cls_id = node("ArgMax", [cls], "cls_id", axis=2, keepdims=1)                      # (B, A, 1) int64
    score = node("Mul", [obj, cls_conf], "score")                                      # (B, A, 1)
    if class_agnostic:
        nms_scores = node("Transpose", [score], "scores_t", perm=[0, 2, 1])            # (B, 1, A)
    else:
        onehot = node("Equal", [cls_id, const("classes", np.arange(num_classes).reshape(1, 1, -1), np.int64)],
                      "onehot")                                                        # (B, A, C)
        masked = node("Mul", [node("Cast", [onehot], "onehot_f", to=TensorProto.FLOAT), score], "masked")
        nms_scores = node("Transpose", [masked], "scores_t", perm=[0, 2, 1])           # (B, C, A)
    threshold = np.nextafter(np.float32(conf), np.float32(-1.0))  # score > t  <=>  score >= conf
    selected = node("NonMaxSuppression",
                    [boxes, nms_scores, const("max_det", [int(max_det)], np.int64),
                     const("iou", [iou], np.float32), const("conf", [threshold], np.float32)],
                    "selected", center_point_box=0)                                   # (N, 3) b, c, i
    pick = node("Gather", [selected, const("cols", [0, 2], np.int64)], "pick", axis=1)  # (N, 2) b, i
    batch_idx = node("Slice", [selected, const("b_s", [0], np.int64), const("b_e", [1], np.int64),
                               const("b_a", [1], np.int64)], "batch_idx")                # (N, 1)
    rows = [node("Cast", [batch_idx], "batch_f", to=TensorProto.FLOAT),
            node("GatherND", [boxes, pick], "sel_boxes"),
            node("GatherND", [score, pick], "sel_score"),
            node("Cast", [node("GatherND", [cls_id, pick], "sel_cls")], "sel_cls_f", to=TensorProto.FLOAT)]
    nodes.append(helper.make_node("Concat", rows, [result], name="nms/detections", axis=1))

    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    graph.output.remove(out_info)
    graph.output.append(helper.make_tensor_value_info(result, TensorProto.FLOAT, ["num_detections", 7]))
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    return proto

