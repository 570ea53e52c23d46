"""Benchmark: batched SimOTA + YOLOX loss against the slow per-image, per-GT reference.

Batch of 8 images at 640x640 (8400 anchors), 80 classes, 10 / 50 / 200 GTs per image. The
head outputs are random but shaped like a half-trained detector's: anchors inside a GT box
predict a jittered copy of it, the rest predict random boxes around themselves; obj and class
logits are mostly negative. Both sides compute the full loss (assignment included, forward
only) in this process; the table shows median wall times, the speed-up, and the largest
relative difference between the two loss dicts (and whether the assignments are identical).
"+backward" is our loss forward and backward into (outputs, raw_reg).

    python benchmarks/assign.py [--batch 8] [--gts 10 50 200] [--repeats 5] [--threads N]

On a shared machine, OpenMP threads that wait for a busy core make every op slow; compare
--threads 1 with the default if the numbers look erratic.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from openyolox.training.loss import yolox_loss  # noqa: E402
from openyolox.training.simota import assign_simota  # noqa: E402
from reference_simota import reference_assign, reference_loss  # noqa: E402

LOSS_KEYS = ["total_loss", "iou_loss", "obj_loss", "cls_loss", "l1_loss", "num_fg"]


def make_anchors(size: int, strides=(8, 16, 32)):
    """(A,) grid_x, grid_y, strides for a square input, levels P3, P4, P5 row-major."""
    xs, ys, ss = [], [], []
    for s in strides:
        gy, gx = torch.meshgrid(torch.arange(size // s), torch.arange(size // s), indexing="ij")
        xs.append(gx.flatten())
        ys.append(gy.flatten())
        ss.append(torch.full((gx.numel(),), s))
    return torch.cat(xs).float(), torch.cat(ys).float(), torch.cat(ss).float()


def make_batch(gen, batch, num_gt, size, num_classes, grid_x, grid_y, strides):
    """Labels (B, 120 or num_gt, 5) and head outputs (B, A, 5+C) + raw_reg (B, A, 4)."""
    num_anchors = grid_x.numel()
    labels = torch.zeros(batch, max(120, num_gt), 5)
    wh = torch.exp(torch.empty(batch, num_gt, 2).uniform_(2.0, 6.0, generator=gen))  # 7..400 px
    centre = wh / 2 + torch.rand(batch, num_gt, 2, generator=gen) * (size - wh).clamp(min=0)
    labels[:, :num_gt, 0] = torch.randint(0, num_classes, (batch, num_gt), generator=gen).float()
    labels[:, :num_gt, 1:3] = centre
    labels[:, :num_gt, 3:5] = wh

    # raw (tx, ty, tw, th): random around the anchor, or a jittered GT where the anchor is inside one
    grid = torch.stack((grid_x, grid_y), dim=1)  # (A, 2)
    s = strides[:, None]
    raw = torch.empty(batch, num_anchors, 4)
    raw[..., :2] = torch.empty(batch, num_anchors, 2).uniform_(-0.5, 1.5, generator=gen)
    raw[..., 2:] = torch.empty(batch, num_anchors, 2).uniform_(-1.0, 2.5, generator=gen)
    centres = (grid + 0.5) * s  # (A, 2)
    inside = ((centres[None, None] - centre[:, :, None]).abs() < wh[:, :, None] / 2).all(-1)  # (B, G, A)
    has_gt = inside.any(1)  # (B, A)
    gt_of = inside.float().argmax(1)  # (B, A) first GT containing the anchor
    gt_box = labels[..., 1:5].gather(1, gt_of[..., None].expand(-1, -1, 4))  # (B, A, 4)
    jitter_c = torch.randn(batch, num_anchors, 2, generator=gen) * 0.1 * gt_box[..., 2:]
    jitter_wh = torch.exp(torch.randn(batch, num_anchors, 2, generator=gen) * 0.2)
    near_raw = torch.cat(
        ((gt_box[..., :2] + jitter_c) / s - grid, torch.log(gt_box[..., 2:] * jitter_wh / s)), dim=-1
    )
    raw = torch.where(has_gt[..., None], near_raw, raw)
    boxes = torch.cat(((raw[..., :2] + grid) * s, raw[..., 2:].exp() * s), dim=-1)
    logits = torch.randn(batch, num_anchors, 1 + num_classes, generator=gen) * 2.0 - 4.0
    return labels, torch.cat((boxes, logits), dim=-1), raw


def timed(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--gts", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ref-repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    grid_x, grid_y, strides = make_anchors(args.size)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch}, "
          f"{args.size}x{args.size} ({grid_x.numel()} anchors), {args.classes} classes; forward, use_l1=True")
    header = (f"{'GTs/img':>7} {'positives':>9} {'ours assign':>11} {'ours loss':>9} {'+backward':>9} "
              f"{'slow ref loss':>13} {'speed-up':>8} {'same assign':>11} {'max rel diff':>12}")
    print(header)
    print("-" * len(header))
    gen = torch.Generator().manual_seed(0)
    for num_gt in args.gts:
        labels, outputs, raw = make_batch(gen, args.batch, num_gt, args.size, args.classes, grid_x, grid_y, strides)
        inputs = dict(outputs=outputs, raw_reg=raw, labels=labels, grid_x=grid_x, grid_y=grid_y, strides=strides)

        yolox_loss(**inputs, use_l1=True)  # warm-up
        t_assign, ours_assign = timed(lambda: assign_simota(outputs, labels, grid_x, grid_y, strides), args.repeats)
        t_ours, ours = timed(lambda: yolox_loss(**inputs, use_l1=True), args.repeats)

        out_leaf = outputs.clone().requires_grad_(True)
        reg_leaf = raw.clone().requires_grad_(True)

        def forward_backward():
            out_leaf.grad = reg_leaf.grad = None
            yolox_loss(out_leaf, reg_leaf, labels, grid_x, grid_y, strides, use_l1=True)["total_loss"].backward()

        t_fb, _ = timed(forward_backward, args.repeats)
        t_ref, ref = timed(lambda: reference_loss(**inputs, use_l1=True), args.ref_repeats)

        ref_assign = reference_assign(outputs, labels, grid_x, grid_y, strides)
        same = all(torch.equal(a, b) for a, b in zip(ours_assign[:2], ref_assign[:2]))
        rel = max(abs(float(ours[k]) - float(ref[k])) / max(abs(float(ref[k])), 1e-12) for k in LOSS_KEYS)
        positives = int(ours_assign[0].sum())
        print(f"{num_gt:>7} {positives:>9} {t_assign * 1e3:>9.1f}ms {t_ours * 1e3:>7.1f}ms {t_fb * 1e3:>7.1f}ms "
              f"{t_ref * 1e3:>11.1f}ms {t_ref / t_ours:>7.1f}x {str(same):>11} {rel:>12.2e}")


if __name__ == "__main__":
    main()
