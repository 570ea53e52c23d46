"""Run a Detector over a dataset split: batched letterboxed inference -> predictions.

Images are decoded and letterboxed by DataLoader workers while the model runs; each batch
then goes through the Detector's one prediction step, with boxes left unclipped as the
reference evaluator does (a sliced detector runs the same step on the tiles of each image).
The time per image splits into preprocess (waiting for the next batch), inference (the
network) and postprocess (score filter, NMS, mapping back).
"""
from __future__ import annotations

import sys
import time
from typing import Dict

from tqdm import tqdm

from openyolox.data.dataset import EvalDataset
from openyolox.data.image_io import read_image
from openyolox.data.loader import build_eval_loader
from openyolox.data.records import DatasetSplit, ImageId
from openyolox.errors import ConfigError
from openyolox.inference.predictor import Detector
from openyolox.inference.results import Detections
from openyolox.inference.sources import prefetch


def predict_split(detector: Detector, split: DatasetSplit, batch_size: int = 8, workers: int = 2,
                  distributed: bool = False, progress: bool = True) -> Dict[ImageId, Detections]:
    """Detections for every image of ``split`` (this rank's shard when distributed), keyed by
    the split's image ids; boxes xyxy in original pixels, not clipped. The evaluation protocol
    (docs/yolox.md section 8) is the detector's settings: its input size, conf and NMS IoU
    (0.01 and 0.65, class-aware, for COCO-style evaluation). Timings accumulate in
    ``detector.timings``.

    A sliced detector (``detector.slicing``) gets whole images instead, see
    :func:`_predict_sliced`."""
    if detector.slicing is not None:
        if distributed:
            raise ConfigError("sliced evaluation runs in one process; evaluate without --slice under torchrun")
        return _predict_sliced(detector, split, progress)
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


def _predict_sliced(detector: Detector, split: DatasetSplit, progress: bool) -> Dict[ImageId, Detections]:
    """Sliced prediction of every image: a thread decodes the next images while the tiles of
    this one run (an image becomes many tiles, so letterboxing in loader workers does not
    apply). Boxes lie within the image (each tile's are clipped to it); images are not kept."""
    images = ((rec.image_id, read_image(rec.path)) for rec in split.records)
    predictions: Dict[ImageId, Detections] = {}
    t_wait = time.perf_counter()
    for image_id, image in tqdm(prefetch(images, 2), total=len(split), desc="evaluate (sliced)", unit="img",
                                disable=not progress, file=sys.stderr, leave=False):
        detector.timings.preprocess += time.perf_counter() - t_wait
        (det,) = detector.predict_images([(image_id, image)])
        det.image = None
        predictions[image_id] = det
        t_wait = time.perf_counter()
    return predictions
