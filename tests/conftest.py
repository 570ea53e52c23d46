import os
import sys
from pathlib import Path

import pytest

from openyolox.checkpoint import load_weights
from openyolox.models.yolox import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import golden  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def private_cache_home(tmp_path_factory):
    """OPENYOLOX_HOME in a temporary folder for the whole run: the automatic back-end's export
    cache (openyolox.export.auto) and published weights never touch the user's cache. Shared by
    all tests, so one export of a model serves every test that runs it."""
    home = tmp_path_factory.mktemp("openyolox_home")
    before = os.environ.get("OPENYOLOX_HOME")
    os.environ["OPENYOLOX_HOME"] = str(home)
    yield home
    if before is None:
        os.environ.pop("OPENYOLOX_HOME", None)
    else:
        os.environ["OPENYOLOX_HOME"] = before


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
