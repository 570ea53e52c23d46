"""`torchrun --nproc_per_node 2 -m openyolox train` on CPU (gloo)."""
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_data import make_tiny_dataset, write_coco  # noqa: E402

from openyolox.checkpoint import load_checkpoint  # noqa: E402


def test_two_process_gloo_training(tmp_path):
    data = write_coco(tmp_path / "coco", make_tiny_dataset(12))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "openyolox", "train", "--data", str(data), "--epochs", "2", "--batch", "4", "--imgsz", "64",
           "--workers", "0", "--weights", "none", "--warmup-epochs", "1", "--no-aug-epochs", "1", "--eval-interval", "1",
           "--no-multiscale", "--no-progress", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "x 2 processes" in proc.stderr
    # rank 0 alone writes: one run folder, printed once as the last line
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    ckpt = load_checkpoint(out / "last.pth")
    # 12 images, batch 4 over 2 ranks = 2 per rank -> 3 iterations per epoch
    assert ckpt["iteration"] == 6 and ckpt["epoch"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert "AP50_95" in metrics
    # every val image was predicted exactly once across the two ranks (shards are disjoint)
    assert metrics["val_images_predicted"] == 12
    # detections (if a barely trained model makes any) name only the val images, ids 1..12
    preds = json.loads((out / "predictions.json").read_text())
    assert {p["image_id"] for p in preds} <= set(range(1, 13))
