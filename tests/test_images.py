"""Tests for mmcurate.images: probing, bomb refusal, RGB decoding and TIFF frame extraction on real files."""
import hashlib
import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmcurate.images import MAX_PIXELS, ImageInfo, decode_rgb, extract_tiff_frame, probe, sha256_hex

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"  # shared/ is the repo's sibling


def read(relative: str) -> bytes:
    path = IMAGES / relative
    if not path.is_file():
        pytest.skip(f"shared sample data not available: {path}")
    return path.read_bytes()


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR is patched to claim width x height, with a valid IHDR CRC."""
    data = bytearray(encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize(
    "relative, fmt, content_type, size, n_frames",
    [
        ("pillow_tests/hopper.jpg", "JPEG", "image/jpeg", (128, 128), 1),
        ("pillow_tests/hopper.png", "PNG", "image/png", (128, 128), 1),
        ("pillow_tests/hopper.webp", "WEBP", "image/webp", (128, 128), 1),
        ("pillow_tests/hopper_16bit_qtables.jpg", "JPEG", "image/jpeg", (128, 128), 1),
        ("pillow_tests/pil_sample_cmyk.jpg", "JPEG", "image/jpeg", (100, 100), 1),
        ("pillow_tests/p_trns_single.png", "PNG", "image/png", (64, 64), 1),
        ("pillow_tests/transparent.png", "PNG", "image/png", (200, 150), 1),
        ("pillow_tests/hopper_bad_exif.jpg", "JPEG", "image/jpeg", (500, 500), 1),
        ("pillow_tests/invalid-exif.jpg", "JPEG", "image/jpeg", (200, 200), 1),
        ("pillow_tests/truncated_app14.jpg", "JPEG", "image/jpeg", (100, 100), 1),
        ("pillow_tests/frozenpond.mpo", "MPO", "image/mpo", (640, 480), 2),
        ("skimage/no_time_for_that_tiny.gif", "GIF", "image/gif", (14, 25), 24),
        ("skimage/multipage.tif", "TIFF", "image/tiff", (10, 15), 2),
    ],
)
def test_probe_accepts_real_images(relative, fmt, content_type, size, n_frames):
    info = probe(read(relative))
    assert info == ImageInfo(content_type, fmt, size[0], size[1], n_frames)


def test_probe_accepts_16bit_png():
    ramp = np.arange(0, 65536, 16, dtype=np.uint16).reshape(64, 64)
    img = Image.fromarray(ramp)
    assert img.mode == "I;16"
    info = probe(encode(img, "PNG"))
    assert (info.error, info.format, info.width, info.height) == (None, "PNG", 64, 64)


@pytest.mark.reliability
@pytest.mark.parametrize(
    "relative, reason",
    [
        ("pillow_tests/truncated_jpeg.jpg", "truncated"),
        ("pillow_tests/truncated_image.png", "truncated"),
        ("pillow_tests/broken.png", "decode_error"),  # PNG signature, garbage after it
        ("pillow_tests/broken_data_stream.png", "decode_error"),
        ("pillow_tests/zero_width.gif", "decode_error"),
        ("skimage/multipage_rgb.tif", "decode_error"),  # 64-bit float samples: Pillow cannot read them
        ("opencv_debian/debian_copyright.txt", "not_an_image"),
    ],
)
def test_probe_reports_bad_files_without_raising(relative, reason):
    info = probe(read(relative))
    assert info.error == reason
    assert info.detail
    assert (info.width, info.height) == (None, None)


@pytest.mark.reliability
@pytest.mark.parametrize("relative", ["pillow_tests/hopper.jpg", "pillow_tests/hopper.png", "opencv_debian/baboon.jpg"])
def test_probe_reports_cut_files_as_truncated(relative):
    data = read(relative)
    info = probe(data[: len(data) // 2])
    assert info.error == "truncated"
    assert info.format == Image.open(io.BytesIO(data)).format


@pytest.mark.reliability
def test_probe_empty_and_text():
    assert probe(b"") == ImageInfo(error="empty", detail="zero bytes")
    text = probe(b"<!doctype html><html><body>404 not found</body></html>")
    assert text.error == "not_an_image"
    assert text.detail == probe(b"plain text").detail  # deterministic: no object address in it


@pytest.mark.reliability
@pytest.mark.filterwarnings("error")  # Pillow's DecompressionBombWarning must not escape
@pytest.mark.parametrize("side", [10_000, 50_000])  # 1e8 pixels: only a Pillow warning; 2.5e9: a Pillow error
def test_probe_refuses_bomb_from_header(side):
    data = png_claiming(side, side)
    assert len(data) < 100
    start = time.perf_counter()
    info = probe(data)
    assert time.perf_counter() - start < 1.0
    assert info.error == "decompression_bomb"
    assert decode_rgb(data) is None


def test_probe_uses_max_pixels():
    data = read("pillow_tests/hopper.png")
    info = probe(data, max_pixels=128 * 128 - 1)
    assert (info.error, info.format) == ("decompression_bomb", "PNG")
    assert "128x128" in info.detail
    assert probe(data, max_pixels=128 * 128).error is None
    assert decode_rgb(data, max_pixels=100) is None
    assert MAX_PIXELS == 89_478_485


@pytest.mark.parametrize("orientation, size", [(1, (40, 20)), (3, (40, 20)), (6, (20, 40)), (8, (20, 40))])
def test_exif_orientation_swaps_dimensions(orientation, size):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.new("RGB", (40, 20), (10, 200, 30)), "JPEG", exif=exif.tobytes())
    info = probe(data)
    assert (info.width, info.height) == size
    assert decode_rgb(data).shape == (size[1], size[0], 3)  # cv2 applies the same EXIF rotation


def test_real_orientation_files_probe_ok():
    for k in range(2, 9):
        info = probe(read(f"pillow_tests/hopper_orientation_{k}.jpg"))
        assert (info.error, info.width, info.height) == (None, 128, 128)


def test_decode_rgb_returns_rgb_uint8():
    rgb = decode_rgb(encode(Image.new("RGB", (7, 5), (255, 0, 0)), "PNG"))
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [255, 0, 0]
    baboon = decode_rgb(read("opencv_debian/baboon.jpg"))
    assert baboon.shape == (512, 512, 3) and baboon.dtype == np.uint8


@pytest.mark.parametrize(
    "relative",
    ["pillow_tests/p_trns_single.png", "pillow_tests/pil_sample_cmyk.jpg", "skimage/no_time_for_that_tiny.gif"],
)
def test_decode_rgb_handles_palette_cmyk_and_gif(relative):
    info = probe(read(relative))
    assert decode_rgb(read(relative)).shape == (info.height, info.width, 3)


@pytest.mark.reliability
def test_decode_rgb_returns_none_for_undecodable():
    assert decode_rgb(b"") is None
    assert decode_rgb(b"not an image at all") is None
    assert decode_rgb(read("pillow_tests/broken.png")) is None
    assert decode_rgb(read("pillow_tests/truncated_image.png")) is None


def multi_frame_tiff(sizes):
    frames = [Image.new("RGB", size, (60 * i, 255 - 60 * i, 7)) for i, size in enumerate(sizes)]
    return encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])


def test_extract_tiff_frame():
    data = multi_frame_tiff([(10, 20), (30, 15), (7, 9)])
    assert Image.open(io.BytesIO(data)).n_frames == 3
    frame = Image.open(io.BytesIO(extract_tiff_frame(data, 1)))
    assert (frame.format, frame.size, frame.n_frames) == ("TIFF", (30, 15), 1)
    assert frame.getpixel((0, 0)) == (60, 195, 7)
    assert Image.open(io.BytesIO(extract_tiff_frame(data, 2))).size == (7, 9)
    assert extract_tiff_frame(data, 5) is None
    assert extract_tiff_frame(data, -1) is None
    assert extract_tiff_frame(data, 1, max_pixels=100) is None


def test_extract_tiff_frame_real_and_non_tiff():
    real = read("skimage/multipage.tif")
    frames = [Image.open(io.BytesIO(extract_tiff_frame(real, i))) for i in range(2)]
    assert [f.size for f in frames] == [(10, 15), (10, 15)]
    assert frames[0].tobytes() != frames[1].tobytes()
    jpeg = read("pillow_tests/hopper.jpg")
    assert extract_tiff_frame(jpeg, 0) == jpeg
    assert extract_tiff_frame(b"II*\x00garbage", 0) is None


def test_sha256_hex():
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    data = read("pillow_tests/hopper.jpg")
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
