"""Helpers shared by the export tests (test_export_onnx.py, test_export_other.py)."""
import numpy as np
import torch

from openyolox.data.transforms import letterbox
from openyolox.export.verify import output_errors
from openyolox.models.yolox import create_model


def assert_close(out, ref, size, decoded=True, tol=1e-4):
    """The export criterion (openyolox.export.output_errors): |out - ref| <= tol (|ref| + s),
    s = the input size for decoded box columns, 1 for the rest."""
    errors = output_errors(out, ref, max(size) if decoded else 1.0)
    assert out.shape == ref.shape and errors["max_rel"] <= tol, errors


def detecting_model(name, calibration_images):
    """Random weights that find boxes of varied scores and sizes: batch-norm statistics
    measured on ``calibration_images`` [(name, BGR image)] (a fresh init's activations fade
    layer by layer), prediction layers scaled down and their biases at 0 (the default prior
    p = 0.01 leaves no score above 1e-4)."""
    torch.manual_seed(0)
    model = create_model(name)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # plain average over the calibration batch
    with torch.no_grad():  # calibrated on the images, letterboxed
        model.train()(torch.stack([torch.from_numpy(letterbox(img, model.config.test_size)[0].transpose(2, 0, 1).copy())
                                   for _, img in calibration_images]).float())
        for conv in [*model.head.cls_preds, *model.head.obj_preds, *model.head.reg_preds]:
            conv.weight.mul_(0.05)
            conv.bias.zero_()
    return model.eval()


def sparse_conf(model, named_images, keep=0.002):
    """A score threshold that leaves at most ``keep`` of the boxes of any image: with
    thousands of heavily overlapping random boxes, NMS turns 1e-6 score differences (float
    rounding) into different survivors; a trained model's few confident boxes do not."""
    quantiles = []
    for _, image in named_images:
        boxed, _ = letterbox(image, model.config.test_size)
        with torch.no_grad():
            out = model(torch.from_numpy(boxed.transpose(2, 0, 1).copy()).float()[None])[0]
        quantiles.append(np.quantile((out[:, 4] * out[:, 5:].max(1).values).numpy(), 1 - keep))
    return float(max(quantiles))


def pytorch_outputs(model, x, decode=True):
    """The PyTorch model's eval output for a float batch x, decoded or raw."""
    model.head.decode_in_inference = decode
    try:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()
    finally:
        model.head.decode_in_inference = True
