"""A training process killed with SIGKILL mid-epoch resumes to the same final weights.

The process kills itself right after the checkpoint of iteration KILL_AT is written, so the
test does not depend on how fast the machine is (polling from outside could miss the window,
or kill before the first checkpoint)."""
import os
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_data import make_tiny_dataset, write_coco  # noqa: E402

from openyolox.checkpoint import load_checkpoint  # noqa: E402

ARGS = ["--weights", "none", "--epochs", "2", "--batch", "2", "--imgsz", "64", "--workers", "0", "--warmup-epochs", "1",
        "--no-aug-epochs", "1", "--eval-interval", "2", "--no-multiscale", "--no-progress", "--save-every", "1"]
KILL_AT = 4  # of 12 iterations (6 per epoch): the middle of epoch 1

# Runs `openyolox train` in-process, sending itself SIGKILL once iteration KILL_AT is saved.
SELF_KILLER = """
import os, signal, sys
from openyolox.cli import main
from openyolox.training.trainer import Trainer
save = Trainer.save
def save_then_die(self, name="last.pth", payload=None):
    path = save(self, name, payload)
    if self.iteration == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)
    return path
Trainer.save = save_then_die
sys.exit(main(sys.argv[1:]))
"""


def _train_args(data, out):
    return ["train", "--data", str(data), "--out", str(out), *ARGS]


def test_sigkill_mid_epoch_then_resume(tmp_path):
    data = write_coco(tmp_path / "coco", make_tiny_dataset(12))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "openyolox", *_train_args(data, tmp_path / "full")], check=True,
                   capture_output=True, env=env, timeout=600)

    cut = tmp_path / "cut"
    killed = subprocess.run([sys.executable, "-c", SELF_KILLER.format(kill_at=KILL_AT), *_train_args(data, cut)],
                            capture_output=True, env=env, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert load_checkpoint(cut / "last.pth")["iteration"] == KILL_AT   # the file is never torn

    resume = subprocess.run([sys.executable, "-m", "openyolox", "train", "--resume", str(cut), "--no-progress"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert resume.returncode == 0, resume.stderr[-2000:]
    assert f"iteration {KILL_AT}" in resume.stderr
    a = load_checkpoint(tmp_path / "full" / "last.pth")
    b = load_checkpoint(cut / "last.pth")
    assert a["iteration"] == b["iteration"] == 12
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
