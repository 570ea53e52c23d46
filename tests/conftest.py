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
