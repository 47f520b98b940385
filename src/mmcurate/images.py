"""Safe image probing and decoding: refuse decompression bombs from the header, never raise on bad bytes."""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

# Pillow's own Image.MAX_IMAGE_PIXELS default. Pillow itself still refuses, at open, anything over twice its
# global limit, so a max_pixels above 2 * Image.MAX_IMAGE_PIXELS has no further effect.
MAX_PIXELS = 89_478_485
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", *_TIFF_MAGIC)
_ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


@dataclass(frozen=True)
class ImageInfo:
    """What probe learned about one image; error is a short machine reason, None when the image is usable."""

    content_type: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    n_frames: int | None = None
    error: str | None = None
    detail: str | None = None


def _refuse_bomb(img: Image.Image, max_pixels: int) -> None:
    """Raise DecompressionBombError when the header's (or current frame's) size exceeds max_pixels."""
    width, height = img.size
    if width * height > max_pixels:
        raise Image.DecompressionBombError(f"{width}x{height} pixels exceeds max_pixels={max_pixels}")


def _orientation(img: Image.Image) -> int:
    """EXIF orientation tag (1 when absent or unreadable: bad EXIF must not make an image unusable)."""
    try:
        return int(img.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:
        return 1


def _reason(exc: Exception, data: bytes) -> str:
    """Map a Pillow exception to a short machine reason."""
    if isinstance(exc, Image.DecompressionBombError):
        return "decompression_bomb"
    if isinstance(exc, UnidentifiedImageError):
        looks_like_image = data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
        return "decode_error" if looks_like_image else "not_an_image"
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
        return "truncated"
    return "decode_error"


def _detail(exc: Exception) -> str:
    """Human message, deterministic (Pillow's own message for unknown formats embeds an object address)."""
    if isinstance(exc, UnidentifiedImageError):
        return "UnidentifiedImageError: Pillow recognises no image format in these bytes"
    return f"{type(exc).__name__}: {exc}"


def probe(data: bytes, max_pixels: int = MAX_PIXELS, verify: bool = True) -> ImageInfo:
    """Identify an image and check it decodes fully, refusing bombs before any pixel is decoded; never raises.

    verify=False reads the header only (format, size, bomb check) for callers that decode anyway."""
    if not data:
        return ImageInfo(error="empty", detail="zero bytes")
    img = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's bomb and corrupt-EXIF warnings: reported through error instead
        try:
            img = Image.open(io.BytesIO(data))  # lazy: reads the header only
            _refuse_bomb(img, max_pixels)
            if verify:
                img.load()
            width, height = img.size
            if _orientation(img) in _ROTATED_ORIENTATIONS:
                width, height = height, width
            return ImageInfo(
                content_type=img.get_format_mimetype(),
                format=img.format,
                width=width,
                height=height,
                n_frames=getattr(img, "n_frames", 1),
            )
        except Exception as exc:
            return ImageInfo(
                content_type=img.get_format_mimetype() if img is not None else None,
                format=img.format if img is not None else None,
                error=_reason(exc, data),
                detail=_detail(exc),
            )


def decode_rgb(data: bytes, max_pixels: int = MAX_PIXELS, header_checked: bool = False) -> np.ndarray | None:
    """HxWx3 uint8 RGB decoded as NeMo Curator does (cv2.imdecode IMREAD_COLOR, BGR->RGB) after a header bomb check.

    header_checked: the caller's `probe` of these bytes found no error (so no bomb), which spares a second header
    parse."""
    if not data:
        return None
    if not header_checked:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                _refuse_bomb(Image.open(io.BytesIO(data)), max_pixels)
            except Exception:
                return None
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    except cv2.error:
        return None


def extract_tiff_frame(data: bytes, frame_index: int, max_pixels: int = MAX_PIXELS) -> bytes | None:
    """One frame of a multi-frame TIFF (MINT-1T PDF shards) as a standalone TIFF; non-TIFF data unchanged, else None."""
    if not data.startswith(_TIFF_MAGIC):
        return data
    if frame_index < 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            img = Image.open(io.BytesIO(data))
            if frame_index >= getattr(img, "n_frames", 1):
                return None
            img.seek(frame_index)
            _refuse_bomb(img, max_pixels)
            out = io.BytesIO()
            img.save(out, format="TIFF")  # Pillow keeps the frame's own compression
            return out.getvalue()
        except Exception:
            return None


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of the raw bytes, the key for exact image deduplication."""
    return hashlib.sha256(data).hexdigest()


class ImageDecodeError(ValueError):
    """Bytes that do not give an image; `reason` is the short machine reason probe would report."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def decode_pil_rgb(data: bytes, max_pixels: int = MAX_PIXELS, background: tuple[int, int, int] | None = None
                   ) -> Image.Image:
    """The fully decoded RGB Pillow image model preprocessors take (bomb check first); ImageDecodeError if not.

    background: composite transparent pixels on this colour (for display); by default they become
    what Pillow's RGB conversion gives (black), as the preprocessors expect."""
    if not data:
        raise ImageDecodeError("empty", "zero bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            img = Image.open(io.BytesIO(data))
            _refuse_bomb(img, max_pixels)
            img.load()
            if background is not None and (img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info):
                rgba = img.convert("RGBA")
                canvas = Image.new("RGB", rgba.size, background)
                canvas.paste(rgba, mask=rgba.getchannel("A"))
                return canvas
            return img.convert("RGB")
        except Exception as exc:
            raise ImageDecodeError(_reason(exc, data), _detail(exc)) from exc
