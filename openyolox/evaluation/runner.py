"""Run a detector over a dataset split: batched letterboxed inference -> predictions.

Images are decoded and letterboxed by DataLoader workers while the model runs, so the
time per image splits into preprocess (waiting for the next batch), inference (the
network) and postprocess (score filter, NMS, mapping back to original pixels).
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Dict, Tuple

import torch
from tqdm import tqdm

from openyolox.data.dataset import EvalDataset
from openyolox.data.loader import build_eval_loader
from openyolox.data.records import DatasetSplit, ImageId
from openyolox.evaluation.results import Prediction
from openyolox.inference.postprocess import postprocess, scale_boxes
from openyolox.inference.predictor import Timings

# batch (B, 3, H, W) uint8 tensor -> (B, A, 5+C) decoded predictions
Backend = Callable[[torch.Tensor], torch.Tensor]


def predict_split(backend: Backend, split: DatasetSplit, img_size: Tuple[int, int], conf: float = 0.01,
                  nms: float = 0.65, batch_size: int = 8, workers: int = 2, distributed: bool = False,
                  progress: bool = True, synchronize: Callable[[], None] = lambda: None
                  ) -> Tuple[Dict[ImageId, Prediction], Timings]:
    """Predictions for every image of ``split`` (this rank's shard when distributed).

    Boxes are xyxy in original image pixels; the evaluation protocol of YOLOX_SPEC.md
    section 8 (letterbox at img_size, class-aware NMS, conf 0.01, IoU 0.65). Like the
    reference evaluator, boxes are not clipped to the image (clipping changes AP slightly).
    """
    loader = build_eval_loader(EvalDataset(split, img_size), batch_size, workers=workers, distributed=distributed)
    predictions: Dict[ImageId, Prediction] = {}
    timings = Timings()
    bar = tqdm(total=len(loader.sampler), desc="evaluate", unit="img", disable=not progress,
               file=sys.stderr, leave=False)
    t_wait = time.perf_counter()
    for batch in loader:
        t0 = time.perf_counter()
        raw = backend(batch.images)
        synchronize()
        t1 = time.perf_counter()
        dets = postprocess(raw, conf, nms, class_agnostic=False)
        for det, ratio, image_id, hw in zip(dets, batch.ratios.tolist(), batch.image_ids, batch.orig_hw.tolist()):
            det = scale_boxes(det.float(), ratio, (hw[0], hw[1]), clip=False).cpu().numpy()
            predictions[image_id] = Prediction(det[:, :4], det[:, 4] * det[:, 5], det[:, 6].astype("int64"))
        t2 = time.perf_counter()
        timings.preprocess += t0 - t_wait
        timings.inference += t1 - t0
        timings.postprocess += t2 - t1
        timings.images += len(dets)
        bar.update(len(dets))
        t_wait = time.perf_counter()
    bar.close()
    return predictions, timings
