"""Time `postprocess` (score filter + exact NMS) against a naive per-box NMS loop.

Predictions imitate a trained COCO model at 416 (3549 anchors) and 640 (8400 anchors): a few
dozen objects, each seen by the anchors near its centre with jittered boxes and high scores,
plus low-score background. Settings: eval (score 0.01, class-aware NMS 0.65) and demo (0.25,
class-agnostic 0.45); batch 1, CPU. The naive baseline is the classic loop (keep the best box,
drop the rest above the threshold, repeat) in torch ops; both must return the same rows.

Run: python benchmarks/nms.py [--threads N] [--repeats R]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openyolox.inference.postprocess import postprocess  # noqa: E402
from openyolox.ops.boxes import box_iou, cxcywh_to_xyxy  # noqa: E402

NUM_CLASSES = 80
STRIDES = (8, 16, 32)


def realistic_prediction(size: int, objects: int = 30, seed: int = 0) -> torch.Tensor:
    """(1, A, 85) decoded outputs: cx, cy, w, h (input pixels), obj prob, class probs."""
    g = torch.Generator().manual_seed(seed)
    centres, strides = [], []
    for s in STRIDES:
        ys, xs = torch.meshgrid(torch.arange(size // s), torch.arange(size // s), indexing="ij")
        centres.append(torch.stack(((xs.flatten() + 0.5) * s, (ys.flatten() + 0.5) * s), 1))
        strides.append(torch.full((xs.numel(),), float(s)))
    centre, stride = torch.cat(centres).float(), torch.cat(strides)
    a = centre.shape[0]

    # background: small boxes around each anchor, low objectness, diffuse class scores
    box = torch.cat((centre + torch.randn(a, 2, generator=g) * stride[:, None],
                     stride[:, None] * torch.exp(torch.randn(a, 2, generator=g) * 0.5 + 1)), 1)
    obj = torch.sigmoid(torch.randn(a, generator=g) * 1.5 - 6.5)
    cls = torch.sigmoid(torch.randn(a, NUM_CLASSES, generator=g) - 4.0)

    # objects: anchors whose stride suits the object and that lie near its centre
    for _ in range(objects):
        wh = torch.exp(torch.rand(2, generator=g) * math.log(size / 12)) * 12  # 12 .. size px
        c = torch.rand(2, generator=g) * size
        k = int(torch.randint(NUM_CLASSES, (1,), generator=g))
        level = (wh.max() / stride).clamp(1, 64)
        near = ((centre - c).abs() < wh / 2).all(1) & (level > 2) & (level < 24)
        idx = near.nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        dist = ((centre[idx] - c) / (wh / 2)).norm(dim=1)  # 0 at the centre .. ~1.4 at corners
        jitter = torch.randn(idx.numel(), 4, generator=g) * 0.06
        box[idx] = torch.cat((c + jitter[:, :2] * wh, wh * torch.exp(jitter[:, 2:])), 1)
        obj[idx] = torch.sigmoid(4 - 5 * dist + torch.randn(idx.numel(), generator=g))
        cls[idx, k] = torch.sigmoid(3 - 2 * dist + torch.randn(idx.numel(), generator=g) * 0.5)
        other = int(torch.randint(NUM_CLASSES, (1,), generator=g))  # a confusable class
        cls[idx, other] = torch.maximum(cls[idx, other], cls[idx, k] * 0.6)
    return torch.cat((box, obj[:, None], cls), 1)[None]


def naive_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """The classic loop: boxes (N, 4) xyxy, scores (N,) -> kept indices by decreasing score."""
    order = torch.sort(scores, descending=True, stable=True)[1]
    keep = []
    while order.numel():
        i = order[0]
        keep.append(i)
        iou = box_iou(boxes[i, None], boxes[order[1:]])[0]
        order = order[1:][~(iou > iou_threshold)]
    return torch.stack(keep) if keep else order


def naive_postprocess(prediction: torch.Tensor, conf: float, nms_iou: float, agnostic: bool):
    """Same rows as postprocess, with naive_nms run once per class (or once, class-agnostic)."""
    out = []
    for pred in prediction:
        class_conf, class_pred = pred[:, 5:].max(1)
        score = pred[:, 4] * class_conf
        m = score >= conf
        dets = torch.cat((cxcywh_to_xyxy(pred[m, :4]), pred[m, 4:5], class_conf[m, None],
                          class_pred[m, None].float()), 1)
        score = score[m]
        if agnostic:
            keep = naive_nms(dets[:, :4], score, nms_iou)
        else:
            parts = [torch.nonzero(dets[:, 6] == c).squeeze(1) for c in dets[:, 6].unique()]
            keep = torch.cat([p[naive_nms(dets[p, :4], score[p], nms_iou)] for p in parts]
                             + [torch.empty(0, dtype=torch.long)])
            keep = keep[torch.sort(score[keep], descending=True, stable=True)[1]]
        out.append(dets[keep])
    return out


def best_ms(fn, repeats: int) -> float:
    """Fastest of `repeats` calls, in milliseconds (after one warm-up call)."""
    fn()
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = {"eval": (0.01, 0.65, False), "demo": (0.25, 0.45, True)}

    print(f"torch {torch.__version__}, {args.threads} threads, best of {args.repeats}, batch 1")
    print(f"{'size':>5} {'anchors':>7} {'setting':>7} {'cands':>6} {'kept':>5} "
          f"{'postprocess ms':>14} {'naive ms':>9} {'naive/ours':>10}")
    for size in (416, 640):
        pred = realistic_prediction(size)
        for name, (conf, iou, agnostic) in settings.items():
            ours = postprocess(pred, conf, iou, agnostic)[0]
            ref = naive_postprocess(pred, conf, iou, agnostic)[0]
            assert torch.equal(ours, ref), f"mismatch at {size} {name}"
            cands = int(((pred[0, :, 4] * pred[0, :, 5:].max(1).values) >= conf).sum())
            t_ours = best_ms(lambda: postprocess(pred, conf, iou, agnostic), args.repeats)
            t_naive = best_ms(lambda: naive_postprocess(pred, conf, iou, agnostic),
                              max(3, args.repeats // 4))
            print(f"{size:>5} {pred.shape[1]:>7} {name:>7} {cands:>6} {ours.shape[0]:>5} "
                  f"{t_ours:>14.2f} {t_naive:>9.2f} {t_naive / t_ours:>10.1f}")


if __name__ == "__main__":
    main()
