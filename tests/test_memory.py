"""Resident memory stays flat over a long training run (slow: ~1,000 iterations)."""
import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys
from openyolox.training.trainer import Trainer, TrainConfig

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * __import__("os").sysconf("SC_PAGE_SIZE") / 2**20

samples = {}
real_step = Trainer.train_step
def step(self, batch):
    out = real_step(self, batch)
    if self.iteration in (100, 250, 500, 750, 1000):
        samples[self.iteration] = rss_mb()
    return out
Trainer.train_step = step
# built-in data, 128 px, batch 8: 150 iterations per epoch; 7 epochs > 1,000 iterations
cfg = TrainConfig(out=sys.argv[1], weights="none", epochs=7, batch=8, imgsz=128, eval_interval=100, no_aug_epochs=1,
                  progress=False)
Trainer(cfg).run()
print(json.dumps(samples))
"""


@pytest.mark.slow
def test_rss_after_1000_iterations_within_10_percent_of_100(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=3600, env={**os.environ})
    assert proc.returncode == 0, proc.stderr[-2000:]
    samples = {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    print("RSS MB by iteration:", samples)
    assert samples[1000] <= samples[100] * 1.10, samples
