"""Small JPEG thumbnails made in the executors, so a page of sampled documents stays a few MB whatever the images."""
from __future__ import annotations

import io

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mmcurate.images import MAX_PIXELS, ImageDecodeError, decode_pil_rgb


def thumbnail(data: bytes | None, max_px: int = 256, max_pixels: int = MAX_PIXELS) -> bytes | None:
    """JPEG bytes of the image shrunk to fit `max_px` x `max_px` (never enlarged); None when it does not decode.

    The decode goes through `decode_pil_rgb`, which refuses decompression bombs from the header; transparent
    pixels show on white."""
    if data is None:
        return None
    try:
        image = decode_pil_rgb(bytes(data), max_pixels, background=(255, 255, 255))
    except ImageDecodeError:
        return None
    image.thumbnail((max_px, max_px))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


def thumbnail_uri(binary_content: Column, max_px: int = 256) -> Column:
    """`data:image/jpeg;base64,...` of the thumbnail of `binary_content`, null where it does not decode.

    Pillow runs in a pandas UDF (the only Python step); the base64 data URI is built with Spark's own
    functions."""
    if max_px < 1:
        raise ValueError(f"max_px must be >= 1, got {max_px}")

    @F.pandas_udf(T.BinaryType())
    def shrink(data: pd.Series) -> pd.Series:
        return pd.Series([thumbnail(value, max_px) for value in data], dtype=object)

    jpeg = shrink(binary_content)
    return F.when(jpeg.isNotNull(), F.concat(F.lit("data:image/jpeg;base64,"), F.base64(jpeg)))
