import sys
from pathlib import Path

import pytest

from openyolox.checkpoint import load_weights
from openyolox.models.yolox import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import golden  # noqa: E402


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
