import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from openyolox.checkpoint import load_weights
from openyolox.models.yolox import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import golden  # noqa: E402

# The test session never touches the user's cache nor the network: a private cache folder, and a
# weights mirror where nothing listens, so a test that forgets weights="none" fails at once
# (tests that fetch weights point OPENYOLOX_WEIGHTS_URL at their own server or folder).
_HOME = tempfile.mkdtemp(prefix="openyolox-tests-")
os.environ["OPENYOLOX_HOME"] = _HOME
os.environ["OPENYOLOX_WEIGHTS_URL"] = "http://127.0.0.1:9/"


def pytest_unconfigure(config):
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """tests/data/reference: the reference implementation's golden data (see its README)."""
    return golden.REFERENCE_DIR


@pytest.fixture(scope="module")
def weights(reference_dir) -> Path:
    """The reference-format yolox-nano checkpoint (80 classes, random weights)."""
    return reference_dir / "nano_reference.pth"


@pytest.fixture(scope="module")
def nano(weights):
    """yolox-nano with those weights, eval mode, unfused."""
    model = create_model("yolox-nano")
    load_weights(model, weights)
    return model.eval()


ISOLATED_ENV = "OPENYOLOX_TEST_CHILD"


@pytest.fixture
def own_process(request) -> bool:
    """Run the requesting test again in a child pytest process and report whether the parent
    should stop there (True: the child ran it and passed).

    For tests that load native libraries which leave state behind in the process: after the
    INT8 tests (NNCF / OpenVINO / ONNX Runtime quantization) had run in the suite's process,
    a later, unrelated test died with a segmentation fault of the whole run."""
    if os.environ.get(ISOLATED_ENV):
        return False
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid],
                          capture_output=True, text=True, cwd=str(request.config.rootpath),
                          env={**os.environ, ISOLATED_ENV: "1"}, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return True
