"""Export items as NeMo Curator interleaved Parquet (one row per item, image bytes inline).

Written by Spark's own Parquet writer; a sample never spans two files.

>>> write_parquet(items, images, "s3a://bucket/export/parquet", rows_per_file=200_000)
>>> InterleavedParquetReader(file_paths="s3://bucket/export/parquet")   # NeMo Curator reads it back
"""
from __future__ import annotations

import math
from typing import Optional

from pyspark.sql import DataFrame

from mmcurate.io.materialize import export_inputs
from mmcurate.io.nemo import interleaved_rows


def write_parquet(
    items: DataFrame,
    images: DataFrame,
    out_dir: str,
    *,
    rows_per_file: Optional[int] = None,
    compression: str = "snappy",
    overwrite: bool = False,
    materialize_on_write: bool = True,
    on_materialize_error: str = "warn",
) -> None:
    """Write NeMo Curator interleaved Parquet files under `out_dir` (a path Spark can write to).

    Rows are hash-partitioned by `sample_id` (a sample never spans files) and sorted by
    (sample_id, position) inside each file, so the metadata row (-1) leads each sample.

    rows_per_file: aim for about this many rows per file (one count of `items` sizes the
        partitioning); None lets `spark.sql.shuffle.partitions` (and adaptive execution) decide.
    compression: the Parquet codec (NeMo's default, snappy; or zstd, gzip, lz4, none), set on this
        write only (the session's `spark.sql.parquet.compression.codec` is left alone).
    overwrite: replace an existing `out_dir`; otherwise an existing one is refused (Spark's
        "errorifexists").
    materialize_on_write / on_materialize_error: lazy image items are read from their source_ref first;
        image items still without bytes are kept with a warning ("warn"), refused ("error") or dropped
        ("drop_row", "drop_sample"): see `io.materialize.export_inputs`.

    >>> write_parquet(curated_items, images, "/data/export/parquet", rows_per_file=100_000)
    """
    if rows_per_file is not None and rows_per_file <= 0:
        raise ValueError(f"rows_per_file must be a positive number of rows, got {rows_per_file}")
    items, images, materialized = export_inputs(items, images, materialize_on_write, on_materialize_error)
    try:
        rows = interleaved_rows(items, images)
        if rows_per_file is None:
            rows = rows.repartition("sample_id")
        else:
            rows = rows.repartition(max(1, math.ceil(items.count() / rows_per_file)), "sample_id")
        (
            rows.sortWithinPartitions("sample_id", "position")
            .write.mode("overwrite" if overwrite else "errorifexists").option("compression", compression)
            .parquet(str(out_dir))
        )
    finally:
        if materialized is not None:
            materialized.unpersist()
