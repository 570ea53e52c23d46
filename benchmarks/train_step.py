"""Training step time, ours against the reference YOLOX's own model, loss and EMA, in one process.

    python benchmarks/train_step.py --reference /path/to/YOLOX [--gts 5 30] [--iters 10]
    python benchmarks/train_step.py --profile            # where the time of our step goes
    python benchmarks/train_step.py --candidates         # each speed candidate against the old step
    python benchmarks/train_step.py --prefetch           # batch + step, the batch made ahead in a thread or not

The reference is a checkout of Megvii-BaseDetection/YOLOX at commit 6ddff48 (see
docs/benchmarks.md); without one the comparison is skipped with a message. Both sides get the
same weights and the same batch and are timed alternately, so machine load hits both alike.
The ratio is reference / ours. The step is forward + SimOTA + loss + backward + SGD + EMA,
with the trainer's default settings on our side (openyolox/training/step.py).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openyolox.bench.reference import ReferenceNotFound  # noqa: E402
from openyolox.bench.train_profile import format_profile, profile_train_step  # noqa: E402
from openyolox.bench.train_step import compare_with_reference, machine_description  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reference", help="folder of a Megvii-BaseDetection/YOLOX checkout (commit 6ddff48)")
    p.add_argument("--model", default="yolox-nano")
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--gts", type=int, nargs="+", default=[5, 30])
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="our side in NCHW (the trainer's default is channels_last)")
    p.add_argument("--profile", action="store_true", help="print where the time of our step goes")
    p.add_argument("--candidates", action="store_true", help="time each speed candidate against the old step")
    p.add_argument("--compile", action="store_true", help="with --candidates: also torch.compile (minutes on CPU)")
    p.add_argument("--prefetch", action="store_true", help="time batch+step with and without the prefetch thread")
    args = p.parse_args()
    print(f"machine: {machine_description()}")
    if args.profile:
        for gts in args.gts:
            result = profile_train_step(args.model, args.imgsz, args.batch, gts, iters=args.iters,
                                        channels_last=args.channels_last)
            print(f"\n{args.model}, batch {args.batch}, {args.imgsz} px, {gts} GTs/image, "
                  f"channels_last={args.channels_last}\n")
            print(format_profile(result))
            print(json.dumps(result))
    if args.candidates:
        from openyolox.bench.train_candidates import measure_candidates

        extra = {"all kept + torch.compile": {"channels_last": True, "foreach_sgd": True, "foreach_ema": True,
                                              "one_read": True, "compile": True}} if args.compile else None
        for gts in args.gts:
            rows = measure_candidates(args.model, args.imgsz, args.batch, gts, iters=args.iters, extra=extra,
                                      log=lambda s: print(s, file=sys.stderr, flush=True))
            print(f"\n{args.model}, batch {args.batch}, {args.imgsz} px, {gts} GTs/image\n")
            print("| candidate | ms/step | speed-up over the old step |\n|---|---:|---:|")
            for r in rows:
                print(f"| {r['candidate']} | {r['ms_per_step']} | {r['speedup']:.2f}x |")
            print(json.dumps(rows))
    if args.prefetch:
        from openyolox.bench.train_candidates import measure_prefetch

        r = measure_prefetch(cv2_threads=(None, 1))
        print("\nbuilt-in set, yolox-nano, batch 16, 256 px (the main job), batch + step:\n")
        print("| batches made | OpenCV threads | ms/iteration | of which waiting for the batch |\n|---|---:|---:|---:|")
        for row in r["rows"]:
            print(f"| {row['loading']} | {row['cv2_threads']} | {row['ms_per_iter']} | {row['ms_waiting_for_batch']} |")
        print(json.dumps(r))
    if not args.reference:
        if not (args.profile or args.candidates or args.prefetch):
            print("no --reference given: the comparison with the reference YOLOX is skipped "
                  "(git clone https://github.com/Megvii-BaseDetection/YOLOX && git -C YOLOX checkout 6ddff48)")
        return 0
    rows = []
    print("\n| GTs/img | ours ms/step | reference ms/step | ratio | loss max rel diff | grad max rel diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for gts in args.gts:
        try:
            r = compare_with_reference(args.reference, args.model, args.imgsz, args.batch, gts, args.iters,
                                       channels_last=args.channels_last,
                                       log=lambda s: print(s, file=sys.stderr, flush=True))
        except ReferenceNotFound as exc:
            print(f"reference YOLOX not found, comparison skipped: {exc}")
            return 0
        rows.append(r)
        print(f"| {gts} | {r['ours_ms']} | {r['reference_ms']} | {r['ratio']:.2f}x | "
              f"{r['loss_max_rel_diff']:.1e} | {r['grad_max_rel_diff']:.1e} |", flush=True)
    losses_ok = all(r["loss_max_rel_diff"] <= 1e-4 for r in rows)
    grads_ok = all(r["grad_max_rel_diff"] <= 1e-3 for r in rows)
    print(f"\nlosses within 1e-4 relative: {'yes' if losses_ok else 'NO'}; gradients within 1e-3 (worst tensor): "
          f"{'yes' if grads_ok else 'NO'}" + ("" if grads_ok or not args.channels_last else
                                              " (channels_last backward; --no-channels-last compares NCHW)"))
    for r in rows:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
