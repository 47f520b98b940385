"""Tests for mmcurate.annotate.image_signals: sharpness, QR area, pHash and the combined signals on real images."""
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno
from PIL import Image

from mmcurate.annotate.image_signals import (
    DEFAULT_MAX_QR_AREA_RATIO,
    DEFAULT_MIN_SHARPNESS,
    hamming,
    image_signals,
    phash64,
    qr_area_ratio,
    qr_signals,
    sharpness,
)
from mmcurate.images import decode_rgb

IMAGES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "images"  # shared/ is the repo's sibling
SIGNAL_KEYS = {
    "decode_ok", "error", "format", "content_type", "width", "height", "aspect_ratio", "n_bytes",
    "sharpness", "phash",
}


def read(relative: str) -> bytes:
    path = IMAGES / relative
    if not path.is_file():
        pytest.skip(f"shared sample data not available: {path}")
    return path.read_bytes()


def rgb_of(relative: str) -> np.ndarray:
    return decode_rgb(read(relative))


def qr_png(scale: int) -> bytes:
    buf = io.BytesIO()
    segno.make("https://example.com/mmcurate", error="m").save(buf, kind="png", scale=scale)
    return buf.getvalue()


def test_solid_colour_is_exactly_zero():
    assert sharpness(np.full((64, 48, 3), (90, 140, 200), np.uint8)) == 0.0
    solid_png = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 140, 200)).save(solid_png, "PNG")
    assert image_signals(solid_png.getvalue())["sharpness"] == 0.0


def test_sharp_photo_beats_blurred_ones():
    sharp = sharpness(rgb_of("opencv_debian/baboon.jpg"))
    assert sharp > DEFAULT_MIN_SHARPNESS == 100.0
    for blurred in ("opencv_debian/text_defocus.jpg", "skimage/clock_motion.png"):
        assert sharpness(rgb_of(blurred)) < DEFAULT_MIN_SHARPNESS < sharp
    baboon = rgb_of("opencv_debian/baboon.jpg")
    assert sharpness(cv2.GaussianBlur(baboon, (9, 9), 3)) < sharp / 10


def test_sharpness_matches_nemo_definition_on_colour():
    rgb = rgb_of("skimage/astronaut.png")
    assert sharpness(rgb) == cv2.Laplacian(rgb, cv2.CV_64F).var()
    assert sharpness(rgb) != cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()


def test_sharpness_and_qr_return_zero_on_cv2_error():
    empty = np.zeros((0, 0, 3), np.uint8)
    assert sharpness(empty) == 0.0
    assert qr_area_ratio(empty) == 0.0


def test_qr_code_fills_frame():
    ratio = qr_area_ratio(decode_rgb(qr_png(scale=10)))
    assert DEFAULT_MAX_QR_AREA_RATIO == 0.05
    assert DEFAULT_MAX_QR_AREA_RATIO < ratio <= 1.0


@pytest.mark.parametrize("relative", ["opencv_debian/baboon.jpg", "skimage/astronaut.png", "skimage/text.png"])
def test_photos_have_no_qr(relative):
    assert qr_area_ratio(rgb_of(relative)) == 0.0


def test_small_qr_in_photo_is_a_small_ratio():
    photo = Image.open(io.BytesIO(read("opencv_debian/baboon.jpg"))).convert("RGB")
    photo.paste(Image.open(io.BytesIO(qr_png(scale=3))).convert("RGB"), (20, 20))
    ratio = qr_area_ratio(np.asarray(photo))
    assert 0.0 < ratio < DEFAULT_MAX_QR_AREA_RATIO


def test_phash_survives_reencoding():
    jpeg = phash64(rgb_of("pillow_tests/hopper.jpg"))
    for other in ("pillow_tests/hopper.png", "pillow_tests/hopper.webp", "pillow_tests/hopper.gif"):
        assert hamming(jpeg, phash64(rgb_of(other))) <= 6
    assert hamming(phash64(rgb_of("skimage/motorcycle_left.png")), phash64(rgb_of("skimage/motorcycle_right.png"))) <= 6


def test_phash_follows_exif_orientation():
    upright = phash64(rgb_of("pillow_tests/hopper.jpg"))
    for k in range(2, 9):
        assert hamming(upright, phash64(rgb_of(f"pillow_tests/hopper_orientation_{k}.jpg"))) <= 6


def test_phash_separates_different_photos():
    photos = ["pillow_tests/hopper.jpg", "opencv_debian/baboon.jpg", "skimage/astronaut.png", "sklearn/china.jpg"]
    hashes = [phash64(rgb_of(p)) for p in photos]
    for i, a in enumerate(hashes):
        for b in hashes[i + 1:]:
            assert hamming(a, b) > 16


def test_phash_is_signed_int64_and_hamming_handles_sign():
    hashes = [phash64(rgb_of(p)) for p in ("opencv_debian/baboon.jpg", "skimage/chelsea.png", "skimage/coffee.png")]
    assert all(isinstance(h, int) and -(2**63) <= h < 2**63 for h in hashes)
    assert any(h < 0 for h in hashes)  # the top bit is used
    assert hamming(-1, 0) == 64
    assert hamming(-1, 2**64 - 1) == 0  # signed and unsigned views of the same bits
    assert hamming(hashes[0], hashes[1]) == hamming(hashes[1], hashes[0])


def test_image_signals_on_good_image():
    data = read("skimage/chelsea.png")
    signals = image_signals(data)
    rgb = decode_rgb(data)
    assert set(signals) == SIGNAL_KEYS
    assert signals == {
        "decode_ok": True,
        "error": None,
        "format": "PNG",
        "content_type": "image/png",
        "width": 451,
        "height": 300,
        "aspect_ratio": 451 / 300,
        "n_bytes": len(data),
        "sharpness": sharpness(rgb),
        "phash": phash64(rgb),
    }
    assert qr_signals(data) == {"qr_area_ratio": 0.0}


@pytest.mark.reliability
@pytest.mark.parametrize(
    "data, error",
    [
        (b"", "empty"),
        (b"hello, I am text", "not_an_image"),
        (None, "decode_error"),  # pillow_tests/truncated_jpeg.jpg: OpenCV refuses it (ingest quarantines it earlier)
    ],
)
def test_image_signals_on_bad_bytes(data, error):
    data = read("pillow_tests/truncated_jpeg.jpg") if data is None else data
    signals = image_signals(data)
    assert set(signals) == SIGNAL_KEYS
    assert (signals["decode_ok"], signals["error"], signals["n_bytes"]) == (False, error, len(data))
    assert signals["sharpness"] is signals["phash"] is None
    assert qr_signals(data) == {"qr_area_ratio": None}


def test_image_signals_when_only_pillow_reads_the_format():
    buf = io.BytesIO()
    Image.new("RGB", (32, 16), (1, 2, 3)).save(buf, "PCX")  # valid image, but OpenCV has no PCX decoder
    signals = image_signals(buf.getvalue())
    assert (signals["decode_ok"], signals["error"], signals["format"]) == (False, "decode_error", "PCX")
    assert (signals["width"], signals["height"], signals["sharpness"]) == (32, 16, None)


@pytest.mark.reliability
def test_image_signals_refuses_bomb():
    signals = image_signals(read("pillow_tests/hopper.png"), max_pixels=1000)
    assert (signals["decode_ok"], signals["error"], signals["phash"]) == (False, "decompression_bomb", None)
