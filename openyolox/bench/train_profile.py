"""Where the time of one training step goes (``benchmarks/train_step.py --profile``).

Two views of the same step (openyolox/training/step.py, the trainer's code):

- phases, wall clock, medians over ``iters`` steps: making the batch (the built-in set's
  augmentation, as the main job does), forward, SimOTA, the rest of the loss, backward, the
  optimiser step, the EMA update;
- the forward and the backward by layer type, from the PyTorch profiler (self time of every
  operator, attributed to the layer it belongs to). Convolutions are split into depthwise kxk,
  pointwise 1x1 and dense kxk by their weight's shape.
"""
from __future__ import annotations

import statistics
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Dict, List, Optional

import torch
from torch.profiler import ProfilerActivity, profile, record_function

import openyolox.training.loss as loss_module
from openyolox.bench.train_step import build_step, random_targets

PHASES = ("data", "forward", "simota", "loss", "backward", "optimizer", "ema")


@contextmanager
def _timed_simota(sink: List[float]):
    """Time every SimOTA call made by the loss (the loss module looks the function up by name)."""
    real = loss_module.assign_simota

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        with record_function("simota"):
            out = real(*args, **kwargs)
        sink.append(time.perf_counter() - t0)
        return out

    loss_module.assign_simota = timed
    try:
        yield
    finally:
        loss_module.assign_simota = real


def _one_step(step, images, targets, times: Dict[str, float]) -> None:
    """The step's parts, timed one by one (same calls as TrainStep.losses / update)."""
    simota: List[float] = []
    t0 = time.perf_counter()
    with record_function("forward"):
        x = images.contiguous(memory_format=step.memory_format)
        head_out = step.forward(x)
    t1 = time.perf_counter()
    with _timed_simota(simota), record_function("loss"):
        losses = loss_module.detection_loss(head_out, targets)
    t2 = time.perf_counter()
    with record_function("backward"):
        step.optimizer.zero_grad(set_to_none=True)
        losses["total_loss"].backward()
    t3 = time.perf_counter()
    with record_function("optimizer"):
        step.optimizer.step()
    t4 = time.perf_counter()
    with record_function("ema"):
        step.ema.update(step.model)
    t5 = time.perf_counter()
    times.update(forward=t1 - t0, simota=sum(simota), loss=t2 - t1 - sum(simota), backward=t3 - t2,
                 optimizer=t4 - t3, ema=t5 - t4)


def _conv_kind(shapes, weight_index: int) -> str:
    try:
        out_ch, in_per_group, kh, kw = shapes[weight_index]
    except (IndexError, TypeError, ValueError):
        return "conv (other)"
    if kh == kw == 1:
        return "conv 1x1"
    if in_per_group == 1:
        return f"conv depthwise {kh}x{kw}"
    return f"conv dense {kh}x{kw}"


def _layer_of(event) -> str:
    """The layer type an operator's self time belongs to: the nearest enclosing operator that
    names one."""
    e = event
    while e is not None:
        name = e.name
        if name == "aten::convolution":
            return _conv_kind(e.input_shapes, 1)
        if name == "aten::convolution_backward":
            return _conv_kind(e.input_shapes, 2)
        if "batch_norm" in name:
            return "batch norm"
        if "silu" in name:
            return "SiLU"
        if "max_pool" in name:
            return "max pool (SPP)"
        if name in ("aten::cat", "CatBackward0") or "upsample" in name:
            return "concat / upsample"
        if "AccumulateGrad" in name:
            return "gradient accumulation"
        e = e.cpu_parent
    return "other (decode, views, copies)"


def _region_of(event) -> Optional[str]:
    e = event
    while e is not None:
        if e.name in PHASES:
            return e.name
        e = e.cpu_parent
    return None


def profile_train_step(model: str = "yolox-nano", imgsz: int = 416, batch: int = 8, gts: int = 30,
                       iters: int = 5, warmup: int = 2, channels_last: bool = False, bf16: bool = False,
                       data: Optional[str] = "builtin", seed: int = 0) -> Dict[str, object]:
    """Phase times (ms, medians) and per-layer-type self times (ms per step) of the forward and
    the backward. ``data``: time making a batch from this dataset with the model's
    augmentation (None: skip)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    step = build_step(model, channels_last=channels_last, bf16=bf16)
    images = torch.rand(batch, 3, imgsz, imgsz, generator=gen) * 255
    targets = random_targets(gen, batch, gts, imgsz, step.model.num_classes)

    per_phase: Dict[str, List[float]] = defaultdict(list)
    for i in range(warmup + iters):
        times: Dict[str, float] = {}
        _one_step(step, images, targets, times)
        if i >= warmup:
            for k, v in times.items():
                per_phase[k].append(v)
    if data:
        per_phase["data"] = _data_times(data, model, imgsz, batch, iters, seed)

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        _one_step(step, images, targets, {})
    layers: Dict[str, Dict[str, float]] = {"forward": defaultdict(float), "backward": defaultdict(float)}
    for event in prof.events():
        region = _region_of(event)
        if region in layers:
            layers[region][_layer_of(event)] += event.self_cpu_time_total / 1000.0
    return {"model": model, "imgsz": imgsz, "batch": batch, "gts": gts, "channels_last": channels_last,
            "bf16": bf16, "threads": torch.get_num_threads(),
            "phases_ms": {k: round(1000 * statistics.median(per_phase[k]), 1) for k in PHASES if per_phase.get(k)},
            "layers_ms": {region: dict(sorted(((k, round(v, 1)) for k, v in d.items()), key=lambda kv: -kv[1]))
                          for region, d in layers.items()}}


def _data_times(data: str, model: str, imgsz: int, batch: int, iters: int, seed: int) -> List[float]:
    """Wall time of making one training batch in-process (workers 0, as on small machines)."""
    from openyolox.config import get_preset
    from openyolox.data.dataset import TrainDataset
    from openyolox.data.layouts import load_split
    from openyolox.data.loader import build_train_loader

    dataset = TrainDataset.from_config(load_split(data, "train"), get_preset(model), imgsz, seed=seed)
    batches = iter(build_train_loader(dataset, batch, workers=0, shuffle=True, pin_memory=False))
    next(batches)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        next(batches)
        times.append(time.perf_counter() - t0)
    return times


def format_profile(result: Dict[str, object]) -> str:
    """Markdown: the phase table, then forward and backward by layer type."""
    phases = result["phases_ms"]
    step_total = sum(v for k, v in phases.items() if k != "data")
    lines = ["| phase | ms/step | share of the step |", "|---|---:|---:|"]
    for k, v in phases.items():
        share = f"{100 * v / step_total:.0f}%" if k != "data" else "(outside the step)"
        lines.append(f"| {k} | {v} | {share} |")
    lines.append(f"| **step (forward..EMA)** | **{step_total:.1f}** | 100% |")
    for region in ("forward", "backward"):
        d = result["layers_ms"][region]
        total = sum(d.values()) or 1.0
        lines += ["", f"| {region}: layer type | profiler ms | share |", "|---|---:|---:|"]
        lines += [f"| {k} | {v} | {100 * v / total:.0f}% |" for k, v in d.items()]
    return "\n".join(lines)
