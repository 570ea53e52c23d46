"""The reference implementation's golden data, stored in tests/data/reference/ (see its README)."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Dict

import numpy as np

REFERENCE_DIR = Path(__file__).resolve().parent / "data" / "reference"


def path(name: str) -> Path:
    """The file ``name`` of the golden set (e.g. ``nano_reference.pth``)."""
    found = REFERENCE_DIR / name
    if not found.is_file():
        raise FileNotFoundError(f"golden file {found} is missing from the repository")
    return found


def load(name: str) -> Dict[str, np.ndarray]:
    """All arrays of ``<name>.npz`` as a dict, in the reference's dtypes."""
    with np.load(path(f"{name}.npz")) as data:
        arrays = {k: data[k] for k in data.files}
    if name == "schedule_letterbox":  # stored as uint8: whole numbers 0..255 (see README)
        arrays["letterboxed"] = arrays["letterboxed"].astype(np.float32)
    return arrays


def load_json(name: str) -> Any:
    """``<name>.json`` or ``<name>.json.gz``."""
    plain = REFERENCE_DIR / f"{name}.json"
    if plain.is_file():
        return json.loads(plain.read_text())
    with gzip.open(path(f"{name}.json.gz"), "rt") as f:
        return json.load(f)
