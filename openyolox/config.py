"""Named model presets and plain-value configuration (docs/yolox.md sections 1, 6, 7)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from openyolox.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one YOLOX network plus the per-model training defaults."""

    name: str
    depth: float
    width: float
    depthwise: bool = False
    act: str = "silu"
    backbone: str = "cspdarknet"  # or "darknet53"
    test_size: Tuple[int, int] = (640, 640)
    # training defaults that differ per model (report Table 5 / reference exps)
    mosaic_prob: float = 1.0
    mosaic_scale: Tuple[float, float] = (0.1, 2.0)
    mixup: bool = True
    multiscale_range: int = 5  # sizes base/32 +- range, in units of 32


PRESETS: Dict[str, ModelConfig] = {
    "yolox-nano": ModelConfig("yolox-nano", 0.33, 0.25, depthwise=True, test_size=(416, 416),
                              mosaic_prob=0.5, mosaic_scale=(0.5, 1.5), mixup=False),
    "yolox-tiny": ModelConfig("yolox-tiny", 0.33, 0.375, test_size=(416, 416),
                              mosaic_scale=(0.5, 1.5), mixup=False),
    "yolox-s": ModelConfig("yolox-s", 0.33, 0.50),
    "yolox-m": ModelConfig("yolox-m", 0.67, 0.75),
    "yolox-l": ModelConfig("yolox-l", 1.0, 1.0),
    "yolox-x": ModelConfig("yolox-x", 1.33, 1.25),
    "yolox-darknet53": ModelConfig("yolox-darknet53", 1.0, 1.0, act="lrelu", backbone="darknet53"),
}
ALIASES = {"yolov3": "yolox-darknet53", "nano": "yolox-nano", "tiny": "yolox-tiny",
           "s": "yolox-s", "m": "yolox-m", "l": "yolox-l", "x": "yolox-x",
           "darknet53": "yolox-darknet53"}


def canonical_name(name: str) -> str:
    key = name.lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in PRESETS:
        raise ConfigError(f"unknown model '{name}'; choose one of: {', '.join(PRESETS)} (alias: yolov3)")
    return key


def get_preset(name: str) -> ModelConfig:
    """Look up a preset by name (case-insensitive, `yolov3` = `yolox-darknet53`)."""
    return PRESETS[canonical_name(name)]


def check_image_size(size) -> Tuple[int, int]:
    """Validate an input size: an int or (h, w), each a positive multiple of 32."""
    if isinstance(size, int):
        size = (size, size)
    h, w = (int(s) for s in size)
    for s in (h, w):
        if s <= 0 or s % 32:
            raise ConfigError(f"image size {s} is not a positive multiple of 32 (the network's largest "
                              f"stride); use e.g. {max(32, round(s / 32) * 32)}")
    return h, w
