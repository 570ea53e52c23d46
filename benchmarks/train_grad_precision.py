"""How precise are the training step's gradients? Ours and the reference YOLOX's, in NCHW and
channels_last, against each other and against our step in float64 (docs/benchmarks.md,
"Training step against the reference YOLOX").

    python benchmarks/train_grad_precision.py --reference /path/YOLOX [--imgsz 416] [--batch 8] [--gts 30]

Per pair: the worst tensor's ||g_a - g_b|| / ||g_b|| (and its name), and the same over the whole
gradient. The reference is a Megvii-BaseDetection/YOLOX checkout at commit 6ddff48.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from openyolox.bench.reference import build_reference_model, import_reference, reference_losses  # noqa: E402
from openyolox.bench.train_step import random_targets  # noqa: E402
from openyolox.models.yolox import create_model  # noqa: E402
from openyolox.training.loss import detection_loss  # noqa: E402


def gradients(net, images, targets, channels_last: bool, dtype=torch.float32, reference: bool = False):
    """{name: float64 gradient} of one forward + loss + backward on a copy of ``net``."""
    m = copy.deepcopy(net).to(dtype)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    m = m.to(memory_format=fmt)
    x = images.to(dtype).contiguous(memory_format=fmt)
    losses = reference_losses(m, x, targets) if reference else detection_loss(m(x), targets.to(dtype))
    losses["total_loss"].backward()
    return {n: p.grad.double() for n, p in m.named_parameters()}


def compare(a, b) -> str:
    per = {n: float((a[n] - b[n]).norm() / b[n].norm().clamp(min=1e-30)) for n in b}
    worst = max(per, key=per.get)
    whole = float(torch.sqrt(sum(((a[n] - b[n]) ** 2).sum() for n in b)) / torch.sqrt(sum((b[n] ** 2).sum() for n in b)))
    return f"| {per[worst]:.1e} | {whole:.1e} | {worst} |"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reference", required=True)
    p.add_argument("--model", default="yolox-nano")
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--gts", type=int, default=30)
    args = p.parse_args()
    models = import_reference(args.reference)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = create_model(args.model, 80).train()
    ref = build_reference_model(models, args.model, 80).train()
    ref.load_state_dict(net.state_dict(), strict=True)
    images = torch.rand(args.batch, 3, args.imgsz, args.imgsz, generator=gen) * 255
    targets = random_targets(gen, args.batch, args.gts, args.imgsz, 80)
    g = {"ours NCHW": gradients(net, images, targets, False), "ours channels_last": gradients(net, images, targets, True),
         "reference NCHW": gradients(ref, images, targets, False, reference=True),
         "reference channels_last": gradients(ref, images, targets, True, reference=True),
         "float64": gradients(net, images, targets, False, torch.float64)}
    print("| pair | worst tensor | whole gradient | worst tensor's name |\n|---|---:|---:|---|")
    for a, b in (("ours NCHW", "reference NCHW"), ("ours channels_last", "reference NCHW"),
                 ("reference channels_last", "reference NCHW"), ("ours NCHW", "float64"),
                 ("ours channels_last", "float64"), ("reference NCHW", "float64")):
        print(f"| {a} vs {b} {compare(g[a], g[b])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
