"""Run a Detector over a dataset split: batched letterboxed inference -> predictions.

Images are decoded and letterboxed by DataLoader workers while the model runs; each batch
then goes through the Detector's one prediction step, with boxes left unclipped as the
reference evaluator does. The time per image splits into preprocess (waiting for the next
batch), inference (the network) and postprocess (score filter, NMS, mapping back).
"""
from __future__ import annotations

import sys
import time
from typing import Dict

from tqdm import tqdm

from openyolox.data.dataset import EvalDataset
from openyolox.data.loader import build_eval_loader
from openyolox.data.records import DatasetSplit, ImageId
from openyolox.inference.predictor import Detector
from openyolox.inference.results import Detections


def predict_split(detector: Detector, split: DatasetSplit, batch_size: int = 8, workers: int = 2,
                  distributed: bool = False, progress: bool = True) -> Dict[ImageId, Detections]:
    """Detections for every image of ``split`` (this rank's shard when distributed), keyed by
    the split's image ids; boxes xyxy in original pixels, not clipped. The evaluation protocol
    (docs/yolox.md section 8) is the detector's settings: its input size, conf and NMS IoU
    (0.01 and 0.65, class-aware, for COCO-style evaluation). Timings accumulate in
    ``detector.timings``."""
    loader = build_eval_loader(EvalDataset(split, detector.imgsz), batch_size, workers=workers,
                               distributed=distributed)
    predictions: Dict[ImageId, Detections] = {}
    bar = tqdm(total=len(loader.sampler), desc="evaluate", unit="img", disable=not progress,
               file=sys.stderr, leave=False)
    t_wait = time.perf_counter()
    for batch in loader:
        detector.timings.preprocess += time.perf_counter() - t_wait
        for det in detector.predict_batch(batch, clip=False):
            predictions[det.image_id] = det
        bar.update(len(batch.image_ids))
        t_wait = time.perf_counter()
    bar.close()
    return predictions
