"""Export items as NeMo Curator interleaved Parquet (one row per item, image bytes inline).

Written by Spark's own Parquet writer; a sample never spans two files.

>>> write_parquet(items, images, "s3a://bucket/export/parquet", rows_per_file=200_000)
>>> InterleavedParquetReader(file_paths="s3://bucket/export/parquet")   # NeMo Curator reads it back
"""
from __future__ import annotations

import math
from typing import Optional

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from mmcurate.schema import ITEMS, require_columns

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
    the bytes) where the image is known, else the item's. `materialize_error` is null.
    `images` must hold one row per `image_id` (it is content-addressed), or item rows would repeat.
    """
    require_columns(items, ITEMS, where="interleaved_rows(items)")
    require_columns(images, IMAGE_COLUMNS, where="interleaved_rows(images)")
    known = images.select("image_id", "binary_content", F.col("content_type").alias("__image_content_type"))
    passthrough = [_col(name) for name in items.columns if name not in NEMO_COLUMNS]
    return items.join(known, "image_id", "left").select(
        "sample_id",
        "position",
        "modality",
        F.coalesce("__image_content_type", "content_type").alias("content_type"),
        "text_content",
        "binary_content",
        "source_ref",
        F.lit(None).cast("string").alias("materialize_error"),
        *passthrough,
    )


def write_parquet(
    items: DataFrame,
    images: DataFrame,
    out_dir: str,
    *,
    rows_per_file: Optional[int] = None,
    overwrite: bool = False,
) -> None:
    """Write NeMo Curator interleaved Parquet files under `out_dir` (a path Spark can write to).

    Rows are hash-partitioned by `sample_id` (a sample never spans files) and sorted by
    (sample_id, position) inside each file, so the metadata row (-1) leads each sample.

    rows_per_file: aim for about this many rows per file (one count of `items` sizes the
        partitioning); None lets `spark.sql.shuffle.partitions` (and adaptive execution) decide.
    overwrite: replace an existing `out_dir`; otherwise an existing one is refused (Spark's
        "errorifexists").

    >>> write_parquet(curated_items, images, "/data/export/parquet", rows_per_file=100_000)
    """
    if rows_per_file is not None and rows_per_file <= 0:
        raise ValueError(f"rows_per_file must be a positive number of rows, got {rows_per_file}")
    rows = interleaved_rows(items, images)
    if rows_per_file is None:
        rows = rows.repartition("sample_id")
    else:
        rows = rows.repartition(max(1, math.ceil(items.count() / rows_per_file)), "sample_id")
    (
        rows.sortWithinPartitions("sample_id", "position")
        .write.mode("overwrite" if overwrite else "errorifexists")
        .parquet(str(out_dir))
    )


def _col(name: str) -> Column:
    """A column by its literal name, whatever characters it holds (dots, spaces, backticks)."""
    return F.col("`" + name.replace("`", "``") + "`")
