"""Detector: inputs of every kind, mapping back to original pixels, checkpoint handling."""
import warnings

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import openyolox
from openyolox.checkpoint import save_checkpoint
from openyolox.data.transforms import letterbox
from openyolox.errors import CheckpointError, ConfigError, DataError
from openyolox.inference.postprocess import postprocess
from openyolox.models.yolox import create_model


@pytest.fixture(scope="module")
def nano_ckpt(reference_dir):
    return reference_dir / "nano_reference.pth"  # yolox-nano, 80 classes, random weights


@pytest.fixture(scope="module")
def detector(nano_ckpt):
    # PyTorch: test_matches_manual_pipeline checks its steps; auto is tests/test_auto_backend.py
    return openyolox.Detector("yolox-nano", weights=nano_ckpt, conf=0.3, iou=0.45, imgsz=256, backend="torch")


def _image(seed=0, h=200, w=320):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_matches_manual_pipeline(detector, nano_ckpt):
    image = _image()
    (res,) = detector.predict(image)
    assert len(res) > 0 and res.image_shape == (200, 320)
    # the same steps by hand, on an unfused model
    model = create_model("yolox-nano")
    openyolox.load_weights(model, nano_ckpt)
    boxed, r = letterbox(image, (256, 256))
    with torch.no_grad():
        pred = model.eval()(torch.from_numpy(boxed.transpose(2, 0, 1).copy()).float()[None])
    (dets,) = postprocess(pred, 0.3, 0.45, False)
    boxes = dets[:, :4].numpy() / r
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, 320)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, 200)
    assert len(dets) == len(res)
    np.testing.assert_allclose(res.boxes, boxes, atol=1e-2)
    np.testing.assert_allclose(res.scores, (dets[:, 4] * dets[:, 5]).numpy(), atol=1e-4)
    assert (res.classes == dets[:, 6].numpy().astype(int)).all()
    assert res.boxes[:, [0, 2]].max() <= 320 and res.boxes[:, [1, 3]].max() <= 200


def test_input_kinds_agree(detector, tmp_path):
    image = _image(1)
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), image)
    pil = Image.fromarray(image[:, :, ::-1])
    results = detector.predict([image, str(path), pil, tmp_path])
    assert len(results) == 4
    for r in results[1:]:
        np.testing.assert_allclose(r.boxes, results[0].boxes, atol=1e-3)
    assert results[1].image_id == "img" and results[3].image_id == "img"


def test_folder_skips_unreadable_with_warning(detector, tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), _image(2))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = detector.predict(tmp_path)
    assert [r.image_id for r in results] == ["a"]
    assert any("broken.jpg" in str(w.message) for w in caught)


def test_single_bad_path_names_file(detector, tmp_path):
    with pytest.raises(DataError, match="missing.jpg"):
        detector.predict(tmp_path / "missing.jpg")
    with pytest.raises(DataError, match="no images"):
        detector.predict(tmp_path)


def test_bad_image_size_rejected(nano_ckpt):
    with pytest.raises(ConfigError, match="multiple of 32"):
        openyolox.Detector("yolox-nano", weights=nano_ckpt, imgsz=300)


def test_class_count_mismatch_and_non_strict(nano_ckpt):
    with pytest.raises(CheckpointError, match="80 classes"):
        openyolox.Detector("yolox-nano", weights=nano_ckpt, num_classes=3)
    det = openyolox.Detector("yolox-nano", weights=nano_ckpt, num_classes=3, strict=False)
    assert len(det.load_report.mismatched) == 6
    assert all(k.startswith("head.cls_preds") for k, _, _ in det.load_report.mismatched)


def test_metadata_from_our_checkpoint(tmp_path):
    model = create_model("yolox-nano", 2)
    path = save_checkpoint(tmp_path / "best.pth", {"model": model.state_dict(), "model_name": "yolox-nano",
                                                   "class_names": ["cat", "dog"], "imgsz": [224, 224]})
    det = openyolox.Detector(path)  # model name, classes and size come from the checkpoint
    assert det.names == ["cat", "dog"] and det.imgsz == (224, 224)
    old = save_checkpoint(tmp_path / "old.pth", {"model": model.state_dict(), "model_name": "yolox-nano",
                                                 "img_size": [192, 192]})  # the key before 0.2
    assert openyolox.Detector(old).imgsz == (192, 192)
    (res,) = det.predict(_image(3))
    assert res.names == ["cat", "dog"]


def test_to_coco_rows(detector):
    (res,) = detector.predict(_image(4))
    rows = res.to_coco(detector.category_ids)
    assert len(rows) == len(res)
    assert rows[0]["category_id"] in detector.category_ids
    x, y, w, h = rows[0]["bbox"]
    np.testing.assert_allclose([x, y, x + w, y + h], res.boxes[0], atol=0.02)
