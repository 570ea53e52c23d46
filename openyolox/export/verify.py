"""Is an exported file the same model as the PyTorch network it came from?

A float32 network cannot be reproduced to a fixed number of digits: PyTorch's own float32
output already differs from the exact (float64) result, by an amount that depends on the
weights (measured on random yolox-nano/-s weights with calibrated batch norm: up to 2e-5
relative to the output's largest value, 5e-4 absolute on probabilities). A fixed tolerance
against PyTorch float32 therefore refuses valid exports of some models and is loose for
others. So both PyTorch float32 and the runtime are compared with a float64 PyTorch run of
the same network on the same batch, and the export passes when

1. the runtime is at most ``FACTOR`` times further from float64 than PyTorch float32 is
   (FP16 files: at most ``HALF_TOLERANCE``, FP16's own precision), and
2. the final detections (score filter + NMS) differ from float64's no more than PyTorch
   float32's do (``DETECTION_FACTOR`` times as many boxes without a partner, plus
   ``DETECTION_SLACK``), not counting boxes whose score lies within that error of the
   threshold.

A real error (a wrong decode, swapped channels, a wrong stride) moves outputs by orders of
magnitude more than float rounding, and fails both tests.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import numpy as np
import torch
from torch import nn

from openyolox.inference.postprocess import postprocess

# a runtime may be this many times further from the exact result than PyTorch float32
FACTOR = 10.0
# float32 resolution: errors below this are rounding whatever PyTorch's own error was
FLOOR = 1e-6
# FP16 files: |error| / scale (input size for boxes, 1 for probabilities)
HALF_TOLERANCE = 1e-2
# thresholds of the detections check for files without NMS inside (the demo's)
CHECK_CONF, CHECK_IOU = 0.25, 0.45
# the runtime may have this many times as many detections differing from float64 as PyTorch
# float32 has, plus this many
DETECTION_FACTOR, DETECTION_SLACK = 2, 2


def output_errors(out: np.ndarray, ref: np.ndarray, box_scale: float = 1.0) -> Dict[str, float]:
    """How far predictions ``out`` (B, A, 5+C) are from ``ref``.

    box_scale: the natural scale of the four box columns: the input size (max side) for
    decoded boxes in pixels, 1 for raw tx, ty, tw, th; probabilities have scale 1.
    max_rel: max |out - ref| / (|ref| + scale) element by element: relative for large values,
    relative to the scale near 0 (a cx of 0.1 px is not known to 1e-4 of itself: it comes out
    of (x + tx) * 32). scaled: max |out - ref| / scale. Equal infinities count as equal.
    """
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    with np.errstate(invalid="ignore"):
        err = np.abs(out - ref)
    err[out == ref] = 0.0                      # inf == inf
    err[np.isnan(err)] = np.inf                # one side NaN or inf, the other not
    scale = np.ones(ref.shape[-1])
    scale[:4] = box_scale
    finite_ref = np.where(np.isfinite(ref), np.abs(ref), 0.0)
    return {"max_abs": float(err.max(initial=0.0)),
            "max_rel": float((err / (finite_ref + scale)).max(initial=0.0)),
            "scaled": float((err / scale).max(initial=0.0))}


def match_detections(ours: torch.Tensor, ref: torch.Tensor, min_iou: float = 0.99) -> Tuple[bool, str]:
    """Are two sets of detection rows (x1, y1, x2, y2, ..., class last) the same boxes
    (one-to-one, IoU > min_iou) with the same classes? Returns (ok, why not).

    Boxes clipped to a line at the image border have no area, hence no IoU: two such boxes
    match when their corners agree within 0.01 px."""
    unmatched_ours, unmatched_ref = unmatched_detections(ours, ref, min_iou)
    if len(ours) != len(ref):
        return False, f"{len(ours)} detections vs {len(ref)}"
    if unmatched_ours:
        return False, f"{len(unmatched_ours)} of {len(ref)} detections have no same-class box with IoU > {min_iou}"
    return True, ""


def unmatched_detections(ours: torch.Tensor, ref: torch.Tensor, min_iou: float = 0.99
                         ) -> Tuple[List[int], List[int]]:
    """Indices of the rows of ``ours`` and of ``ref`` (x1, y1, x2, y2, ..., class last) left
    without a partner by a greedy one-to-one same-class match at IoU > min_iou."""
    from openyolox.ops.boxes import box_iou

    if len(ours) == 0 or len(ref) == 0:
        return list(range(len(ours))), list(range(len(ref)))
    a, b = ours[:, :4].double(), ref[:, :4].double()
    sim = box_iou(a, b).nan_to_num(0.0)
    dist = (a[:, None, :] - b[None, :, :]).abs().amax(dim=2)
    sim = torch.where(dist <= 1e-2, 2.0 - dist, sim)  # near-identical corners first
    sim[ours[:, -1][:, None] != ref[:, -1][None, :]] = -1.0  # same class only
    taken = torch.zeros(len(ref), dtype=torch.bool)
    left = []
    for i in range(len(ours)):  # greedy one-to-one
        row = sim[i].masked_fill(taken, -1.0)
        j = int(row.argmax())
        if row[j] > min_iou:
            taken[j] = True
        else:
            left.append(i)
    return left, torch.nonzero(~taken).flatten().tolist()


def count_differences(got: List[torch.Tensor], want: List[torch.Tensor], conf: float, margin: float) -> int:
    """How many rows of ``got`` and of ``want`` (x1, y1, x2, y2, obj, class_conf, class; one
    tensor per image) have no same-class partner box (IoU > 0.99) on the other side, not
    counting rows whose score (obj * class_conf) lies within ``margin`` of ``conf``: float
    rounding may legitimately put those on either side of the threshold."""
    count = 0
    for g, w in zip(got, want):
        left_g, left_w = unmatched_detections(g[:, [0, 1, 2, 3, 6]], w[:, [0, 1, 2, 3, 6]])
        for rows, idx in ((g, left_g), (w, left_w)):
            count += sum(1 for i in idx if abs(float(rows[i, 4] * rows[i, 5]) - conf) > margin)
    return count


def detections_agree(got: List[torch.Tensor], fp32: List[torch.Tensor], exact: List[torch.Tensor], conf: float,
                     margin: float) -> Tuple[bool, str]:
    """The runtime's detections ``got`` differ from the exact (float64) ones no more than
    PyTorch float32's own (``fp32``) do: at most DETECTION_FACTOR times as many unmatched
    boxes, plus DETECTION_SLACK. Many heavily overlapping boxes (random weights) make NMS
    chaotic: a 1e-6 change of one score picks other survivors, for PyTorch float32 too, which
    is why the count is measured against float32's rather than required to be 0."""
    ours, theirs = count_differences(got, exact, conf, margin), count_differences(fp32, exact, conf, margin)
    total = sum(len(w) for w in exact)
    if ours <= DETECTION_FACTOR * theirs + DETECTION_SLACK:
        return True, ""
    return False, (f"{ours} detections differ from the exact result (PyTorch float32: {theirs}; "
                   f"{total} expected)")


