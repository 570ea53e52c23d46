"""Training step time, ours against the same network trained with a per-image, per-GT
SimOTA (the reference YOLOX's loop structure, tests/reference_simota.py), in one process.

    python benchmarks/train_step.py [--model yolox-nano] [--imgsz 416] [--batch 8] [--gts 5 30] [--iters 10]

Both sides run the identical network (same weights, images and labels), alternately per GT
count, so machine load affects both alike. The ratio is reference / ours.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from openyolox.models.yolox import create_model  # noqa: E402
from openyolox.bench.train_step import benchmark_train_step  # noqa: E402
from reference_simota import reference_loss  # noqa: E402


def reference_criterion(head_out, targets, use_l1):
    grid = head_out["grid"]
    return reference_loss(head_out["outputs"], head_out["raw_reg"], targets.float(), grid[:, 0], grid[:, 1],
                          head_out["strides"], use_l1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="yolox-nano")
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--gts", type=int, nargs="+", default=[5, 30])
    p.add_argument("--iters", type=int, default=10)
    args = p.parse_args()
    print("| GTs/img | ours ms/step | per-GT loop ms/step | ratio |")
    print("|---|---|---|---|")
    rows = []
    for gts in args.gts:
        net = create_model(args.model, 80)
        kw = dict(model=args.model, imgsz=args.imgsz, batch=args.batch, gts=gts, iters=args.iters)
        state = {k: v.clone() for k, v in net.state_dict().items()}
        ours = benchmark_train_step(net=net, **kw)
        net.load_state_dict(state)
        ref = benchmark_train_step(net=net, criterion=reference_criterion, **kw)
        ratio = ref["ms_per_step"] / ours["ms_per_step"]
        rows.append({"gts": gts, "ours": ours, "reference_loop": ref, "ratio": round(ratio, 2)})
        print(f"| {gts} | {ours['ms_per_step']} | {ref['ms_per_step']} | {ratio:.2f}x |", flush=True)
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
