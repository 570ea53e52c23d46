from pathlib import Path

import pytest

from openyolox.checkpoint import load_weights
from openyolox.models.yolox import create_model

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"golden data not found at {REFERENCE}: ../shared/reference must sit beside the checkout")
    return REFERENCE


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