def _reference_outputs(net: nn.Module, x: torch.Tensor, decoded: bool) -> Tuple[np.ndarray, np.ndarray]:
    """The network's eval output for ``x`` in float32 and in float64 (an unfused CPU copy)."""
    model = copy.deepcopy(net).cpu().float().eval()
    model.head.decode_in_inference = decoded
    with torch.no_grad():
        out32 = model(x).numpy()
        out64 = model.double()(x.double()).numpy()
    return out32, out64


def verify_export(path: Union[str, Path], net: nn.Module, seed: int = 0) -> Dict[str, Any]:
    """Run the exported file and ``net`` (the PyTorch model it came from) on one random batch
    and apply the two tests of the module doc. Returns a report with ``ok``, the errors of
    PyTorch float32 and of the runtime against float64, the allowed error, and the
    detection comparison."""
    from openyolox.inference.backends import load_backend

    backend = load_backend(path)
    deployed = backend.deployed
    decoded, half = deployed.decoded, deployed.half
    batch = 1 if backend.name == "ncnn" else (2 if backend.dynamic else backend.static_batch)
    h, w = backend.imgsz
    x = torch.from_numpy(np.random.default_rng(seed).uniform(0, 255, (batch, 3, h, w)).astype(np.float32))
    ref32, ref64 = _reference_outputs(net, x, decoded)
    box_scale = float(max(h, w)) if decoded else 1.0
    key = "scaled" if half else "max_rel"
    err_torch = output_errors(ref32, ref64, box_scale)[key]
    allowed = HALF_TOLERANCE if half else FACTOR * max(err_torch, FLOOR)
    report: Dict[str, Any] = {"backend": backend.name, "criterion": key, "error_pytorch_fp32": err_torch,
                              "allowed": allowed}

    exact = torch.from_numpy(ref64).float() if decoded else None
    if backend.outputs_detections:  # NMS inside: only the detections can be compared
        conf, iou, agnostic = deployed.nms_conf, deployed.nms_iou, deployed.nms_class_agnostic
        got = backend.detect(x.numpy())
        ok, why = detections_agree(got, postprocess(torch.from_numpy(ref32), conf, iou, agnostic),
                                   postprocess(exact, conf, iou, agnostic), conf, max(allowed, 1e-4))
        report.update(error_runtime=None, detections=int(sum(len(g) for g in got)), ok=ok,
                      detail=why or f"same boxes and classes as PyTorch float64 at score >= {conf}, IoU {iou}")
        return report

    out = backend.raw(x.numpy())
    err_runtime = output_errors(out, ref64, box_scale)[key]
    ok_values = err_runtime <= allowed
    why = "" if ok_values else (f"the runtime is {err_runtime:.2e} from the exact result, PyTorch float32 "
                                f"{err_torch:.2e} (allowed {allowed:.2e})")
    if decoded:
        got = postprocess(torch.from_numpy(np.ascontiguousarray(out)).float(), CHECK_CONF, CHECK_IOU)
        ok_dets, why_dets = detections_agree(got, postprocess(torch.from_numpy(ref32), CHECK_CONF, CHECK_IOU),
                                             postprocess(exact, CHECK_CONF, CHECK_IOU), CHECK_CONF,
                                             max(allowed, 1e-4))
        report["detections"] = int(sum(len(g) for g in got))
        why = "; ".join(s for s in (why, why_dets) if s)
        ok_values = ok_values and ok_dets
    report.update(error_runtime=err_runtime, ok=ok_values, detail=why or "OK")
    return report


def describe(report: Dict[str, Any]) -> str:
    """One line for the console."""
    if report.get("error_runtime") is None:
        return f"{report.get('detections', 0)} detections on a random batch: {report['detail']}"
    line = (f"error against float64 {report['error_runtime']:.2e} ({report['criterion']}); PyTorch float32's "
            f"{report['error_pytorch_fp32']:.2e}; allowed {report['allowed']:.2e}")
    if "detections" in report:
        line += f"; {report['detections']} detections at score >= {CHECK_CONF}"
    return line + ("" if report["ok"] else f": {report['detail']}")
