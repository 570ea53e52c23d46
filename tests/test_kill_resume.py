"""A training process killed with SIGKILL mid-epoch resumes to the same final weights."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_data import make_tiny_dataset, write_coco  # noqa: E402

from openyolox.checkpoint import load_checkpoint  # noqa: E402

ARGS = ["--epochs", "2", "--batch", "2", "--imgsz", "64", "--workers", "0", "--warmup-epochs", "1",
        "--no-aug-epochs", "1", "--eval-interval", "2", "--no-multiscale", "--no-progress", "--save-every", "1"]


def _train(data, out, *extra):
    return [sys.executable, "-m", "openyolox", "train", "--data", str(data), "--out", str(out), *ARGS, *extra]


def test_sigkill_mid_epoch_then_resume(tmp_path):
    data = write_coco(tmp_path / "coco", make_tiny_dataset(12))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train(data, tmp_path / "full"), check=True, capture_output=True, env=env, timeout=600)

    cut = tmp_path / "cut"
    proc = subprocess.Popen(_train(data, cut), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    try:  # kill as soon as a checkpoint from the middle of epoch 1 (of 6 iterations) exists
        while time.time() < deadline:
            try:
                if load_checkpoint(cut / "last.pth")["iteration"] >= 3:
                    break
            except Exception:  # not written yet
                pass
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    killed_at = load_checkpoint(cut / "last.pth")["iteration"]   # the file is never torn
    assert 3 <= killed_at < 12

    resume = subprocess.run([sys.executable, "-m", "openyolox", "train", "--resume", str(cut), "--no-progress"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert resume.returncode == 0, resume.stderr[-2000:]
    assert f"iteration {killed_at}" in resume.stderr
    a = load_checkpoint(tmp_path / "full" / "last.pth")
    b = load_checkpoint(cut / "last.pth")
    assert a["iteration"] == b["iteration"] == 12
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
