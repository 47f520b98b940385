"""One session-scoped local SparkSession for the whole suite, plus shared paths."""
import os
import sys
from pathlib import Path

import pytest

os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable

REPO = Path(__file__).resolve().parent
SHARED_DATA = REPO.parent / "shared" / "data"
TEST_DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def spark():
    from mmcurate.spark import get_spark

    session = get_spark(master="local[2]", app_name="mmcurate-tests", conf={"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared sample data next to the repository; its absence fails the test (never a silent skip)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared sample data not found at {SHARED_DATA} (see README: Test)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def test_data() -> Path:
    return TEST_DATA


@pytest.fixture(scope="session")
def photo_jpg(test_data) -> bytes:
    """A real 512x512 photograph (OpenCV's baboon.jpg): sharp, no QR code."""
    return (test_data / "images" / "baboon.jpg").read_bytes()


@pytest.fixture(scope="session")
def truncated_jpg(test_data) -> bytes:
    """Pillow's truncated JPEG test file: the header reads, the pixels do not decode."""
    return (test_data / "images" / "truncated_jpeg.jpg").read_bytes()


@pytest.fixture(scope="session")
def solid_png():
    """Factory: PNG bytes of a solid-colour RGB image (sharpness exactly 0)."""
    import io

    from PIL import Image

    def make(width: int, height: int, colour=(90, 140, 200)) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (width, height), colour).save(buffer, "PNG")
        return buffer.getvalue()

    return make


@pytest.fixture(scope="session")
def qr_png() -> bytes:
    """A real QR code (segno) filling its PNG frame."""
    import io

    import segno

    buffer = io.BytesIO()
    segno.make("https://example.com/mmcurate", error="m").save(buffer, kind="png", scale=10)
    return buffer.getvalue()
