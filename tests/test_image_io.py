"""read_image / read_image_size on the image variants real datasets contain."""
from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from openyolox.data.image_io import complete_jpeg, decode_image, probe_image, read_image, read_image_size
from openyolox.errors import DataError, ImageRepairedWarning


def _rgb(h=48, w=64, seed=0) -> np.ndarray:
    """A smooth RGB test pattern (JPEG-friendly), (h, w, 3) uint8."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1),
                     np.full_like(xx, 40 + 30 * seed)], -1).astype(np.uint8)


def _check_bgr(image, h, w):
    assert image.dtype == np.uint8 and image.shape == (h, w, 3) and image.flags.c_contiguous


def test_plain_jpeg_and_png(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    png = read_image(tmp_path / "a.png")
    _check_bgr(png, 48, 64)
    assert np.array_equal(png, rgb[:, :, ::-1])
    jpg = read_image(str(tmp_path / "a.jpg"))
    _check_bgr(jpg, 48, 64)
    assert np.abs(jpg.astype(int) - rgb[:, :, ::-1]).mean() < 3
    assert read_image_size(tmp_path / "a.jpg") == (64, 48)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_grayscale(tmp_path, suffix):
    gray = _rgb()[:, :, 0]
    Image.fromarray(gray, "L").save(tmp_path / f"g{suffix}")
    image = read_image(tmp_path / f"g{suffix}")
    _check_bgr(image, 48, 64)
    assert np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 1], image[:, :, 2])


def test_rgba_drops_alpha(tmp_path):
    rgb = _rgb()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 10, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    _check_bgr(image, 48, 64)
    assert np.array_equal(image, rgb[:, :, ::-1])


def test_16bit_png_is_scaled_not_truncated(tmp_path):
    values = np.array([[0, 1000, 32768, 65535]], np.uint16).repeat(4, 0)
    cv2.imwrite(str(tmp_path / "g16.png"), values)
    color16 = np.dstack([values, values // 2, np.full_like(values, 65535)])
    cv2.imwrite(str(tmp_path / "c16.png"), color16)  # BGR order for cv2
    gray = read_image(tmp_path / "g16.png")
    _check_bgr(gray, 4, 4)
    # truncation would give 1000 & 255 = 232 and 32768 & 255 = 0
    assert gray[0, :, 0].tolist() == [0, 4, 128, 255]
    color = read_image(tmp_path / "c16.png")
    assert color[0, :, 0].tolist() == [0, 4, 128, 255]
    assert color[0, :, 1].tolist() == [0, 2, 64, 127]  # 32767 * 255 / 65535 = 127.498
    assert color[0, :, 2].tolist() == [255] * 4


def test_16bit_tiff(tmp_path):
    rgb16 = (_rgb().astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "c16.tif"), rgb16[:, :, ::-1].copy())
    image = read_image(tmp_path / "c16.tif")
    _check_bgr(image, 48, 64)
    assert np.array_equal(image, _rgb()[:, :, ::-1])
    assert read_image_size(tmp_path / "c16.tif") == (64, 48)


def test_palette_png(tmp_path):
    rgb = _rgb()
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    _check_bgr(image, 48, 64)
    assert np.array_equal(image, np.asarray(pal.convert("RGB"))[:, :, ::-1])


def test_cmyk_jpeg(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    image = read_image(tmp_path / "cmyk.jpg")
    _check_bgr(image, 48, 64)
    expected = np.asarray(Image.open(tmp_path / "cmyk.jpg").convert("RGB"))[:, :, ::-1]
    assert np.abs(image.astype(int) - expected).mean() < 4


def test_exif_orientation_applied(tmp_path):
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:10, :20] = 255  # white block at the top-left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "rot.jpg")
    _check_bgr(image, 60, 40)
    assert read_image_size(tmp_path / "rot.jpg") == (40, 60)
    # rotated clockwise: the stored top-left corner is now top-right
    assert image[:15, -8:].mean() > 200 and image[:15, :8].mean() < 50


def test_truncated_jpeg_raises(tmp_path):
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", noisy)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data.tobytes()[: len(data) * 2 // 3])
    with pytest.raises(DataError, match="cut.jpg.*truncated"):
        read_image(path)


def test_jpeg_with_padding_or_trailer_is_fine(tmp_path):
    ok, data = cv2.imencode(".jpg", _rgb()[:, :, ::-1].copy())
    reference = cv2.imdecode(data, cv2.IMREAD_COLOR)
    (tmp_path / "pad.jpg").write_bytes(data.tobytes() + b"\x00" * 10)
    (tmp_path / "trailer.jpg").write_bytes(data.tobytes() + b"ftypmp42" * 100)  # "motion photo"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ImageRepairedWarning: nothing is missing
        assert np.array_equal(read_image(tmp_path / "pad.jpg"), reference)
        assert np.abs(read_image(tmp_path / "trailer.jpg").astype(int) - reference).max() <= 2
    assert probe_image(tmp_path / "pad.jpg") is None and probe_image(tmp_path / "trailer.jpg") is None


# ----------------------------------------------------------------------------- JPEGs cut short (issue 15.8)


def _noisy_jpeg(progressive=False, exif=None, gray=False) -> bytes:
    """A 120x160 JPEG whose pixel data fills most of the file (noise compresses badly)."""
    pixels = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    image = Image.fromarray(pixels[:, :, 0] if gray else pixels)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, progressive=progressive, **({"exif": exif} if exif else {}))
    return out.getvalue()


def _rotated_exif():
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif


JPEG_KINDS = {"baseline": {}, "progressive": {"progressive": True}, "exif-rotated": {"exif": _rotated_exif()},
              "progressive-exif": {"progressive": True, "exif": _rotated_exif()}, "gray": {"gray": True}}


@pytest.mark.parametrize("kind", JPEG_KINDS)
@pytest.mark.parametrize("cut", [1, 2])  # "D9", or the whole end marker "FF D9"
def test_jpeg_without_end_marker_is_used_with_a_warning(tmp_path, kind, cut):
    data = _noisy_jpeg(**JPEG_KINDS[kind])
    whole, path = tmp_path / "whole.jpg", tmp_path / "no_end.jpg"
    whole.write_bytes(data)
    path.write_bytes(data[:-cut])
    with pytest.warns(ImageRepairedWarning, match=r"no_end.jpg: the JPEG end marker \(FF D9\) is missing"):
        image = read_image(path)
    assert np.array_equal(image, read_image(whole))  # every pixel, EXIF rotation applied
    note = probe_image(path)
    assert note is not None and "end marker" in note and decode_image(path)[1] == note
    fixed = tmp_path / "fixed.jpg"
    fixed.write_bytes(complete_jpeg(path.read_bytes()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(read_image(fixed), image)
    assert probe_image(fixed) is None


def test_jpeg_with_padding_before_a_missing_end_marker(tmp_path):
    """Some writers pad before the end marker; a file that lost its last 20 bytes there is
    whole, and its repaired copy drops the padding (decoders warn about it)."""
    data = _noisy_jpeg()
    path = tmp_path / "padded.jpg"
    path.write_bytes((data[:-2] + b"\x00" * 30 + b"\xff\xd9")[:-20])
    with pytest.warns(ImageRepairedWarning):
        image = read_image(path)
    assert np.array_equal(image, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    assert complete_jpeg(path.read_bytes()) == data


@pytest.mark.parametrize("kind", ["baseline", "exif-rotated", "gray"])
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_jpeg_cut_in_its_pixel_data_is_an_error_saying_how_many_rows(tmp_path, kind, keep):
    data = _noisy_jpeg(**JPEG_KINDS[kind])
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(DataError, match=r"cut.jpg: cannot decode image: truncated JPEG, \d+ of 120 rows missing") \
            as err:
        read_image(path)
    missing = int(str(err.value).split("truncated JPEG, ")[1].split(" of")[0])
    expected = 120 * (1 - keep)  # noise: bytes are spread evenly over the rows
    assert abs(missing - expected) <= 16, (missing, expected)
    with pytest.raises(DataError) as probed:
        probe_image(path)
    assert str(probed.value) == str(err.value)


@pytest.mark.parametrize("kind", ["progressive", "progressive-exif"])
def test_progressive_jpeg_cut_is_an_error(tmp_path, kind):
    """Later scans refine every row: a progressive JPEG cut short lacks detail everywhere."""
    data = _noisy_jpeg(**JPEG_KINDS[kind])
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match=r"cut.jpg: .*truncated progressive JPEG, all 120 rows incomplete: the data "
                                        r"stops inside scan \d+"):
        read_image(path)
    starts = [i for i in range(len(data) - 1) if data[i:i + 2] == b"\xff\xda"]
    assert len(starts) > 3
    path.write_bytes(data[:starts[3]])  # between two scans: each decodes fully, so only the scans tell
    with pytest.raises(DataError, match="all 120 rows incomplete: the data stops after scan 3"):
        read_image(path)
    with pytest.raises(DataError, match="all 120 rows incomplete"):
        probe_image(path)


def test_probe_reads_tails(tmp_path):
    ok, png = cv2.imencode(".png", np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (tmp_path / "ok.png").write_bytes(png.tobytes())
    (tmp_path / "cut.png").write_bytes(png.tobytes()[:-100])
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert probe_image(tmp_path / "ok.png") is None
    with pytest.raises(DataError, match="cut.png"):
        probe_image(tmp_path / "cut.png")
    with pytest.raises(DataError, match="empty.jpg: image file is empty"):
        probe_image(tmp_path / "empty.jpg")
    with pytest.raises(DataError, match="gone.jpg: image file not found"):
        probe_image(tmp_path / "gone.jpg")


def test_header_size_behind_a_big_exif_block(tmp_path):
    exif = _rotated_exif()
    exif[0x010E] = "x" * 20000  # ImageDescription: pushes the frame header past the first 8 KB read
    Image.fromarray(_rgb(30, 50)).save(tmp_path / "big.jpg", exif=exif)
    assert read_image_size(tmp_path / "big.jpg") == (30, 50)


def test_truncated_png_raises(tmp_path):
    rng = np.random.default_rng(0)
    ok, data = cv2.imencode(".png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (tmp_path / "cut.png").write_bytes(data.tobytes()[: len(data) // 2])
    with pytest.raises(DataError, match="cut.png"):
        read_image(tmp_path / "cut.png")


def test_pil_only_format_falls_back(tmp_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.gif")
    image = read_image(tmp_path / "a.gif")
    _check_bgr(image, 48, 64)


def test_missing_empty_and_garbage_files(tmp_path):
    with pytest.raises(DataError, match="nope.jpg.*not found"):
        read_image(tmp_path / "nope.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="empty.jpg.*empty"):
        read_image(tmp_path / "empty.jpg")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match="text.png"):
        read_image(tmp_path / "text.png")
    with pytest.raises(DataError, match="directory"):
        read_image(tmp_path)
    with pytest.raises(DataError, match="nope.jpg"):
        read_image_size(tmp_path / "nope.jpg")


@pytest.mark.parametrize("orientation", [None, 1, 3, 5, 6, 8])
def test_jpeg_header_size_matches_pillow_and_decode(tmp_path, orientation):
    """read_image_size parses JPEG markers itself (fast path): it must agree with Pillow."""
    path = tmp_path / "a.jpg"
    image = Image.fromarray(_rgb(30, 50))
    if orientation is None:
        image.save(path, progressive=True)
    else:
        exif = Image.Exif()
        exif[0x010F] = "camera maker"  # another tag before/after orientation
        exif[0x0112] = orientation
        image.save(path, exif=exif)
    with Image.open(path) as im:
        w, h = im.size
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            w, h = h, w
    assert read_image_size(path) == (w, h)
    assert read_image(path).shape[:2] == (h, w)


def test_misnamed_file_size_falls_back(tmp_path):
    Image.fromarray(_rgb()).save(tmp_path / "really_png.jpg", format="PNG")
    assert read_image_size(tmp_path / "really_png.jpg") == (64, 48)
    assert read_image(tmp_path / "really_png.jpg").shape == (48, 64, 3)
