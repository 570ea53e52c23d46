"""openyolox: YOLOX object detection in plain PyTorch.

Public API: build_model, load_weights, Detector, Detections, train, evaluate, Tracker.
"""
from openyolox.version import __version__  # noqa: F401

_API = {
    "build_model": "openyolox.api",
    "load_weights": "openyolox.api",
    "Detector": "openyolox.api",
    "Detections": "openyolox.api",
    "train": "openyolox.api",
    "evaluate": "openyolox.api",
    "Tracker": "openyolox.tracking",
}


def __getattr__(name):  # lazy, so `import openyolox` stays cheap for the CLI
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'openyolox' has no attribute '{name}'")


__all__ = list(_API)
