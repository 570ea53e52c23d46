"""`openyolox predict` on a folder of 100 images, end to end: PyTorch (what it ran before the
automatic back-end) against the default, with an empty export cache (the one-time export
included) and with the cache filled.

    python benchmarks/predict_folder.py [--nano-weights best.pth] [--images 100] [--baseline DIR]

Each run is the whole command in a fresh process (`python -m openyolox predict DIR ...`):
start-up, imports, model loading (and export), letterbox, inference, NMS, drawing and writing
the annotated images and predictions.json. Images: the first --images of the built-in val
split. Cases: yolox-nano at its checkpoint's size (320 for the built-in one; trained weights when
given) and yolox-s at 640 (a random-weight
checkpoint: the timing does not depend on the values). "PyTorch" runs ``--backend torch`` of
this tree, or, with --baseline, the tree in DIR (e.g. ``git archive`` of the commit before the
automatic back-end) without the option: the command as it was. Prints a markdown table and JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def predict_seconds(folder: Path, ckpt: str, backend: str, out: Path, env: dict) -> float:
    cmd = [sys.executable, "-m", "openyolox", "predict", str(folder), "--model", ckpt, "--out", str(out)]
    if backend:
        cmd += ["--backend", backend]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nano-weights", help="yolox-nano checkpoint (e.g. trained on the built-in set)")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--baseline", help="source tree whose `openyolox predict` is the PyTorch run")
    args = parser.parse_args()

    import torch

    from openyolox.checkpoint import save_checkpoint
    from openyolox.data.layouts import load_split
    from openyolox.models.yolox import create_model

    tmp = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    folder = tmp / "images"
    folder.mkdir()
    for record in load_split("builtin", "val").records[:args.images]:
        shutil.copy(record.path, folder / record.path.name)
    torch.manual_seed(0)
    s_ckpt = save_checkpoint(tmp / "yolox_s.pth", {"model": create_model("yolox-s").state_dict(),
                                                    "model_name": "yolox-s"})
    nano = args.nano_weights or str(save_checkpoint(tmp / "nano.pth", {
        "model": create_model("yolox-nano").state_dict(), "model_name": "yolox-nano"}))
    env = {**os.environ, "OPENYOLOX_HOME": str(tmp / "home"), "PYTHONPATH": str(ROOT)}
    rows = []
    print("| model | PyTorch s | default, empty cache s | default, cached s | speed-up first run | "
          "speed-up cached |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, ckpt in (("yolox-nano", str(nano)), ("yolox-s@640", str(s_ckpt))):
        shutil.rmtree(tmp / "home", ignore_errors=True)
        if args.baseline:
            today = predict_seconds(folder, ckpt, "", tmp / "out_torch", {**env, "PYTHONPATH": args.baseline})
        else:
            today = predict_seconds(folder, ckpt, "torch", tmp / "out_torch", env)
        first = predict_seconds(folder, ckpt, "auto", tmp / "out_first", env)
        cached = predict_seconds(folder, ckpt, "auto", tmp / "out_cached", env)
        row = {"model": name, "images": len(list(folder.iterdir())), "pytorch_s": round(today, 2),
               "auto_first_s": round(first, 2), "auto_cached_s": round(cached, 2),
               "speedup_first": round(today / first, 2), "speedup_cached": round(today / cached, 2)}
        rows.append(row)
        print(f"| {name} | {today:.2f} | {first:.2f} | {cached:.2f} | {today / first:.2f}x | {today / cached:.2f}x |",
              flush=True)
    for r in rows:
        print(json.dumps(r))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
