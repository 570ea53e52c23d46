"""The one user cache folder: published weights, the built-in dataset, cached exports."""
from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "OPENYOLOX_HOME"
ENV_HOME_OLD = "OPENYOLOX_CACHE"   # the name before 0.2, still honoured


def cache_dir() -> Path:
    """``$OPENYOLOX_HOME`` (or the older ``$OPENYOLOX_CACHE``), else ``$XDG_CACHE_HOME/openyolox``,
    else the platform user cache (``%LOCALAPPDATA%\\openyolox`` on Windows, ``~/.cache/openyolox``
    elsewhere)."""
    for var, sub in ((ENV_HOME, ""), (ENV_HOME_OLD, ""), ("XDG_CACHE_HOME", "openyolox")):
        value = os.environ.get(var)
        if value:
            return Path(value).expanduser() / sub
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "openyolox"
    return Path.home() / ".cache" / "openyolox"
