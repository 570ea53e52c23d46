"""What a training run leaves in its folder besides checkpoints.

metrics.csv (one row per epoch), TensorBoard events (when tensorboard is installed),
and at the end: metrics.json, predictions.json (COCO results on val), training_curves.png,
pr_curve.png, confusion_matrix.png and val_predictions/ (annotated val images).
Every file is written atomically.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import cv2

from openyolox.atomic import atomic_write, write_text_atomic
from openyolox.data.image_io import read_image
from openyolox.data.records import DatasetSplit
from openyolox.evaluation.coco import STAT_NAMES
from openyolox.evaluation.results import save_coco_results, to_coco_results
from openyolox.inference.visualize import draw_detections

ANNOTATED_VAL_IMAGES = 16
DRAW_CONF = 0.25


class RunLogger:
    def __init__(self, run_dir: Path, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tb: Any = None
        self._tb_tried = False

    @property
    def tb(self):
        """The TensorBoard writer, created at the first value logged (so a run that fails
        before its first step leaves no tensorboard/ folder); None without tensorboard."""
        if self.enabled and not self._tb_tried:
            self._tb_tried = True
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:  # tensorboard is an optional extra
                self._tb = None
        return self._tb

    def scalars(self, prefix: str, values: Mapping[str, float], step: int) -> None:
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{prefix}/{k}", v, step)

    def epoch(self, record: Mapping[str, Any]) -> None:
        """Append an epoch row to metrics.csv (rewritten whole, atomically)."""
        if not self.enabled:
            return
        path = self.run_dir / "metrics.csv"
        rows: List[Dict[str, Any]] = []
        if path.exists():
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        rows.append({k: ("" if v is None else v) for k, v in record.items()})
        fields: List[str] = []
        for row in rows:
            fields += [k for k in row if k not in fields]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(path, buf.getvalue())
        if self.tb is not None:
            self.scalars("epoch", {k: float(v) for k, v in record.items() if isinstance(v, (int, float))},
                         int(record["epoch"]))
            self.tb.flush()

    def finish(self, split: DatasetSplit, predictions: Mapping, metrics: Mapping[str, Any],
               history: List[Mapping[str, Any]], extra: Optional[Mapping[str, Any]] = None) -> None:
        if not self.enabled:
            return
        from openyolox.evaluation.plots import save_plots

        summary = {k: metrics.get(k) for k in STAT_NAMES}
        summary["per_class"] = metrics.get("per_class")
        summary.update(extra or {})
        write_text_atomic(self.run_dir / "metrics.json", json.dumps(summary, indent=2))
        save_coco_results(to_coco_results(split, predictions), self.run_dir / "predictions.json")
        save_plots(split, predictions, metrics, self.run_dir)
        plot_training_curves(history, self.run_dir / "training_curves.png")
        draw_val_predictions(split, predictions, self.run_dir / "val_predictions")
        if self._tb is not None:
            self._tb.close()


def plot_training_curves(history: List[Mapping[str, Any]], path: Path) -> Path:
    """Loss components and val AP per epoch, side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    ax_loss, ax_ap = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    for key in ("total_loss", "iou_loss", "obj_loss", "cls_loss", "l1_loss"):
        values = [h.get(key) for h in history]
        if any(v for v in values):
            ax_loss.plot(epochs, values, marker="o", ms=3, label=key, lw=2.2 if key == "total_loss" else 1.3)
    ax_loss.set(title="training loss (epoch mean)", xlabel="epoch", ylabel="loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    for key in ("AP50", "AP50_95"):
        pts = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        if pts:
            ax_ap.plot(*zip(*pts), marker="o", label=key)
    ax_ap.set(title="validation (EMA weights)", xlabel="epoch", ylabel="AP", ylim=(0, 1))
    ax_ap.legend()
    ax_ap.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    return path


def draw_val_predictions(split: DatasetSplit, predictions: Mapping, out_dir: Path,
                         limit: int = ANNOTATED_VAL_IMAGES) -> None:
    """The first ``limit`` val images with their detections above DRAW_CONF."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for rec in split.records[:limit]:
        pred = predictions.get(rec.image_id)
        if pred is None:
            continue
        keep = pred.scores >= DRAW_CONF
        image = draw_detections(read_image(rec.path), pred.boxes[keep], pred.scores[keep], pred.classes[keep],
                                split.class_names)
        ok, buf = cv2.imencode(".jpg", image)
        if ok:
            with atomic_write(out_dir / f"{rec.path.stem}.jpg", "wb") as fh:
                fh.write(buf.tobytes())
