"""Type aliases shared by the whole package (one definition each)."""
from __future__ import annotations

from pathlib import Path
from typing import Union

PathLike = Union[str, Path]  # what every function taking a file or folder accepts
