"""Per-image quality signals (sharpness, QR-code area, perceptual hash) on a decoded RGB array or raw bytes."""
from __future__ import annotations

import cv2
import numpy as np
from typing import Optional

from mmcurate.images import MAX_PIXELS, decode_rgb, probe

DEFAULT_MIN_SHARPNESS = 100.0  # NeMo Curator's default minimum sharpness (lower = blurry)
DEFAULT_MAX_QR_AREA_RATIO = 0.05  # NeMo Curator keeps an image iff qr_area_ratio < this
_U64 = (1 << 64) - 1


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian over the 3-channel RGB array, NeMo Curator's blur score (0.0 for flat or on error)."""
    try:
        return float(cv2.Laplacian(rgb, cv2.CV_64F).var())
    except cv2.error:
        return 0.0


def qr_area_ratio(rgb: np.ndarray) -> float:
    """Fraction of the image covered by detected QR codes, NeMo Curator's QR signal (0.0 if none or on error)."""
    try:
        _, _, points, _ = cv2.QRCodeDetector().detectAndDecodeMulti(rgb)
    except cv2.error:
        return 0.0
    if points is None:
        return 0.0
    area = sum(cv2.contourArea(quad.astype(np.float32)) for quad in points)
    height, width = rgb.shape[:2]
    return float(np.clip(area / (height * width), 0.0, 1.0))


def phash64(rgb: np.ndarray) -> int:
    """Classic 64-bit pHash (32x32 DCT, 8x8 low band vs its median) as a signed int64 for Spark LongType near-dup."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()
    bits = low > np.median(low[1:])  # the DC term is excluded from the median
    value = int.from_bytes(np.packbits(bits).tobytes(), "big")
    return value - (1 << 64) if value >= (1 << 63) else value


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes given as signed (or unsigned) ints."""
    return ((a ^ b) & _U64).bit_count()


def image_signals(data: bytes, max_pixels: int = MAX_PIXELS) -> dict:
    """The cheap signals of one image's bytes: read the header, decode pixels once with OpenCV (as NeMo Curator
    does; `decode_ok` is OpenCV's verdict), score that array (scores None if undecodable). QR detection, ten
    times their cost, is `qr_signals`, scored on demand."""
    return image_signals_and_pixels(data, max_pixels)[0]


def image_signals_and_pixels(data: bytes, max_pixels: int = MAX_PIXELS) -> tuple[dict, Optional[np.ndarray]]:
    """`image_signals` and the RGB array they were computed from (None if undecodable), for a signal of the same
    image computed next (QR) to reuse instead of decoding again."""
    info = probe(data, max_pixels, verify=False)
    rgb = decode_rgb(data, max_pixels, header_checked=True) if info.error is None else None
    error = info.error or (None if rgb is not None else "decode_error")
    return {
        "decode_ok": rgb is not None,
        "error": error,
        "format": info.format,
        "content_type": info.content_type,
        "width": info.width,
        "height": info.height,
        "aspect_ratio": info.width / info.height if info.width and info.height else None,
        "n_bytes": len(data),
        "sharpness": sharpness(rgb) if rgb is not None else None,
        "phash": phash64(rgb) if rgb is not None else None,
    }, rgb


def qr_signals(data: bytes, max_pixels: int = MAX_PIXELS) -> dict:
    """The QR signal of one image's bytes: OpenCV's decode as in `image_signals`, then `qr_area_ratio` (None if
    the bytes do not decode)."""
    rgb = decode_rgb(data, max_pixels)
    return {"qr_area_ratio": qr_area_ratio(rgb) if rgb is not None else None}
