"""Every CLI error path prints one clear line and exits non-zero, without a traceback."""
import os
import subprocess
import sys

import pytest


def _run(args, cwd):
    return subprocess.run([sys.executable, "-m", "openyolox", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env={**os.environ, "OPENYOLOX_CACHE": str(cwd / "cache")})


@pytest.mark.parametrize("args, code, message", [
    (["train", "--bogus"], 2, "unrecognized arguments: --bogus"),
    (["predict", "x.jpg", "--conf", "abc"], 2, "invalid float value"),
    (["train", "--model", "yolox-giant", "--epochs", "1"], 1, "unknown model 'yolox-giant'"),
    (["train", "--weights", "nowhere.pth", "--epochs", "1"], 1, "nowhere.pth"),
    (["train", "--data", "no/such/folder", "--epochs", "1"], 1, "dataset not found"),
    (["train", "--data", ".", "--epochs", "1"], 1, "."),
    (["train", "--imgsz", "333", "--epochs", "1"], 1, "multiple of 32"),
    (["train", "--device", "cuda", "--epochs", "1"], 1, "CUDA is not available"),
    (["val", "--model", "yolox-nano", "--data", "no/such"], 1, "dataset not found"),
    (["export", "--model", "yolox-nano", "--weights", "missing.pth"], 1, "missing.pth"),
    (["check-data", "no/such/folder"], 1, "no/such/folder"),
])
def test_one_line_errors(tmp_path, args, code, message):
    proc = _run(args, tmp_path)
    assert proc.returncode == code, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stderr


def test_unwritable_output_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permission bits; use a path under a file instead
            target = tmp_path / "afile" / "run"
            (tmp_path / "afile").write_text("")
        else:
            target = locked / "run"
        proc = _run(["train", "--epochs", "1", "--out", str(target)], tmp_path)
    finally:
        locked.chmod(0o700)
    assert proc.returncode == 1
    assert "output folder" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_debug_shows_traceback(tmp_path):
    proc = _run(["--debug", "train", "--model", "yolox-giant"], tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr
