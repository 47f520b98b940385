"""NeMo Curator's interleaved layout in one place: its reserved columns and items joined with their image bytes.

Readers and both writers use these, so the column set cannot drift between them.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from mmcurate.schema import items_columns, require_columns

NEMO_COLUMNS = (
    "sample_id", "position", "modality", "content_type", "text_content", "binary_content", "source_ref",
    "materialize_error",
)
"""NeMo Curator's reserved interleaved columns, in its order; passthrough columns follow them."""

IMAGE_COLUMNS = {"image_id": "string", "binary_content": "binary", "content_type": "string"}
"""What the exports read from the `images` table."""


def interleaved_rows(items: DataFrame, images: DataFrame) -> DataFrame:
    """Items with their image bytes joined in, as NeMo Curator's interleaved rows.

    Columns: NEMO_COLUMNS, then every other items column as passthrough (`image_id` and
    `image_url` included). `binary_content` comes from a left join on `image_id`, so text rows and
    URL-only images get null bytes; an image row's `content_type` is the `images` one (read from
    the bytes) where the image is known, else the item's; `materialize_error` is the item's.
    `images` must hold one row per `image_id` (it is content-addressed), or item rows would repeat.
    """
    items = items_columns(items, where="interleaved_rows(items)")
    require_columns(images, IMAGE_COLUMNS, where="interleaved_rows(images)")
    passthrough = [literal_column(name) for name in items.columns if name not in NEMO_COLUMNS]
    return join_image_bytes(items, image_bytes(images), "left").select(
        "sample_id",
        "position",
        "modality",
        "content_type",
        "text_content",
        "binary_content",
        "source_ref",
        "materialize_error",
        *passthrough,
    )


def image_bytes(images: DataFrame) -> DataFrame:
    """What an export takes from `images`: the bytes, and the MIME type read from them."""
    return images.select("image_id", "binary_content", F.col("content_type").alias("__image_content_type"))


def join_image_bytes(rows: DataFrame, known: DataFrame, how: str) -> DataFrame:
    """`rows` joined with `image_bytes(images)` on image_id; an image's own MIME type wins over the item's."""
    return (
        rows.join(known, "image_id", how)
        .withColumn("content_type", F.coalesce("__image_content_type", "content_type"))
        .drop("__image_content_type")
    )


def literal_column(name: str) -> Column:
    """A column by its literal name, whatever characters it holds (dots, spaces, backticks)."""
    return F.col("`" + name.replace("`", "``") + "`")
